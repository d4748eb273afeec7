//! An OCI bundle: checked before runc or the daemon does anything with it.

use std::path::{Path, PathBuf};

use crate::RuntimeError;

/// An absolute path to a directory that holds a `config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle(PathBuf);

impl Bundle {
    pub fn open(path: impl AsRef<Path>) -> Result<Bundle, RuntimeError> {
        let path = path.as_ref();
        let invalid = |reason: &str| RuntimeError::InvalidBundle {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        if !path.is_absolute() {
            return Err(invalid("the path must be absolute"));
        }
        let meta = std::fs::metadata(path).map_err(|e| invalid(&e.to_string()))?;
        if !meta.is_dir() {
            return Err(invalid("not a directory"));
        }
        if !path.join("config.json").is_file() {
            return Err(invalid("no config.json in it"));
        }
        Ok(Bundle(path.to_path_buf()))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_absolute_directory_with_config() {
        let dir = tempfile::tempdir().unwrap();
        let msg = |p: &Path| Bundle::open(p).unwrap_err().to_string();
        assert!(msg(Path::new("relative/b")).contains("must be absolute"));
        assert!(msg(&dir.path().join("missing")).contains("No such file"));
        assert!(msg(dir.path()).contains("no config.json"));
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(msg(&dir.path().join("config.json")).contains("not a directory"));
        assert_eq!(Bundle::open(dir.path()).unwrap().path(), dir.path());
    }
}
