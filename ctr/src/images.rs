//! `ctr images`: import, list, inspect, export, remove and prune the images ctrd keeps in its
//! `--root`. An archive travels over the socket in both directions, so `ctr` and `ctrd` need
//! not share a file system view.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use protocol::{
    ClientError, ExportImagesRequest, Filter, Image, ImageDetails, ImportRequest, PlatformChoice,
    Pruned,
};
use serde::Serialize;

use crate::containers::parse_labels;
use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{FormatArgs, Global};

/// An archive at least this large gets a progress line on a terminal.
const PROGRESS_FROM: u64 = 16 << 20;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
pub struct ImagesArgs {
    #[command(subcommand)]
    command: ImagesCommand,
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// Import an OCI image layout or `docker save` archive (plain, gzip or zstd), all of its
    /// images or none; prints each image's name and digest
    Import(ImportArgs),
    /// List the namespace's images
    #[command(visible_alias = "list")]
    Ls(ListImagesArgs),
    /// Remove image names, all or none (blobs and layers stay until `ctr images prune`)
    #[command(visible_alias = "remove")]
    Rm(RemoveArgs),
    /// Print an image's manifests and configs as JSON
    Inspect(InspectArgs),
    /// Write images as one OCI image layout archive
    Export(ExportArgs),
    /// Remove every blob and unpacked layer that no image or container uses
    Prune(FormatArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Name of the archive's one image, instead of (or where there is no) name inside it
    #[arg(long)]
    name: Option<String>,
    /// Import this platform of a multi-platform image: os/arch[/variant] [default: ctrd's]
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,
    /// Import every platform of a multi-platform image
    #[arg(long, conflicts_with = "platform")]
    all_platforms: bool,
    /// Label to set on every imported image (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The archive; `-` reads it from stdin
    file: PathBuf,
}

#[derive(Debug, Args)]
struct ListImagesArgs {
    /// List only images matching EXPR, e.g. `name~=^docker.io/,labels.team==a`; comma is and, a
    /// repeated --filter is or (fields: name, type, digest, size, platforms, labels.<key>)
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Debug, Args)]
struct RemoveArgs {
    /// Image names
    #[arg(required = true, value_name = "REF")]
    names: Vec<String>,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Image name
    #[arg(value_name = "REF")]
    name: String,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The archive to write; `-` writes it to stdout
    file: PathBuf,
    /// Image names
    #[arg(required = true, value_name = "REF")]
    names: Vec<String>,
}

pub fn run(global: &Global, args: ImagesArgs, out: &mut impl Write) -> Result<(), Error> {
    match args.command {
        ImagesCommand::Import(args) => import(global, &args, out),
        ImagesCommand::Ls(args) => list(global, &args.filters, args.format.format, out),
        ImagesCommand::Rm(args) => remove(global, &args.names, out),
        ImagesCommand::Inspect(args) => inspect(global, &args.name, out),
        ImagesCommand::Export(args) => export(global, &args, out),
        ImagesCommand::Prune(args) => prune(global, args.format, out),
    }
}

