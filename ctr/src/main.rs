//! `ctr`: the command-line client of `ctrd`.
//!
//! This file owns the command line (clap definitions), dispatch and error reporting: every
//! failure is reported here, once, as a single `ctr: <message>` line on stderr with exit code 125
//! ([`error::FAILURE`]; 126 or 127 for a command that could not be run in a container), so that
//! it never reads as the status of a process ctr passes on. The commands live in
//! [`containers`], [`control`], [`stats`], [`checkpoints`], [`exec`], [`logs`], [`events`],
//! [`daemon`] and [`metrics`]; [`run`] a container from an image; the image store's in [`images`], [`snapshots`] and [`content`]
//! (each defining its own subcommands); [`output`] owns the formats, [`attach`], [`terminal`] and [`proxy`] an attached
//! process's stdio and signals; [`generate`] writes completion scripts and man pages from this
//! definition.

mod attach;
mod checkpoints;
mod containers;
mod content;
mod control;
mod daemon;
mod error;
mod events;
mod exec;
mod generate;
mod images;
mod logs;
mod metrics;
mod output;
mod proxy;
mod run;
mod signal;
mod snapshots;
mod stats;
mod terminal;

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
#[derive(Debug, Clone, Args)]
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
    #[command(visible_alias = "c")]
    Containers(ContainersArgs),
    /// Stream the namespace's container and image events until ctrd closes the stream, after
    /// replaying the journal with --since
    Events(EventsArgs),
    /// Print the versions of ctr and ctrd
    Version(FormatArgs),
    /// Print ctrd's status
    Info(FormatArgs),
    /// List, create and delete a container's checkpoints (CRIU images kept in its bundle)
    Checkpoints(CheckpointsArgs),
    /// Print a shell completion script: `source <(ctr completion bash)`
    Completion(generate::CompletionArgs),
    /// Print ctrd's telemetry: start times, counters and their rates, gauges
    Metrics(FormatArgs),
    /// Import, list, inspect, export and remove images
    #[command(visible_alias = "i")]
    Images(images::ImagesArgs),
    /// List, remove and measure snapshots (unpacked image layers, containers' writable layers);
    /// prepare and mount a container's
    Snapshots(snapshots::SnapshotsArgs),
    /// List the blobs of the image content store
    Content(content::ContentArgs),
    /// Run a container from an image: ctr run [flags] IMAGE ID [COMMAND [ARG...]]
    Run(run::RunArgs),
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ContainersArgs {
    #[command(subcommand)]
    command: Option<ContainersCommand>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, Subcommand)]
enum ContainersCommand {
    /// List the namespace's containers
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Start a container from an OCI bundle, or a stopped one again (no bundle); returns once it
    /// runs and prints its id
    Start(StartArgs),
    /// Delete stopped containers (--force: running ones too, killed first)
    #[command(visible_alias = "rm")]
    Delete(DeleteArgs),
    /// Send a signal to a container
    Kill(KillArgs),
    /// Show one container and its processes
    State(StateArgs),
    /// Wait for a process of a container to exit, and exit with its status
    Wait(WaitArgs),
    /// Run another process in a running container
    Exec(ExecArgs),
    /// Print a container's logs (its output when started without --attach, --stdout, --stderr)
    Logs(LogsArgs),
    /// Freeze every process of a container
    Pause(IdArg),
    /// Thaw a paused container
    Resume(IdArg),
    /// Change a running container's limits
    Update(Box<UpdateArgs>),
    /// Show containers' CPU, memory, pids, block and network I/O (every running one without IDs)
    Stats(StatsArgs),
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Kill a running container first
    #[arg(short, long)]
    force: bool,
    /// Container ids
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Debug, Args)]
struct IdArg {
    /// Container id
    id: String,
}

#[derive(Debug, Args)]
#[command(allow_negative_numbers = true)]
struct UpdateArgs {
    /// Memory limit in bytes, or with a suffix: 512M, 1G
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Memory plus swap limit, as --memory-limit; -1 for unlimited swap
    #[arg(long, value_name = "SIZE")]
    memory_swap: Option<String>,
    /// Relative CPU weight (2 to 262144)
    #[arg(long, value_name = "N")]
    cpu_shares: Option<String>,
    /// CPU microseconds per period; -1 removes the quota
    #[arg(long, value_name = "N")]
    cpu_quota: Option<String>,
    /// CFS period in microseconds
    #[arg(long, value_name = "N")]
    cpu_period: Option<String>,
    /// CPUs the container may run on: 0-2,4
    #[arg(long, value_name = "LIST")]
    cpuset_cpus: Option<String>,
    /// Most processes at once; -1 for unlimited
    #[arg(long, value_name = "N")]
    pids_limit: Option<String>,
    /// Relative block I/O weight (10 to 1000)
    #[arg(long, value_name = "N")]
    blkio_weight: Option<String>,
    /// Container id
    id: String,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Refresh every second until interrupted
    #[arg(long)]
    stream: bool,
    /// Output format (JSON: one document, or one object per line with --stream)
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Container ids [default: every running container]
    ids: Vec<String>,
}

