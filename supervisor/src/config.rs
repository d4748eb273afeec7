//! The config file: `ctrd --config FILE`, or `/etc/ctrd/config.toml` when it exists.
//!
//! The file holds ctrd's own command-line flags, one top-level TOML key per flag, named as the
//! long flag without its dashes (`--state-dir` is `state-dir`). Nothing here lists the flags: the
//! keys, the value each takes and the commented default file all come from the clap definition in
//! [`crate::cli`]. Each key becomes the flag it names, checked by that flag's own value parser,
//! and clap then parses the file's flags followed by the real command line, so a flag given on
//! the command line wins (`args_override_self`). Every problem is reported with the file's name,
//! the line and the key, before the daemon touches anything.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, CommandFactory, Parser};
use toml::de::{DeTable, DeValue};

use crate::cli::Args;

/// Read when `--config` is not given, if it exists.
pub const DEFAULT_PATH: &str = "/etc/ctrd/config.toml";

/// Flags that only make sense on the command line.
const NOT_IN_FILE: [&str; 3] = ["config", "help", "version"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("config file {path}, line {line}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: Problem,
    },
}

/// What is wrong with one place in a config file.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("{0}")]
    Syntax(String),
    #[error("unknown key `{key}`{}", did_you_mean(.suggestion))]
    UnknownKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("`{0}` cannot be set in a config file")]
    CommandLineOnly(String),
    #[error("`{key}` expects {expected}")]
    WrongType { key: String, expected: &'static str },
    #[error("invalid value {value:?} for `{key}`: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// A problem and where it is, before the file's name is attached.
type Located = (usize, Problem);

/// Applies the config file under the command line `cli` was parsed from: returns `cli` itself
/// when there is no file, else the file's flags and then the command line's, parsed together.
pub fn load(cli: Args) -> Result<Args, ConfigError> {
    let Some(path) = config_path(cli.config.as_deref(), Path::new(DEFAULT_PATH)) else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let from_file =
        to_flags(&Args::command(), &text).map_err(|(line, problem)| ConfigError::Invalid {
            path: path.clone(),
            line,
            problem,
        })?;
    let mut argv = std::env::args_os();
    let program = argv.next().unwrap_or_else(|| "ctrd".into());
    let merged = std::iter::once(program).chain(from_file).chain(argv);
    // Every value was checked by its flag's parser already; what is left for clap to refuse
    // (two flags that conflict, say) is reported the way clap reports the command line.
    Ok(Args::try_parse_from(merged).unwrap_or_else(|e| e.exit()))
}

/// The file to read: the one named on the command line (which must exist), else the default
/// path if it exists, else none.
fn config_path(explicit: Option<&Path>, default: &Path) -> Option<PathBuf> {
    match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => default.exists().then(|| default.to_path_buf()),
    }
}

/// Turns a config file into the command-line flags it stands for, checking each key and value
/// against `cmd`'s definition.
fn to_flags(cmd: &clap::Command, text: &str) -> Result<Vec<OsString>, Located> {
    let mut cmd = cmd.clone();
    cmd.build();
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span.start));
        (line, Problem::Syntax(e.message().trim().to_string()))
    })?;
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut flags = Vec::new();
    for (key, value) in entries {
        let name: &str = key.get_ref();
        let line = line_of(text, key.span().start);
        let arg = configurable(&cmd, name).map_err(|problem| (line, problem))?;
        let line = line_of(text, value.span().start);
        let values = flag_values(&cmd, arg, value.get_ref()).map_err(|problem| (line, problem))?;
        flags.extend(values);
    }
    Ok(flags)
}

/// The flag a key names, if it may be set in a file.
fn configurable<'a>(cmd: &'a clap::Command, key: &str) -> Result<&'a Arg, Problem> {
    if NOT_IN_FILE.contains(&key) {
        return Err(Problem::CommandLineOnly(key.to_string()));
    }
    cmd.get_arguments()
        .find(|arg| arg.get_long() == Some(key))
        .ok_or_else(|| Problem::UnknownKey {
            key: key.to_string(),
            suggestion: suggest(cmd, key),
        })
}

/// The nearest key, for a typo (`stat-dir`) or the other spelling (`state_dir`).
fn suggest(cmd: &clap::Command, key: &str) -> Option<String> {
    let kebab = key.replace('_', "-");
    keys(cmd)
        .map(|arg| arg.get_long().unwrap_or_default())
        .map(|known| (edit_distance(&kebab, known), known))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, known)| known.to_string())
}

