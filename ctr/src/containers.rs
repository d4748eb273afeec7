//! `ctr containers`: list, start, delete, kill and state, and the one view of a container that
//! their table and JSON outputs share.

use std::collections::BTreeMap;
use std::env;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use protocol::{
    Container, DeleteRequest, Filter, KillProcessRequest, KillRequest, Limits, LostOutput, Process,
    StartExistingRequest, StartRequest, Status, WaitRequest,
};
use serde::Serialize;

use crate::error::Error;
use crate::output::{self, Format, Table};
use crate::{signal, DeleteArgs, Global, KillArgs, StartArgs, WaitArgs};

/// A container as ctr prints it: the wire type with its creation time readable.
#[derive(Debug, Serialize)]
struct ContainerView<'a> {
    id: &'a str,
    namespace: &'a str,
    bundle: &'a str,
    status: Status,
    /// `null` while the container is starting.
    pid: Option<u32>,
    /// RFC 3339, UTC, nanoseconds.
    created: String,
    labels: &'a BTreeMap<String, String>,
    stdout: &'a str,
    stderr: &'a str,
    /// The init first, then the exec processes by name.
    processes: &'a [Process],
    /// The limits in force (`state` only; `null` in lists and for a container not running).
    limits: Option<&'a Limits>,
    /// Output that could not be written to `stdout` or `stderr` (see [`LostOutput`]).
    lost_output: LostOutput,
    /// Once stopped: the init's exit status (`null` while it runs, or when it is unknown).
    exit_status: Option<i32>,
    /// Once stopped: when it exited, RFC 3339.
    exited: Option<String>,
    /// Once stopped: whether the kernel's OOM killer killed a process of it.
    oom_killed: bool,
}

impl<'a> From<&'a Container> for ContainerView<'a> {
    fn from(c: &'a Container) -> Self {
        ContainerView {
            id: &c.id,
            namespace: &c.namespace,
            bundle: &c.bundle,
            status: c.status,
            pid: c.pid,
            created: output::rfc3339(c.created),
            labels: &c.labels,
            stdout: &c.stdout,
            stderr: &c.stderr,
            processes: &c.processes,
            limits: c.limits.as_deref(),
            lost_output: c.lost_output,
            exit_status: c.exit.and_then(|e| e.status),
            exited: c.exit.map(|e| output::rfc3339(e.time)),
            oom_killed: c.exit.is_some_and(|e| e.oom_killed),
        }
    }
}

/// Filters are checked here too, so a mistake is reported before connecting.
pub fn list(
    global: &Global,
    filters: &[String],
    format: Format,
    out: &mut impl Write,
) -> Result<(), Error> {
    Filter::<Container>::parse(filters)?;
    let mut containers = global
        .connect()?
        .list_filtered(&global.namespace, filters.to_vec())?;
    containers.sort_by(|a, b| a.id.cmp(&b.id));
    match format {
        Format::Table => out.write_all(list_table(&containers).as_bytes())?,
        Format::Json => {
            let views: Vec<ContainerView> = containers.iter().map(ContainerView::from).collect();
            output::json_document(out, &views)?;
        }
    }
    Ok(())
}

/// The original ctr's columns: PATH is the bundle, PID1 the init process.
fn list_table(containers: &[Container]) -> String {
    let mut table = Table::with_header(&["ID", "PATH", "STATUS", "PID1"]);
    for c in containers {
        table.row([
            c.id.clone(),
            c.bundle.clone(),
            status_cell(c),
            pid_cell(c.pid),
        ]);
    }
    table.render()
}

/// Prints the id once the container runs, as `docker start` does, so a script can pipe it on;
/// with `--quiet`, nothing. Without a bundle, the container ctrd keeps starts again (or is
/// restored with `--checkpoint`).
pub fn start(global: &Global, args: &StartArgs, out: &mut impl Write) -> Result<(), Error> {
    if args.bundle.is_none() {
        let request = StartExistingRequest {
            namespace: global.namespace.clone(),
            id: args.id.clone(),
            checkpoint: args.checkpoint.clone(),
        };
        global.connect()?.start_existing(request)?;
    } else {
        global.connect()?.start(start_request(global, args)?)?;
    }
    if !args.quiet {
        writeln!(out, "{}", args.id)?;
    }
    Ok(())
}

