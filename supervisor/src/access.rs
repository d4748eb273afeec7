//! Who may talk to the daemon: root, and the members of the group given with `--group`.
//!
//! The socket's mode (0600, or 0660 with the group) is the first gate; each connection's peer
//! credentials (`SO_PEERCRED`) are the second, so a socket whose mode was loosened by hand still
//! admits no one else.

use std::fs;

use nix::unistd::{Gid, Group};
use tokio::net::UnixStream;

#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// Members of this group are admitted besides root.
    group: Option<Gid>,
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    #[error("cannot look up group {name:?}: {source}")]
    Lookup { name: String, source: nix::Error },
}

impl Access {
    pub fn new(group: Option<&str>) -> Result<Access, AccessError> {
        let group = match group {
            None => None,
            Some(name) => Some(
                Group::from_name(name)
                    .map_err(|source| AccessError::Lookup {
                        name: name.to_string(),
                        source,
                    })?
                    .ok_or_else(|| AccessError::NoSuchGroup(name.to_string()))?
                    .gid,
            ),
        };
        Ok(Access { group })
    }

    pub fn group(&self) -> Option<Gid> {
        self.group
    }

    /// Admits the peer of `stream`, or says why not.
    pub fn check(&self, stream: &UnixStream) -> Result<(), String> {
        let cred = stream
            .peer_cred()
            .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
        if cred.uid() == 0 {
            return Ok(());
        }
        let who = format!("uid {} (pid {:?})", cred.uid(), cred.pid());
        let Some(group) = self.group else {
            return Err(format!("{who} is not root"));
        };
        if cred.gid() == group.as_raw() {
            return Ok(());
        }
        let member = cred
            .pid()
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .is_some_and(|status| supplementary_groups(&status).contains(&group.as_raw()));
        if member {
            return Ok(());
        }
        Err(format!("{who} is not root and not in group {group}"))
    }
}

/// The `Groups:` line of a `/proc/<pid>/status` file.
fn supplementary_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_supplementary_groups_from_proc_status() {
        let status =
            "Name:\tctr\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 24 27 1000 \nVmRSS:\t1 kB\n";
        assert_eq!(supplementary_groups(status), [4, 24, 27, 1000]);
        assert!(supplementary_groups("Groups:\t\n").is_empty());
        assert!(supplementary_groups("").is_empty());
    }

    #[test]
    fn unknown_groups_are_an_error() {
        let err = Access::new(Some("no-such-group-ctrd")).unwrap_err();
        assert_eq!(err.to_string(), "no group named \"no-such-group-ctrd\"");
        assert!(Access::new(Some("root")).unwrap().group().is_some());
    }
}
