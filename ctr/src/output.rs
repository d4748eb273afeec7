//! How ctr prints: the `--format` choice, aligned tables, RFC 3339 times and JSON documents.
//!
//! Everything renders to a `String` first and is written with one call, so the only write errors
//! are the caller's to report (a closed pipe among them).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::error::Error;

/// `--format`: tables for people, JSON for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Spaces after the widest cell of a column, as the original ctr's tabwriter had.
const PADDING: usize = 3;

/// Spaces between columns of a streamed table, whatever a cell's width.
const STREAM_GAP: usize = 2;

/// Rows whose column widths are known only once all are in, so it renders at the end.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn with_header(header: &[&str]) -> Self {
        let mut table = Table::default();
        table.row(header.iter().copied());
        table
    }

    pub fn row<I>(&mut self, cells: I)
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// Left-aligns every column to its widest cell plus [`PADDING`]; the last cell of a row gets
    /// no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = Vec::new();
        for row in &self.rows {
            for (column, cell) in row.iter().enumerate() {
                let width = cell.chars().count();
                match widths.get_mut(column) {
                    Some(max) => *max = (*max).max(width),
                    None => widths.push(width),
                }
            }
        }
        let mut text = String::new();
        for row in &self.rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            let padded: Vec<usize> = widths.iter().map(|w| w + PADDING).collect();
            push_row(&mut text, &padded, &cells, 0);
        }
        text
    }
}

/// Lays out one row of a streamed table, whose widths cannot be measured in advance: each cell
/// but the last is padded to its column's width, and a wider cell still gets [`STREAM_GAP`]
/// spaces after it.
pub fn stream_row(widths: &[usize], cells: &[&str]) -> String {
    let mut text = String::new();
    push_row(&mut text, widths, cells, STREAM_GAP);
    text
}

fn push_row(text: &mut String, widths: &[usize], cells: &[&str], min_gap: usize) {
    for (column, cell) in cells.iter().enumerate() {
        text.push_str(cell);
        if column + 1 < cells.len() {
            let used = cell.chars().count();
            let width = widths.get(column).copied().unwrap_or(0);
            let pad = width.saturating_sub(used).max(min_gap);
            text.push_str(&" ".repeat(pad));
        }
    }
    text.push('\n');
}

/// Formats a wire timestamp (nanoseconds since the Unix epoch) as RFC 3339 in UTC, always with
/// nine fractional digits so that streamed columns line up.
pub fn rfc3339(nanos: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(nanos)).to_string()
}

/// Bytes in binary units with one decimal, as containerd's ctr prints sizes: `512 B`, `3.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long ago a wire timestamp (nanoseconds since the Unix epoch) was, in its largest whole
/// unit: `40 seconds`, `3 hours`. A time in the future counts as now.
pub fn age(nanos: u64, now: SystemTime) -> String {
    let then = UNIX_EPOCH + Duration::from_nanos(nanos);
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    let (n, unit) = match secs {
        0 => return "less than a second".to_string(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 48 * 3600 => (s / 3600, "hour"),
        s => (s / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Labels as one cell: `k=v,k2=v2`, by key.
pub fn labels(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes one whole JSON document, for commands that answer once.
pub fn json_document<T: Serialize>(out: &mut impl Write, value: &T) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    out.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes one JSON object on its own line, for streams read line by line.
pub fn json_line<T: Serialize>(out: &mut impl Write, value: &T) -> Result<(), Error> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_each_column_to_its_widest_cell_plus_three() {
        let mut table = Table::with_header(&["ID", "PATH", "STATUS"]);
        table.row(["web", "/srv/bundles/web", "running"]);
        table.row(["database", "/b", "stopped"]);
        assert_eq!(
            table.render(),
            "ID         PATH               STATUS\n\
             web        /srv/bundles/web   running\n\
             database   /b                 stopped\n"
        );
    }

    #[test]
    fn table_measures_characters_not_bytes() {
        let mut table = Table::default();
        table.row(["é", "x"]);
        table.row(["ab", "y"]);
        assert_eq!(table.render(), "é    x\nab   y\n");
    }

    #[test]
    fn table_handles_ragged_and_empty_rows() {
        let mut table = Table::default();
        table.row(["KEY", "VALUE"]);
        table.row(["only"]);
        table.row(Vec::<String>::new());
        assert_eq!(table.render(), "KEY    VALUE\nonly\n\n");
        assert_eq!(Table::default().render(), "");
    }

    #[test]
    fn stream_row_keeps_a_gap_after_overlong_cells() {
        assert_eq!(stream_row(&[6, 4], &["a", "b", "c"]), "a     b   c\n");
        assert_eq!(
            stream_row(&[3, 4], &["abcdef", "b", "c"]),
            "abcdef  b   c\n"
        );
    }

    #[test]
    fn rfc3339_keeps_every_nanosecond() {
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(u64::MAX).len(), rfc3339(0).len());
    }

    #[test]
    fn sizes_and_ages_read_as_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(100 << 20), "100.0 MiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ago = |s: u64| age((1_000_000 - s) * 1_000_000_000, now);
        assert_eq!(ago(0), "less than a second");
        assert_eq!(ago(1), "1 second");
        assert_eq!(ago(59), "59 seconds");
        assert_eq!(ago(60 * 5), "5 minutes");
        assert_eq!(ago(3600 * 47), "47 hours");
        assert_eq!(ago(86400 * 3), "3 days");
        assert_eq!(age(2_000_000 * 1_000_000_000, now), "less than a second");
    }

    #[test]
    fn json_line_is_one_line() {
        let mut out = Vec::new();
        json_line(&mut out, &serde_json::json!({"a": [1, 2], "b": "x"})).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":[1,2],\"b\":\"x\"}\n"
        );
    }
}
