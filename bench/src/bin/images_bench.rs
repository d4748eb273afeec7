//! `images-bench`: how fast ctrd imports an image and prepares container root filesystems from
//! it, against a running ctrd (scripts/bench-images.sh starts one).
//!
//! 1. **Generate** an image offline in `--work`: `--layers` gzip layers of about `--size-mb` in
//!    all (uncompressed), each holding files of 4 KiB to 4 MiB, half of random bytes and half
//!    of compressible text, as an OCI image layout archive, and each layer also as a file.
//! 2. **Import vs tar**: for `--rounds` rounds, each starting with a different one: the archive
//!    sent to ctrd's import over the socket (the image removed and pruned after each, so every
//!    import starts cold); `tar -xzf` of every layer into a directory of its own under `--work`
//!    (the baseline: the same decompression and file writes, on the same disk); and the same
//!    with a `sync -f` after each layer (the store makes each unpacked layer durable with one
//!    `syncfs`). Wall times, medians.
//! 3. **Prepare + mount**: the image imported once, then `--containers` times: a container's
//!    snapshot prepared and mounted, timed per container through the socket; then all unmounted
//!    and released.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use clap::Parser;
use flate2::write::GzEncoder;
use protocol::{Client, ClientError, ImportRequest, PlatformChoice};
use serde_json::json;
use sha2::{Digest, Sha256};

const NAMESPACE: &str = "images-bench";
const IMAGE: &str = "bench/generated:1";

#[derive(Debug, Parser)]
#[command(
    name = "images-bench",
    about = "Benchmark image import and snapshot mounts through ctrd"
)]
struct Args {
    /// Path of ctrd's socket
    #[arg(long, env = "CTRD_ADDRESS", default_value = "/run/ctrd/ctrd.sock")]
    address: PathBuf,
    /// Directory for the generated image and the baseline's files (on the disk to measure)
    #[arg(long)]
    work: PathBuf,
    /// Uncompressed size of the image, in MiB
    #[arg(long, default_value_t = 100)]
    size_mb: u64,
    /// Layers the image has
    #[arg(long, default_value_t = 5)]
    layers: usize,
    /// Rounds of import and baseline
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Containers whose snapshots are prepared and mounted
    #[arg(long, default_value_t = 100)]
    containers: usize,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0}")]
    Baseline(String),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("images-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    fs::create_dir_all(&args.work).map_err(io_err("create", &args.work))?;
    let started = Instant::now();
    let image = generate(args)?;
    println!(
        "generated {} layers, {:.1} MiB uncompressed, {:.1} MiB as gzip, in {:.1?}",
        image.layers.len(),
        mib(image.uncompressed),
        mib(image.compressed),
        started.elapsed()
    );

    let mut imports = Vec::new();
    let mut tars = Vec::new();
    let mut synced = Vec::new();
    for round in 0..args.rounds {
        // Each round starts with a different one of the three.
        for step in 0..3 {
            match (round + step) % 3 {
                0 => imports.push(import(args, &image)?),
                1 => tars.push(baseline(args, &image, false)?),
                _ => synced.push(baseline(args, &image, true)?),
            }
        }
        println!(
            "round {}: import {:.2?}, tar -xzf {:.2?}, tar -xzf + sync -f {:.2?}",
            round + 1,
            imports[round],
            tars[round],
            synced[round]
        );
    }
    let import_median = median(&mut imports);
    for (what, times) in [("tar -xzf", &mut tars), ("tar -xzf + sync -f", &mut synced)] {
        let baseline = median(times);
        println!(
            "import median {:.2?} vs {what} median {:.2?}: ratio {:.2}",
            import_median,
            baseline,
            import_median.as_secs_f64() / baseline.as_secs_f64(),
        );
    }
    println!(
        "import: {:.0} MiB/s of uncompressed layers",
        mib(image.uncompressed) / import_median.as_secs_f64()
    );

    mounts(args, &image)
}

