//! Reading the journal back for a subscriber that asked for events `--since` some point.

use std::io;
use std::ops::ControlFlow;
use std::path::PathBuf;

use protocol::{Event, Since};

use super::{record, segments};

/// What a new subscriber replays from disk: every event up to `upto`, the last one written
/// when it was registered. Later events reach it live.
#[derive(Debug, Clone)]
pub struct Replay {
    dir: PathBuf,
    upto: u64,
}

impl Replay {
    pub(super) fn new(dir: PathBuf, upto: u64) -> Self {
        Replay { dir, upto }
    }

    /// The last sequence number the replay covers; live events come after it.
    pub fn upto(&self) -> u64 {
        self.upto
    }

    /// Hands `visit` every retained event after `since` and up to [`Replay::upto`], in order,
    /// until it breaks. Reads files: run it where blocking is allowed.
    pub fn run(
        &self,
        since: Since,
        mut visit: impl FnMut(Event) -> ControlFlow<()>,
    ) -> io::Result<()> {
        let after = match since {
            Since::Seq(seq) => seq,
            Since::Time(_) => 0,
        };
        let segments = segments::list(&self.dir)?;
        for (i, segment) in segments.iter().enumerate() {
            if segment.first_seq > self.upto {
                break;
            }
            // Every event of this segment precedes the next one's first.
            if segments
                .get(i + 1)
                .is_some_and(|next| next.first_seq <= after.saturating_add(1))
            {
                continue;
            }
            let mut done = false;
            let read = record::read_segment(&segment.path, |event, _| {
                if event.seq > self.upto {
                    done = true;
                    return ControlFlow::Break(());
                }
                let wanted = match since {
                    Since::Seq(seq) => event.seq > seq,
                    Since::Time(time) => event.time >= time,
                };
                if wanted && visit(event).is_break() {
                    done = true;
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            match read {
                Ok(end) => {
                    if let Some(why) = end.torn {
                        log::debug!("replay skips the rest of {}: {why}", segment.path.display());
                    }
                }
                // Removed by retention since it was listed: its events are no longer kept.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if done {
                break;
            }
        }
        Ok(())
    }
}
