//! Event fan-out to subscribed connections, run by the journal's writer thread once an event is
//! on disk.
//!
//! Each subscriber has a namespace, a filter and a bounded queue that is only ever
//! `try_send`ed into, so a slow or dead client costs one failed push: when its queue is full it
//! is dropped, counted and told so through its `lagged` notice, and its connection closes once
//! it has written what it had (ending with a `lagged` frame).

use std::sync::Arc;

use protocol::{Event, Filter};
use runtime::Namespace;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;

/// The connection's end of a subscription.
pub struct Subscription {
    pub events: mpsc::Receiver<Event>,
    /// Fires when the subscriber is dropped for falling behind, so its connection can say so.
    pub lag_notice: oneshot::Receiver<()>,
}

/// A subscriber as the fan-out keeps it: only its namespace's events that pass its filter are
/// queued for it.
struct Subscriber {
    namespace: Namespace,
    filter: Arc<Filter<Event>>,
    queue: mpsc::Sender<Event>,
    lagged: oneshot::Sender<()>,
}

pub struct Subscribers {
    subscribers: Vec<Subscriber>,
    drops: u64,
    /// Events a subscriber may have waiting before it counts as fallen behind.
    queue_len: usize,
}

impl Subscribers {
    pub fn new(queue_len: usize) -> Self {
        Subscribers {
            subscribers: Vec::new(),
            drops: 0,
            queue_len,
        }
    }

    pub fn add(&mut self, namespace: Namespace, filter: Arc<Filter<Event>>) -> Subscription {
        let (queue, events) = mpsc::channel(self.queue_len);
        let (lagged, lag_notice) = oneshot::channel();
        self.subscribers.push(Subscriber {
            namespace,
            filter,
            queue,
            lagged,
        });
        Subscription { events, lag_notice }
    }

    /// Ends every subscription; each connection writes what it holds, then closes.
    pub fn close_all(&mut self) {
        self.subscribers.clear();
    }

    pub fn publish(&mut self, event: &Event) {
        let mut lagging = Vec::new();
        let mut kept = Vec::with_capacity(self.subscribers.len());
        for sub in self.subscribers.drain(..) {
            let queue = &sub.queue;
            if sub.namespace.as_str() != event.namespace || !sub.filter.matches(event) {
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
            let _ = sub.lagged.send(());
        }
        if dropped > 0 {
            log::warn!(
                "dropped {dropped} event subscriber(s) that fell {} events behind",
                self.queue_len
            );
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

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::EventKind;

    fn add(subs: &mut Subscribers, namespace: &str) -> Subscription {
        subs.add(
            Namespace::new(namespace).unwrap(),
            Arc::new(Filter::everything()),
        )
    }

    fn event(namespace: &str) -> Event {
        Event {
            seq: 1,
            time: 0,
            kind: EventKind::Exit,
            namespace: namespace.into(),
            id: "c".into(),
            process: "init".into(),
            pid: 2,
            status: Some(0),
            labels: Default::default(),
            oom_killed: false,
        }
    }

    #[test]
    fn a_full_queue_drops_only_its_subscriber() {
        let mut subs = Subscribers::new(2);
        let mut slow = add(&mut subs, "default");
        let mut fast = add(&mut subs, "default");
        for _ in 0..3 {
            subs.publish(&event("default"));
            while fast.events.try_recv().is_ok() {}
        }
        assert_eq!(subs.drops(), 1);
        assert_eq!(subs.len(), 1);
        assert!(
            slow.lag_notice.try_recv().is_ok(),
            "the slow one is told it lagged"
        );
        subs.publish(&event("default"));
        assert!(fast.events.try_recv().is_ok());
        assert!(fast.lag_notice.try_recv().is_err());
    }

    #[test]
    fn closed_and_foreign_subscribers_cost_nothing() {
        let mut subs = Subscribers::new(1);
        drop(add(&mut subs, "default"));
        let _other = add(&mut subs, "other");
        for _ in 0..5 {
            subs.publish(&event("default"));
        }
        assert_eq!(subs.len(), 1);
        assert_eq!(subs.drops(), 0);
    }

    #[test]
    fn only_events_passing_the_filter_are_queued() {
        let mut subs = Subscribers::new(16);
        let filter = Filter::parse(&["status!=0".to_string()]).unwrap();
        let mut exits = subs.add(Namespace::new("default").unwrap(), Arc::new(filter));
        let mut failed = event("default");
        failed.status = Some(1);
        subs.publish(&event("default"));
        subs.publish(&failed);
        assert_eq!(exits.events.try_recv().unwrap(), failed);
        assert!(exits.events.try_recv().is_err());
    }
}
