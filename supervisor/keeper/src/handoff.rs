//! What a keeper hands down: to the keeper it re-executes (an upgrade), the listening socket, by
//! number in the environment, and the output pipes it holds, by number in a file in the state
//! dir; to its daemon, the listening socket and its end of the socketpair, by number in the
//! environment. They stay open across `execve` because their close-on-exec flag is cleared just
//! before it, and [`inherited_fd`] sets it again on the other side.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::wire::LISTEN_FD_ENV;

/// Where a keeper that re-executes itself leaves the numbers of the output descriptors it holds.
pub const OUTPUTS_FILE: &str = "keeper-outputs";

/// A descriptor number in the environment that names no descriptor this process may own.
#[derive(Debug, thiserror::Error)]
#[error("{variable} is {value:?}, not an open descriptor above stdio")]
pub struct BadInheritedFd {
    variable: &'static str,
    value: String,
}

/// Takes the descriptor whose number the environment variable holds, if it is set, and removes
/// the variable, so that no child of this process inherits it (or the descriptor: it is made
/// close-on-exec again, which also checks that it is open).
pub fn inherited_fd(variable: &'static str) -> Result<Option<OwnedFd>, BadInheritedFd> {
    let Some(value) = std::env::var_os(variable) else {
        return Ok(None);
    };
    std::env::remove_var(variable);
    let value = value.to_string_lossy().into_owned();
    let fd = value
        .parse::<RawFd>()
        .ok()
        .filter(|&fd| fd > 2 && set_cloexec(&[fd], true).is_ok());
    let Some(fd) = fd else {
        return Err(BadInheritedFd { variable, value });
    };
    // SAFETY: the process that exec'd this one left the descriptor open for it to own, and
    // nothing else here knows its number.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

pub fn set_cloexec(fds: &[RawFd], on: bool) -> io::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    for &fd in fds {
        fcntl(fd, FcntlArg::F_SETFD(flags))?;
    }
    Ok(())
}

/// `execve`s `exe` with this process's argv and environment, plus the listener's number.
/// Returns only on failure.
pub fn exec(exe: &Path, listener: RawFd) -> io::Result<std::convert::Infallible> {
    let cstring = |s: OsString| CString::new(s.into_vec()).map_err(io::Error::other);
    let path = cstring(exe.as_os_str().to_owned())?;
    let argv = std::env::args_os()
        .map(cstring)
        .collect::<io::Result<Vec<_>>>()?;
    let mut env = std::env::vars_os()
        .filter(|(key, _)| key != LISTEN_FD_ENV)
        .map(|(key, value)| {
            let mut pair = key;
            pair.push("=");
            pair.push(value);
            cstring(pair)
        })
        .collect::<io::Result<Vec<_>>>()?;
    env.push(cstring(format!("{LISTEN_FD_ENV}={listener}").into())?);
    Ok(nix::unistd::execve(&path, &argv, &env)?)
}

/// The outputs hand-off file: one `<fd_out> <fd_err> <token>` line per kept output.
pub fn outputs_lines(outputs: &HashMap<String, [OwnedFd; 2]>) -> String {
    outputs
        .iter()
        .map(|(token, [out, err])| format!("{} {} {token}\n", out.as_raw_fd(), err.as_raw_fd()))
        .collect()
}

/// Reads and removes the outputs hand-off file a keeper left before it re-executed this one,
/// and takes over the descriptors it names.
pub fn take_outputs(path: &Path) -> HashMap<String, [OwnedFd; 2]> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            log::error!("cannot read {}: {e}", path.display());
            return HashMap::new();
        }
    };
    if let Err(e) = fs::remove_file(path) {
        log::warn!("cannot remove {}: {e}", path.display());
    }
    let outputs = parse_outputs(&text)
        .into_iter()
        .filter_map(|(token, fds)| {
            // Only a descriptor that is open here can be taken; CLOEXEC again, so no daemon
            // or container inherits it.
            match set_cloexec(&fds, true) {
                // SAFETY: the previous keeper held these descriptors and handed them to this
                // process image through exec; nothing else here owns them.
                Ok(()) => Some((token, fds.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))),
                Err(e) => {
                    log::error!("cannot take over the outputs of {token} ({fds:?}): {e}");
                    None
                }
            }
        })
        .collect();
    outputs
}

/// The hand-off file's lines; a malformed line is logged and skipped.
pub fn parse_outputs(text: &str) -> Vec<(String, [RawFd; 2])> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ' ');
            let mut fd = || fields.next()?.parse::<RawFd>().ok().filter(|&fd| fd > 2);
            let parsed = (fd(), fd(), fields.next().filter(|t| !t.is_empty()));
            match parsed {
                (Some(out), Some(err), Some(token)) if out != err => {
                    Some((token.to_string(), [out, err]))
                }
                _ => {
                    log::error!("keeper: ignoring a malformed outputs line {line:?}");
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_survive_the_hand_off_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTPUTS_FILE);
        let (out_read, out_write) = nix::unistd::pipe().unwrap();
        let (err_read, _err_write) = nix::unistd::pipe().unwrap();
        let token = "default/web/1700000000000000000".to_string();
        let outputs = HashMap::from([(token.clone(), [out_read, err_read])]);
        fs::write(&path, outputs_lines(&outputs)).unwrap();
        // What exec would do: the descriptors stay open under the same numbers.
        let raw: Vec<RawFd> = outputs
            .values()
            .flatten()
            .map(|fd| fd.as_raw_fd())
            .collect();
        std::mem::forget(outputs);

        let taken = take_outputs(&path);
        assert!(!path.exists());
        let [out, err] = &taken[&token];
        assert_eq!([out.as_raw_fd(), err.as_raw_fd()], raw[..]);
        let flags = fcntl(out.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        // Still the same pipe.
        nix::unistd::write(&out_write, b"x").unwrap();
        let mut byte = [0u8];
        nix::unistd::read(out.as_raw_fd(), &mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn malformed_outputs_lines_are_skipped() {
        let parsed = parse_outputs("7 8 a/b/1\nx 9 c\n10 11\n12 12 d\n1 13 e\n14 15 f g\n");
        assert_eq!(
            parsed,
            [("a/b/1".to_string(), [7, 8]), ("f g".to_string(), [14, 15])]
        );
    }

    #[test]
    fn an_inherited_descriptor_is_taken_once_and_closed_on_exec() {
        const VARIABLE: &str = "CTRD_TEST_INHERITED_FD";
        let (read, _write) = nix::unistd::pipe().unwrap();
        let number = read.as_raw_fd();
        // What exec would leave: the number in the environment, the descriptor open.
        std::mem::forget(read);
        std::env::set_var(VARIABLE, number.to_string());
        let taken = inherited_fd(VARIABLE).unwrap().unwrap();
        assert_eq!(taken.as_raw_fd(), number);
        let flags = fcntl(number, FcntlArg::F_GETFD).unwrap();
        assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        assert!(std::env::var_os(VARIABLE).is_none());
        assert!(inherited_fd(VARIABLE).unwrap().is_none());
        for bad in ["x", "1", "999999"] {
            std::env::set_var(VARIABLE, bad);
            let err = inherited_fd(VARIABLE).unwrap_err().to_string();
            assert!(err.contains(VARIABLE) && err.contains(bad), "{err}");
        }
    }
}