fn import(global: &Global, args: &ImportArgs, out: &mut impl Write) -> Result<(), Error> {
    let platform = match (&args.platform, args.all_platforms) {
        (Some(p), _) => PlatformChoice::Only(p.clone()),
        (None, true) => PlatformChoice::All,
        (None, false) => PlatformChoice::Host,
    };
    let req = ImportRequest {
        namespace: global.namespace.clone(),
        name: args.name.clone(),
        platform,
        labels: parse_labels(&args.labels)?,
    };
    let stdin = args.file.as_os_str() == "-";
    let (mut archive, size): (Box<dyn Read>, Option<u64>) = if stdin {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&args.file).map_err(|source| Error::File {
            op: "open",
            path: args.file.clone(),
            source,
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let mut progress = Progress::new(size);
    let imported = global
        .connect()?
        .import(req, &mut archive, |sent| progress.update(sent));
    progress.clear();
    let imported = imported.map_err(|e| local_file(e, &args.file))?;
    let mut text = String::new();
    for image in imported {
        text.push_str(&format!("{} {}\n", image.name, image.digest));
    }
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// A line on stderr saying how much of a large archive went out, when stderr is a terminal.
struct Progress {
    total: Option<u64>,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(total: Option<u64>) -> Self {
        let wanted = io::stderr().is_terminal() && total.is_some_and(|t| t >= PROGRESS_FROM);
        Progress {
            total: total.filter(|_| wanted),
            last: None,
            shown: false,
        }
    }

    fn update(&mut self, sent: u64) {
        let Some(total) = self.total else {
            return;
        };
        if self.last.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let percent = sent * 100 / total.max(1);
        eprint!(
            "\rsending {} of {} ({percent}%)\x1b[K",
            output::human_size(sent),
            output::human_size(total)
        );
    }

    fn clear(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}

/// Names the file when reading or writing the archive failed on this side.
fn local_file(err: ClientError, path: &Path) -> Error {
    match err {
        ClientError::Archive { op, source } => Error::File {
            op,
            path: path.to_path_buf(),
            source,
        },
        other => other.into(),
    }
}

/// An image as ctr prints it in JSON: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct ImageView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    media_type: &'a str,
    digest: &'a str,
    size: u64,
    platforms: &'a [String],
    labels: &'a BTreeMap<String, String>,
    /// RFC 3339, UTC, nanoseconds.
    created: String,
}

impl<'a> From<&'a Image> for ImageView<'a> {
    fn from(i: &'a Image) -> Self {
        ImageView {
            name: &i.name,
            media_type: &i.media_type,
            digest: &i.digest,
            size: i.size,
            platforms: &i.platforms,
            labels: &i.labels,
            created: output::rfc3339(i.created),
        }
    }
}

/// Filters are checked here too, so a mistake is reported before connecting.
fn list(
    global: &Global,
    filters: &[String],
    format: Format,
    out: &mut impl Write,
) -> Result<(), Error> {
    Filter::<Image>::parse(filters)?;
    let mut images = global
        .connect()?
        .list_images(&global.namespace, filters.to_vec())?;
    images.sort_by(|a, b| a.name.cmp(&b.name));
    match format {
        Format::Table => out.write_all(list_table(&images).as_bytes())?,
        Format::Json => {
            let views: Vec<ImageView> = images.iter().map(ImageView::from).collect();
            output::json_document(out, &views)?;
        }
    }
    Ok(())
}

/// containerd's `ctr images ls` columns.
fn list_table(images: &[Image]) -> String {
    let mut table = Table::with_header(&["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]);
    for i in images {
        table.row([
            i.name.clone(),
            i.media_type.clone(),
            i.digest.clone(),
            output::human_size(i.size),
            or_dash(i.platforms.join(",")),
            or_dash(output::labels(&i.labels)),
        ]);
    }
    table.render()
}

fn or_dash(cell: String) -> String {
    if cell.is_empty() {
        "-".to_string()
    } else {
        cell
    }
}

/// Prints each name removed.
fn remove(global: &Global, names: &[String], out: &mut impl Write) -> Result<(), Error> {
    let removed = global.connect()?.remove_images(&global.namespace, names)?;
    let text: String = removed.iter().map(|n| format!("{n}\n")).collect();
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// The manifests and configs as the JSON documents they are, not as strings holding them.
#[derive(Debug, Serialize)]
struct InspectView<'a> {
    name: &'a str,
    digest: &'a str,
    manifests: Vec<ManifestView<'a>>,
}

#[derive(Debug, Serialize)]
struct ManifestView<'a> {
    digest: &'a str,
    platform: Option<&'a str>,
    manifest: serde_json::Value,
    config: serde_json::Value,
}

fn inspect(global: &Global, name: &str, out: &mut impl Write) -> Result<(), Error> {
    let details: ImageDetails = global.connect()?.inspect_image(&global.namespace, name)?;
    let mut manifests = Vec::new();
    for m in &details.manifests {
        manifests.push(ManifestView {
            digest: &m.digest,
            platform: m.platform.as_deref(),
            manifest: serde_json::from_str(&m.manifest)?,
            config: serde_json::from_str(&m.config)?,
        });
    }
    let view = InspectView {
        name: &details.name,
        digest: &details.digest,
        manifests,
    };
    output::json_document(out, &view)
}

/// Writes the archive; a file left by a failed export is removed, so a file that exists is whole.
fn export(global: &Global, args: &ExportArgs, out: &mut impl Write) -> Result<(), Error> {
    let req = ExportImagesRequest {
        namespace: global.namespace.clone(),
        names: args.names.clone(),
    };
    let mut client = global.connect()?;
    if args.file.as_os_str() == "-" {
        client.export(req, out).map_err(|e| match e {
            ClientError::Archive { source, .. } => Error::Output(source),
            other => other.into(),
        })?;
        return Ok(());
    }
    let mut file = File::create(&args.file).map_err(|source| Error::File {
        op: "create",
        path: args.file.clone(),
        source,
    })?;
    let written = client
        .export(req, &mut file)
        .map_err(|e| local_file(e, &args.file))
        .and_then(|_| {
            file.sync_all().map_err(|source| Error::File {
                op: "write",
                path: args.file.clone(),
                source,
            })
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&args.file);
    }
    written
}

fn prune(global: &Global, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let pruned: Pruned = global.connect()?.prune(&global.namespace)?;
    match format {
        Format::Table => {
            let text = format!(
                "removed {} blobs ({}) and {} unpacked layers\n",
                pruned.blobs.len(),
                output::human_size(pruned.bytes_freed),
                pruned.snapshots.len()
            );
            out.write_all(text.as_bytes())?;
        }
        Format::Json => output::json_document(out, &pruned)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_has_containerds_columns() {
        let image = Image {
            name: "docker.io/library/busybox:1".into(),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            digest: "sha256:ab".into(),
            size: 3 << 20,
            platforms: vec!["linux/amd64".into()],
            labels: BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            created: 0,
        };
        let bare = Image {
            name: "x".into(),
            platforms: Vec::new(),
            labels: BTreeMap::new(),
            size: 10,
            ..image.clone()
        };
        let text = list_table(&[image, bare]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REF "), "{text}");
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            ["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"]
        );
        assert!(lines[1].contains("3.0 MiB") && lines[1].ends_with("linux/amd64   a=1,b=2"));
        assert!(lines[2].contains("10 B") && lines[2].ends_with("-             -"));
    }
}
