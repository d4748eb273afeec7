//! The OCI process spec of an exec process: the bundle's own `process` section (capabilities,
//! rlimits, `noNewPrivileges` and the rest carry over) with what the exec asks for on top.

use serde_json::{Map, Value};

use crate::RuntimeError;

/// What an exec asks for; `None` fields keep the bundle's value.
#[derive(Debug, Clone, Default)]
pub struct ExecProcess {
    pub args: Vec<String>,
    /// `KEY=VALUE` entries that replace the bundle's entry with that key, or are appended.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub terminal: bool,
}

/// The args of the bundle's process, for listings.
pub fn bundle_args(config: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(config)
        .ok()
        .and_then(|c| serde_json::from_value(c["process"]["args"].clone()).ok())
        .unwrap_or_default()
}

/// Builds the process spec for `runc exec --process`.
///
/// `passwd` and `group` are the container's `/etc/passwd` and `/etc/group`, when it has them: a
/// uid or gid they do not list is refused, and a uid's primary group is the default gid.
pub fn exec_spec(
    id: &str,
    config: &[u8],
    exec: &ExecProcess,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Value, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidProcess {
        id: id.to_string(),
        reason,
    };
    let config: Value = serde_json::from_slice(config)
        .map_err(|e| invalid(format!("unreadable config.json: {e}")))?;
    let mut process = match config.get("process") {
        Some(Value::Object(p)) => p.clone(),
        _ => Map::new(),
    };
    process.insert("args".into(), exec.args.clone().into());
    process.insert("terminal".into(), exec.terminal.into());
    process.remove("consoleSize");
    let mut env: Vec<String> = process
        .get("env")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    for entry in &exec.env {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
        {
            Some(existing) => existing.clone_from(entry),
            None => env.push(entry.clone()),
        }
    }
    process.insert("env".into(), env.into());
    if let Some(cwd) = &exec.cwd {
        process.insert("cwd".into(), cwd.clone().into());
    }
    if !process.contains_key("cwd") {
        process.insert("cwd".into(), "/".into());
    }
    if exec.uid.is_some() || exec.gid.is_some() {
        let bundle_user = process.get("user").cloned().unwrap_or(Value::Null);
        let bundle_id = |key: &str| {
            bundle_user[key]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
        };
        let uid = exec.uid.or_else(|| bundle_id("uid")).unwrap_or(0);
        let listed_gid = match (exec.uid, passwd) {
            (Some(uid), Some(passwd)) => Some(
                primary_gid(passwd, uid)
                    .ok_or_else(|| invalid(format!("no user {uid} in its /etc/passwd")))?,
            ),
            _ => None,
        };
        let gid = match exec.gid {
            Some(gid) => {
                if group.is_some_and(|g| !lists_id(g, 2, gid)) {
                    return Err(invalid(format!("no group {gid} in its /etc/group")));
                }
                gid
            }
            None => listed_gid.or_else(|| bundle_id("gid")).unwrap_or(0),
        };
        // The bundle's supplementary groups belong to the bundle's user.
        let user = serde_json::json!({ "uid": uid, "gid": gid });
        process.insert("user".into(), user);
    }
    Ok(Value::Object(process))
}

/// The gid field of `uid`'s entry in an /etc/passwd (`name:x:uid:gid:...`).
fn primary_gid(passwd: &str, uid: u32) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.get(2)?.parse::<u32>().ok()? == uid {
            fields.get(3)?.parse().ok()
        } else {
            None
        }
    })
}

/// Whether a colon-separated file lists `id` in field `field` of some line.
fn lists_id(file: &str, field: usize, id: u32) -> bool {
    file.lines()
        .any(|line| line.split(':').nth(field).and_then(|f| f.parse().ok()) == Some(id))
}

