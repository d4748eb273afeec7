//! Checkpointing one container, as a worker runs it: CRIU can take seconds, so never the actor.

use std::path::PathBuf;

use runtime::checkpoint::CheckpointSpec;
use runtime::{
    Bundle, CheckpointMeta, CheckpointName, CheckpointOptions, ContainerId, Namespace, Runc,
    RuntimeError,
};

/// A checkpoint as the supervisor hands it to a worker; names are validated, the bundle is not.
#[derive(Debug, Clone)]
pub struct CheckpointJob {
    pub namespace: Namespace,
    pub id: ContainerId,
    pub bundle: PathBuf,
    pub name: CheckpointName,
    pub options: CheckpointOptions,
    /// Stop the container once dumped.
    pub exit: bool,
    /// A pre-dump (memory only; the container keeps running).
    pub pre_dump: bool,
    /// A pre-dump in the same bundle to build on.
    pub parent: Option<CheckpointName>,
}

pub fn checkpoint_container(
    runc: &Runc,
    job: &CheckpointJob,
) -> Result<CheckpointMeta, RuntimeError> {
    let bundle = Bundle::open(&job.bundle)?;
    runc.checkpoint(&CheckpointSpec {
        namespace: &job.namespace,
        id: &job.id,
        bundle: &bundle,
        name: &job.name,
        options: job.options,
        exit: job.exit,
        pre_dump: job.pre_dump,
        parent: job.parent.as_ref(),
    })
}
