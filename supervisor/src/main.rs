//! `ctrd`: the command line, then one of the two processes a `ctrd` is (see the library's docs).

use std::process::ExitCode;

use clap::Parser;
use supervisor::cli::Args;
use supervisor::{config, Daemon, DaemonError, KeeperLink};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(command) = &args.command {
        return supervisor::commands::run(command);
    }
    let args = match config::load(args) {
        Ok(args) => args,
        Err(err) => {
            eprintln!("ctrd: {err}");
            return ExitCode::FAILURE;
        }
    };
    let level = if args.debug { "debug" } else { "info" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    // Started by hand or by a service manager, ctrd is the keeper; started by the keeper, it has
    // the keeper's end of a socketpair and is the daemon.
    let result = match KeeperLink::from_env() {
        None => supervisor::keep(args),
        Some(link) => link
            .map_err(DaemonError::from)
            .and_then(|(link, handshake)| Daemon::prepare(args, link, handshake)?.run()),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            log::error!("{err}");
            eprintln!("ctrd: {err}");
            ExitCode::FAILURE
        }
    }
}