/// The generated image: the archive, and each layer's file for the baseline.
struct Generated {
    archive: PathBuf,
    layers: Vec<PathBuf>,
    uncompressed: u64,
    compressed: u64,
}

/// A small fast generator: the bytes only need to be hard to compress, not unpredictable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

fn generate(args: &Args) -> Result<Generated, Error> {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let per_layer = args.size_mb * (1 << 20) / args.layers.max(1) as u64;
    let layer_dir = args.work.join("layers");
    fs::create_dir_all(&layer_dir).map_err(io_err("create", &layer_dir))?;
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut layers = Vec::new();
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    let mut uncompressed = 0;
    let mut compressed = 0;
    for n in 0..args.layers {
        let mut tar = tar::Builder::new(Vec::new());
        let mut written = 0u64;
        let mut file = 0;
        while written < per_layer {
            // 4 KiB to 4 MiB, spread evenly over the powers of two.
            let size = (4096u64 << (rng.next() % 11)).min(per_layer - written + 1);
            let mut data = vec![0u8; size as usize];
            if file % 2 == 0 {
                rng.fill(&mut data);
            } else {
                let line = format!("layer {n} file {file}: the quick brown fox jumps\n");
                for (i, b) in data.iter_mut().enumerate() {
                    *b = line.as_bytes()[i % line.len()];
                }
            }
            let mut header = tar::Header::new_gnu();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(1_600_000_000);
            let path = format!("layer{n}/dir{}/file{file}", file % 16);
            tar.append_data(&mut header, &path, &data[..])
                .map_err(|e| Error::Baseline(format!("tar {path}: {e}")))?;
            written += size;
            file += 1;
        }
        let tar = tar
            .into_inner()
            .map_err(|e| Error::Baseline(format!("tar: {e}")))?;
        uncompressed += tar.len() as u64;
        diff_ids.push(sha(&tar));
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).map_err(io_err("compress", &layer_dir))?;
        let gz = gz.finish().map_err(io_err("compress", &layer_dir))?;
        compressed += gz.len() as u64;
        let path = layer_dir.join(format!("{n}.tar.gz"));
        fs::write(&path, &gz).map_err(io_err("write", &path))?;
        layers.push(path);
        descriptors.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha(&gz),
            "size": gz.len(),
        }));
        blobs.push((sha(&gz), gz));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": host_arch(),
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("a JSON value serializes");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha(&config),
            "size": config.len(),
        },
        "layers": descriptors,
    }))
    .expect("a JSON value serializes");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(&manifest),
            "size": manifest.len(),
            "platform": { "os": "linux", "architecture": host_arch() },
            "annotations": { "org.opencontainers.image.ref.name": IMAGE },
        }],
    }))
    .expect("a JSON value serializes");
    blobs.push((sha(&config), config));
    blobs.push((sha(&manifest), manifest));

    let archive = args.work.join("image.tar");
    let out = File::create(&archive).map_err(io_err("create", &archive))?;
    let mut tar = tar::Builder::new(BufWriter::new(out));
    let mut add = |path: &str, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, path, data)
    };
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let write = |e| Error::Io {
        what: "write",
        path: archive.clone(),
        source: e,
    };
    add("oci-layout", layout).map_err(write)?;
    add("index.json", &index).map_err(write)?;
    for (digest, data) in &blobs {
        let hex = digest.trim_start_matches("sha256:");
        add(&format!("blobs/sha256/{hex}"), data).map_err(write)?;
    }
    tar.into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(write)?;
    Ok(Generated {
        archive,
        layers,
        uncompressed,
        compressed,
    })
}

/// Imports the archive and removes it again, so the next round starts from an empty store.
fn import(args: &Args, image: &Generated) -> Result<Duration, Error> {
    let mut client = Client::connect(&args.address)?;
    let mut archive = File::open(&image.archive).map_err(io_err("open", &image.archive))?;
    let req = ImportRequest {
        namespace: NAMESPACE.into(),
        name: None,
        platform: PlatformChoice::Host,
        labels: Default::default(),
    };
    let start = Instant::now();
    client.import(req, &mut archive, |_| {})?;
    let took = start.elapsed();
    client.remove_images(NAMESPACE, &[IMAGE.to_string()])?;
    client.prune(NAMESPACE)?;
    Ok(took)
}

