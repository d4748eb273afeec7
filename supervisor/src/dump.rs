//! The state dump ctrd logs on SIGUSR1: its containers with their processes, the work queued and
//! running in the worker pool, and the event subscribers.
//!
//! The actor copies what it holds into a [`StateDump`] (no I/O in its handler); the lines are
//! written to the log from the signal task.

use std::time::Duration;

use actix::{Message, Recipient};
use protocol::Status;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// What the actor holds and the pool is doing; the actor answers it (see [`crate::actor`]).
#[derive(Message)]
#[rtype(result = "StateDump")]
pub struct Dump;

/// One container as the dump shows it.
#[derive(Debug)]
pub struct ContainerLine {
    pub namespace: String,
    pub id: String,
    pub status: Status,
    pub pid: Option<u32>,
    /// How long a start has been in flight.
    pub since: Option<Duration>,
}

#[derive(Debug)]
pub struct StateDump {
    pub containers: Vec<ContainerLine>,
    /// Exits reaped before the start that may claim them returned.
    pub unclaimed_exits: usize,
    pub subscribers: usize,
    pub subscriber_drops: u64,
    pub queued_jobs: usize,
    pub busy_workers: usize,
    pub workers: usize,
    /// The signal sent at shutdown, once shutdown began.
    pub shutdown_signal: Option<i32>,
}

impl StateDump {
    pub fn lines(&self) -> Vec<String> {
        let count = |status| {
            self.containers
                .iter()
                .filter(|c| c.status == status)
                .count()
        };
        let mut lines = vec![
            format!(
                "state dump: {} container(s): {} starting, {} running, {} stopped; {} unclaimed exit(s)",
                self.containers.len(),
                count(Status::Starting),
                count(Status::Running),
                count(Status::Stopped),
                self.unclaimed_exits
            ),
            format!(
                "state dump: worker pool: {} of {} worker(s) busy, {} job(s) queued",
                self.busy_workers, self.workers, self.queued_jobs
            ),
            format!(
                "state dump: {} event subscriber(s), {} dropped so far",
                self.subscribers, self.subscriber_drops
            ),
        ];
        if let Some(signal) = self.shutdown_signal {
            lines.push(format!("state dump: shutting down (sent signal {signal})"));
        }
        for c in &self.containers {
            let process = match (c.pid, c.since) {
                (Some(pid), _) => format!("init pid {pid}"),
                (None, Some(since)) => format!("starting for {since:?}"),
                (None, None) => "no process".to_string(),
            };
            lines.push(format!(
                "state dump: container {}/{} {} {process}",
                c.namespace, c.id, c.status
            ));
        }
        lines
    }
}

/// Takes over SIGUSR1 (whose default action would end the daemon) before anything can send it.
pub fn listen() -> std::io::Result<Signal> {
    signal(SignalKind::user_defined1())
}

/// Logs a dump on every SIGUSR1 until the task is dropped or the actor stops.
pub async fn log_on(mut usr1: Signal, supervisor: Recipient<Dump>) {
    while usr1.recv().await.is_some() {
        let Ok(dump) = supervisor.send(Dump).await else {
            return;
        };
        for line in dump.lines() {
            log::info!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dump_counts_and_lists_every_container() {
        let dump = StateDump {
            containers: vec![
                ContainerLine {
                    namespace: "default".into(),
                    id: "web".into(),
                    status: Status::Running,
                    pid: Some(42),
                    since: None,
                },
                ContainerLine {
                    namespace: "default".into(),
                    id: "db".into(),
                    status: Status::Starting,
                    pid: None,
                    since: Some(Duration::from_millis(12)),
                },
            ],
            unclaimed_exits: 0,
            subscribers: 1,
            subscriber_drops: 0,
            queued_jobs: 3,
            busy_workers: 2,
            workers: 10,
            shutdown_signal: None,
        };
        let lines = dump.lines();
        assert_eq!(
            lines[0],
            "state dump: 2 container(s): 1 starting, 1 running, 0 stopped; 0 unclaimed exit(s)"
        );
        assert_eq!(
            lines[1],
            "state dump: worker pool: 2 of 10 worker(s) busy, 3 job(s) queued"
        );
        assert_eq!(
            lines[3],
            "state dump: container default/web running init pid 42"
        );
        assert_eq!(
            lines[4],
            "state dump: container default/db starting starting for 12ms"
        );
    }
}
