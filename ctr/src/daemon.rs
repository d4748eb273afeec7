//! `ctr version` and `ctr info`: what ctr and ctrd say about themselves.

use std::io::Write;
use std::time::Duration;

use protocol::{DaemonInfo, Hello};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::Global;

/// Both ends of the handshake; `daemon` is `null` when ctrd could not be reached.
#[derive(Debug, Serialize)]
struct Versions<'a> {
    client: &'a Hello,
    daemon: Option<&'a Hello>,
}

/// Prints the client's side before connecting fails, so a version is known even with no daemon.
pub fn version(global: &Global, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let client = Hello::ours();
    let (daemon, failure) = match global.connect() {
        Ok(connection) => (Some(connection.daemon().clone()), None),
        Err(err) => (None, Some(err)),
    };
    let versions = Versions {
        client: &client,
        daemon: daemon.as_ref(),
    };
    match format {
        Format::Table => out.write_all(version_table(&versions).as_bytes())?,
        Format::Json => output::json_document(out, &versions)?,
    }
    failure.map_or(Ok(()), Err)
}

fn version_table(versions: &Versions) -> String {
    let mut table = Table::default();
    table.row([
        "CLIENT VERSION".to_string(),
        versions.client.version.clone(),
    ]);
    table.row([
        "CLIENT PROTOCOL".to_string(),
        versions.client.protocol.to_string(),
    ]);
    if let Some(daemon) = versions.daemon {
        table.row(["DAEMON VERSION".to_string(), daemon.version.clone()]);
        table.row(["DAEMON PROTOCOL".to_string(), daemon.protocol.to_string()]);
    }
    table.render()
}

pub fn info(global: &Global, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let info = global.connect()?.info()?;
    match format {
        Format::Table => out.write_all(info_table(&info).as_bytes())?,
        Format::Json => output::json_document(out, &info)?,
    }
    Ok(())
}

fn info_table(info: &DaemonInfo) -> String {
    let uptime = humantime::format_duration(Duration::from_secs(info.uptime_s));
    let mut table = Table::default();
    table.row(["VERSION".to_string(), info.version.clone()]);
    table.row(["PID".to_string(), info.pid.to_string()]);
    table.row(["KEEPER PID".to_string(), info.keeper_pid.to_string()]);
    table.row(["UPTIME".to_string(), uptime.to_string()]);
    table.row(["RECOVERED".to_string(), info.recovered.to_string()]);
    table.row(["CONTAINERS".to_string(), info.containers.to_string()]);
    table.row(["SUBSCRIBERS".to_string(), info.subscribers.to_string()]);
    table.row([
        "SUBSCRIBER DROPS".to_string(),
        info.subscriber_drops.to_string(),
    ]);
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_without_daemon_shows_the_client_only() {
        let client = Hello {
            protocol: 1,
            version: "0.1.0".into(),
        };
        let alone = Versions {
            client: &client,
            daemon: None,
        };
        assert_eq!(
            version_table(&alone),
            "CLIENT VERSION    0.1.0\nCLIENT PROTOCOL   1\n"
        );
        assert_eq!(
            serde_json::to_string(&alone).unwrap(),
            "{\"client\":{\"protocol\":1,\"version\":\"0.1.0\"},\"daemon\":null}"
        );
    }

    #[test]
    fn info_table_shows_uptime_as_a_duration() {
        let info = DaemonInfo {
            version: "0.1.0".into(),
            pid: 7,
            uptime_s: 3723,
            containers: 2,
            subscribers: 1,
            subscriber_drops: 0,
            keeper_pid: 6,
            recovered: 2,
        };
        let table = info_table(&info);
        assert!(table.starts_with("VERSION            0.1.0\n"));
        assert!(table.contains("\nKEEPER PID         6\n"));
        assert!(table.contains("\nUPTIME             1h 2m 3s\n"));
        assert!(table.contains("\nRECOVERED          2\n"));
        assert!(table.ends_with("\nSUBSCRIBER DROPS   0\n"));
    }
}