#[derive(Debug, Args)]
struct CheckpointsArgs {
    #[command(subcommand)]
    command: CheckpointsCommand,
}

#[derive(Debug, Subcommand)]
enum CheckpointsCommand {
    /// List the checkpoints in a container's bundle
    #[command(visible_alias = "ls")]
    List(ListCheckpointsArgs),
    /// Checkpoint a running container into <bundle>/checkpoints/NAME; returns once written
    Create(CreateCheckpointArgs),
    /// Delete a checkpoint from a container's bundle
    #[command(visible_alias = "rm")]
    Delete(DeleteCheckpointArgs),
}

#[derive(Debug, Args)]
struct ListCheckpointsArgs {
    /// Container id
    id: String,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct CreateCheckpointArgs {
    /// Dump established TCP connections (CRIU --tcp-established); a restore takes them back
    #[arg(long, visible_alias = "tcp-established")]
    tcp: bool,
    /// Dump unix sockets connected outside the container (CRIU --ext-unix-sk)
    #[arg(long)]
    unix_sockets: bool,
    /// Dump a process attached to a terminal or session (CRIU --shell-job)
    #[arg(long)]
    shell: bool,
    /// Stop the container once it is dumped (default: it keeps running)
    #[arg(long, conflicts_with = "pre_dump")]
    exit: bool,
    /// Pre-dump: save memory only while the container runs on, with the pages it writes from
    /// now on tracked, for a later checkpoint's --parent (needs soft-dirty tracking)
    #[arg(long)]
    pre_dump: bool,
    /// Save only what changed since this pre-dump (CRIU --parent-path)
    #[arg(long, value_name = "NAME")]
    parent: Option<String>,
    /// Container id
    id: String,
    /// Checkpoint name: letters, digits, '_', '.' and '-'
    name: String,
}

#[derive(Debug, Args)]
struct DeleteCheckpointArgs {
    /// Container id
    id: String,
    /// Checkpoint name
    name: String,
}

#[derive(Debug, Args)]
struct FormatArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// List only containers matching EXPR, e.g. `status==running,labels.app==db`; comma is and,
    /// a repeated --filter is or (fields: id, namespace, bundle, status, pid, labels.<key>)
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Replay the journal first: events after a sequence number, or from a time (RFC 3339, or
    /// a duration ago such as 10m); `--since 0` is everything the journal holds
    #[arg(long, value_name = "TIME|SEQ")]
    since: Option<String>,
    /// End the stream at this time (RFC 3339, or a duration ago such as 10m)
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Show only events matching EXPR, e.g. `type==exit,status!=0`; comma is and, a repeated
    /// --filter is or (fields: seq, type, namespace, id, process, pid, status, labels.<key>)
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct WaitArgs {
    /// The process to wait for
    #[arg(
        long = "pid",
        visible_alias = "exec-id",
        value_name = "NAME",
        default_value = "init"
    )]
    process: String,
    /// Container id
    id: String,
}