/// Sorts `runc exec`'s failure into the two a shell reports by status, or leaves it as it is.
pub fn classify_exec_failure(id: &str, message: String) -> RuntimeError {
    // runc: `exec failed: unable to start container process: exec: "cmd": <reason>`.
    let reason = message
        .split_once("exec: \"")
        .and_then(|(_, rest)| rest.split_once("\": "))
        .map(|(_, reason)| reason.to_string());
    let id = id.to_string();
    match reason {
        Some(r) if r.contains("not found") || r.ends_with("no such file or directory") => {
            RuntimeError::CommandNotFound { id, message }
        }
        Some(r) if r.contains("permission denied") || r.contains("is a directory") => {
            RuntimeError::CommandNotExecutable { id, message }
        }
        _ => RuntimeError::Failed {
            op: "exec",
            id,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"ociVersion":"1.0.2","process":{"terminal":false,
        "user":{"uid":0,"gid":0,"additionalGids":[5]},"args":["sleep","1000"],
        "env":["PATH=/bin","TERM=xterm"],"cwd":"/","noNewPrivileges":true,
        "capabilities":{"bounding":["CAP_KILL"]}},"root":{"path":"rootfs"}}"#;
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nguest:x:1000:100::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:\n";

    fn spec(exec: &ExecProcess) -> Result<Value, RuntimeError> {
        exec_spec("c", CONFIG.as_bytes(), exec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn keeps_the_bundles_process_and_overrides_what_is_asked() {
        let exec = ExecProcess {
            args: vec!["sh".into(), "-c".into(), "env".into()],
            env: vec!["TERM=dumb".into(), "A=1".into()],
            cwd: Some("/tmp".into()),
            terminal: true,
            ..Default::default()
        };
        let p = spec(&exec).unwrap();
        assert_eq!(p["args"], serde_json::json!(["sh", "-c", "env"]));
        assert_eq!(
            p["env"],
            serde_json::json!(["PATH=/bin", "TERM=dumb", "A=1"])
        );
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["terminal"], true);
        assert_eq!(p["noNewPrivileges"], true);
        assert_eq!(p["capabilities"]["bounding"][0], "CAP_KILL");
        assert_eq!(p["user"]["additionalGids"][0], 5, "no user asked: kept");
    }

    #[test]
    fn a_uid_brings_its_primary_group_and_must_be_listed() {
        let exec = |uid, gid| ExecProcess {
            args: vec!["id".into()],
            uid,
            gid,
            ..Default::default()
        };
        let p = spec(&exec(Some(1000), None)).unwrap();
        assert_eq!(p["user"], serde_json::json!({"uid": 1000, "gid": 100}));
        let p = spec(&exec(Some(1000), Some(0))).unwrap();
        assert_eq!(p["user"], serde_json::json!({"uid": 1000, "gid": 0}));
        let err = spec(&exec(Some(4242), None)).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid process for container c: no user 4242 in its /etc/passwd"
        );
        let err = spec(&exec(None, Some(77))).unwrap_err().to_string();
        assert!(err.ends_with("no group 77 in its /etc/group"), "{err}");
        // Without an /etc/passwd nothing can be checked: the ids are taken as given.
        let p = exec_spec("c", CONFIG.as_bytes(), &exec(Some(4242), None), None, None).unwrap();
        assert_eq!(p["user"], serde_json::json!({"uid": 4242, "gid": 0}));
    }

    #[test]
    fn runc_exec_failures_map_to_shell_statuses() {
        let failed = |reason: &str| {
            classify_exec_failure(
                "c",
                format!("exec failed: unable to start container process: exec: \"x\": {reason}"),
            )
        };
        for missing in [
            "executable file not found in $PATH",
            "stat /no/such: no such file or directory",
        ] {
            assert!(matches!(
                failed(missing),
                RuntimeError::CommandNotFound { .. }
            ));
        }
        assert!(matches!(
            failed("permission denied"),
            RuntimeError::CommandNotExecutable { .. }
        ));
        let other = classify_exec_failure(
            "c",
            "exec failed: unable to start container process: chdir to cwd (\"/x\") set in \
             config.json failed: no such file or directory"
                .into(),
        );
        assert!(matches!(other, RuntimeError::Failed { op: "exec", .. }));
    }

    #[test]
    fn bundle_args_are_read_for_listings() {
        assert_eq!(bundle_args(CONFIG.as_bytes()), ["sleep", "1000"]);
        assert!(bundle_args(b"not json").is_empty());
    }
}
