//! The OOM notifier: one thread that watches every container's memory cgroup with epoll and
//! reports each kill by the kernel's OOM killer.
//!
//! cgroup v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`; the
//! kernel signals it when the cgroup runs out of memory (just before it kills) and again when
//! the cgroup is removed. cgroup v2: inotify on `memory.events`, whose `oom_kill` counter is
//! what is reported. Watches are added and removed by message (a channel plus an eventfd that
//! wakes the thread), so the supervisor actor never touches a cgroup file.
//!
//! Each report carries the container's OOM kill count as the notifier knows it; the actor
//! emits an `oom` event when that count grows. A kill the notifier never sees (the container
//! died before its watch was set up) is caught from the same counter when its init exits.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use runtime::Cgroup;

use crate::container::Key;

/// The epoll token of the wake-up eventfd; watches count up from 1.
const WAKE: u64 = 0;

enum Command {
    Watch { key: Key, cgroup: Cgroup },
    Unwatch { key: Key },
}

/// The handle the actor keeps; the thread it talks to runs for the life of the daemon.
pub struct OomNotifier {
    commands: Sender<Command>,
    wake: Arc<EventFd>,
}

impl OomNotifier {
    /// Starts the thread; `report(key, kills)` is called from it for every OOM kill seen.
    pub fn start(report: impl Fn(Key, u64) + Send + 'static) -> io::Result<OomNotifier> {
        let (commands, rx) = unbounded();
        let wake = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let thread_wake = wake.clone();
        std::thread::Builder::new()
            .name("oom-notifier".into())
            .spawn(move || {
                let mut watcher = Watcher {
                    epoll,
                    watches: HashMap::new(),
                    tokens: HashMap::new(),
                    next_token: WAKE + 1,
                    report,
                };
                watcher.run(&rx, &thread_wake);
            })?;
        Ok(OomNotifier { commands, wake })
    }

    pub fn watch(&self, key: Key, cgroup: Cgroup) {
        self.send(Command::Watch { key, cgroup });
    }

    pub fn unwatch(&self, key: Key) {
        self.send(Command::Unwatch { key });
    }

    fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            if let Err(e) = self.wake.write(1) {
                log::warn!("cannot wake the oom notifier: {e}");
            }
        }
    }
}

/// What wakes the thread for one container: an eventfd (v1) or an inotify instance (v2).
enum Source {
    V1 {
        event: EventFd,
        /// Kept open: the kernel's registration lives as long as this file.
        _control: File,
    },
    V2(Inotify),
}

impl Source {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Source::V1 { event, .. } => event.as_fd(),
            Source::V2(inotify) => inotify.as_fd(),
        }
    }
}

struct Watch {
    key: Key,
    cgroup: Cgroup,
    source: Source,
    /// OOM kills reported so far.
    kills: u64,
}

struct Watcher<F> {
    epoll: Epoll,
    watches: HashMap<u64, Watch>,
    tokens: HashMap<Key, u64>,
    next_token: u64,
    report: F,
}

impl<F: Fn(Key, u64)> Watcher<F> {
    fn run(&mut self, commands: &Receiver<Command>, wake: &EventFd) {
        let mut events = [EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::error!("oom notifier stops: epoll_wait: {e}");
                    return;
                }
            };
            for event in &events[..n] {
                if event.data() == WAKE {
                    let _ = wake.read();
                    loop {
                        match commands.try_recv() {
                            Ok(Command::Watch { key, cgroup }) => self.watch(key, cgroup),
                            Ok(Command::Unwatch { key }) => self.unwatch(&key),
                            Err(crossbeam_channel::TryRecvError::Empty) => break,
                            Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                        }
                    }
                } else {
                    self.fired(event.data());
                }
            }
        }
    }

    fn watch(&mut self, key: Key, cgroup: Cgroup) {
        self.unwatch(&key);
        let source = match register(&cgroup) {
            Ok(source) => source,
            Err(e) => {
                log::warn!("cannot watch {}/{} for oom kills: {e}", key.0, key.1);
                return;
            }
        };
        let token = self.next_token;
        self.next_token += 1;
        let event = EpollEvent::new(EpollFlags::EPOLLIN, token);
        if let Err(e) = self.epoll.add(source.fd(), event) {
            log::warn!("cannot watch {}/{} for oom kills: {e}", key.0, key.1);
            return;
        }
        // A kill before the watch was set up shows in the counter already.
        let kills = cgroup.oom_kills().unwrap_or(0);
        if kills > 0 {
            (self.report)(key.clone(), kills);
        }
        log::debug!("watching {}/{} for oom kills", key.0, key.1);
        self.tokens.insert(key.clone(), token);
        self.watches.insert(
            token,
            Watch {
                key,
                cgroup,
                source,
                kills,
            },
        );
    }

    fn unwatch(&mut self, key: &Key) {
        let Some(token) = self.tokens.remove(key) else {
            return;
        };
        if let Some(watch) = self.watches.remove(&token) {
            let _ = self.epoll.delete(watch.source.fd());
        }
    }

    fn fired(&mut self, token: u64) {
        let Some(watch) = self.watches.get_mut(&token) else {
            return;
        };
        let counted = watch.cgroup.oom_kills();
        let kills = match (&watch.source, counted) {
            // The cgroup is gone (its removal signals the eventfd too): nothing more to watch.
            (_, Err(_)) => {
                let key = watch.key.clone();
                self.unwatch(&key);
                return;
            }
            // v1 signals before the kill is counted, so one signal is one kill at least.
            (Source::V1 { event, .. }, Ok(counted)) => {
                let _ = event.read();
                counted.max(watch.kills + 1)
            }
            (Source::V2(inotify), Ok(counted)) => {
                let _ = inotify.read_events();
                counted
            }
        };
        if kills > watch.kills {
            watch.kills = kills;
            (self.report)(watch.key.clone(), kills);
        }
    }
}

fn register(cgroup: &Cgroup) -> io::Result<Source> {
    match cgroup {
        Cgroup::V1(paths) => {
            let dir = paths
                .dir("memory")
                .ok_or_else(|| io::Error::other("not in a memory cgroup"))?;
            let control = File::open(dir.join("memory.oom_control"))?;
            let event = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
            let line = format!("{} {}", event.as_raw_fd(), control.as_raw_fd());
            fs::write(dir.join("cgroup.event_control"), line)?;
            Ok(Source::V1 {
                event,
                _control: control,
            })
        }
        Cgroup::V2(dir) => {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
            inotify.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
            Ok(Source::V2(inotify))
        }
    }
}
