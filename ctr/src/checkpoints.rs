//! `ctr checkpoints`: list, create and delete the checkpoints kept in a container's bundle.

use std::io::Write;

use protocol::{CheckpointInfo, CheckpointOptions, CheckpointRequest, DeleteCheckpointRequest};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{CreateCheckpointArgs, DeleteCheckpointArgs, Global};

/// A checkpoint as ctr prints it: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct CheckpointView<'a> {
    name: &'a str,
    tcp: bool,
    unix_sockets: bool,
    shell: bool,
    exit: bool,
    pre_dump: bool,
    parent: Option<&'a str>,
    /// Bytes in its directory, its parent's not included.
    size: u64,
    /// RFC 3339, UTC, nanoseconds.
    created: String,
}

impl<'a> From<&'a CheckpointInfo> for CheckpointView<'a> {
    fn from(c: &'a CheckpointInfo) -> Self {
        CheckpointView {
            name: &c.name,
            tcp: c.options.tcp,
            unix_sockets: c.options.unix_sockets,
            shell: c.options.shell,
            exit: c.exit,
            pre_dump: c.pre_dump,
            parent: c.parent.as_deref(),
            size: c.size,
            created: output::rfc3339(c.created),
        }
    }
}

pub fn list(global: &Global, id: &str, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let checkpoints = global.connect()?.checkpoints(&global.namespace, id)?;
    match format {
        Format::Table => out.write_all(list_table(&checkpoints).as_bytes())?,
        Format::Json => {
            let views: Vec<CheckpointView> = checkpoints.iter().map(CheckpointView::from).collect();
            output::json_document(out, &views)?;
        }
    }
    Ok(())
}

/// The original ctr's columns, then whether each is a pre-dump (and of which parent it holds
/// the changes), its size and when it was taken.
fn list_table(checkpoints: &[CheckpointInfo]) -> String {
    let mut table = Table::with_header(&[
        "NAME",
        "TCP",
        "UNIX SOCKETS",
        "SHELL",
        "PRE-DUMP",
        "PARENT",
        "SIZE",
        "CREATED",
    ]);
    for c in checkpoints {
        table.row([
            c.name.clone(),
            c.options.tcp.to_string(),
            c.options.unix_sockets.to_string(),
            c.options.shell.to_string(),
            c.pre_dump.to_string(),
            c.parent.clone().unwrap_or_else(|| "-".into()),
            human_size(c.size),
            output::rfc3339(c.created),
        ]);
    }
    table.render()
}

/// Bytes in binary units with one decimal, as `du -h` would round them: `532.1 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Prints nothing on success; returns once the checkpoint is on disk.
pub fn create(global: &Global, args: &CreateCheckpointArgs) -> Result<(), Error> {
    let request = CheckpointRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        name: args.name.clone(),
        options: CheckpointOptions {
            tcp: args.tcp,
            unix_sockets: args.unix_sockets,
            shell: args.shell,
        },
        exit: args.exit,
        pre_dump: args.pre_dump,
        parent: args.parent.clone(),
    };
    global.connect()?.checkpoint(request)?;
    Ok(())
}

pub fn delete(global: &Global, args: &DeleteCheckpointArgs) -> Result<(), Error> {
    let request = DeleteCheckpointRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        name: args.name.clone(),
    };
    global.connect()?.delete_checkpoint(request)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(name: &str, tcp: bool) -> CheckpointInfo {
        CheckpointInfo {
            name: name.into(),
            options: CheckpointOptions {
                tcp,
                unix_sockets: false,
                shell: true,
            },
            exit: !tcp,
            created: 1_700_000_000_123_456_789,
            pre_dump: !tcp,
            parent: tcp.then(|| "pre".into()),
            size: if tcp {
                5 * 1024 * 1024 + 1024 * 100
            } else {
                900
            },
        }
    }

    #[test]
    fn table_shows_each_option() {
        let table = list_table(&[checkpoint("c1", true), checkpoint("before-upgrade", false)]);
        assert_eq!(
            table,
            "NAME             TCP     UNIX SOCKETS   SHELL   PRE-DUMP   PARENT   SIZE      CREATED\n\
             c1               true    false          true    false      pre      5.1 MiB   2023-11-14T22:13:20.123456789Z\n\
             before-upgrade   false   false          true    true       -        900 B     2023-11-14T22:13:20.123456789Z\n"
        );
    }

    #[test]
    fn sizes_read_like_du() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(512 * 1024 * 1024), "512.0 MiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
    }

    #[test]
    fn json_view_is_flat_with_a_readable_time() {
        let c = checkpoint("c1", true);
        let json = serde_json::to_value(CheckpointView::from(&c)).unwrap();
        assert_eq!(json["name"], "c1");
        assert_eq!(json["tcp"], true);
        assert_eq!(json["unix_sockets"], false);
        assert_eq!(json["shell"], true);
        assert_eq!(json["exit"], false);
        assert_eq!(json["pre_dump"], false);
        assert_eq!(json["parent"], "pre");
        assert_eq!(json["size"], 5 * 1024 * 1024 + 1024 * 100);
        assert_eq!(json["created"], "2023-11-14T22:13:20.123456789Z");
    }
}
