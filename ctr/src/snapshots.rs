//! `ctr snapshots`: the unpacked image layers (committed, shared) and containers' writable layers
//! (active) of ctrd's image store: list, remove, measure, and — until containers are run from
//! images — prepare a container's snapshot and mount it as a bundle's rootfs.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use protocol::{Filter, Snapshot, SnapshotUsage};
use serde::Serialize;

use crate::containers::{absolute, path_string};
use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{FormatArgs, Global};

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(subcommand)]
    command: SnapshotsCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotsCommand {
    /// List the committed snapshots and the namespace's active ones
    #[command(visible_alias = "list")]
    Ls(ListSnapshotsArgs),
    /// Remove an unused committed snapshot, or a container's unmounted active one
    #[command(visible_alias = "remove")]
    Rm(KeyArg),
    /// Show the disk usage of snapshots' own layers [default: every one `ls` shows]
    Usage(UsageArgs),
    /// Create a container's writable snapshot on top of an image's layers; prints its key
    Prepare(PrepareArgs),
    /// Mount a container's snapshot on a directory, e.g. a bundle's rootfs
    Mount(MountArgs),
    /// Unmount a snapshot mounted by `ctr snapshots mount`
    Unmount(UnmountArgs),
}

#[derive(Debug, Args)]
struct ListSnapshotsArgs {
    /// List only snapshots matching EXPR, e.g. `kind==active`; comma is and, a repeated
    /// --filter is or (fields: key, parent, kind)
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct KeyArg {
    /// Snapshot key: a chain ID, NAMESPACE/ID, or a container id of this namespace
    key: String,
}

#[derive(Debug, Args)]
struct UsageArgs {
    /// Snapshot keys
    keys: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct PrepareArgs {
    /// The image whose layers the snapshot sits on
    #[arg(long, value_name = "REF")]
    image: String,
    /// The container the snapshot is for
    id: String,
}

#[derive(Debug, Args)]
struct MountArgs {
    /// The container whose snapshot to mount
    id: String,
    /// An existing directory
    target: PathBuf,
}

#[derive(Debug, Args)]
struct UnmountArgs {
    /// Where the snapshot is mounted
    target: PathBuf,
}

pub fn run(global: &Global, args: SnapshotsArgs, out: &mut impl Write) -> Result<(), Error> {
    match args.command {
        SnapshotsCommand::Ls(args) => list(global, &args.filters, args.format.format, out),
        SnapshotsCommand::Rm(args) => {
            global
                .connect()?
                .remove_snapshot(&global.namespace, &args.key)?;
            Ok(())
        }
        SnapshotsCommand::Usage(args) => usage(global, &args.keys, args.format.format, out),
        SnapshotsCommand::Prepare(args) => {
            let key =
                global
                    .connect()?
                    .prepare_snapshot(&global.namespace, &args.id, &args.image)?;
            out.write_all(format!("{key}\n").as_bytes())?;
            Ok(())
        }
        SnapshotsCommand::Mount(args) => {
            let target = resolve(&args.target)?;
            global
                .connect()?
                .mount_snapshot(&global.namespace, &args.id, &target)?;
            Ok(())
        }
        SnapshotsCommand::Unmount(args) => {
            let target = resolve(&args.target)?;
            global.connect()?.unmount_snapshot(&target)?;
            Ok(())
        }
    }
}

/// ctrd runs in another directory, so a relative target is resolved here.
fn resolve(path: &std::path::Path) -> Result<String, Error> {
    if path.is_absolute() {
        return path_string(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(Error::Cwd)?;
    path_string(absolute(&cwd, path))
}

/// A snapshot as ctr prints it in JSON: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct SnapshotView<'a> {
    key: &'a str,
    parent: Option<&'a str>,
    kind: protocol::SnapshotKind,
    /// RFC 3339, UTC, nanoseconds.
    created: String,
}

impl<'a> From<&'a Snapshot> for SnapshotView<'a> {
    fn from(s: &'a Snapshot) -> Self {
        SnapshotView {
            key: &s.key,
            parent: s.parent.as_deref(),
            kind: s.kind,
            created: output::rfc3339(s.created),
        }
    }
}

fn list(
    global: &Global,
    filters: &[String],
    format: Format,
    out: &mut impl Write,
) -> Result<(), Error> {
    Filter::<Snapshot>::parse(filters)?;
    let mut snapshots = global
        .connect()?
        .list_snapshots(&global.namespace, filters.to_vec())?;
    snapshots.sort_by(|a, b| a.key.cmp(&b.key));
    match format {
        Format::Table => {
            let mut table = Table::with_header(&["KEY", "PARENT", "KIND"]);
            for s in &snapshots {
                table.row([
                    s.key.clone(),
                    s.parent.clone().unwrap_or_default(),
                    s.kind.to_string(),
                ]);
            }
            out.write_all(table.render().as_bytes())?;
        }
        Format::Json => {
            let views: Vec<SnapshotView> = snapshots.iter().map(SnapshotView::from).collect();
            output::json_document(out, &views)?;
        }
    }
    Ok(())
}

fn usage(
    global: &Global,
    keys: &[String],
    format: Format,
    out: &mut impl Write,
) -> Result<(), Error> {
    let usage: Vec<SnapshotUsage> = global.connect()?.snapshot_usage(&global.namespace, keys)?;
    match format {
        Format::Table => {
            let mut table = Table::with_header(&["KEY", "SIZE", "INODES"]);
            for u in &usage {
                table.row([
                    u.key.clone(),
                    output::human_size(u.size),
                    u.inodes.to_string(),
                ]);
            }
            out.write_all(table.render().as_bytes())?;
        }
        Format::Json => output::json_document(out, &usage)?,
    }
    Ok(())
}
