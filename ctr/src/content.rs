//! `ctr content`: the blobs of ctrd's content store (layers, manifests, configs), by digest.

use std::io::Write;
use std::time::SystemTime;

use clap::{Args, Subcommand};
use protocol::{ContentBlob, Filter};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{FormatArgs, Global};

#[derive(Debug, Args)]
pub struct ContentArgs {
    #[command(subcommand)]
    command: ContentCommand,
}

#[derive(Debug, Subcommand)]
enum ContentCommand {
    /// List the blobs
    #[command(visible_alias = "list")]
    Ls(ListContentArgs),
}

#[derive(Debug, Args)]
struct ListContentArgs {
    /// List only blobs matching EXPR, e.g. `size!=0`; comma is and, a repeated --filter is or
    /// (fields: digest, size)
    #[arg(long = "filter", value_name = "EXPR")]
    filters: Vec<String>,
    #[command(flatten)]
    format: FormatArgs,
}

/// A blob as ctr prints it in JSON: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct BlobView<'a> {
    digest: &'a str,
    size: u64,
    /// RFC 3339, UTC, nanoseconds.
    created: String,
}

pub fn run(global: &Global, args: ContentArgs, out: &mut impl Write) -> Result<(), Error> {
    let ContentCommand::Ls(args) = args.command;
    Filter::<ContentBlob>::parse(&args.filters)?;
    let mut blobs = global.connect()?.list_content(args.filters.clone())?;
    blobs.sort_by(|a, b| a.digest.cmp(&b.digest));
    match args.format.format {
        Format::Table => {
            let now = SystemTime::now();
            let mut table = Table::with_header(&["DIGEST", "SIZE", "AGE"]);
            for b in &blobs {
                table.row([
                    b.digest.clone(),
                    output::human_size(b.size),
                    output::age(b.created, now),
                ]);
            }
            out.write_all(table.render().as_bytes())?;
        }
        Format::Json => {
            let views: Vec<BlobView> = blobs
                .iter()
                .map(|b| BlobView {
                    digest: &b.digest,
                    size: b.size,
                    created: output::rfc3339(b.created),
                })
                .collect();
            output::json_document(out, &views)?;
        }
    }
    Ok(())
}
