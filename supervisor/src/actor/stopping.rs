//! Stopping, and handing over to a new daemon, as the actor takes part in them (the order of
//! each is written down in `main`): [`Shutdown`] refuses new starts and signals every container,
//! [`WaitEmpty`] answers once every one is stopped (stopped ones are kept on disk for the next
//! daemon), [`HandOver`] refuses new work and leaves the
//! containers alone, [`Settled`] says whether work is still in flight, [`Flushed`] and
//! [`CloseSubscriptions`] end the event streams once the last events are on disk.

use std::sync::atomic::Ordering;

use actix::prelude::*;
use protocol::{ErrorKind, ErrorResponse};
use tokio::sync::oneshot;

use super::supervisor::Supervisor;
use crate::container::{Container, ContainerPhase, ExecPhase};

// ---- messages -------------------------------------------------------------------------------

/// Refuse new starts and send `signal` to every container, including those still starting.
/// Sent again with KILL when the grace period runs out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub signal: i32,
}

/// Answer `reply` once no container runs any more and no deletion is in flight.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WaitEmpty {
    pub reply: oneshot::Sender<()>,
}

/// A new daemon takes over: refuse new work from now on, leave the containers alone.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HandOver;

/// Whether nothing is in flight: no start, exec, checkpoint, pause, resume, update or deletion
/// under way, no exit waiting for its cleanup, no job in the pool.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Settled;

/// Answer `reply` once every event emitted so far, and what follows them, is on disk.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flushed {
    pub reply: oneshot::Sender<()>,
}

/// End every subscription cleanly: the last step of shutdown, once no container is left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSubscriptions;

// ---- handlers -------------------------------------------------------------------------------

impl Handler<Shutdown> for Supervisor {
    type Result = ();

    fn handle(&mut self, Shutdown { signal }: Shutdown, ctx: &mut Context<Self>) {
        self.shutdown = Some(signal);
        self.stopping.store(true, Ordering::Relaxed);
        let mut signalled = 0;
        for container in self.containers.values() {
            if let Ok(pidfd) = container.signal_target() {
                if pidfd.send_signal(signal).is_ok() {
                    signalled += 1;
                }
            }
        }
        log::info!("sent signal {signal} to {signalled} container(s)");
        self.resume_paused(ctx);
    }
}

impl Handler<CloseSubscriptions> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: CloseSubscriptions, _: &mut Context<Self>) {
        self.journal.close_subscriptions();
    }
}

impl Handler<HandOver> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: HandOver, _: &mut Context<Self>) {
        self.handing_over = true;
    }
}

impl Handler<Settled> for Supervisor {
    type Result = bool;

    fn handle(&mut self, _: Settled, _: &mut Context<Self>) -> bool {
        let busy = |c: &Container| {
            c.control.is_some()
                || matches!(
                    c.phase,
                    ContainerPhase::Starting { .. }
                        | ContainerPhase::Checkpointing { .. }
                        | ContainerPhase::Exiting { .. }
                )
                || c.execs
                    .values()
                    .any(|e| matches!(e.phase, ExecPhase::Starting { .. }))
        };
        let load = self.workers.load();
        load.idle && self.removing.is_empty() && !self.containers.values().any(busy)
    }
}

impl Handler<Flushed> for Supervisor {
    type Result = ();

    fn handle(&mut self, Flushed { reply }: Flushed, _: &mut Context<Self>) {
        self.journal.after_write(move || {
            let _ = reply.send(());
        });
    }
}

impl Handler<WaitEmpty> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WaitEmpty, _: &mut Context<Self>) {
        self.empty_waiters.push(msg.reply);
        self.notify_if_empty();
    }
}

impl Supervisor {
    /// Whether new work may start: not while shutting down, nor while handing over to a new
    /// daemon.
    pub(super) fn accepting(&self) -> Result<(), ErrorResponse> {
        let why = if self.shutdown.is_some() {
            "ctrd is shutting down"
        } else if self.handing_over {
            "ctrd is restarting (an upgrade); try again in a moment"
        } else {
            return Ok(());
        };
        Err(ErrorResponse::new(ErrorKind::Unavailable, why))
    }
}