#[derive(Debug, Args)]
struct StartArgs {
    /// Label to attach to the container (repeatable)
    #[arg(short, long = "label", value_name = "KEY=VALUE", requires = "bundle")]
    labels: Vec<String>,
    /// File that receives the container's stdout [default: its log in ctrd's state dir]
    #[arg(long, value_name = "FILE", requires = "bundle")]
    stdout: Option<PathBuf>,
    /// File that receives the container's stderr [default: its log in ctrd's state dir]
    #[arg(long, value_name = "FILE", requires = "bundle")]
    stderr: Option<PathBuf>,
    /// Restore the container from this checkpoint in <bundle>/checkpoints/
    #[arg(short, long, value_name = "NAME", conflicts_with = "attach")]
    checkpoint: Option<String>,
    /// Delete the container as soon as it stops (default: it is kept until deleted)
    #[arg(long = "rm", requires = "bundle")]
    remove: bool,
    /// Be the container's stdio and exit with its status
    #[arg(short, long, conflicts_with_all = ["stdout", "stderr"], requires = "bundle")]
    attach: bool,
    /// Relay the container's terminal (its bundle's process.terminal must be true)
    #[arg(long, requires = "attach")]
    tty: bool,
    /// Print nothing once the container runs (without --attach, its id is printed)
    #[arg(short, long)]
    quiet: bool,
    /// Container id, unique in the namespace
    id: String,
    /// OCI bundle directory (the one holding config.json); without it, a stopped container
    /// starts again from its own
    bundle: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct KillArgs {
    /// Signal to send: a number, or a name with or without SIG
    #[arg(short, long, default_value = "TERM")]
    signal: String,
    /// Signal every process in the container, not only its init
    #[arg(short, long, conflicts_with = "pid")]
    all: bool,
    /// Signal only the process of this name (`init` is the main process)
    #[arg(short, long, visible_alias = "exec-id", value_name = "NAME")]
    pid: Option<String>,
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

#[derive(Debug, Args)]
struct ExecArgs {
    /// Container id
    #[arg(long)]
    id: String,
    /// Name of the new process, unique in the container
    #[arg(long, visible_alias = "exec-id", value_name = "NAME")]
    pid: String,
    /// Be the process's stdio and exit with its status
    #[arg(short, long)]
    attach: bool,
    /// Run it on a pseudo-terminal (with --attach)
    #[arg(short, long)]
    tty: bool,
    /// Working directory inside the container [default: the bundle's]
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Environment variable, added to the bundle's (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// User id to run as [default: the bundle's]
    #[arg(short, long, value_name = "N")]
    uid: Option<u32>,
    /// Group id to run as [default: the user's primary group]
    #[arg(short, long, value_name = "N")]
    gid: Option<u32>,
    /// The command and its arguments
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// Keep printing new output until the container exits
    #[arg(short, long)]
    follow: bool,
    /// Start at the last N lines of each log
    #[arg(long, value_name = "N")]
    tail: Option<usize>,
    /// Container id
    id: String,
}

fn main() -> ExitCode {
    let cli = generate::parse_command_line();
    match run(cli, &mut io::stdout().lock()) {
        Ok(code) => code,
        Err(err) if err.is_closed_stdout() => ExitCode::SUCCESS,
        Err(err) => {
            // Nothing is left to report a failure to write the report to.
            let _ = writeln!(io::stderr(), "ctr: {}", one_line(&err.to_string()));
            ExitCode::from(err.exit_code())
        }
    }
}

/// The exit code is 0 unless a command exits with a status of its own (`containers wait`, and
/// attached commands, which exit with their process's).
fn run(cli: Cli, out: &mut impl Write) -> Result<ExitCode, Error> {
    let global = &cli.global;
    let done = match cli.command {
        Command::Containers(args) => match args.command {
            None => containers::list(global, &args.list.filters, args.list.format.format, out),
            Some(ContainersCommand::List(args)) => {
                containers::list(global, &args.filters, args.format.format, out)
            }
            Some(ContainersCommand::Start(args)) if args.attach => {
                let request = containers::start_request(global, &args)?;
                return exec::start_attached(global, request, args.tty);
            }
            Some(ContainersCommand::Start(args)) => containers::start(global, &args, out),
            Some(ContainersCommand::Delete(args)) => containers::delete(global, &args),
            Some(ContainersCommand::Kill(args)) => containers::kill(global, &args),
            Some(ContainersCommand::State(args)) => {
                containers::state(global, &args.id, args.format.format, out)
            }
            Some(ContainersCommand::Wait(args)) => return containers::wait(global, &args),
            Some(ContainersCommand::Exec(args)) => return exec::exec(global, &args),
            Some(ContainersCommand::Logs(args)) => logs::logs(global, &args),
            Some(ContainersCommand::Pause(args)) => control::pause(global, &args.id),
            Some(ContainersCommand::Resume(args)) => control::resume(global, &args.id),
            Some(ContainersCommand::Update(args)) => control::update(global, &args),
            Some(ContainersCommand::Stats(args)) => stats::stats(global, &args, out),
        },
        Command::Events(args) => events::stream(global, &args, out),
        Command::Version(args) => daemon::version(global, args.format, out),
        Command::Info(args) => daemon::info(global, args.format, out),
        Command::Checkpoints(args) => match args.command {
            CheckpointsCommand::List(args) => {
                checkpoints::list(global, &args.id, args.format.format, out)
            }
            CheckpointsCommand::Create(args) => checkpoints::create(global, &args),
            CheckpointsCommand::Delete(args) => checkpoints::delete(global, &args),
        },
        Command::Completion(args) => generate::completion(args.shell, out),
        Command::Metrics(args) => metrics::show(global, args.format, out),
        Command::Images(args) => images::run(global, args, out),
        Command::Snapshots(args) => snapshots::run(global, args, out),
        Command::Content(args) => content::run(global, args, out),
        Command::Run(args) => return run::run(global, &args),
    };
    done.map(|()| ExitCode::SUCCESS)
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
            }) => assert_eq!(list.format.format, Format::Json),
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
    fn checkpoint_flags_and_names_parse() {
        let cli = Cli::try_parse_from([
            "ctr",
            "checkpoints",
            "create",
            "--tcp",
            "--exit",
            "web",
            "c1",
        ])
        .unwrap();
        match cli.command {
            Command::Checkpoints(CheckpointsArgs {
                command: CheckpointsCommand::Create(create),
            }) => {
                assert!(create.tcp && create.exit);
                assert!(!create.unix_sockets && !create.shell);
                assert_eq!((create.id.as_str(), create.name.as_str()), ("web", "c1"));
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "ctr",
            "containers",
            "start",
            "--checkpoint",
            "c1",
            "web",
            "/b",
        ])
        .unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Start(start)),
                ..
            }) => assert_eq!(start.checkpoint.as_deref(), Some("c1")),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn events_and_wait_take_their_flags() {
        let cli = Cli::try_parse_from([
            "ctr",
            "events",
            "--since",
            "41",
            "--filter",
            "type==exit",
            "--filter",
            "id~=^a",
        ])
        .unwrap();
        match cli.command {
            Command::Events(args) => {
                assert_eq!(args.since.as_deref(), Some("41"));
                assert_eq!(args.filters, ["type==exit", "id~=^a"]);
                assert_eq!(args.until, None);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["ctr", "containers", "wait", "--pid", "side", "c1"]).unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Wait(wait)),
                ..
            }) => assert_eq!((wait.id.as_str(), wait.process.as_str()), ("c1", "side")),
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["ctr", "containers", "wait", "c1"]).unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Wait(wait)),
                ..
            }) => assert_eq!(wait.process, "init"),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn exec_takes_the_command_after_the_double_dash() {
        let cli = Cli::try_parse_from([
            "ctr",
            "containers",
            "exec",
            "--id",
            "web",
            "--pid",
            "sh1",
            "--attach",
            "--tty",
            "--env",
            "A=1",
            "--env",
            "B=2",
            "--uid",
            "1000",
            "--",
            "sh",
            "-c",
            "exit 7",
        ])
        .unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Exec(exec)),
                ..
            }) => {
                assert_eq!((exec.id.as_str(), exec.pid.as_str()), ("web", "sh1"));
                assert!(exec.attach && exec.tty);
                assert_eq!(exec.env, ["A=1", "B=2"]);
                assert_eq!(exec.uid, Some(1000));
                assert_eq!(exec.gid, None);
                assert_eq!(exec.command, ["sh", "-c", "exit 7"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let no_command = ["ctr", "containers", "exec", "--id", "web", "--pid", "p"];
        assert!(Cli::try_parse_from(no_command).is_err());
    }

    /// `--id` and `--pid` are required by the parser, so `--help` shows them in the usage line
    /// and a missing one is a usage error naming it.
    #[test]
    fn exec_requires_its_container_and_process_names() {
        for missing in [
            ["ctr", "containers", "exec", "--pid", "p", "--", "true"],
            ["ctr", "containers", "exec", "--id", "web", "--", "true"],
        ] {
            let err = Cli::try_parse_from(missing).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{err}"
            );
        }
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("containers")
            .and_then(|c| c.find_subcommand_mut("exec"))
            .unwrap()
            .render_usage()
            .to_string();
        assert!(help.contains(" --id <ID> --pid <NAME> "), "{help}");
    }

    /// containerd's short names: `ctr c ls`, `--exec-id` for `--pid`.
    #[test]
    fn containerd_aliases_parse_as_the_long_names() {
        let cli = Cli::try_parse_from(["ctr", "c", "ls", "--format", "json"]).unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::List(list)),
                ..
            }) => assert_eq!(list.format.format, Format::Json),
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["ctr", "checkpoints", "ls", "web"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Checkpoints(CheckpointsArgs {
                command: CheckpointsCommand::List(_)
            })
        ));
        let cli = Cli::try_parse_from(["ctr", "checkpoints", "rm", "web", "c1"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Checkpoints(CheckpointsArgs {
                command: CheckpointsCommand::Delete(_)
            })
        ));
        let exec = [
            "ctr",
            "c",
            "exec",
            "--id",
            "web",
            "--exec-id",
            "p",
            "--",
            "true",
        ];
        match Cli::try_parse_from(exec).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Exec(exec)),
                ..
            }) => assert_eq!(exec.pid, "p"),
            other => panic!("parsed as {other:?}"),
        }
        let kill = ["ctr", "c", "kill", "--exec-id", "p", "web"];
        match Cli::try_parse_from(kill).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Kill(kill)),
                ..
            }) => assert_eq!(kill.pid.as_deref(), Some("p")),
            other => panic!("parsed as {other:?}"),
        }
        let wait = ["ctr", "c", "wait", "--exec-id", "p", "web"];
        match Cli::try_parse_from(wait).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Wait(wait)),
                ..
            }) => assert_eq!(wait.process, "p"),
            other => panic!("parsed as {other:?}"),
        }
    }

    /// The original ctr's short flags, as its README and its users' scripts write them.
    #[test]
    fn the_original_short_flags_parse() {
        let start = ["ctr", "c", "start", "-a", "-l", "k=v", "-q", "web", "/b"];
        match Cli::try_parse_from(start).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Start(start)),
                ..
            }) => {
                assert!(start.attach && start.quiet);
                assert_eq!(start.labels, ["k=v"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let restore = ["ctr", "c", "start", "-c", "c1", "web", "/b"];
        match Cli::try_parse_from(restore).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Start(start)),
                ..
            }) => assert_eq!(start.checkpoint.as_deref(), Some("c1")),
            other => panic!("parsed as {other:?}"),
        }
        let kill = ["ctr", "c", "kill", "-s", "KILL", "-p", "sh1", "web"];
        match Cli::try_parse_from(kill).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Kill(kill)),
                ..
            }) => assert_eq!(
                (kill.signal.as_str(), kill.pid.as_deref()),
                ("KILL", Some("sh1"))
            ),
            other => panic!("parsed as {other:?}"),
        }
        let exec = [
            "ctr", "c", "exec", "--id", "web", "--pid", "p", "-a", "-t", "-e", "A=1", "-u", "7",
            "-g", "8", "--", "sh",
        ];
        match Cli::try_parse_from(exec).unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Exec(exec)),
                ..
            }) => {
                assert!(exec.attach && exec.tty);
                assert_eq!(exec.env, ["A=1"]);
                assert_eq!((exec.uid, exec.gid), (Some(7), Some(8)));
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn kill_names_one_process_or_all_of_them() {
        let cli = Cli::try_parse_from(["ctr", "containers", "kill", "--pid", "sh1", "web"]);
        match cli.unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Kill(kill)),
                ..
            }) => assert_eq!(kill.pid.as_deref(), Some("sh1")),
            other => panic!("parsed as {other:?}"),
        }
        let both = ["ctr", "containers", "kill", "--pid", "sh1", "--all", "web"];
        assert!(Cli::try_parse_from(both).is_err());
        let attach_and_file = [
            "ctr",
            "containers",
            "start",
            "--attach",
            "--stdout",
            "/o",
            "c",
            "/b",
        ];
        assert!(Cli::try_parse_from(attach_and_file).is_err());
    }

    #[test]
    fn delete_takes_ids_and_start_needs_no_bundle_for_a_kept_container() {
        let cli = Cli::try_parse_from(["ctr", "containers", "rm", "-f", "a", "b"]).unwrap();
        match cli.command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Delete(delete)),
                ..
            }) => {
                assert!(delete.force);
                assert_eq!(delete.ids, ["a", "b"]);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["ctr", "containers", "delete"]).is_err());
        let cli = Cli::try_parse_from(["ctr", "containers", "start", "--checkpoint", "c1", "web"]);
        match cli.unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Start(start)),
                ..
            }) => assert_eq!(
                (start.bundle, start.checkpoint.as_deref()),
                (None, Some("c1"))
            ),
            other => panic!("parsed as {other:?}"),
        }
        // What a new container takes needs a bundle to take it with.
        for flag in ["--rm", "--attach", "--label=a=1"] {
            let args = ["ctr", "containers", "start", flag, "web"];
            assert!(Cli::try_parse_from(args).is_err(), "{flag}");
        }
        let cli = Cli::try_parse_from(["ctr", "containers", "start", "--rm", "web", "/b"]);
        match cli.unwrap().command {
            Command::Containers(ContainersArgs {
                command: Some(ContainersCommand::Start(start)),
                ..
            }) => assert!(start.remove),
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