/// `tar -xzf` of every layer into a fresh directory of its own, one after the other; with
/// `sync`, each followed by `sync -f` (one `syncfs`, as the store makes each unpacked layer
/// durable).
fn baseline(args: &Args, image: &Generated, sync: bool) -> Result<Duration, Error> {
    let dir = args.work.join("baseline");
    let _ = fs::remove_dir_all(&dir);
    let start = Instant::now();
    for (n, layer) in image.layers.iter().enumerate() {
        let target = dir.join(n.to_string());
        fs::create_dir_all(&target).map_err(io_err("create", &target))?;
        let mut tar = Command::new("tar");
        tar.arg("-xzf").arg(layer).arg("-C").arg(&target);
        run_tool(tar, layer)?;
        if sync {
            let mut sync = Command::new("sync");
            sync.arg("-f").arg(&target);
            run_tool(sync, &target)?;
        }
    }
    let took = start.elapsed();
    fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
    Ok(took)
}

fn run_tool(mut command: Command, path: &Path) -> Result<(), Error> {
    let status = command.status().map_err(io_err("run a tool on", path))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Baseline(format!("{command:?} failed: {status}")))
    }
}

/// Prepares and mounts a snapshot per container, timing each pair; then cleans up.
fn mounts(args: &Args, image: &Generated) -> Result<(), Error> {
    let mut client = Client::connect(&args.address)?;
    let mut archive = File::open(&image.archive).map_err(io_err("open", &image.archive))?;
    let req = ImportRequest {
        namespace: NAMESPACE.into(),
        name: None,
        platform: PlatformChoice::Host,
        labels: Default::default(),
    };
    client.import(req, &mut archive, |_| {})?;
    let mnt = args.work.join("mnt");
    let mut times = Vec::with_capacity(args.containers);
    let mut prepares = Vec::with_capacity(args.containers);
    let mut made = Vec::new();
    let mut result: Result<(), Error> = Ok(());
    for n in 0..args.containers {
        let id = format!("c{n}");
        let target = mnt.join(&id);
        fs::create_dir_all(&target).map_err(io_err("create", &target))?;
        let target = target.to_string_lossy().into_owned();
        let start = Instant::now();
        if let Err(e) = client.prepare_snapshot(NAMESPACE, &id, IMAGE) {
            result = Err(e.into());
            break;
        }
        prepares.push(start.elapsed());
        made.push((id.clone(), None));
        if let Err(e) = client.mount_snapshot(NAMESPACE, &id, &target) {
            result = Err(e.into());
            break;
        }
        times.push(start.elapsed());
        made.last_mut().expect("just pushed").1 = Some(target);
    }
    for (id, target) in made {
        if let Some(target) = target {
            client.unmount_snapshot(&target)?;
        }
        client.remove_snapshot(NAMESPACE, &id)?;
    }
    client.remove_images(NAMESPACE, &[IMAGE.to_string()])?;
    client.prune(NAMESPACE)?;
    let _ = fs::remove_dir_all(&mnt);
    result?;
    let mut mounts: Vec<Duration> = times.iter().zip(&prepares).map(|(t, p)| *t - *p).collect();
    for (what, times) in [
        ("prepare + mount", &mut times),
        ("  prepare", &mut prepares),
        ("  mount", &mut mounts),
    ] {
        times.sort();
        let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
        println!(
            "{what}, {} containers of {} layers: median {:.2?}, p95 {:.2?}, max {:.2?}",
            times.len(),
            image.layers.len(),
            times[times.len() / 2],
            p95,
            times[times.len() - 1]
        );
    }
    Ok(())
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn sha(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The host's architecture in Go's names, as image platforms spell it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
