//! Events that are never lost: the journal, replay with `since`, filters, lagged subscribers
//! and `ctr containers wait`, against the real daemon and runc.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use protocol::{
    ErrorKind, Event, EventKind, EventStream, Lagged, Since, StreamItem, SubscribeRequest,
    DEFAULT_NAMESPACE,
};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Now, as `ctr events --until` takes it: everything the journal holds, then the end.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn subscribe(daemon: &Daemon, since: Option<Since>, filters: &[&str]) -> EventStream {
    let stream = daemon
        .client()
        .subscribe_with(SubscribeRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            since,
            until: None,
            filters: filters.iter().map(|f| f.to_string()).collect(),
        })
        .unwrap();
    stream.set_timeout(Some(DEADLINE)).unwrap();
    stream
}

fn next_item(stream: &mut EventStream) -> StreamItem {
    stream
        .next_item()
        .unwrap_or_else(|e| panic!("reading the stream: {e}"))
        .expect("the stream ended")
}

/// Reads a replay up to its `live` marker.
fn replayed(stream: &mut EventStream) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        match next_item(stream) {
            StreamItem::Event(event) => events.push(event),
            StreamItem::Live => return events,
            StreamItem::Lagged(lagged) => panic!("lagged during the replay: {lagged:?}"),
        }
    }
}

