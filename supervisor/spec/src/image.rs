//! The image config on top of the defaults, and `ctr run`'s options on top of both, in
//! containerd's order: Entrypoint + Cmd (Cmd replaced by a command given), Env (each variable
//! replacing the default of its name, then `--env` replacing the image's), WorkingDir, User
//! (resolved in the image's rootfs), StopSignal and Labels as annotations.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use oci_spec::image::{Config, ImageConfiguration};
use oci_spec::runtime::{LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, Spec};

use crate::{defaults, user, Network, RunOptions, SpecError};

/// The annotation holding the image's StopSignal, which a stop then sends first.
pub const STOP_SIGNAL_ANNOTATION: &str = "io.containerd.image.config.stop-signal";

/// The spec of container `id` in `namespace` run from the image of `config`, unpacked at
/// `rootfs` (read for `/etc/passwd` and `/etc/group` only, confined to it).
pub fn generate(
    config: &ImageConfiguration,
    rootfs: &Path,
    namespace: &str,
    id: &str,
    opts: &RunOptions,
) -> Result<Spec, SpecError> {
    let empty = Config::default();
    let image = config.config().as_ref().unwrap_or(&empty);
    let mut spec = defaults::spec(namespace, id)?;
    let mut process = spec.process().clone().unwrap_or_default();

    process.set_args(Some(args(image, opts)?));
    process.set_env(Some(env(image, opts)?));
    let cwd = opts
        .cwd
        .clone()
        .or_else(|| image.working_dir().clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(SpecError::RelativeCwd(cwd));
    }
    process.set_cwd(cwd.into());
    let who = opts
        .user
        .clone()
        .or_else(|| image.user().clone().filter(|u| !u.is_empty()));
    if let Some(who) = who {
        let ids = user::resolve(rootfs, &who)?;
        let mut user = process.user().clone();
        user.set_uid(ids.uid);
        user.set_gid(ids.gid);
        user.set_additional_gids((!ids.additional_gids.is_empty()).then_some(ids.additional_gids));
        process.set_user(user);
    }
    process.set_terminal(Some(opts.terminal));
    spec.set_process(Some(process));

    spec.set_annotations(Some(annotations(image, opts)));
    if let Some(hostname) = &opts.hostname {
        spec.set_hostname(Some(hostname.clone()));
    }
    if opts.read_only {
        if let Some(root) = spec.root().clone() {
            let mut root = root;
            root.set_readonly(Some(true));
            spec.set_root(Some(root));
        }
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    if opts.network == Network::Host {
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        linux.set_namespaces(Some(
            namespaces
                .into_iter()
                .filter(|n| n.typ() != LinuxNamespaceType::Network)
                .collect(),
        ));
    }
    let mut resources = linux.resources().clone().unwrap_or_default();
    if let Some(limit) = opts.memory_limit {
        resources.set_memory(Some(LinuxMemoryBuilder::default().limit(limit).build()?));
    }
    if let Some(limit) = opts.pids_limit {
        resources.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build()?));
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Entrypoint, then the command given or else Cmd.
fn args(image: &Config, opts: &RunOptions) -> Result<Vec<String>, SpecError> {
    let mut args = image.entrypoint().clone().unwrap_or_default();
    match &opts.command {
        Some(command) if !command.is_empty() => args.extend(command.iter().cloned()),
        _ => args.extend(image.cmd().clone().unwrap_or_default()),
    }
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(args)
}

/// The default `PATH`, the image's variables, then `--env`: a later variable replaces an earlier
/// one of the same name in its place.
fn env(image: &Config, opts: &RunOptions) -> Result<Vec<String>, SpecError> {
    let mut env: Vec<String> = vec![defaults::DEFAULT_PATH.to_string()];
    let layers = image.env().iter().flatten().chain(opts.env.iter());
    for var in layers {
        let Some((key, _)) = var.split_once('=') else {
            return Err(SpecError::BadEnv(var.clone()));
        };
        let prefix = format!("{key}=");
        match env.iter_mut().find(|v| v.starts_with(&prefix)) {
            Some(old) => *old = var.clone(),
            None => env.push(var.clone()),
        }
    }
    Ok(env)
}

/// The image's labels then `--label`, and its StopSignal.
fn annotations(image: &Config, opts: &RunOptions) -> HashMap<String, String> {
    let mut labels: BTreeMap<String, String> = image
        .labels()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.extend(opts.labels.clone());
    let mut annotations: HashMap<String, String> = labels.into_iter().collect();
    if let Some(signal) = image.stop_signal().clone().filter(|s| !s.is_empty()) {
        annotations.insert(STOP_SIGNAL_ANNOTATION.to_string(), signal);
    }
    annotations
}

#[cfg(test)]
mod tests {
    use std::fs;

    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};

    use super::*;

    fn image(config: Config) -> ImageConfiguration {
        ImageConfigurationBuilder::default()
            .config(config)
            .build()
            .unwrap()
    }

    fn app_image() -> ImageConfiguration {
        image(
            ConfigBuilder::default()
                .entrypoint(vec!["/bin/app".to_string()])
                .cmd(vec!["--serve".to_string()])
                .env(vec!["GREETING=hi".to_string(), "PATH=/app/bin".to_string()])
                .working_dir("/srv")
                .user("app")
                .stop_signal("SIGQUIT")
                .labels(HashMap::from([("tier".to_string(), "web".to_string())]))
                .build()
                .unwrap(),
        )
    }

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "app:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        dir
    }

    fn generated(opts: &RunOptions) -> Result<Spec, SpecError> {
        let root = rootfs();
        generate(&app_image(), root.path(), "ns", "web", opts)
    }

    fn process(spec: &Spec) -> &oci_spec::runtime::Process {
        spec.process().as_ref().unwrap()
    }

    #[test]
    fn entrypoint_then_cmd() {
        let spec = generated(&RunOptions::default()).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &["/bin/app", "--serve"]
        );
    }

    #[test]
    fn a_command_replaces_cmd_and_keeps_the_entrypoint() {
        let opts = RunOptions {
            command: Some(vec!["--check".to_string(), "x".to_string()]),
            ..RunOptions::default()
        };
        let spec = generated(&opts).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &["/bin/app", "--check", "x"]
        );
    }

    #[test]
    fn no_entrypoint_no_cmd_no_command_is_an_error() {
        let root = rootfs();
        let bare = image(Config::default());
        let err = generate(&bare, root.path(), "ns", "x", &RunOptions::default()).unwrap_err();
        assert!(matches!(err, SpecError::NoCommand));
    }

    #[test]
    fn env_layers_replace_by_name_in_place() {
        let opts = RunOptions {
            env: vec!["GREETING=hello".to_string(), "EXTRA=1".to_string()],
            ..RunOptions::default()
        };
        let spec = generated(&opts).unwrap();
        assert_eq!(
            process(&spec).env().as_ref().unwrap(),
            &["PATH=/app/bin", "GREETING=hello", "EXTRA=1"]
        );
        let bad = RunOptions {
            env: vec!["NOEQUALS".to_string()],
            ..RunOptions::default()
        };
        assert!(matches!(generated(&bad), Err(SpecError::BadEnv(_))));
    }

    #[test]
    fn an_image_without_env_gets_the_default_path() {
        let root = rootfs();
        let config = image(
            ConfigBuilder::default()
                .cmd(vec!["sh".to_string()])
                .build()
                .unwrap(),
        );
        let spec = generate(&config, root.path(), "ns", "x", &RunOptions::default()).unwrap();
        assert_eq!(
            process(&spec).env().as_ref().unwrap(),
            &[defaults::DEFAULT_PATH]
        );
        assert_eq!(process(&spec).cwd(), Path::new("/"));
        assert_eq!(process(&spec).user().uid(), 0);
    }

    #[test]
    fn working_dir_and_its_override_must_be_absolute() {
        let spec = generated(&RunOptions::default()).unwrap();
        assert_eq!(process(&spec).cwd(), Path::new("/srv"));
        let opts = RunOptions {
            cwd: Some("relative".to_string()),
            ..RunOptions::default()
        };
        assert!(matches!(generated(&opts), Err(SpecError::RelativeCwd(_))));
    }

    #[test]
    fn the_image_user_is_resolved_and_user_overrides_it() {
        let spec = generated(&RunOptions::default()).unwrap();
        let user = process(&spec).user();
        assert_eq!((user.uid(), user.gid()), (1000, 1000));
        let opts = RunOptions {
            user: Some("12:34".to_string()),
            ..RunOptions::default()
        };
        let spec = generated(&opts).unwrap();
        let user = process(&spec).user();
        assert_eq!((user.uid(), user.gid()), (12, 34));
        let unknown = RunOptions {
            user: Some("ghost".to_string()),
            ..RunOptions::default()
        };
        assert!(matches!(
            generated(&unknown),
            Err(SpecError::UnknownUser { .. })
        ));
    }

    #[test]
    fn stop_signal_and_labels_are_annotations() {
        let opts = RunOptions {
            labels: BTreeMap::from([
                ("tier".to_string(), "db".to_string()),
                ("team".to_string(), "a".to_string()),
            ]),
            ..RunOptions::default()
        };
        let spec = generated(&opts).unwrap();
        let annotations = spec.annotations().as_ref().unwrap();
        assert_eq!(annotations[STOP_SIGNAL_ANNOTATION], "SIGQUIT");
        assert_eq!(annotations["tier"], "db");
        assert_eq!(annotations["team"], "a");
    }

    #[test]
    fn overrides_of_the_sandbox() {
        let opts = RunOptions {
            hostname: Some("box".to_string()),
            read_only: true,
            network: Network::Host,
            memory_limit: Some(64 << 20),
            pids_limit: Some(32),
            ..RunOptions::default()
        };
        let spec = generated(&opts).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("box"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let linux = spec.linux().as_ref().unwrap();
        let namespaces = linux.namespaces().as_ref().unwrap();
        assert!(namespaces
            .iter()
            .all(|n| n.typ() != LinuxNamespaceType::Network));
        assert_eq!(namespaces.len(), defaults::NAMESPACES.len() - 1);
        let resources = linux.resources().as_ref().unwrap();
        assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(resources.pids().as_ref().unwrap().limit(), 32);
        // The default keeps its own network namespace.
        let spec = generated(&RunOptions::default()).unwrap();
        let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
    }
}
