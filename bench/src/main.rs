//! `ctrd-bench`: starts `--count` containers at once over `--concurrency` connections to ctrd
//! (or, with `--baseline runc`, by calling runc directly with the same count and concurrency),
//! waits until every one runs, then kills them all; prints the start throughput and latency,
//! the teardown rate and the exit-to-event latency, and with `--probe` how responsive the
//! supervisor stayed meanwhile.
//!
//! - [`bundles`]: a bundle per container, sharing the rootfs;
//! - [`ctrd`] and [`runc`]: the two ways of running the same plan; the latter calls runc through
//!   the daemon's own adapter, `runtime::Runc`, and [`reaper`] reaps for it;
//! - [`probe`]: the responsiveness probe;
//! - [`stats`], [`report`], [`progress`]: measuring and printing.

mod bundles;
mod ctrd;
mod error;
mod probe;
mod progress;
mod reaper;
mod report;
mod runc;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use crate::error::BenchError;

#[derive(Debug, Parser)]
#[command(name = "ctrd-bench", version = protocol::VERSION, about = "Benchmark container starts through ctrd or raw runc")]
struct Args {
    /// Path of ctrd's socket
    #[arg(long, env = "CTRD_ADDRESS", default_value = "/run/ctrd/ctrd.sock")]
    address: PathBuf,
    /// OCI bundle every container is started from (its rootfs is shared read-only)
    #[arg(long)]
    bundle: PathBuf,
    /// Containers to start
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
    /// Client connections (or, for the baseline, threads calling runc) starting them at once
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Run without ctrd, calling this runtime directly, for the side-by-side ratio
    #[arg(long, value_enum)]
    baseline: Option<Baseline>,
    /// The runtime binary the baseline calls
    #[arg(long, default_value = "runc")]
    runtime: PathBuf,
    /// Probe the supervisor's latency every 20 ms while the containers start
    #[arg(long, conflicts_with = "baseline")]
    probe: bool,
    /// Namespace the containers are started in
    #[arg(short, long, default_value = "ctrd-bench")]
    namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Baseline {
    Runc,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ctrd-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), BenchError> {
    let work = tempfile::Builder::new()
        .prefix("ctrd-bench-")
        .tempdir()
        .map_err(|e| BenchError::io("cannot create", &std::env::temp_dir(), e))?;
    // runc derives each container's cgroup from its id: ids must be unique on the host.
    let ids: Vec<String> = (0..args.count)
        .map(|n| format!("bench-{}-{n}", std::process::id()))
        .collect();
    let bundles = bundles::prepare(&args.bundle, &work.path().join("bundles"), &ids)?;
    let concurrency = args.concurrency as usize;
    let report = match args.baseline {
        None => ctrd::run(&ctrd::Plan {
            address: &args.address,
            namespace: &args.namespace,
            ids: &ids,
            bundles: &bundles,
            concurrency,
            probe: args.probe,
        })?,
        Some(Baseline::Runc) => runc::run(&runc::Plan {
            runc: &args.runtime,
            work_dir: work.path(),
            namespace: &runtime::Namespace::new(&args.namespace)?,
            ids: &ids,
            bundles: &bundles,
            concurrency,
        })?,
    };
    let text = match args.format {
        Format::Table => report::table(&report),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(&report)
                .map_err(|e| BenchError::Setup(format!("cannot encode the report: {e}")))?;
            json.push('\n');
            json
        }
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| BenchError::io("cannot write to", std::path::Path::new("stdout"), e))
}
