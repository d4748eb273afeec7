//! containerd's default spec for a Linux container (`oci.populateDefaultUnixSpec`): its own pid,
//! ipc, uts, mount and network namespaces; the default capability set; the kernel files a
//! container must not see or write masked or read-only; `/proc`, `/dev`, `/dev/pts`, `/dev/shm`,
//! `/dev/mqueue`, `/sys` and `/run` mounted; 1024 open files; no new privileges; every device
//! denied (runc then allows the standard ones: null, zero, tty, ...).

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder,
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, SpecBuilder,
    UserBuilder,
};

use crate::SpecError;

/// `PATH` of a process whose image sets none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a container may do as root inside: Docker's and containerd's set.
pub const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Kernel files that leak the host or let a container reach past its limits: hidden.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// Kernel settings a container may read but not change.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The namespaces a container gets of its own.
pub const NAMESPACES: [LinuxNamespaceType; 5] = [
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Network,
];

/// The cgroup of container `id` of `namespace`.
pub fn cgroups_path(namespace: &str, id: &str) -> PathBuf {
    PathBuf::from(format!("/ctrd/{namespace}/{id}"))
}

/// The default spec of container `id` in `namespace`: root `rootfs`, running `sh` as root in `/`
/// until the image says otherwise.
pub fn spec(namespace: &str, id: &str) -> Result<Spec, SpecError> {
    let caps: HashSet<Capability> = CAPABILITIES.into_iter().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(vec!["sh".to_string()])
        .env(vec![DEFAULT_PATH.to_string()])
        .cwd("/")
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()?])
        .no_new_privileges(true)
        .build()?;
    let namespaces = NAMESPACES
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()?;
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    let linux = LinuxBuilder::default()
        .cgroups_path(cgroups_path(namespace, id))
        .namespaces(namespaces)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(vec![deny_all])
                .build()?,
        )
        .masked_paths(MASKED_PATHS.map(String::from).to_vec())
        .readonly_paths(READONLY_PATHS.map(String::from).to_vec())
        .build()?;
    Ok(SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .process(process)
        .mounts(mounts()?)
        .linux(linux)
        .build()?)
}

fn mounts() -> Result<Vec<Mount>, SpecError> {
    let mount = |dst: &str, typ: &str, options: &[&str]| {
        MountBuilder::default()
            .destination(dst)
            .typ(typ)
            .source(typ)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
    };
    Ok(vec![
        mount("/proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount("/dev/mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        mount("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
        mount(
            "/run",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Spec {
        spec("ns", "web").unwrap()
    }

    #[test]
    fn own_namespaces_of_every_kind_but_user_and_cgroup() {
        let spec = default();
        let linux = spec.linux().as_ref().unwrap();
        let kinds: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| (n.typ(), n.path().clone()))
            .collect();
        assert_eq!(kinds, NAMESPACES.map(|t| (t, None)).to_vec());
    }

    #[test]
    fn the_default_capabilities_and_no_new_privileges() {
        let spec = default();
        let process = spec.process().as_ref().unwrap();
        let caps = process.capabilities().as_ref().unwrap();
        let expected: HashSet<_> = CAPABILITIES.into_iter().collect();
        assert_eq!(caps.bounding().as_ref(), Some(&expected));
        assert_eq!(caps.effective().as_ref(), Some(&expected));
        assert_eq!(caps.permitted().as_ref(), Some(&expected));
        assert!(!expected.contains(&Capability::SysAdmin));
        assert_eq!(process.no_new_privileges(), Some(true));
        let nofile = &process.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (nofile.typ(), nofile.hard(), nofile.soft()),
            (PosixRlimitType::RlimitNofile, 1024, 1024)
        );
    }

    #[test]
    fn kernel_files_are_masked_or_read_only() {
        let spec = default();
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().as_ref().unwrap();
        assert!(masked.iter().any(|p| p == "/proc/kcore"));
        assert_eq!(masked.len(), MASKED_PATHS.len());
        let ro = linux.readonly_paths().as_ref().unwrap();
        assert!(ro.iter().any(|p| p == "/proc/sys"));
    }

    #[test]
    fn the_standard_mounts() {
        let spec = default();
        let dsts: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().to_str().unwrap().to_string())
            .collect();
        assert_eq!(
            dsts,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/run"
            ]
        );
        let sys = &spec.mounts().as_ref().unwrap()[5];
        assert!(sys.options().as_ref().unwrap().iter().any(|o| o == "ro"));
    }

    #[test]
    fn the_cgroup_is_per_namespace_and_id() {
        let spec = default();
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(std::path::Path::new("/ctrd/ns/web"))
        );
        let devices = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!devices[0].allow());
    }

    #[test]
    fn it_serialises_as_a_runtime_spec() {
        let json = serde_json_of(&default());
        assert!(json.contains("\"noNewPrivileges\":true"), "{json}");
        assert!(json.contains("\"cgroupsPath\":\"/ctrd/ns/web\""), "{json}");
        assert!(json.contains("\"CAP_NET_BIND_SERVICE\""), "{json}");
    }

    fn serde_json_of(spec: &Spec) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        spec.save(&path).unwrap();
        std::fs::read_to_string(path)
            .unwrap()
            .replace([' ', '\n'], "")
    }
}
