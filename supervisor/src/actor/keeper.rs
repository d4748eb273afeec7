//! The actor's edge to the keeper: what it tells the keeper once an exit is dealt with, or a
//! container is gone, as a narrow trait the daemon's [`KeeperLink`] implements and a test fakes.

use crate::keeper_link::KeeperLink;

/// The keeper, as the actor speaks to it. Each call is a datagram on the link: it never blocks
/// on the keeper.
pub trait Keeper: Send + Sync {
    /// The exit the keeper numbered `seq` is journaled: the keeper may forget it.
    fn ack(&self, seq: u64);
    /// The container whose output pipes the keeper holds under `token` is gone.
    fn release(&self, token: String);
    /// The keeper's pid, for `ctr info`.
    fn pid(&self) -> u32;
}

impl Keeper for KeeperLink {
    fn ack(&self, seq: u64) {
        KeeperLink::ack(self, seq);
    }

    fn release(&self, token: String) {
        KeeperLink::release(self, token);
    }

    fn pid(&self) -> u32 {
        self.keeper_pid()
    }
}