fn next_event(stream: &mut EventStream) -> Event {
    match next_item(stream) {
        StreamItem::Event(event) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Starts and kills `count` containers, a few at a time; returns their ids.
fn churn(daemon: &Daemon, bundle: &Path, prefix: &str, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|_| unique_id(prefix)).collect();
    thread::scope(|s| {
        for chunk in ids.chunks(count.div_ceil(5)) {
            s.spawn(move || {
                for id in chunk {
                    daemon.start_container(id, bundle);
                    daemon.kill(id, libc::SIGKILL);
                }
            });
        }
    });
    ids
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn ctr_json_lines(daemon: &Daemon, args: &[&str]) -> Vec<serde_json::Value> {
    let out = daemon.ctr(args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn fifty_containers_are_replayed_in_order_then_live_nothing_twice() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut live = daemon.events();
    let before = now_ns();
    let ids = churn(&daemon, &bundle, "fifty", 50);
    live.wait_for(50, |e| e.kind == EventKind::Exit && ids.contains(&e.id));

    let mut stream = subscribe(&daemon, Some(Since::Time(before)), &[]);
    let replay = replayed(&mut stream);
    assert_eq!(replay.len(), 100, "{replay:#?}");
    assert!(
        seqs(&replay).windows(2).all(|w| w[0] < w[1]),
        "out of order"
    );
    for id in &ids {
        let kinds: Vec<EventKind> = replay
            .iter()
            .filter(|e| &e.id == id)
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, [EventKind::StartContainer, EventKind::Exit], "{id}");
    }

    let new = unique_id("fifty-live");
    daemon.start_container(&new, &bundle);
    let started = next_event(&mut stream);
    assert_eq!(
        (started.id.as_str(), started.kind),
        (new.as_str(), EventKind::StartContainer)
    );
    assert_eq!(started.seq, replay.last().unwrap().seq + 1);
    daemon.kill(&new, libc::SIGKILL);
    let exit = next_event(&mut stream);
    assert_eq!((exit.id.as_str(), exit.status), (new.as_str(), Some(137)));
    assert_eq!(exit.seq, started.seq + 1);
}

#[test]
fn events_arriving_during_the_replay_are_neither_lost_nor_repeated() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut live = daemon.events();
    // A history larger than a socket buffer: each replay stalls until its client reads, which
    // it does only after the containers below have started and exited meanwhile.
    let big = "x".repeat(64 * 1024);
    let history: Vec<String> = (0..10).map(|_| unique_id("history")).collect();
    for id in &history {
        let mut req = start_request(id, &bundle);
        req.labels.insert("big".into(), big.clone());
        daemon.client().start(req).unwrap();
        daemon.kill(id, libc::SIGKILL);
    }
    live.wait_for(10, |e| e.kind == EventKind::Exit && history.contains(&e.id));

    let during: Vec<String> = (0..15).map(|_| unique_id("during")).collect();
    thread::scope(|s| {
        s.spawn(|| {
            for id in &during {
                daemon.start_container(id, &bundle);
                daemon.kill(id, libc::SIGKILL);
            }
        });
        // Subscribers arrive one after another while containers start and exit.
        let mut subscribers = Vec::new();
        for _ in 0..5 {
            live.wait_for(subscribers.len() + 1, |e| during.contains(&e.id));
            subscribers.push(subscribe(&daemon, Some(Since::Seq(0)), &[]));
        }
        for mut stream in subscribers {
            let replay = replayed(&mut stream);
            let mut all = replay.clone();
            let mut exits: HashSet<String> = all
                .iter()
                .filter(|e| e.kind == EventKind::Exit && during.contains(&e.id))
                .map(|e| e.id.clone())
                .collect();
            while exits.len() < during.len() {
                let event = next_event(&mut stream);
                if event.kind == EventKind::Exit {
                    exits.insert(event.id.clone());
                }
                all.push(event);
            }
            // Every event of the namespace, numbered from 1 with no gap and no repeat.
            let expected: Vec<u64> = (1..=all.len() as u64).collect();
            assert_eq!(seqs(&all), expected, "replayed {}", replay.len());
            assert!(replay.len() < all.len(), "nothing came live");
        }
    });
}

#[test]
fn events_survive_a_sigkilled_daemon() {
    let mut daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut live = daemon.events();
    let ids = churn(&daemon, &bundle, "crash", 3);
    live.wait_for(3, |e| e.kind == EventKind::Exit && ids.contains(&e.id));

    daemon.kill_daemon();
    daemon.spawn(&[]);
    let until = now_rfc3339();
    let lines = ctr_json_lines(
        &daemon,
        &[
            "events", "--since", "0", "--until", &until, "--format", "json",
        ],
    );
    let seen: Vec<(u64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["seq"].as_u64().unwrap(),
                l["type"].as_str().unwrap().to_string(),
                l["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=6).collect::<Vec<_>>()
    );
    for id in &ids {
        let types: Vec<&str> = seen
            .iter()
            .filter(|s| &s.2 == id)
            .map(|s| s.1.as_str())
            .collect();
        assert_eq!(types, ["start-container", "exit"], "{id}");
    }

    // Numbering continues, and the exits on record still answer a wait.
    let mut live = daemon.events();
    let after = unique_id("after-crash");
    daemon.start_container(&after, &bundle);
    let started = live.wait_for(1, |e| e.id == after);
    assert_eq!(started[0].seq, 7);
    daemon.kill(&after, libc::SIGKILL);
    let out = daemon.ctr(&["containers", "wait", &ids[0]]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
}

#[test]
fn a_filter_shows_exactly_the_non_zero_exits() {
    let daemon = Daemon::start();
    let sleep = daemon.bundle("sleep", &["sleep", "1000"]);
    let ok = daemon.bundle("ok", &["sh", "-c", "exit 0"]);
    let fail = daemon.bundle("fail", &["sh", "-c", "exit 3"]);
    let mut live = daemon.events();
    let mut failed = BTreeMap::new();
    let mut all = Vec::new();
    for (bundle, status) in [(&ok, 0), (&fail, 3), (&ok, 0), (&fail, 3)] {
        let id = unique_id("exits");
        daemon.start_container(&id, bundle);
        if status != 0 {
            failed.insert(id.clone(), status);
        }
        all.push(id);
    }
    let killed = unique_id("killed");
    daemon.start_container(&killed, &sleep);
    daemon.kill(&killed, libc::SIGKILL);
    failed.insert(killed.clone(), 137);
    all.push(killed);
    let exits = live.wait_for(5, |e| e.kind == EventKind::Exit && all.contains(&e.id));
    assert_eq!(exits.iter().filter(|e| e.status == Some(0)).count(), 2);

    let until = now_rfc3339();
    let lines = ctr_json_lines(
        &daemon,
        &[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "type==exit,status!=0",
            "--format",
            "json",
        ],
    );
    let shown: BTreeMap<String, i64> = lines
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "exit");
            (
                l["id"].as_str().unwrap().to_string(),
                l["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines.len(), 3);
    let expected: BTreeMap<String, i64> = failed.iter().map(|(id, s)| (id.clone(), *s)).collect();
    assert_eq!(shown, expected);

    // Several filters are alternatives.
    let lines = ctr_json_lines(
        &daemon,
        &[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            &format!("id=={},type==exit", all[0]),
            "--filter",
            "status==3",
            "--format",
            "json",
        ],
    );
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [all[0].as_str(), all[1].as_str(), all[3].as_str()]);
}

#[test]
fn a_bad_filter_is_refused_with_its_column() {
    let daemon = Daemon::start();
    let out = daemon.ctr(&["events", "--filter", "type=exit"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ctr: invalid filter \"type=exit\" at column 5: expected ==, != or ~=, a ',' or the end\n"
    );
    // The daemon checks too, for clients other than ctr.
    let err = daemon
        .client()
        .subscribe_with(SubscribeRequest {
            filters: vec!["id~=(".into()],
            ..SubscribeRequest::live(DEFAULT_NAMESPACE)
        })
        .err()
        .unwrap();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument));
    assert!(err.to_string().contains("at column 5"), "{err}");
    let err = daemon
        .client()
        .list_filtered(DEFAULT_NAMESPACE, vec!["labels".into()])
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidArgument));
}

