//! `ctr events`: follows the namespace's event stream and prints each event as it arrives.

use std::io::Write;

use protocol::{Event, EventKind};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format};
use crate::Global;

const HEADER: [&str; 5] = ["TIME", "TYPE", "ID", "PID", "STATUS"];

/// Column widths before the last: an RFC 3339 time with nanoseconds is 30 characters and
/// `start-container` 15; longer ids and pids still get a two-space gap.
const WIDTHS: [usize; 4] = [32, 18, 26, 10];

/// An event as ctr prints it: the wire type with its time readable.
#[derive(Debug, Serialize)]
struct EventView<'a> {
    /// RFC 3339, UTC, nanoseconds.
    time: String,
    #[serde(rename = "type")]
    kind: EventKind,
    namespace: &'a str,
    id: &'a str,
    process: &'a str,
    pid: u32,
    /// `null` unless the event is an exit.
    status: Option<i32>,
    /// On exits: the kernel's OOM killer killed a process of the container.
    oom_killed: bool,
}

impl<'a> From<&'a Event> for EventView<'a> {
    fn from(e: &'a Event) -> Self {
        EventView {
            time: output::rfc3339(e.time),
            kind: e.kind,
            namespace: &e.namespace,
            id: &e.id,
            process: &e.process,
            pid: e.pid,
            status: e.status,
            oom_killed: e.oom_killed,
        }
    }
}

/// Runs until ctrd closes the stream (success), the connection fails, or nobody reads stdout.
/// Each event is flushed as it is written, because the reader may be a pipe waiting for it.
pub fn stream(global: &Global, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let events = global.connect()?.subscribe(&global.namespace)?;
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

fn table_row(e: &Event) -> String {
    let status = match (e.status, e.oom_killed) {
        (Some(status), true) => format!("{status} (oom)"),
        (Some(status), false) => status.to_string(),
        (None, _) => "-".to_string(),
    };
    output::stream_row(
        &WIDTHS,
        &[
            &output::rfc3339(e.time),
            &e.kind.to_string(),
            &e.id,
            &e.pid.to_string(),
            &status,
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, status: Option<i32>) -> Event {
        Event {
            time: 1_700_000_000_123_456_789,
            kind,
            namespace: "default".into(),
            id: "web".into(),
            process: "init".into(),
            pid: 4242,
            status,
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
            "2023-11-14T22:13:20.123456789Z  start-container   web                       4242      -\n"
        );
        assert!(exit.ends_with("  exit              web                       4242      137\n"));
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
            "{\"time\":\"2023-11-14T22:13:20.123456789Z\",\"type\":\"exit\",\"namespace\":\"default\",\
             \"id\":\"web\",\"process\":\"init\",\"pid\":4242,\"status\":0,\"oom_killed\":false}\n"
        );
    }
}
