//! ctrd's command line: every daemon flag, defined once.
//!
//! The config file ([`crate::config`]), `ctrd config default` and the man page are all derived
//! from this definition, so a new flag is a new field here and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use keeper::RestartPolicy;

#[derive(Debug, Parser)]
#[command(
    name = "ctrd",
    version,
    about = "Container supervisor daemon",
    args_override_self = true
)]
pub struct Args {
    /// Config file holding any of these flags, named without their dashes; flags given here
    /// override it [default: /etc/ctrd/config.toml when it exists].
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where ctrd keeps runc state, container logs and its socket.
    #[arg(long, default_value = "/run/ctrd")]
    pub state_dir: PathBuf,
    /// Where ctrd keeps images: their blobs, records and unpacked layers. Unlike the state dir
    /// it must persist across reboots; one ctrd at a time may use it.
    #[arg(long, default_value = images::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// The socket clients connect to [default: <state-dir>/ctrd.sock].
    #[arg(short = 'l', long, visible_alias = "listen")]
    pub socket: Option<PathBuf>,
    /// The OCI runtime binary.
    #[arg(long, default_value = "runc")]
    pub runtime: PathBuf,
    /// The CRIU binary runc uses for checkpoint and restore [default: /opt/ctrd-criu/criu, where
    /// scripts/setup.sh installs CRIU 4 when the system's criu does not work, else `criu`].
    #[arg(long)]
    pub criu: Option<PathBuf>,
    /// Worker threads making runtime calls at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// How long containers get to exit after TERM at shutdown before they are killed.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,
    /// Largest request frame accepted, in bytes (K, M: powers of 1024); no more than the
    /// default, the largest frame the protocol carries.
    #[arg(long, default_value_t = protocol::DEFAULT_MAX_FRAME, value_parser = max_frame_size)]
    pub max_frame_size: usize,
    /// How long one runtime call may take before it is killed and reported failed.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub runtime_timeout: Duration,
    /// Members of this group may use the socket (mode 0660); without it, root only (0600).
    #[arg(long)]
    pub group: Option<String>,
    /// Connections served at once; more are turned away with an error.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// How long a connection may stay silent before a request; event streams are exempt.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// How much of the event journal to keep on disk (K, M, G: powers of 1024); the oldest
    /// events go first.
    #[arg(long, default_value = "64M", value_parser = crate::journal::parse_size)]
    pub events_retention: u64,
    /// Events a subscriber may fall behind by before it is dropped (and told where to resume).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub subscriber_queue: u32,
    /// Do not watch containers for OOM kills (no `oom` events, no `oom_killed` on exits).
    #[arg(long)]
    pub no_oom_notify: bool,
    /// Nice value of the threads that answer clients and reap exits, so they stay responsive
    /// while runc processes fill the CPUs; runtime calls and containers keep ctrd's own
    /// priority. 0 leaves them alone.
    #[arg(long, default_value_t = -20, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub server_nice: i32,
    /// Log the metrics (as `ctr metrics` shows them) at this interval; 0 turns it off.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub metrics_interval: Duration,
    /// Serve Prometheus metrics at http://ADDRESS/metrics (off unless given).
    #[arg(long, value_name = "ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// What the keeper does when the daemon dies: start a new one (after a delay that grows
    /// from 100ms to 5s while it keeps dying), which takes the containers over; or exit too,
    /// leaving the containers running for the next `ctrd` to recover (their exit statuses
    /// until then are lost).
    #[arg(long, value_enum, default_value = "on-failure")]
    pub restart: RestartPolicy,
    /// Log at debug level (RUST_LOG overrides).
    #[arg(long)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Things ctrd does instead of running the daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the config file
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Replace the running daemon with the ctrd binary on disk; the containers keep running
    Upgrade {
        /// The socket of the running ctrd
        #[arg(long, env = "CTRD_ADDRESS", default_value = "/run/ctrd/ctrd.sock")]
        address: PathBuf,
        /// How long to wait for the new daemon to answer
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Write ctrd's man pages into DIR (scripts/man.sh uses this)
    #[command(hide = true)]
    Man {
        /// Directory that receives ctrd.1 and one page per subcommand
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the default config: every flag as a key, its help as a comment, its default value
    Default,
}

/// A `--max-frame-size`: a size up to [`protocol::MAX_FRAME`]. A larger one is refused, not
/// capped: the frame code could not decode such a frame, so a daemon taking it would refuse
/// frames its flag says it accepts.
fn max_frame_size(text: &str) -> Result<usize, String> {
    let max = protocol::MAX_FRAME;
    let bytes = crate::journal::parse_size(text)?;
    usize::try_from(bytes)
        .ok()
        .filter(|&bytes| bytes <= max)
        .ok_or_else(|| {
            format!(
                "{bytes} bytes is more than the protocol carries: a frame holds at most {max} \
                 bytes ({}M)",
                max >> 20
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn a_frame_limit_is_taken_up_to_what_the_protocol_carries() {
        let max = protocol::MAX_FRAME;
        let parsed = |text: &str| Args::try_parse_from(["ctrd", "--max-frame-size", text]);
        assert_eq!(parsed(&max.to_string()).unwrap().max_frame_size, max);
        assert_eq!(parsed("64").unwrap().max_frame_size, 64);
        assert_eq!(parsed("1M").unwrap().max_frame_size, 1 << 20);
        let err = parsed(&(max + 1).to_string()).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{} bytes is more than the protocol carries: a frame holds at most {max} bytes",
                max + 1
            )),
            "{err}"
        );
        assert!(parsed("0").is_err());
    }

    /// The original daemon's names: scripts and units written for it start this one.
    #[test]
    fn the_original_short_flags_and_listen_are_taken() {
        let args = Args::try_parse_from(["ctrd", "-c", "/etc/x.toml", "-l", "/s1"]).unwrap();
        assert_eq!(args.config, Some(PathBuf::from("/etc/x.toml")));
        assert_eq!(args.socket, Some(PathBuf::from("/s1")));
        let args = Args::try_parse_from(["ctrd", "--listen", "/s2"]).unwrap();
        assert_eq!(args.socket, Some(PathBuf::from("/s2")));
    }

    #[test]
    fn no_subcommand_runs_the_daemon() {
        let args = Args::try_parse_from(["ctrd", "--debug"]).unwrap();
        assert!(args.command.is_none());
        assert!(args.debug);
        let args = Args::try_parse_from(["ctrd", "config", "default"]).unwrap();
        assert!(matches!(
            args.command,
            Some(Command::Config(ConfigCommand::Default))
        ));
    }
}
