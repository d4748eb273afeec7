//! `--tty`: the local terminal in raw mode while attached, restored on every way out, and its
//! size changes forwarded to ctrd.
//!
//! Signals that end ctr (INT, TERM, HUP, QUIT) and SIGWINCH are blocked in every thread and taken
//! by one thread with `sigwait`: a window change becomes a resize request, an ending signal
//! restores the terminal before ctr exits with 128 + the signal. Every other way out drops the
//! [`RawMode`] guard, which restores it too.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::thread;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use protocol::WindowSize;

use crate::error::Error;
use crate::proxy::ENDING;

/// The size used when ctr's own stdio is not a terminal.
const DEFAULT_SIZE: WindowSize = WindowSize { rows: 24, cols: 80 };

/// The local terminal's settings before raw mode, put back when dropped.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    /// Puts stdin's terminal in raw mode, if stdin is a terminal.
    pub fn enter() -> Result<RawMode, Error> {
        let stdin = io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return Ok(RawMode { saved: None });
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .map_err(|e| Error::Terminal(e.into()))?;
        Ok(RawMode { saved: Some(saved) })
    }

    /// Blocks the ending signals and SIGWINCH here (and so in every thread started later), and
    /// handles them on a thread of their own: `resize` is called with each new size.
    pub fn handle_signals(
        &self,
        resize: impl Fn(WindowSize) + Send + 'static,
    ) -> Result<(), Error> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGWINCH);
        for signal in ENDING {
            set.add(signal);
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| Error::Terminal(e.into()))?;
        let saved = self.saved.clone();
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                match set.wait() {
                    Ok(Signal::SIGWINCH) => resize(size()),
                    Ok(signal) => {
                        restore(saved.as_ref());
                        std::process::exit(128 + signal as i32);
                    }
                    Err(_) => return,
                }
            })
            .map_err(Error::Output)?;
        Ok(())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore(self.saved.as_ref());
    }
}

fn restore(saved: Option<&Termios>) {
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, saved);
    }
}

/// The size of ctr's terminal: stdin's, else stdout's, else [`DEFAULT_SIZE`].
pub fn size() -> WindowSize {
    let (stdin, stdout) = (io::stdin(), io::stdout());
    let size = window_size(stdin.as_fd()).or_else(|| window_size(stdout.as_fd()));
    size.unwrap_or(DEFAULT_SIZE)
}

fn window_size(fd: BorrowedFd<'_>) -> Option<WindowSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which outlives the call.
    let ret = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::TIOCGWINSZ,
            &mut ws,
        )
    };
    (ret == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}
