//! `User` of an image config or `--user`: `user[:group]`, each a name or a number, resolved as
//! containerd does through the image's own `/etc/passwd` and `/etc/group`.
//!
//! - a name must be in `/etc/passwd` (a group name in `/etc/group`), else it is an error;
//! - a number needs no entry: a uid without a group takes the primary group of its passwd entry,
//!   or 0 if it has none;
//! - the user's supplementary groups are those of `/etc/group` that list its name.

use std::path::Path;

use crate::confined;
use crate::SpecError;

/// The ids a process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// One line of `/etc/passwd`.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One line of `/etc/group`.
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` against the image at `rootfs`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<Ids, SpecError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(SpecError::BadUser(user.to_string()));
    }
    let passwd = read_passwd(rootfs)?;
    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => Some(passwd.iter().find(|e| e.name == user_part).ok_or_else(|| {
            SpecError::UnknownUser {
                user: user_part.to_string(),
            }
        })?),
    };
    let uid = match user_part.parse::<u32>() {
        Ok(uid) => uid,
        // Found above, or already returned.
        Err(_) => entry.map_or(0, |e| e.uid),
    };
    let groups = read_groups(rootfs)?;
    let gid = match group_part {
        None => entry.map_or(0, |e| e.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| SpecError::UnknownGroup {
                        group: g.to_string(),
                    })?
                    .gid
            }
        },
    };
    let additional_gids = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.gid != gid && g.members.contains(&e.name))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

fn read_passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, SpecError> {
    let text = read(rootfs, "/etc/passwd")?;
    Ok(records(&text)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect())
}

fn read_groups(rootfs: &Path) -> Result<Vec<GroupEntry>, SpecError> {
    let text = read(rootfs, "/etc/group")?;
    Ok(records(&text)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

/// A missing file is an empty one: numeric ids need none.
fn read(rootfs: &Path, path: &'static str) -> Result<String, SpecError> {
    confined::read(rootfs, path)
        .map(Option::unwrap_or_default)
        .map_err(|source| SpecError::Read { path, source })
}

/// The colon-separated fields of each line that is neither blank nor a comment.
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          # a comment\n\
                          app:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\nstaff:x:50:\n";

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/passwd"), PASSWD).unwrap();
        fs::write(dir.path().join("etc/group"), GROUP).unwrap();
        dir
    }

    fn ids(uid: u32, gid: u32, additional_gids: &[u32]) -> Ids {
        Ids {
            uid,
            gid,
            additional_gids: additional_gids.to_vec(),
        }
    }

    #[test]
    fn a_name_takes_its_passwd_ids_and_the_groups_listing_it() {
        let root = rootfs();
        assert_eq!(resolve(root.path(), "app").unwrap(), ids(1000, 1001, &[10]));
    }

    #[test]
    fn name_and_group_names_are_both_looked_up() {
        let root = rootfs();
        assert_eq!(
            resolve(root.path(), "app:staff").unwrap(),
            ids(1000, 50, &[10])
        );
    }

    #[test]
    fn numbers_need_no_entry() {
        let root = rootfs();
        assert_eq!(
            resolve(root.path(), "4242:4343").unwrap(),
            ids(4242, 4343, &[])
        );
        assert_eq!(resolve(root.path(), "4242").unwrap(), ids(4242, 0, &[]));
        // A known uid alone takes its primary group.
        assert_eq!(
            resolve(root.path(), "1000").unwrap(),
            ids(1000, 1001, &[10])
        );
    }

    #[test]
    fn an_unknown_user_or_group_is_a_clear_error() {
        let root = rootfs();
        let err = resolve(root.path(), "nobody").unwrap_err();
        assert!(matches!(err, SpecError::UnknownUser { ref user } if user == "nobody"));
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
        let err = resolve(root.path(), "app:nogroup").unwrap_err();
        assert!(matches!(err, SpecError::UnknownGroup { .. }), "{err}");
        assert!(matches!(
            resolve(root.path(), "app:").unwrap_err(),
            SpecError::BadUser(_)
        ));
    }

    #[test]
    fn without_passwd_only_numbers_resolve() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(resolve(root.path(), "7:8").unwrap(), ids(7, 8, &[]));
        assert!(matches!(
            resolve(root.path(), "app").unwrap_err(),
            SpecError::UnknownUser { .. }
        ));
    }

    #[test]
    fn a_passwd_symlinked_out_of_the_rootfs_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let host_passwd = outside.path().join("passwd");
        fs::write(&host_passwd, "evil:x:0:0::/:/bin/sh\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("etc")).unwrap();
        // Absolute, and relative climbing past the root: both stay inside.
        symlink(&host_passwd, root.path().join("etc/passwd")).unwrap();
        let depth = root.path().components().count() + 2;
        let climb = "../".repeat(depth) + host_passwd.strip_prefix("/").unwrap().to_str().unwrap();
        symlink(&climb, root.path().join("etc/group")).unwrap();
        assert!(matches!(
            resolve(root.path(), "evil").unwrap_err(),
            SpecError::UnknownUser { .. }
        ));
        assert!(matches!(
            resolve(root.path(), "0:evil").unwrap_err(),
            SpecError::UnknownGroup { .. }
        ));
    }

    #[test]
    fn a_symlink_inside_the_rootfs_is_followed_within_it() {
        let root = rootfs();
        fs::create_dir(root.path().join("data")).unwrap();
        fs::rename(
            root.path().join("etc/passwd"),
            root.path().join("data/passwd"),
        )
        .unwrap();
        symlink("/data/passwd", root.path().join("etc/passwd")).unwrap();
        assert_eq!(resolve(root.path(), "app").unwrap().uid, 1000);
    }
}
