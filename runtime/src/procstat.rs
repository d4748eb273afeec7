//! What `/proc/<pid>/stat` says of a process: enough to tell it from another that got its pid.
//!
//! A pid is recycled once its process is reaped; the pair (pid, start time) never is, within a
//! boot. So ctrd records the start time with every pid it keeps, and checks it before it adopts
//! a pid after a restart or matches an exit to a process.

use std::fs;
use std::io;

/// The fields of one `/proc/<pid>/stat` line that ctrd uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (a zombie: exited, not yet reaped), ...
    pub state: char,
    pub ppid: u32,
    /// Clock ticks after boot when the process started (field 22).
    pub start_time: u64,
}

impl ProcStat {
    /// Reads the process's stat line; `NotFound` when no process has the pid.
    pub fn of(pid: u32) -> io::Result<ProcStat> {
        let line = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        ProcStat::parse(&line).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("cannot parse /proc/{pid}/stat: {line:?}"),
            )
        })
    }

    /// Parses a stat line. The command name (field 2) is in parentheses and may itself hold
    /// spaces and parentheses, so the fields are counted from the last `)`.
    pub fn parse(line: &str) -> Option<ProcStat> {
        let rest = &line[line.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        // Field 3 is the first after the name; field 22 is the 20th from there.
        let state = fields.next()?.chars().next()?;
        let ppid = fields.next()?.parse().ok()?;
        let start_time = fields.nth(17)?.parse().ok()?;
        Some(ProcStat {
            state,
            ppid,
            start_time,
        })
    }
}

/// The process's start time, the identity ctrd keeps with its pid.
pub fn start_time(pid: u32) -> io::Result<u64> {
    ProcStat::of(pid).map(|stat| stat.start_time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_recorded_line() {
        let line = "4242 (sleep) S 4200 4242 4242 0 -1 4194560 110 0 0 0 0 0 0 0 20 0 1 0 \
                    98765432 1556480 128 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 \
                    0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                ppid: 4200,
                start_time: 98765432
            })
        );
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_is_skipped_whole() {
        let line = "7 (a (b) c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0 0";
        let stat = ProcStat::parse(line).unwrap();
        assert_eq!((stat.state, stat.ppid, stat.start_time), ('Z', 1, 555));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(ProcStat::parse(""), None);
        assert_eq!(ProcStat::parse("1 (x) S"), None);
        assert_eq!(ProcStat::parse("1 (x) S notanumber"), None);
    }

    #[test]
    fn reads_this_process() {
        let stat = ProcStat::of(std::process::id()).unwrap();
        assert_eq!(stat.ppid, parent_pid());
        assert_eq!(start_time(std::process::id()).unwrap(), stat.start_time);
    }

    fn parent_pid() -> u32 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() as u32 }
    }
}
