//! [`StoreEvents`]: what the image store did, told to the actor once it is done.
//!
//! Image store operations block on the disk and never touch container state, so the server runs
//! them on blocking threads, not here. Their events are still the actor's to number, so that
//! the journal holds one sequence: the server sends this message after the operation finished,
//! and answers its client once the actor has handled it.

use std::collections::BTreeMap;

use actix::prelude::*;
use protocol::EventKind;

use super::Supervisor;

/// Events of one finished image store operation, to emit in this order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StoreEvents {
    pub namespace: String,
    pub events: Vec<StoreEvent>,
}

/// One image store event: what happened, and to what (an image name, a snapshot key, a blob
/// digest).
pub struct StoreEvent {
    pub kind: EventKind,
    pub subject: String,
    pub labels: BTreeMap<String, String>,
}

impl StoreEvent {
    pub fn new(kind: EventKind, subject: impl Into<String>) -> Self {
        StoreEvent {
            kind,
            subject: subject.into(),
            labels: BTreeMap::new(),
        }
    }
}

impl Handler<StoreEvents> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StoreEvents, _: &mut Context<Self>) {
        for event in msg.events {
            self.emit_store(event.kind, &msg.namespace, &event.subject, event.labels);
        }
    }
}
