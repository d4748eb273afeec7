//! `ctr containers logs`: a container's log files, read by ctr itself (ctrd only says where they
//! are), its stdout log to ctr's stdout and its stderr log to ctr's stderr, as `docker logs` does.
//!
//! `--follow` keeps printing what is appended until the container's init exits (ctr learns that
//! from the event stream, subscribed before it asks, so the exit cannot be missed), then prints
//! the rest and ends. `--tail N` starts each log at its last N lines.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use protocol::EventKind;

use crate::error::Error;
use crate::{Global, LogsArgs};

/// How often a followed log is checked for new output.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(100);

pub fn logs(global: &Global, args: &LogsArgs) -> Result<(), Error> {
    let events = match args.follow {
        true => Some(global.connect()?.subscribe(&global.namespace)?),
        false => None,
    };
    let files = global.connect()?.logs(&global.namespace, &args.id)?;
    let mut stdout = Log::open(&args.id, &files.stdout, args.tail)?;
    let mut stderr = Log::open(&args.id, &files.stderr, args.tail)?;
    let (mut out, mut err) = (io::stdout().lock(), io::stderr().lock());
    stdout.copy_new(&mut out)?;
    stderr.copy_new(&mut err)?;
    let Some(events) = events.filter(|_| files.running) else {
        return Ok(());
    };
    let (exited, exit) = mpsc::channel();
    let id = args.id.clone();
    thread::Builder::new()
        .name("events".into())
        .spawn(move || {
            for event in events.flatten() {
                if event.kind == EventKind::Exit && event.id == id && event.process == "init" {
                    let _ = exited.send(());
                    return;
                }
            }
        })
        .map_err(Error::Output)?;
    loop {
        let done = !matches!(
            exit.recv_timeout(FOLLOW_INTERVAL),
            Err(RecvTimeoutError::Timeout)
        );
        // After the exit, one more pass takes everything the container wrote.
        stdout.copy_new(&mut out)?;
        stderr.copy_new(&mut err)?;
        if done {
            return Ok(());
        }
    }
}

/// One log file and how far it has been printed.
struct Log {
    path: PathBuf,
    file: File,
}

impl Log {
    fn open(id: &str, path: &str, tail: Option<usize>) -> Result<Log, Error> {
        let path = PathBuf::from(path);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoLogs(id.to_string()))
            }
            Err(e) => return Err(log_error(&path, e)),
        };
        let meta = file.metadata().map_err(|e| log_error(&path, e))?;
        if !meta.is_file() {
            return Err(Error::NotLogged {
                id: id.to_string(),
                path,
            });
        }
        if let Some(lines) = tail {
            let start =
                tail_start(&mut file, meta.len(), lines).map_err(|e| log_error(&path, e))?;
            file.seek(SeekFrom::Start(start))
                .map_err(|e| log_error(&path, e))?;
        }
        Ok(Log { path, file })
    }

    /// Prints what was appended since the last call.
    fn copy_new(&mut self, to: &mut impl Write) -> Result<(), Error> {
        let mut buf = Vec::new();
        self.file
            .read_to_end(&mut buf)
            .map_err(|e| log_error(&self.path, e))?;
        to.write_all(&buf)?;
        to.flush()?;
        Ok(())
    }
}

/// The offset where the last `lines` lines of a file of `len` bytes start; a newline that ends
/// the file ends its last line rather than starting an empty one.
fn tail_start(file: &mut (impl Read + Seek), len: u64, lines: usize) -> io::Result<u64> {
    if lines == 0 {
        return Ok(len);
    }
    let mut buf = [0u8; 8192];
    let mut end = len;
    let mut seen = 0;
    while end > 0 {
        let n = end.min(buf.len() as u64);
        let start = end - n;
        file.seek(SeekFrom::Start(start))?;
        let chunk = &mut buf[..n as usize];
        file.read_exact(chunk)?;
        for (i, byte) in chunk.iter().enumerate().rev() {
            let at = start + i as u64;
            if *byte == b'\n' && at + 1 != len {
                seen += 1;
                if seen == lines {
                    return Ok(at + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

fn log_error(path: &Path, source: io::Error) -> Error {
    Error::Log {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn tail(text: &str, lines: usize) -> String {
        let mut cursor = Cursor::new(text.as_bytes());
        let start = tail_start(&mut cursor, text.len() as u64, lines).unwrap();
        text[start as usize..].to_string()
    }

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a\nb\nc\n", 5), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", 0), "");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("\n\n", 1), "\n");
    }

    #[test]
    fn tail_crosses_chunk_boundaries() {
        let text: String = (0..5000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(tail(&text, 3), "line 4997\nline 4998\nline 4999\n");
        assert_eq!(tail(&text, 5000), text);
    }
}
