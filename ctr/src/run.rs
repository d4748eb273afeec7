//! `ctr run [flags] IMAGE ID [COMMAND [ARG...]]`, containerd's form: ctrd makes the container's
//! bundle from the image (its snapshot mounted as the rootfs, a spec from the image's config and
//! these flags) and starts it. Detached (`-d`) it returns once the container runs; otherwise ctr
//! is its stdio, as `start --attach` is, and exits with its status, after, with `--rm`, ctrd says
//! the container's snapshot and bundle are gone.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use protocol::{EventKind, EventStream, RunRequest, REMOVE_ERROR_LABEL};

use crate::attach::{self, Fifos};
use crate::containers::parse_labels;
use crate::control::size;
use crate::error::Error;
use crate::exec::{exit_code, handle_signals, INIT};
use crate::terminal::{self, RawMode};
use crate::Global;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Return once the container runs; its output goes to its logs
    #[arg(short, long)]
    detach: bool,
    /// Remove the container's snapshot and bundle when it exits
    #[arg(long)]
    rm: bool,
    /// Run it on a pseudo-terminal (not with --detach)
    #[arg(short, long, conflicts_with = "detach")]
    tty: bool,
    /// Environment variable, replacing the image's of that name (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Working directory, absolute [default: the image's]
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// User to run as: USER[:GROUP], names from the image's /etc/passwd and /etc/group, or
    /// numbers [default: the image's]
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Label of the container, over the image's (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The container's hostname
    #[arg(long)]
    hostname: Option<String>,
    /// Mount the rootfs read-only
    #[arg(long)]
    read_only: bool,
    /// The network: its own namespace with only loopback, or the host's
    #[arg(long, value_enum, default_value = "none")]
    net: Net,
    /// Memory limit in bytes, optionally with a suffix k, M, G or T (512M)
    #[arg(long, value_name = "SIZE")]
    memory_limit: Option<String>,
    /// Maximum number of processes
    #[arg(long, value_name = "N")]
    pids_limit: Option<i64>,
    /// Image name
    image: String,
    /// Container id, unique in the namespace
    id: String,
    /// The command and its arguments, replacing the image's Cmd (its Entrypoint stays)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Net {
    /// Its own network namespace, with only loopback
    None,
    /// The host's network namespace
    Host,
}

pub fn run(global: &Global, args: &RunArgs) -> Result<ExitCode, Error> {
    let memory_limit = args
        .memory_limit
        .as_deref()
        .map(|text| {
            let bytes = size("--memory-limit", text)?;
            i64::try_from(bytes).map_err(|_| Error::Size {
                flag: "--memory-limit",
                value: text.to_string(),
            })
        })
        .transpose()?;
    let mut request = RunRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        image: args.image.clone(),
        command: args.command.clone(),
        env: args.env.clone(),
        cwd: args.cwd.clone(),
        user: args.user.clone(),
        labels: parse_labels(&args.labels)?,
        hostname: args.hostname.clone(),
        read_only: args.read_only,
        net_host: args.net == Net::Host,
        memory_limit,
        pids_limit: args.pids_limit,
        remove: args.rm,
        stdin: None,
        stdout: None,
        stderr: None,
        terminal: None,
    };
    if args.detach {
        global.connect()?.run(request)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Subscribed before the container exists, so neither its exit nor its removal is missed.
    let mut events = global.connect()?.subscribe(&global.namespace)?;
    let fifos = Fifos::create(!args.tty)?;
    let raw = args.tty.then(RawMode::enter).transpose()?;
    request.stdin = Some(fifos.stdin_path());
    request.stdout = Some(fifos.stdout_path());
    request.stderr = fifos.stderr_path();
    request.terminal = args.tty.then(terminal::size);
    handle_signals(global, raw.as_ref(), &args.id, INIT)?;
    let pid = global.connect()?.run(request)?;
    let copies = fifos.connect()?;
    let status = attach::wait_exit(&mut events, &args.id, INIT, pid)?;
    copies.finish();
    drop(raw);
    if args.rm {
        let key = format!("{}/{}", global.namespace, args.id);
        wait_removed(&mut events, &key)?;
    }
    Ok(exit_code(status))
}

/// Waits for the `snapshot-remove` event of the container's snapshot `key`.
fn wait_removed(events: &mut EventStream, key: &str) -> Result<(), Error> {
    for event in events {
        let event = event?;
        if event.kind == EventKind::SnapshotRemove && event.id == key {
            return match event.labels.get(REMOVE_ERROR_LABEL) {
                None => Ok(()),
                Some(why) => Err(Error::NotRemoved {
                    key: key.to_string(),
                    why: why.clone(),
                }),
            };
        }
    }
    Err(Error::NotRemoved {
        key: key.to_string(),
        why: "ctrd closed the event stream first".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::RunArgs;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn everything_after_the_id_is_the_command_flags_included() {
        let cli = Cli::try_parse_from([
            "run",
            "--rm",
            "-u",
            "app",
            "img",
            "web",
            "sh",
            "-c",
            "echo -n x",
            "--rm",
        ])
        .unwrap();
        assert!(cli.run.rm && !cli.run.detach);
        assert_eq!(cli.run.user.as_deref(), Some("app"));
        assert_eq!(
            (cli.run.image.as_str(), cli.run.id.as_str()),
            ("img", "web")
        );
        assert_eq!(cli.run.command, ["sh", "-c", "echo -n x", "--rm"]);
    }

    #[test]
    fn a_terminal_is_for_an_attached_run_only() {
        assert!(Cli::try_parse_from(["run", "-d", "-t", "img", "web"]).is_err());
        assert!(Cli::try_parse_from(["run", "--net", "bridge", "img", "web"]).is_err());
    }
}
