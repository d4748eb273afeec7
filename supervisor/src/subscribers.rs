//! Event fan-out to subscribed connections.
//!
//! Each subscriber has a bounded queue that the actor only ever `try_send`s into, so a slow or
//! dead client costs the actor one failed push: when its queue is full it is dropped, counted and
//! told so through its `lagged` notice, and its connection closes once it has written what it had.

use protocol::Event;
use runtime::Namespace;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

/// Events a subscriber may have waiting before it counts as fallen behind.
pub const QUEUE_LEN: usize = 4096;

/// What the connection of a subscriber hands to the actor.
pub struct Subscription {
    pub queue: mpsc::Sender<Event>,
    /// Fired when the subscriber is dropped for falling behind, so its connection can say why.
    pub lagged: oneshot::Sender<()>,
}

struct Subscriber {
    namespace: Namespace,
    subscription: Subscription,
}

#[derive(Default)]
pub struct Subscribers {
    subscribers: Vec<Subscriber>,
    drops: u64,
}

impl Subscribers {
    pub fn add(&mut self, namespace: Namespace, subscription: Subscription) {
        self.subscribers.push(Subscriber {
            namespace,
            subscription,
        });
    }

    /// Ends every subscription; each connection writes what it holds, then closes.
    pub fn close_all(&mut self) {
        self.subscribers.clear();
    }

    pub fn publish(&mut self, event: &Event) {
        let mut lagging = Vec::new();
        let mut kept = Vec::with_capacity(self.subscribers.len());
        for sub in self.subscribers.drain(..) {
            let queue = &sub.subscription.queue;
            if sub.namespace.as_str() != event.namespace {
                if !queue.is_closed() {
                    kept.push(sub);
                }
                continue;
            }
            match queue.try_send(event.clone()) {
                Ok(()) => kept.push(sub),
                Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(_)) => lagging.push(sub),
            }
        }
        self.subscribers = kept;
        let dropped = lagging.len() as u64;
        for sub in lagging {
            let _ = sub.subscription.lagged.send(());
        }
        if dropped > 0 {
            log::warn!("dropped {dropped} event subscriber(s) that fell {QUEUE_LEN} events behind");
            self.drops += dropped;
        }
    }

    pub fn len(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| !s.subscription.queue.is_closed())
            .count()
    }

    pub fn drops(&self) -> u64 {
        self.drops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::EventKind;

    fn subscription(queue: mpsc::Sender<Event>) -> (Subscription, oneshot::Receiver<()>) {
        let (lagged, notice) = oneshot::channel();
        (Subscription { queue, lagged }, notice)
    }

    fn event(namespace: &str) -> Event {
        Event {
            time: 0,
            kind: EventKind::Exit,
            namespace: namespace.into(),
            id: "c".into(),
            process: "init".into(),
            pid: 2,
            status: Some(0),
            oom_killed: false,
        }
    }

    #[test]
    fn a_full_queue_drops_only_its_subscriber() {
        let ns = Namespace::new("default").unwrap();
        let mut subs = Subscribers::default();
        let (slow, _never_read) = mpsc::channel(2);
        let (fast, mut read) = mpsc::channel(16);
        let (slow, mut slow_notice) = subscription(slow);
        let (fast, mut fast_notice) = subscription(fast);
        subs.add(ns.clone(), slow);
        subs.add(ns, fast);
        for _ in 0..3 {
            subs.publish(&event("default"));
            while read.try_recv().is_ok() {}
        }
        assert_eq!(subs.drops(), 1);
        assert_eq!(subs.len(), 1);
        assert!(
            slow_notice.try_recv().is_ok(),
            "the slow one is told it lagged"
        );
        subs.publish(&event("default"));
        assert!(read.try_recv().is_ok());
        assert!(fast_notice.try_recv().is_err());
    }

    #[test]
    fn closed_and_foreign_subscribers_cost_nothing() {
        let mut subs = Subscribers::default();
        let (gone, closed) = mpsc::channel(1);
        drop(closed);
        let (other, _other_rx) = mpsc::channel(1);
        subs.add(Namespace::new("default").unwrap(), subscription(gone).0);
        subs.add(Namespace::new("other").unwrap(), subscription(other).0);
        for _ in 0..5 {
            subs.publish(&event("default"));
        }
        assert_eq!(subs.len(), 1);
        assert_eq!(subs.drops(), 0);
    }
}
