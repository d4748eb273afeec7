//! `stats-bench`: how long one `stats` call takes for many running containers.
//!
//! Usage: `stats-bench SOCKET BUNDLE [CONTAINERS] [ROUNDS]` (defaults 100 and 20) against a
//! running ctrd. Starts CONTAINERS containers from BUNDLE (which should run `sleep 1000`) in
//! the namespace `stats-bench`, times ROUNDS calls that read every one of them, prints the
//! minimum, median and maximum, and kills the containers.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use protocol::{Client, ClientError, KillRequest, StartRequest};

const NAMESPACE: &str = "stats-bench";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(socket), Some(bundle)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: stats-bench SOCKET BUNDLE [CONTAINERS] [ROUNDS]");
        return ExitCode::FAILURE;
    };
    let count = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(100);
    let rounds = args.get(4).and_then(|n| n.parse().ok()).unwrap_or(20);
    match run(socket, bundle, count, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stats-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(socket: &str, bundle: &str, count: usize, rounds: usize) -> Result<(), ClientError> {
    let mut client = Client::connect(socket)?;
    let ids: Vec<String> = (0..count)
        .map(|n| format!("stats-bench-{}-{n}", std::process::id()))
        .collect();
    for id in &ids {
        client.start(StartRequest {
            namespace: NAMESPACE.into(),
            id: id.clone(),
            bundle: bundle.into(),
            labels: Default::default(),
            stdout: None,
            stderr: None,
            checkpoint: None,
            stdin: None,
            terminal: None,
            // Nothing of a run is kept once it has stopped.
            remove: true,
        })?;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let stats = client.stats(NAMESPACE, &[])?;
        times.push(start.elapsed());
        if stats.len() != count {
            let rows = stats.len();
            return Err(ClientError::Unexpected(format!(
                "{rows} rows of stats for {count} containers"
            )));
        }
    }
    times.sort();
    println!(
        "stats of {count} containers, {rounds} calls: min {:?}  median {:?}  max {:?}",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
    for id in &ids {
        client.kill(KillRequest {
            namespace: NAMESPACE.into(),
            id: id.clone(),
            signal: 9,
            all: false,
        })?;
    }
    Ok(())
}