#[test]
fn containers_list_takes_the_same_filters() {
    let daemon = Daemon::start();
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let (db, web) = (unique_id("db"), unique_id("web"));
    for (id, app) in [(&db, "db"), (&web, "web")] {
        let mut req = start_request(id, &bundle);
        req.labels.insert("app".into(), app.into());
        req.labels.insert("my key".into(), format!("{app}-x"));
        daemon.client().start(req).unwrap();
    }
    let list = |filter: &str| -> Vec<String> {
        let out = daemon.ctr(&["containers", "list", "--filter", filter, "--format", "json"]);
        assert!(out.status.success(), "{out:?}");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("labels.app==db"), [db.as_str()]);
    assert_eq!(list("labels.\"my key\"~=^web"), [web.as_str()]);
    assert_eq!(list("status==running,labels.app!=db"), [web.as_str()]);
    assert!(list("labels.nope").is_empty());
    let mut live = daemon.events();
    for id in [&db, &web] {
        daemon.kill(id, libc::SIGKILL);
    }
    live.wait_for(2, |e| e.kind == EventKind::Exit);

    // Events carry the container's labels, the exit too.
    let mut stream = subscribe(&daemon, Some(Since::Seq(0)), &["labels.app==db"]);
    let events = replayed(&mut stream);
    let kinds: Vec<(&str, EventKind)> = events.iter().map(|e| (e.id.as_str(), e.kind)).collect();
    assert_eq!(
        kinds,
        [
            (db.as_str(), EventKind::StartContainer),
            (db.as_str(), EventKind::Exit)
        ]
    );
    assert!(events.iter().all(|e| e.labels["my key"] == "db-x"));
}

