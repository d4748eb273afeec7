//! `ctr events`: replays the journal from `--since`, then follows the namespace's event stream
//! and prints each event as it arrives.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use protocol::{Event, EventKind, Filter, Since, SubscribeRequest};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format};
use crate::{EventsArgs, Global};

const HEADER: [&str; 6] = ["TIME", "TYPE", "ID", "PROCESS", "PID", "STATUS"];

/// Column widths before the last: an RFC 3339 time with nanoseconds is 30 characters and
/// `start-container` 15; longer ids, process names and pids still get a two-space gap.
const WIDTHS: [usize; 5] = [32, 18, 26, 12, 10];

/// An event as ctr prints it: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct EventView<'a> {
    /// RFC 3339, UTC, nanoseconds.
    time: String,
    seq: u64,
    #[serde(rename = "type")]
    kind: EventKind,
    namespace: &'a str,
    id: &'a str,
    process: &'a str,
    pid: u32,
    /// `null` unless the event is an exit.
    status: Option<i32>,
    labels: &'a BTreeMap<String, String>,
    /// On exits: the kernel's OOM killer killed a process of the container.
    oom_killed: bool,
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        EventView {
            time: output::rfc3339(e.time),
            seq: e.seq,
            kind: e.kind,
            namespace: &e.namespace,
            id: &e.id,
            process: &e.process,
            pid: e.pid,
            status: e.status,
            labels: &e.labels,
            oom_killed: e.oom_killed,
        }
    }
}

/// Runs until ctrd closes the stream (success), the connection fails, or nobody reads stdout.
/// Each event is flushed as it is written, because the reader may be a pipe waiting for it.
/// Arguments are checked before connecting; the filters run in the daemon.
pub fn stream(global: &Global, args: &EventsArgs, out: &mut impl Write) -> Result<(), Error> {
    let format = args.format.format;
    let now = SystemTime::now();
    let since = args
        .since
        .as_deref()
        .map(|s| parse_since(s, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|u| parse_time(u, now))
        .transpose()?;
    Filter::<Event>::parse(&args.filters)?;
    let request = SubscribeRequest {
        namespace: global.namespace.clone(),
        since,
        until,
        filters: args.filters.clone(),
    };
    let events = global.connect()?.subscribe_with(request)?;
    if format == Format::Table {
        out.write_all(output::stream_row(&WIDTHS, &HEADER).as_bytes())?;
        out.flush()?;
    }
    for event in events {
        let event = event?;
        match format {
            Format::Table => out.write_all(table_row(&event).as_bytes())?,
            Format::Json => output::json_line(out, &EventView::from(&event))?,
        }
        out.flush()?;
    }
    Ok(())
}

/// A bare number is a sequence number; anything else is a time.
fn parse_since(text: &str, now: SystemTime) -> Result<Since, Error> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Since::Seq)
            .map_err(|_| Error::Time(text.to_string()));
    }
    parse_time(text, now).map(Since::Time)
}

/// An RFC 3339 time, or a duration before `now` (`10m`, `1h 30m`), in nanoseconds since the epoch.
fn parse_time(text: &str, now: SystemTime) -> Result<u64, Error> {
    let time = humantime::parse_rfc3339_weak(text)
        .ok()
        .or_else(|| {
            let ago = humantime::parse_duration(text).ok()?;
            Some(now.checked_sub(ago).unwrap_or(UNIX_EPOCH))
        })
        .ok_or_else(|| Error::Time(text.to_string()))?;
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Ok(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX))
}

fn table_row(e: &Event) -> String {
    let status = match (e.status, e.oom_killed) {
        (Some(status), true) => format!("{status} (oom)"),
        (Some(status), false) => status.to_string(),
        (None, _) => "-".to_string(),
    };
    // An image store event is about no process.
    let (process, pid) = if e.process.is_empty() {
        ("-", "-".to_string())
    } else {
        (e.process.as_str(), e.pid.to_string())
    };
    output::stream_row(
        &WIDTHS,
        &[
            &output::rfc3339(e.time),
            &e.kind.to_string(),
            &e.id,
            process,
            &pid,
            &status,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, status: Option<i32>) -> Event {
        Event {
            seq: 9,
            time: 1_700_000_000_123_456_789,
            kind,
            namespace: "default".into(),
            id: "web".into(),
            process: "init".into(),
            pid: 4242,
            status,
            labels: BTreeMap::from([("app".into(), "web".into())]),
            oom_killed: false,
        }
    }

    #[test]
    fn rows_line_up_under_the_header() {
        let header = output::stream_row(&WIDTHS, &HEADER);
        let start = table_row(&event(EventKind::StartContainer, None));
        let exit = table_row(&event(EventKind::Exit, Some(137)));
        assert_eq!(
            start,
            "2023-11-14T22:13:20.123456789Z  start-container   web                       init        4242      -\n"
        );
        assert!(exit.ends_with(
            "  exit              web                       init        4242      137\n"
        ));
        let mut oom = event(EventKind::Exit, Some(137));
        oom.oom_killed = true;
        assert!(table_row(&oom).ends_with("  4242      137 (oom)\n"));
        for row in [&start, &exit] {
            for title in &HEADER[1..] {
                let column = header.find(title).unwrap();
                assert_eq!(&row[column - 2..column], "  ", "{title} in {row:?}");
            }
        }
    }

    #[test]
    fn json_lines_carry_every_field() {
        let mut out = Vec::new();
        output::json_line(&mut out, &EventView::from(&event(EventKind::Exit, Some(0)))).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"seq\":9,\"type\":\"exit\",\
             \"namespace\":\"default\",\"id\":\"web\",\"process\":\"init\",\"pid\":4242,\
             \"status\":0,\"labels\":{\"app\":\"web\"},\"oom_killed\":false}\n"
        );
    }

    #[test]
    fn since_takes_a_sequence_number_a_time_or_a_duration_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(parse_since("0", now).unwrap(), Since::Seq(0));
        assert_eq!(parse_since("42", now).unwrap(), Since::Seq(42));
        assert_eq!(
            parse_since("1970-01-01T00:00:10.5Z", now).unwrap(),
            Since::Time(10_500_000_000)
        );
        assert_eq!(
            parse_since("10m", now).unwrap(),
            Since::Time(400 * 1_000_000_000)
        );
        assert_eq!(parse_time("1h", now).unwrap(), 0, "clamped at the epoch");
        for bad in ["", "yesterday", "-1", "12:00"] {
            let err = parse_since(bad, now).unwrap_err();
            assert!(err.to_string().starts_with("invalid time"), "{bad}: {err}");
        }
    }
}
