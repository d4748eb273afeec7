pub mod link;
pub mod wire;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub struct KeeperSettings {
    pub state_dir: PathBuf,
    pub listener: OwnedFd,
    pub restart: RestartPolicy,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestartPolicy {
    OnFailure,
    Never,
}
pub fn run(_settings: KeeperSettings) -> std::process::ExitCode {
    todo!()
}