/// Levenshtein distance, over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The arguments that are config keys: named flags, minus the command-line-only ones.
fn keys(cmd: &clap::Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|arg| {
        arg.get_long()
            .is_some_and(|long| !NOT_IN_FILE.contains(&long))
    })
}

/// The command-line words for `key = value`: a boolean switches a flag that takes no value on
/// or off, a count repeats its flag, anything else is passed as `--key=VALUE` (an array for a
/// repeatable flag), each value checked by the flag's own parser.
fn flag_values(cmd: &clap::Command, arg: &Arg, value: &DeValue) -> Result<Vec<OsString>, Problem> {
    let key = arg.get_long().unwrap_or_default();
    let flag = format!("--{key}");
    let wrong = |expected| Problem::WrongType {
        key: key.to_string(),
        expected,
    };
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse => {
            let DeValue::Boolean(on) = value else {
                return Err(wrong("true or false"));
            };
            // The flag is given when the file asks for the value it sets.
            let sets = matches!(arg.get_action(), ArgAction::SetTrue);
            Ok(if *on == sets {
                vec![flag.into()]
            } else {
                vec![]
            })
        }
        ArgAction::Count => match scalar(value).and_then(|n| n.parse::<u8>().ok()) {
            Some(n) => Ok(vec![OsString::from(&flag); usize::from(n)]),
            None => Err(wrong("a count from 0 to 255")),
        },
        ArgAction::Append => {
            let items: Vec<&DeValue> = match value {
                DeValue::Array(items) => items.iter().map(|item| item.get_ref()).collect(),
                single => vec![single],
            };
            items
                .into_iter()
                .map(|item| {
                    let text = scalar(item)
                        .ok_or_else(|| wrong("a string, a number or an array of them"))?;
                    checked(cmd, arg, &flag, text)
                })
                .collect()
        }
        _ => {
            let text = scalar(value).ok_or_else(|| wrong("a string or a number"))?;
            Ok(vec![checked(cmd, arg, &flag, text)?])
        }
    }
}

/// A string or number as the text a flag would be given.
fn scalar(value: &DeValue) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(f) => Some(f.as_str().to_string()),
        _ => None,
    }
}

/// `--key=VALUE`, once the flag's own parser has accepted VALUE (clap parses the flag alone).
fn checked(cmd: &clap::Command, arg: &Arg, flag: &str, text: String) -> Result<OsString, Problem> {
    let word = OsString::from(format!("{flag}={text}"));
    match cmd
        .clone()
        .try_get_matches_from([OsStr::new(cmd.get_name()), &word])
    {
        Err(err) if err.kind() != clap::error::ErrorKind::MissingRequiredArgument => {
            Err(Problem::BadValue {
                key: arg.get_long().unwrap_or_default().to_string(),
                reason: clap_reason(&err),
                value: text,
            })
        }
        _ => Ok(word),
    }
}

/// The reason inside a clap error, without clap's "error:" prefix and usage lines.
fn clap_reason(err: &clap::Error) -> String {
    if let Some(source) = std::error::Error::source(err) {
        return source.to_string();
    }
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.trim_start_matches("error: ").to_string()
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The commented default config for `cmd`: every configurable flag with its help as a comment
/// and its default as the value. A flag without a default is shown commented out.
pub fn default_config(cmd: &clap::Command) -> String {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut out = format!(
        "# {} {} configuration, generated by `{} config default`.\n\
         # Each key is a command-line flag without its dashes (`--state-dir` is `state-dir`);\n\
         # flags given on the command line override this file. Read from {DEFAULT_PATH} when\n\
         # it exists, or from the file named by `--config`.\n",
        cmd.get_name(),
        cmd.get_version().unwrap_or_default(),
        cmd.get_name()
    );
    for arg in keys(&cmd).filter(|arg| !arg.is_hide_set()) {
        out.push('\n');
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        for line in help.lines() {
            out.push_str(format!("# {line}").trim_end());
            out.push('\n');
        }
        let possible: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| v.get_name().to_string())
            .collect();
        if !possible.is_empty()
            && !matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
        {
            out.push_str(&format!("# One of: {}.\n", possible.join(", ")));
        }
        let key = arg.get_long().unwrap_or_default();
        out.push_str(&default_line(arg, key));
        out.push('\n');
    }
    out
}