/// A wait before the exit gets the exit to come; one after it, the status on record. For the
/// container that fails, the runtime answers the start only once the keeper has reaped its
/// init, so its wait certainly comes after the exit.
#[test]
fn containers_wait_exits_with_the_status_even_after_the_exit() {
    let daemon = Daemon::with_runc_wrapper("run", "wait-fail", UNTIL_REAPED);
    let sleep = daemon.bundle("sleep", &["sleep", "1000"]);
    let fail = daemon.bundle("fail", &["sh", "-c", "exit 1"]);
    let id = unique_id("wait");
    daemon.start_container(&id, &sleep);
    let waiter = {
        let mut client = daemon.client();
        let request = protocol::WaitRequest {
            namespace: DEFAULT_NAMESPACE.into(),
            id: id.clone(),
            process: "init".into(),
        };
        thread::spawn(move || client.wait(request))
    };
    let ctr_waiter = std::process::Command::new(ctr_binary())
        .arg("--address")
        .arg(&daemon.socket)
        .args(["containers", "wait", &id])
        .spawn()
        .unwrap();
    daemon.kill(&id, libc::SIGKILL);
    let exit = waiter.join().unwrap().unwrap();
    assert_eq!((exit.kind, exit.status), (EventKind::Exit, Some(137)));
    assert_eq!(
        ctr_waiter.wait_with_output().unwrap().status.code(),
        Some(137)
    );
    // A caller arriving after the exit gets the status on record.
    assert_eq!(
        daemon.ctr(&["containers", "wait", &id]).status.code(),
        Some(137)
    );

    // Started by ctr, which prints the id. Its status of 1 is passed on as it is: ctr's own
    // failures exit 125, so a script can tell the two apart.
    let failing = unique_id("wait-fail");
    let out = daemon.ctr(&["c", "start", &failing, fail.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{failing}\n"));
    let out = daemon.ctr(&["containers", "wait", "--pid", "init", &failing]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let out = daemon.ctr(&["containers", "wait", "nope"]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("ctr: container \"nope\" not found"),
        "{stderr}"
    );

    let running = unique_id("wait-other");
    let out = daemon.ctr(&["c", "start", "-q", &running, sleep.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "--quiet prints nothing"
    );
    let out = daemon.ctr(&["containers", "wait", "--pid", "sidecar", &running]);
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no process \"sidecar\""), "{stderr}");
    daemon.kill(&running, libc::SIGKILL);
}

#[test]
fn a_subscriber_that_falls_behind_is_told_where_to_resume_and_loses_nothing() {
    let daemon = Daemon::start_with(&["--subscriber-queue", "1"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    // Big labels fill the socket buffer of a client that does not read within a few events.
    let big = "x".repeat(100 * 1024);
    let mut stream = subscribe(&daemon, None, &[]);
    let mut started = 0;
    while daemon.client().info().unwrap().subscriber_drops == 0 {
        assert!(started < 50, "the subscriber never fell behind");
        let id = unique_id("lag");
        let mut req = start_request(&id, &bundle);
        req.labels.insert("big".into(), big.clone());
        daemon.client().start(req).unwrap();
        daemon.kill(&id, libc::SIGKILL);
        started += 1;
        // Let the exit reach the fan-out before looking again.
        daemon.wait_until_stopped("the exit to be emitted");
    }

    assert_eq!(next_item(&mut stream), StreamItem::Live);
    let mut got = Vec::new();
    let last_seq = loop {
        match next_item(&mut stream) {
            StreamItem::Event(event) => got.push(event.seq),
            StreamItem::Lagged(Lagged { last_seq }) => break last_seq,
            StreamItem::Live => panic!("a second live marker"),
        }
    };
    assert!(
        stream.next_item().unwrap().is_none(),
        "lagged is the last frame"
    );
    assert_eq!(Some(&last_seq), got.last());

    let mut resumed = subscribe(&daemon, Some(Since::Seq(last_seq)), &[]);
    got.extend(seqs(&replayed(&mut resumed)));
    assert_eq!(got, (1..=(2 * started) as u64).collect::<Vec<_>>());
    assert_eq!(daemon.client().info().unwrap().subscriber_drops, 1);
}

#[test]
fn the_journal_keeps_the_newest_events_within_its_retention() {
    let daemon = Daemon::start_with(&["--events-retention", "2K"]);
    let bundle = daemon.bundle("sleep", &["sleep", "1000"]);
    let mut live = daemon.events();
    let ids = churn(&daemon, &bundle, "retained", 20);
    live.wait_for(20, |e| e.kind == EventKind::Exit && ids.contains(&e.id));

    let mut stream = subscribe(&daemon, Some(Since::Seq(0)), &[]);
    let kept = seqs(&replayed(&mut stream));
    assert!(kept.first() > Some(&1), "nothing was dropped: {kept:?}");
    let expected: Vec<u64> = (kept[0]..=40).collect();
    assert_eq!(kept, expected, "the newest events, with no gap");
    let on_disk: u64 = std::fs::read_dir(daemon.state.join("events"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk <= 3 * 1024, "{on_disk} bytes of journal");
}
