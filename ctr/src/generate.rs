//! Files generated from ctr's own command line, so they always match it: shell completion
//! scripts (`ctr completion SHELL`) and man pages (`ctr man DIR`, hidden; scripts/man.sh), and
//! the parser that knows that hidden command.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches};
use clap_complete::Shell;

use crate::error::{self, Error};
use crate::Cli;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The hidden command scripts/man.sh runs: `ctr man DIR`.
const MAN: &str = "man";
const MAN_DIR: &str = "dir";

/// Parses ctr's command line. `ctr man DIR` is added to the parser here rather than to [`Cli`]
/// (clap_complete and clap_mangen would offer a hidden subcommand of `Cli` all the same), so
/// completion scripts and man pages never show it; like `--help`, it is answered here and exits.
pub fn parse_command_line() -> Cli {
    let man_command = clap::Command::new(MAN)
        .hide(true)
        .about("Write ctr's man pages into DIR")
        .arg(
            clap::Arg::new(MAN_DIR)
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        );
    let matches = Cli::command()
        .subcommand(man_command)
        .try_get_matches()
        .unwrap_or_else(|err| exit_on(err));
    if let Some((MAN, args)) = matches.subcommand() {
        if let Some(dir) = args.get_one::<PathBuf>(MAN_DIR) {
            let code = match man(dir) {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!("ctr: {err}");
                    error::FAILURE
                }
            };
            std::process::exit(code.into());
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|err| exit_on(err))
}

/// `--help` and `--version` print and exit 0 as clap has them do; a usage error is reported as
/// clap words it (what is wrong, the usage line, a pointer to `--help`), but exits
/// [`error::FAILURE`] instead of clap's 2, which a process ctr waits for may well exit with.
fn exit_on(err: clap::Error) -> ! {
    if !err.use_stderr() {
        err.exit();
    }
    // Nothing is left to report a failure to write the report to.
    let _ = err.print();
    std::process::exit(error::FAILURE.into())
}

/// Writes the completion script for `shell`; sourcing it completes ctr's commands and flags.
pub fn completion(shell: Shell, out: &mut impl Write) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ctr", &mut script);
    out.write_all(&script)?;
    Ok(())
}

/// Writes `ctr.1` and `ctr-<subcommand>....1` for every visible subcommand into `dir`.
fn man(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .map_err(|source| Error::ManPages {
            dir: dir.to_path_buf(),
            source,
        })
}
