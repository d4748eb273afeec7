use std::io;

/// Why no spec could be made; each names what the user can change.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("the image has no Entrypoint or Cmd; give a command after the container id")]
    NoCommand,
    #[error("working directory {0:?} is not an absolute path")]
    RelativeCwd(String),
    #[error("environment variable {0:?} is not KEY=VALUE")]
    BadEnv(String),
    #[error("user {user:?} not found in the image's /etc/passwd")]
    UnknownUser { user: String },
    #[error("group {group:?} not found in the image's /etc/group")]
    UnknownGroup { group: String },
    #[error("user {0:?} is not USER[:GROUP]")]
    BadUser(String),
    #[error("cannot read the image's {path}: {source}")]
    Read {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("building the spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}
