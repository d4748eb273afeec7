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

/// Now, on the clock of [`ProcStat::start_time`]: the kernel stamps a process with the boot
/// clock (`CLOCK_BOOTTIME`) when it forks and shows it in clock ticks, rounded down, as this
/// does. A process forked after this call has a start time at least what it returns.
pub fn ticks_since_boot() -> io::Result<u64> {
    // SAFETY: an all-zero timespec is a valid value of this plain C struct.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes one timespec into `now`, which outlives the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysconf takes an integer and touches no memory.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    let nanos = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
    Ok(nanos / (1_000_000_000 / per_second))
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

    #[test]
    fn a_process_forked_between_two_readings_of_the_clock_started_between_them() {
        let before = ticks_since_boot().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let after = ticks_since_boot().unwrap();
        let started = start_time(child.id());
        child.kill().unwrap();
        child.wait().unwrap();
        let started = started.unwrap();
        assert!(
            (before..=after).contains(&started),
            "{before} <= {started} <= {after}"
        );
    }

    fn parent_pid() -> u32 {
        // SAFETY: getppid has no preconditions.
        unsafe { libc::getppid() as u32 }
    }
}