/// `key = default`, or a commented-out example when the flag has no default.
fn default_line(arg: &Arg, key: &str) -> String {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| toml_scalar(&v.to_string_lossy()))
        .collect();
    match arg.get_action() {
        ArgAction::SetTrue | ArgAction::SetFalse | ArgAction::Count => {
            format!(
                "{key} = {}",
                defaults.first().map_or("false", |d| d.trim_matches('"'))
            )
        }
        ArgAction::Append if defaults.is_empty() => format!("# {key} = [{}]", placeholder(arg)),
        ArgAction::Append => format!("{key} = [{}]", defaults.join(", ")),
        _ => match defaults.first() {
            Some(default) => format!("{key} = {default}"),
            None => format!("# {key} = {}", placeholder(arg)),
        },
    }
}

/// A default as TOML: an integer when it reads as one, else a string.
fn toml_scalar(text: &str) -> String {
    match text.parse::<i64>() {
        Ok(n) => n.to_string(),
        Err(_) => toml::Value::String(text.to_string()).to_string(),
    }
}

/// `"VALUE_NAME"`, for a flag with no default.
fn placeholder(arg: &Arg) -> String {
    let name = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(
            || arg.get_id().to_string().to_uppercase(),
            ToString::to_string,
        );
    toml::Value::String(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Result<Vec<String>, Located> {
        to_flags(&Args::command(), text).map(|flags| {
            flags
                .into_iter()
                .map(|f| f.into_string().unwrap())
                .collect()
        })
    }

    fn parse(file: &str, cli: &[&str]) -> Args {
        let words = flags(file).unwrap();
        let argv = std::iter::once("ctrd")
            .chain(words.iter().map(String::as_str))
            .chain(cli.iter().copied());
        Args::try_parse_from(argv).unwrap()
    }

    #[test]
    fn keys_become_flags_and_the_command_line_wins() {
        let file = "state-dir = \"/srv/ctrd\"\nconcurrency = 0x10\nshutdown-timeout = \"1m\"\n\
                    debug = true\nruntime = \"/usr/sbin/runc\"\n";
        let args = parse(file, &["--runtime", "crun"]);
        assert_eq!(args.state_dir, PathBuf::from("/srv/ctrd"));
        assert_eq!(args.concurrency, 16);
        assert_eq!(args.shutdown_timeout, std::time::Duration::from_secs(60));
        assert!(args.debug);
        assert_eq!(args.runtime, PathBuf::from("crun"));
        assert!(!parse("debug = false", &[]).debug);
    }

    #[test]
    fn the_default_config_parses_to_the_defaults() {
        let text = default_config(&Args::command());
        assert!(text.contains("\n# Where ctrd keeps runc state, container logs and its socket\n"));
        assert!(text.contains("\nstate-dir = \"/run/ctrd\"\n"));
        assert!(text.contains("\nconcurrency = 10\n"));
        assert!(text.contains("\ndebug = false\n"));
        assert!(text.contains("\n# socket = \"SOCKET\"\n"));
        assert!(!text.contains("config ="), "--config is not a key:\n{text}");
        let from_file = parse(&text, &[]);
        let defaults = Args::try_parse_from(["ctrd"]).unwrap();
        assert_eq!(format!("{from_file:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line_and_the_nearest_key() {
        let text = "# comment\nstate-dir = \"/x\"\n\nconcurency = 4\n";
        assert_eq!(
            flags(text),
            Err((
                4,
                Problem::UnknownKey {
                    key: "concurency".into(),
                    suggestion: Some("concurrency".into())
                }
            ))
        );
        let (line, problem) = flags("max_frame_size = 1\n").unwrap_err();
        assert_eq!(line, 1);
        assert_eq!(
            problem.to_string(),
            "unknown key `max_frame_size` (did you mean `max-frame-size`?)"
        );
        let (_, problem) = flags("colour = true").unwrap_err();
        assert_eq!(problem.to_string(), "unknown key `colour`");
    }

    #[test]
    fn a_bad_value_is_named_with_its_line_and_the_flags_reason() {
        let (line, problem) = flags("debug = true\nconcurrency = 0\n").unwrap_err();
        assert_eq!(line, 2);
        assert_eq!(
            problem.to_string(),
            "invalid value \"0\" for `concurrency`: 0 is not in 1..=1024"
        );
        let (line, problem) = flags("max-frame-size = \"32M\"\n").unwrap_err();
        assert_eq!(line, 1);
        assert_eq!(
            problem.to_string(),
            "invalid value \"32M\" for `max-frame-size`: 33554432 bytes is more than the \
             protocol carries: a frame holds at most 16777216 bytes (16M)"
        );
        let (line, problem) = flags("\n\nshutdown-timeout = \"soon\"").unwrap_err();
        assert_eq!(line, 3);
        assert!(matches!(problem, Problem::BadValue { key, .. } if key == "shutdown-timeout"));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused() {
        let wrong = |key: &str, expected| {
            Err((
                1,
                Problem::WrongType {
                    key: key.into(),
                    expected,
                },
            ))
        };
        assert_eq!(flags("debug = \"yes\""), wrong("debug", "true or false"));
        assert_eq!(
            flags("runtime = true"),
            wrong("runtime", "a string or a number")
        );
        assert_eq!(
            flags("runtime = [\"a\"]"),
            wrong("runtime", "a string or a number")
        );
    }

    #[test]
    fn command_line_only_flags_and_syntax_errors_are_refused() {
        assert_eq!(
            flags("\nconfig = \"/etc/other.toml\""),
            Err((2, Problem::CommandLineOnly("config".into())))
        );
        assert_eq!(
            flags("help = true").unwrap_err().1,
            Problem::CommandLineOnly("help".into())
        );
        let (line, problem) = flags("debug = true\nruntime = runc\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(matches!(problem, Problem::Syntax(_)));
        let (line, _) = flags("debug = true\ndebug = false\n").unwrap_err();
        assert_eq!(line, 2, "a duplicate key");
    }

    #[test]
    fn the_default_path_is_read_only_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("config.toml");
        let explicit = dir.path().join("other.toml");
        assert_eq!(config_path(None, &default), None);
        assert_eq!(
            config_path(Some(&explicit), &default),
            Some(explicit.clone()),
            "a named file is read even if missing, so its absence is an error"
        );
        std::fs::write(&default, "").unwrap();
        assert_eq!(config_path(None, &default), Some(default.clone()));
    }

    /// Flags of kinds ctrd does not have yet: the file handles them from their definition.
    #[test]
    fn every_kind_of_flag_maps_from_its_definition() {
        let cmd = clap::Command::new("d")
            .version("1")
            .arg(Arg::new("label").long("label").action(ArgAction::Append))
            .arg(Arg::new("verbose").long("verbose").action(ArgAction::Count))
            .arg(
                Arg::new("no-oom-notify")
                    .long("no-oom-notify")
                    .action(ArgAction::SetTrue)
                    .help("Do not watch for OOM kills"),
            )
            .arg(Arg::new("color").long("color").action(ArgAction::SetFalse))
            .arg(
                Arg::new("format")
                    .long("format")
                    .value_parser(["json", "text"])
                    .default_value("text"),
            )
            .arg(Arg::new("secret").long("secret").hide(true));
        let text = "label = [\"a=1\", \"b\"]\nverbose = 2\nno-oom-notify = true\ncolor = false\n\
                    format = \"json\"\nsecret = \"-x\"\n";
        let words: Vec<String> = to_flags(&cmd, text)
            .unwrap()
            .into_iter()
            .map(|w| w.into_string().unwrap())
            .collect();
        assert_eq!(
            words,
            [
                "--label=a=1",
                "--label=b",
                "--verbose",
                "--verbose",
                "--no-oom-notify",
                "--color",
                "--format=json",
                "--secret=-x"
            ]
        );
        assert_eq!(to_flags(&cmd, "label = \"one\"").unwrap(), ["--label=one"]);
        let (line, problem) = to_flags(&cmd, "\nformat = \"xml\"").unwrap_err();
        assert_eq!(line, 2);
        assert!(matches!(problem, Problem::BadValue { key, .. } if key == "format"));

        let default = default_config(&cmd);
        assert!(default.contains("\n# label = [\"LABEL\"]\n"), "{default}");
        assert!(default.contains("\nverbose = 0\n"), "{default}");
        assert!(default.contains("\n# Do not watch for OOM kills\nno-oom-notify = false\n"));
        assert!(default.contains("\ncolor = true\n"), "{default}");
        assert!(default.contains("\n# One of: json, text.\nformat = \"text\"\n"));
        assert!(
            !default.contains("secret"),
            "hidden flags stay out: {default}"
        );
        assert_eq!(
            to_flags(&cmd, &default).unwrap(),
            ["--format=text"],
            "the defaults ask for nothing but themselves"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("socket", "socket"), 0);
        assert_eq!(edit_distance("sockte", "socket"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("runtim", "runtime"), 1);
    }
}
