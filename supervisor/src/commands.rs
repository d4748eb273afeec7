//! ctrd's subcommands (`ctrd config default`, `ctrd upgrade`, `ctrd man`): everything a `ctrd`
//! does that is neither the keeper nor the daemon. Apart from [`crate::cli`], which only defines
//! the command line, so the config file can be derived from that definition without a cycle.

use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Args, Command, ConfigCommand};

/// Runs a subcommand; its output goes to stdout (or DIR), its failure to stderr.
pub fn run(command: &Command) -> ExitCode {
    let result = match command {
        Command::Config(ConfigCommand::Default) => {
            let text = crate::config::default_config(&Args::command());
            match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
                // Whoever read it has what they wanted (`ctrd config default | head`).
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                written => written.map_err(|e| format!("cannot write to stdout: {e}")),
            }
        }
        Command::Upgrade { address, timeout } => {
            crate::upgrade::upgrade(address, *timeout).map(|done| println!("{done}"))
        }
        Command::Man { dir } => std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(Args::command(), dir))
            .map_err(|e| format!("cannot write man pages to {}: {e}", dir.display())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ctrd: {message}");
            ExitCode::FAILURE
        }
    }
}
