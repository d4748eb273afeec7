//! One bundle per container, copied from the bundle the user names: its own `config.json`
//! whose `root.path` points at the original rootfs, which every container shares read-only.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::BenchError;

/// Writes `<dir>/<id>/config.json` for each id and returns the bundle directories in id order.
pub fn prepare(source: &Path, dir: &Path, ids: &[String]) -> Result<Vec<PathBuf>, BenchError> {
    let source = fs::canonicalize(source).map_err(|e| BenchError::io("cannot open", source, e))?;
    let config_path = source.join("config.json");
    let text = fs::read_to_string(&config_path)
        .map_err(|e| BenchError::io("cannot read", &config_path, e))?;
    let mut config: Value = serde_json::from_str(&text).map_err(|e| BenchError::Bundle {
        path: config_path.clone(),
        message: e.to_string(),
    })?;
    let root = config
        .pointer_mut("/root/path")
        .ok_or_else(|| BenchError::Bundle {
            path: config_path.clone(),
            message: "no root.path".into(),
        })?;
    let rootfs = source.join(root.as_str().unwrap_or_default());
    *root = Value::String(rootfs.to_string_lossy().into_owned());
    let config = serde_json::to_string(&config).map_err(|e| BenchError::Bundle {
        path: config_path,
        message: e.to_string(),
    })?;
    ids.iter()
        .map(|id| {
            let bundle = dir.join(id);
            fs::create_dir_all(&bundle).map_err(|e| BenchError::io("cannot create", &bundle, e))?;
            let path = bundle.join("config.json");
            fs::write(&path, &config).map_err(|e| BenchError::io("cannot write", &path, e))?;
            Ok(bundle)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_copy_points_at_the_shared_rootfs() {
        let source = tempfile::tempdir().unwrap();
        fs::create_dir(source.path().join("rootfs")).unwrap();
        fs::write(
            source.path().join("config.json"),
            r#"{"root":{"path":"rootfs","readonly":true},"process":{"args":["sleep","1"]}}"#,
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let ids = ["a".to_string(), "b".to_string()];
        let bundles = prepare(source.path(), out.path(), &ids).unwrap();
        assert_eq!(bundles, [out.path().join("a"), out.path().join("b")]);
        let config: Value =
            serde_json::from_str(&fs::read_to_string(bundles[1].join("config.json")).unwrap())
                .unwrap();
        let rootfs = fs::canonicalize(source.path()).unwrap().join("rootfs");
        assert_eq!(config["root"]["path"], rootfs.to_string_lossy().as_ref());
        assert_eq!(config["process"]["args"][0], "sleep");
    }

    #[test]
    fn a_missing_bundle_is_a_clear_error() {
        let out = tempfile::tempdir().unwrap();
        let err = prepare(Path::new("/no/such/bundle"), out.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("/no/such/bundle"), "{err}");
    }
}
