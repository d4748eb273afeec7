//! Event subscribers: a slow one costs nobody else anything.

mod common;

use std::thread;

use common::*;
use protocol::frame;
use protocol::{EventKind, Hello, Request, SubscribeRequest, DEFAULT_NAMESPACE};

#[test]
fn a_subscriber_that_never_reads_delays_no_one() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    // Says hello and subscribes, then never reads a byte.
    let mut bytes = frame::encode(&Hello::ours()).unwrap();
    bytes.extend(
        frame::encode(&Request::Subscribe(SubscribeRequest::live(
            DEFAULT_NAMESPACE,
        )))
        .unwrap(),
    );
    let _deaf = raw_connection(&daemon.socket, &bytes);
    let mut events = daemon.events();
    wait_until("both subscriptions", || {
        (daemon.client().info().unwrap().subscribers == 2).then_some(())
    });

    let ids: Vec<String> = (0..20).map(|_| unique_id("deaf")).collect();
    thread::scope(|s| {
        for id in &ids {
            let (daemon, bundle) = (&daemon, &bundle);
            s.spawn(move || {
                daemon.start_container(id, bundle);
                daemon.kill(id, libc::SIGKILL);
            });
        }
    });
    let exits = events.wait_for(20, |e| e.kind == EventKind::Exit && ids.contains(&e.id));
    assert!(exits.iter().all(|e| e.status == Some(137)));
    assert_eq!(
        events.seen.iter().filter(|e| ids.contains(&e.id)).count(),
        40
    );
}

#[test]
fn subscribers_see_only_their_namespace() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut events = daemon.events();
    let other = unique_id("otherns");
    let mut req = start_request(&other, &bundle);
    req.namespace = "other".into();
    daemon.client().start(req).unwrap();
    assert!(daemon.client().list(DEFAULT_NAMESPACE).unwrap().is_empty());
    assert_eq!(daemon.client().list("other").unwrap()[0].id, other);
    daemon
        .client()
        .kill(protocol::KillRequest {
            namespace: "other".into(),
            id: other.clone(),
            signal: libc::SIGKILL,
            all: false,
        })
        .unwrap();
    events.barrier(&daemon, &bundle);
    assert!(
        events.seen.iter().all(|e| e.id != other),
        "{:?}",
        events.seen
    );
}
