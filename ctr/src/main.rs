//! `ctr`: the command-line client of `ctrd`.
//!
//! This file owns the command line (clap definitions), dispatch and error reporting: every
//! failure is reported here, once, as a single `ctr: <message>` line on stderr with exit code 1.
//! The commands live in [`containers`], [`events`], [`daemon`] and [`metrics`]; [`output`] owns the formats.

mod containers;
mod daemon;
mod error;
mod events;
mod metrics;
mod output;
mod signal;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use protocol::Client;

use crate::error::Error;
use crate::output::Format;

/// Where ctrd listens unless told otherwise.
const DEFAULT_ADDRESS: &str = "/run/ctrd/ctrd.sock";

#[derive(Debug, Parser)]
#[command(name = "ctr", version = protocol::VERSION, about = "Control containers run by ctrd")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// What every command needs to reach the daemon.
#[derive(Debug, Args)]
struct Global {
    /// Path of ctrd's socket
    #[arg(long, global = true, env = "CTRD_ADDRESS", default_value = DEFAULT_ADDRESS)]
    address: PathBuf,
    /// Namespace the command works in
    #[arg(
        short,
        long,
        global = true,
        env = "CTRD_NAMESPACE",
        default_value = protocol::DEFAULT_NAMESPACE
    )]
    namespace: String,
}

impl Global {
    fn connect(&self) -> Result<Client, Error> {
        Ok(Client::connect(&self.address)?)
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, start, signal and inspect containers (lists them without a subcommand)
    Containers(ContainersArgs),
    /// Stream the namespace's container events until ctrd closes the stream
    Events(FormatArgs),
    /// Print the versions of ctr and ctrd
    Version(FormatArgs),
    /// Print ctrd's status
    Info(FormatArgs),
    /// Print ctrd's telemetry: start times, counters and their rates, gauges
    Metrics(FormatArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ContainersArgs {
    #[command(subcommand)]
    command: Option<ContainersCommand>,
    #[command(flatten)]
    list: FormatArgs,
}

#[derive(Debug, Subcommand)]
enum ContainersCommand {
    /// List the namespace's containers
    List(FormatArgs),
    /// Start a container from an OCI bundle; returns once it runs
    Start(StartArgs),
    /// Send a signal to a container
    Kill(KillArgs),
    /// Show one container
    State(StateArgs),
}

#[derive(Debug, Args)]
struct FormatArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct StartArgs {
    /// Label to attach to the container (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// File that receives the container's stdout [default: its log in ctrd's state dir]
    #[arg(long, value_name = "FILE")]
    stdout: Option<PathBuf>,
    /// File that receives the container's stderr [default: its log in ctrd's state dir]
    #[arg(long, value_name = "FILE")]
    stderr: Option<PathBuf>,
    /// Container id, unique in the namespace
    id: String,
    /// OCI bundle directory (the one holding config.json)
    bundle: PathBuf,
}

#[derive(Debug, Args)]
struct KillArgs {
    /// Signal to send: a number, or a name with or without SIG
    #[arg(short, long, default_value = "TERM")]
    signal: String,
    /// Signal every process in the container, not only its init
    #[arg(short, long)]
    all: bool,
    /// Container id
    id: String,
}

#[derive(Debug, Args)]
struct StateArgs {
    /// Container id
    id: String,
    #[command(flatten)]
    format: FormatArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli, &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is_closed_stdout() => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing is left to report a failure to write the report to.
            let _ = writeln!(io::stderr(), "ctr: {}", one_line(&err.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, out: &mut impl Write) -> Result<(), Error> {
    let global = &cli.global;
    match cli.command {
        Command::Containers(args) => match args.command {
            None => containers::list(global, args.list.format, out),
            Some(ContainersCommand::List(args)) => containers::list(global, args.format, out),
            Some(ContainersCommand::Start(args)) => containers::start(global, &args),
            Some(ContainersCommand::Kill(args)) => containers::kill(global, &args),
            Some(ContainersCommand::State(args)) => {
                containers::state(global, &args.id, args.format.format, out)
            }
        },
        Command::Events(args) => events::stream(global, args.format, out),
        Command::Version(args) => daemon::version(global, args.format, out),
        Command::Info(args) => daemon::info(global, args.format, out),
        Command::Metrics(args) => metrics::show(global, args.format, out),
    }
}

/// Daemon messages carry whole cause chains, runc's stderr among them; folding their lines keeps
/// the report to the one line scripts expect.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn containers_without_subcommand_lists() {
        let cli =
            Cli::try_parse_from(["ctr", "-n", "ns", "containers", "--format", "json"]).unwrap();
        assert_eq!(cli.global.namespace, "ns");
        match cli.command {
            Command::Containers(ContainersArgs {
                command: None,
                list,
            }) => assert_eq!(list.format, Format::Json),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["ctr", "containers", "kill", "--address", "/s", "c1"]).unwrap();
        assert_eq!(cli.global.address, PathBuf::from("/s"));
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Kill(kill)),
                ..
            }) => {
                assert_eq!(kill.signal, "TERM");
                assert!(!kill.all);
                assert_eq!(kill.id, "c1");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn reports_fold_to_one_line() {
        assert_eq!(
            one_line("runc create failed:\n  container_linux.go: oops\n\n"),
            "runc create failed:; container_linux.go: oops"
        );
        assert_eq!(one_line("plain"), "plain");
    }
}