pub fn start_request(global: &Global, args: &StartArgs) -> Result<StartRequest, Error> {
    let bundle = args.bundle.as_ref().ok_or(Error::NoBundle)?;
    let labels = parse_labels(&args.labels)?;
    // ctrd runs in another directory, so relative paths are resolved here. The cwd is read only
    // when a path needs it: a removed cwd must not break a command that names absolute paths.
    let needs_cwd = std::iter::once(bundle)
        .chain(&args.stdout)
        .chain(&args.stderr)
        .any(|path| path.is_relative());
    let cwd = if needs_cwd {
        env::current_dir().map_err(Error::Cwd)?
    } else {
        // Every path is absolute, so joining onto this base leaves them as they are.
        PathBuf::from("/")
    };
    let resolve = |path: &Path| path_string(absolute(&cwd, path));
    let request = StartRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        bundle: resolve(bundle)?,
        labels,
        stdout: args.stdout.as_deref().map(resolve).transpose()?,
        stderr: args.stderr.as_deref().map(resolve).transpose()?,
        checkpoint: args.checkpoint.clone(),
        stdin: None,
        terminal: None,
        remove: args.remove,
    };
    Ok(request)
}

/// Later labels win over earlier ones with the same key, as repeated flags usually do.
pub fn parse_labels(labels: &[String]) -> Result<BTreeMap<String, String>, Error> {
    labels
        .iter()
        .map(|label| match label.split_once('=') {
            None => Err(Error::Label(label.clone())),
            Some(("", _)) => Err(Error::EmptyLabelKey(label.clone())),
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
        })
        .collect()
}

/// Joins without touching the file system: symlinks stay as the user named them, and `.` and
/// doubled slashes are dropped only for readability (`..` is kept, since it may cross a symlink).
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    cwd.join(path).components().collect()
}

pub fn path_string(path: PathBuf) -> Result<String, Error> {
    path.into_os_string()
        .into_string()
        .map_err(|raw| Error::NonUtf8Path(raw.into()))
}

/// Deletes each container in turn; a failure is reported and the others are still deleted.
pub fn delete(global: &Global, args: &DeleteArgs) -> Result<(), Error> {
    let mut client = global.connect()?;
    let mut failed = 0;
    let mut last = None;
    for id in &args.ids {
        let request = DeleteRequest {
            namespace: global.namespace.clone(),
            id: id.clone(),
            force: args.force,
        };
        if let Err(e) = client.delete(request) {
            failed += 1;
            if args.ids.len() > 1 {
                eprintln!("ctr: {e}");
            }
            last = Some(e);
        }
    }
    match last {
        None => Ok(()),
        Some(e) if args.ids.len() == 1 => Err(e.into()),
        Some(_) => Err(Error::NotDeleted {
            failed,
            of: args.ids.len(),
        }),
    }
}

pub fn kill(global: &Global, args: &KillArgs) -> Result<(), Error> {
    let signal = signal::parse(&args.signal)?;
    if let Some(process) = &args.pid {
        let request = KillProcessRequest {
            namespace: global.namespace.clone(),
            id: args.id.clone(),
            process: process.clone(),
            signal,
        };
        global.connect()?.kill_process(request)?;
        return Ok(());
    }
    let request = KillRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        signal,
        all: args.all,
    };
    if let Some(note) = global.connect()?.kill_noting(request)? {
        eprintln!("ctr: {note}");
    }
    Ok(())
}

pub fn state(global: &Global, id: &str, format: Format, out: &mut impl Write) -> Result<(), Error> {
    let container = global.connect()?.state(&global.namespace, id)?;
    match format {
        Format::Table => out.write_all(state_table(&container).as_bytes())?,
        Format::Json => output::json_document(out, &ContainerView::from(&container))?,
    }
    Ok(())
}

