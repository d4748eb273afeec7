//! Files generated from ctr's own command line, so they always match it: shell completion
//! scripts (`ctr completion SHELL`) and man pages (`ctr man DIR`, hidden; scripts/man.sh).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::error::Error;
use crate::Cli;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory that receives ctr.1 and one page per subcommand
    pub dir: PathBuf,
}

/// Writes the completion script for `shell`; sourcing it completes ctr's commands and flags.
pub fn completion(shell: Shell, out: &mut impl Write) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible(&Cli::command()), "ctr", &mut script);
    out.write_all(&script)?;
    Ok(())
}

/// `cmd` without its hidden subcommands, at every level: clap_complete would offer them too,
/// and completion offers what `--help` shows.
fn visible(cmd: &clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(cmd.get_name().to_string())
        .args(cmd.get_arguments().cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(visible),
        );
    if let Some(about) = cmd.get_about() {
        shown = shown.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        shown = shown.version(version.to_string());
    }
    shown
}

/// Writes `ctr.1` and `ctr-<subcommand>....1` for every visible subcommand into `dir`.
pub fn man(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .map_err(|source| Error::ManPages {
            dir: dir.to_path_buf(),
            source,
        })
}
