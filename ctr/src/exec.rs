//! `ctr containers exec`, and `start --attach`: run a process and, attached, be its stdio, pass
//! it the signals sent to ctr, and exit with its status, as `docker exec` does.

use std::process::ExitCode;

use protocol::{ExecRequest, ExecStdio, ResizeRequest, StartRequest};

use crate::attach::{self, Fifos};
use crate::error::Error;
use crate::proxy;
use crate::terminal::{self, RawMode};
use crate::{ExecArgs, Global};

/// The name of a container's main process.
pub const INIT: &str = "init";

pub fn exec(global: &Global, args: &ExecArgs) -> Result<ExitCode, Error> {
    let (id, name) = (args.id.clone(), args.pid.clone());
    let mut request = ExecRequest {
        namespace: global.namespace.clone(),
        id: id.clone(),
        process: name.clone(),
        args: args.command.clone(),
        env: args.env.clone(),
        cwd: args.cwd.clone(),
        uid: args.uid,
        gid: args.gid,
        stdio: None,
    };
    if !args.attach {
        if args.tty {
            return Err(Error::TtyNeedsAttach);
        }
        global.connect()?.exec(request)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Subscribed before the process exists, so its exit cannot be missed.
    let mut events = global.connect()?.subscribe(&global.namespace)?;
    let fifos = Fifos::create(!args.tty)?;
    let raw = args.tty.then(RawMode::enter).transpose()?;
    request.stdio = Some(ExecStdio {
        stdin: Some(fifos.stdin_path()),
        stdout: fifos.stdout_path(),
        stderr: fifos.stderr_path(),
        terminal: args.tty.then(terminal::size),
    });
    handle_signals(global, raw.as_ref(), &id, &name)?;
    let pid = global.connect()?.exec(request)?;
    let copies = fifos.connect()?;
    let status = attach::wait_exit(&mut events, &id, &name, pid)?;
    copies.finish();
    drop(raw);
    Ok(exit_code(status))
}

/// `start --attach`: the container's init gets the FIFOs as its stdio, or its terminal is
/// relayed to them.
pub fn start_attached(
    global: &Global,
    mut request: StartRequest,
    tty: bool,
) -> Result<ExitCode, Error> {
    let mut events = global.connect()?.subscribe(&global.namespace)?;
    let fifos = Fifos::create(!tty)?;
    let raw = tty.then(RawMode::enter).transpose()?;
    request.stdin = Some(fifos.stdin_path());
    request.stdout = Some(fifos.stdout_path());
    request.stderr = fifos.stderr_path();
    request.terminal = tty.then(terminal::size);
    let id = request.id.clone();
    handle_signals(global, raw.as_ref(), &id, INIT)?;
    let pid = global.connect()?.start(request)?;
    let copies = fifos.connect()?;
    let status = attach::wait_exit(&mut events, &id, INIT, pid)?;
    copies.finish();
    drop(raw);
    Ok(exit_code(status))
}

/// With a terminal, window size changes are forwarded and ending signals restore it; without,
/// ending signals are forwarded to the process.
pub fn handle_signals(
    global: &Global,
    raw: Option<&RawMode>,
    id: &str,
    name: &str,
) -> Result<(), Error> {
    let Some(raw) = raw else {
        return proxy::forward(global, id, name);
    };
    let (global, id, name) = (global.clone(), id.to_string(), name.to_string());
    raw.handle_signals(move |size| {
        let request = ResizeRequest {
            namespace: global.namespace.clone(),
            id: id.clone(),
            process: name.clone(),
            size,
        };
        // A resize that fails (the process just ended, say) changes nothing worth reporting.
        let _ = global.connect().and_then(|mut c| Ok(c.resize(request)?));
    })
}

/// A status is 0 to 255 (128 + a signal included); anything else reads as a failure.
pub fn exit_code(status: i32) -> ExitCode {
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