/// Blocks until the process exits, then exits with its status (0 to 255: the exit code, or
/// 128 + the signal that killed it). Prints nothing, unless the status is unknown: that is an
/// error, never a made-up status.
pub fn wait(global: &Global, args: &WaitArgs) -> Result<ExitCode, Error> {
    let request = WaitRequest {
        namespace: global.namespace.clone(),
        id: args.id.clone(),
        process: args.process.clone(),
    };
    let exit = global.connect()?.wait(request)?;
    let status = exit.status.ok_or_else(|| Error::UnknownStatus {
        id: args.id.clone(),
        name: args.process.clone(),
    })?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(u8::MAX)))
}

/// One `KEY  VALUE` row per field; labels share one row as `k=v,k=v` (JSON has them exact).
fn state_table(c: &Container) -> String {
    let labels = if c.labels.is_empty() {
        "-".to_string()
    } else {
        c.labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut table = Table::default();
    table.row(["ID".to_string(), c.id.clone()]);
    table.row(["NAMESPACE".to_string(), c.namespace.clone()]);
    table.row(["PATH".to_string(), c.bundle.clone()]);
    table.row(["STATUS".to_string(), c.status.to_string()]);
    table.row(["PID1".to_string(), pid_cell(c.pid)]);
    if let Some(exit) = &c.exit {
        let status = exit.status.map_or("unknown".to_string(), |s| s.to_string());
        table.row(["EXIT STATUS".to_string(), status]);
        table.row(["EXITED".to_string(), output::rfc3339(exit.time)]);
        table.row(["OOM KILLED".to_string(), exit.oom_killed.to_string()]);
    }
    table.row(["CREATED".to_string(), output::rfc3339(c.created)]);
    table.row(["LABELS".to_string(), labels]);
    table.row(["STDOUT".to_string(), c.stdout.clone()]);
    table.row(["STDERR".to_string(), c.stderr.clone()]);
    let lost = &c.lost_output;
    table.row([
        "LOST OUTPUT".to_string(),
        format!("{} writes ({} bytes)", lost.writes, lost.bytes),
    ]);
    if let Some(limits) = &c.limits {
        limit_rows(&mut table, limits);
    }
    let mut processes = Table::with_header(&["NAME", "PID", "CMD"]);
    for p in &c.processes {
        processes.row([p.name.clone(), pid_cell(p.pid), p.args.join(" ")]);
    }
    format!("{}\n{}", table.render(), processes.render())
}

/// One row per limit, `unlimited` where none is set (a v2 host has no cpu shares, a v1 host no
/// cpu weight: each shows only its own).
fn limit_rows(table: &mut Table, l: &Limits) {
    let show = |value: Option<String>| value.unwrap_or_else(|| "unlimited".to_string());
    let rows = [
        ("MEMORY LIMIT", show(l.memory.map(|v| v.to_string()))),
        (
            "MEMORY+SWAP LIMIT",
            show(l.memory_swap.map(|v| v.to_string())),
        ),
        ("CPU QUOTA", show(l.cpu_quota.map(|v| v.to_string()))),
        ("CPU PERIOD", show(l.cpu_period.map(|v| v.to_string()))),
        ("CPUSET CPUS", show(l.cpuset_cpus.clone())),
        ("PIDS LIMIT", show(l.pids.map(|v| v.to_string()))),
    ];
    for (name, value) in rows {
        table.row([name.to_string(), value]);
    }
    let weights = [
        ("CPU SHARES", l.cpu_shares),
        ("CPU WEIGHT", l.cpu_weight),
        ("BLKIO WEIGHT", l.blkio_weight),
    ];
    for (name, value) in weights {
        if let Some(value) = value {
            table.row([name.to_string(), value.to_string()]);
        }
    }
}

/// A stopped container's status carries its exit status: `stopped (137)`.
fn status_cell(c: &Container) -> String {
    match c.exit {
        Some(exit) => {
            let status = exit.status.map_or("unknown".to_string(), |s| s.to_string());
            format!("{} ({status})", c.status)
        }
        None => c.status.to_string(),
    }
}

/// A starting container has no init process yet.
fn pid_cell(pid: Option<u32>) -> String {
    pid.map_or_else(|| "-".to_string(), |pid| pid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, pid: Option<u32>) -> Container {
        Container {
            namespace: "default".into(),
            id: id.into(),
            bundle: format!("/bundles/{id}"),
            status: if pid.is_some() {
                Status::Running
            } else {
                Status::Starting
            },
            pid,
            created: 1_700_000_000_123_456_789,
            labels: BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "1".into())]),
            stdout: "/var/log/out".into(),
            stderr: "/var/log/err".into(),
            processes: pid
                .map(|pid| Process {
                    name: "init".into(),
                    pid: Some(pid),
                    args: vec!["sleep".into(), "1000".into()],
                })
                .into_iter()
                .collect(),
            limits: None,
            lost_output: Default::default(),
            exit: None,
        }
    }

    #[test]
    fn labels_split_at_the_first_equals_sign() {
        let labels = parse_labels(&["a=1".into(), "b=x=y".into(), "c=".into(), "a=2".into()]);
        assert_eq!(
            labels.unwrap(),
            BTreeMap::from([
                ("a".into(), "2".into()),
                ("b".into(), "x=y".into()),
                ("c".into(), String::new()),
            ])
        );
    }

    #[test]
    fn labels_without_equals_or_key_are_rejected_by_name() {
        let err = parse_labels(&["ok=1".into(), "oops".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid label \"oops\": expected KEY=VALUE"
        );
        let err = parse_labels(&["=v".into()]).unwrap_err();
        assert_eq!(err.to_string(), "invalid label \"=v\": the key is empty");
    }

    #[test]
    fn relative_paths_join_the_cwd() {
        let cwd = Path::new("/home/me/work");
        assert_eq!(
            absolute(cwd, Path::new("bundle")),
            Path::new("/home/me/work/bundle")
        );
        assert_eq!(
            absolute(cwd, Path::new("./b//c/")),
            Path::new("/home/me/work/b/c")
        );
        assert_eq!(
            absolute(cwd, Path::new("../link/x")),
            Path::new("/home/me/work/../link/x")
        );
        assert_eq!(absolute(cwd, Path::new("/abs/b")), Path::new("/abs/b"));
    }

    #[test]
    fn list_table_shows_a_dash_for_a_starting_container() {
        let table = list_table(&[container("web", Some(42)), container("db", None)]);
        assert_eq!(
            table,
            "ID    PATH           STATUS     PID1\n\
             web   /bundles/web   running    42\n\
             db    /bundles/db    starting   -\n"
        );
    }

    #[test]
    fn state_table_has_one_row_per_field() {
        let table = state_table(&container("web", Some(42)));
        assert!(table.starts_with("ID            web\n"));
        assert!(table.contains("\nCREATED       2023-11-14T22:13:20.123456789Z\n"));
        assert!(table.contains("\nLABELS        app=web,tier=1\n"));
        assert!(table.contains("\nLOST OUTPUT   0 writes (0 bytes)\n"));
        assert!(table.ends_with("\n\nNAME   PID   CMD\ninit   42    sleep 1000\n"));
        assert!(!table.contains("LIMIT"));
        let mut limited = container("web", Some(42));
        limited.limits = Some(Box::new(Limits {
            memory: Some(64 << 20),
            pids: Some(20),
            cpu_shares: Some(1024),
            ..Limits::default()
        }));
        let table = state_table(&limited);
        assert!(
            table.contains("\nMEMORY LIMIT        67108864\n"),
            "{table}"
        );
        assert!(table.contains("\nPIDS LIMIT          20\n"), "{table}");
        assert!(
            table.contains("\nCPU QUOTA           unlimited\n"),
            "{table}"
        );
        assert!(table.contains("\nCPU SHARES          1024\n"), "{table}");
    }

    #[test]
    fn json_view_has_readable_times_and_null_pids() {
        let c = container("db", None);
        let json = serde_json::to_value(ContainerView::from(&c)).unwrap();
        assert_eq!(json["id"], "db");
        assert_eq!(json["bundle"], "/bundles/db");
        assert_eq!(json["status"], "starting");
        assert!(json["pid"].is_null());
        assert_eq!(json["created"], "2023-11-14T22:13:20.123456789Z");
        assert_eq!(json["labels"]["tier"], "1");
    }
}
