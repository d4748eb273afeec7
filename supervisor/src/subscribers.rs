//! Event fan-out to subscribed connections.
//!
//! Each subscriber has a bounded queue that the actor only ever `try_send`s into, so a slow or
//! dead client costs the actor one failed push: when its queue is full it is dropped and counted,
//! and its connection closes once it has written what it had.

use protocol::Event;
use runtime::Namespace;
use tokio::sync::mpsc::{self, error::TrySendError};

/// Events a subscriber may have waiting before it counts as fallen behind.
pub const QUEUE_LEN: usize = 4096;

struct Subscriber {
    namespace: Namespace,
    queue: mpsc::Sender<Event>,
}

#[derive(Default)]
pub struct Subscribers {
    subscribers: Vec<Subscriber>,
    drops: u64,
}

impl Subscribers {
    pub fn add(&mut self, namespace: Namespace, queue: mpsc::Sender<Event>) {
        self.subscribers.push(Subscriber { namespace, queue });
    }

    pub fn publish(&mut self, event: &Event) {
        let mut dropped = 0;
        self.subscribers.retain(|sub| {
            if sub.namespace.as_str() != event.namespace {
                return !sub.queue.is_closed();
            }
            match sub.queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Closed(_)) => false,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    false
                }
            }
        });
        if dropped > 0 {
            log::warn!("dropped {dropped} event subscriber(s) that fell {QUEUE_LEN} events behind");
            self.drops += dropped;
        }
    }

    pub fn len(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| !s.queue.is_closed())
            .count()
    }

    pub fn drops(&self) -> u64 {
        self.drops
    }
}
