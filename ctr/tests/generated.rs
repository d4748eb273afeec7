//! What `ctr` generates from its own command line: shell completions, checked by sourcing the
//! bash script in a real bash, and man pages.

use std::process::{Command, Output, Stdio};

const CTR: &str = env!("CARGO_BIN_EXE_ctr");

fn ctr(args: &[&str]) -> Output {
    let out = Command::new(CTR)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What bash offers for the last of `words`, with `ctr completion bash` sourced and its `_ctr`
/// function called the way `complete -F` calls it: command name, current word, previous word.
fn bash_completes(words: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ctr.bash");
    std::fs::write(&script, ctr(&["completion", "bash"]).stdout).unwrap();
    let cword = words.len() - 1;
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _ctr ctr '{}' '{}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        quoted.join(" "),
        words[cword],
        words[cword - 1],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_container_subcommands() {
    let offered = bash_completes(&["ctr", "containers", "st"]);
    for expected in ["start", "state"] {
        assert!(
            offered.iter().any(|w| w == expected),
            "{expected} not in {offered:?}"
        );
    }
    assert!(
        offered.iter().all(|w| w.starts_with("st")),
        "only words starting with st: {offered:?}"
    );
}

#[test]
fn bash_completes_commands_and_flags_but_not_hidden_commands() {
    let top = bash_completes(&["ctr", ""]);
    for expected in ["containers", "events", "completion", "--address", "-n"] {
        assert!(
            top.iter().any(|w| w == expected),
            "{expected} not in {top:?}"
        );
    }
    assert!(
        !top.iter().any(|w| w == "man"),
        "hidden `man` offered: {top:?}"
    );
    let kill = bash_completes(&["ctr", "-n", "web", "containers", "kill", "--s"]);
    assert_eq!(kill, ["--signal"]);
}

#[test]
fn zsh_and_fish_scripts_name_the_commands() {
    let zsh = String::from_utf8(ctr(&["completion", "zsh"]).stdout).unwrap();
    assert!(zsh.starts_with("#compdef ctr"), "{zsh}");
    assert!(zsh.contains("'containers:"), "{zsh}");
    let fish = String::from_utf8(ctr(&["completion", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c ctr"), "{fish}");
    assert!(fish.contains("-a \"containers\""), "{fish}");
}

#[test]
fn man_pages_cover_every_visible_command() {
    let dir = tempfile::tempdir().unwrap();
    let man1 = dir.path().join("man1");
    ctr(&["man", man1.to_str().unwrap()]);
    for page in [
        "ctr",
        "ctr-containers",
        "ctr-containers-start",
        "ctr-containers-state",
        "ctr-events",
        "ctr-completion",
    ] {
        let text = std::fs::read_to_string(man1.join(format!("{page}.1")))
            .unwrap_or_else(|e| panic!("{page}.1: {e}"));
        assert!(
            text.contains(&format!(".TH {page} 1")),
            "{page}.1 has no title:\n{text}"
        );
    }
    assert!(
        !man1.join("ctr-man.1").exists(),
        "hidden commands get no page"
    );
}
