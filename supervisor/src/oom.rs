//! The OOM notifier: one thread that watches every container's memory cgroup with epoll and
//! reports each kill by the kernel's OOM killer.
//!
//! cgroup v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`; the
//! kernel signals it when the cgroup runs out of memory (just before it kills) and again when
//! the cgroup is removed. cgroup v2: an inotify watch on `memory.events`, whose `oom_kill`
//! counter is what is reported. Every v2 watch lives in one inotify instance: instances are
//! limited per user (`fs.inotify.max_user_instances`, 128 by default) while watches are counted
//! in the hundred thousands, so an instance per container stopped the reports past the 128th.
//! Watches are added and removed by message (a channel plus an eventfd that wakes the thread),
//! so the supervisor actor never touches a cgroup file.
//!
//! Each report carries the container's OOM kill count as the notifier knows it; the actor
//! emits an `oom` event when that count grows. A kill the notifier never sees (the container
//! died before its watch was set up) is caught from the same counter when its init exits.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use runtime::Cgroup;

use crate::container::Key;

/// The epoll token of the wake-up eventfd.
const WAKE: u64 = 0;
/// The epoll token of the one inotify instance every v2 watch shares.
const INOTIFY: u64 = 1;
/// Watches count up from here.
const FIRST_WATCH: u64 = 2;

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
                let mut watcher = Watcher::new(epoll, report);
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

/// What wakes the thread for one container: its own eventfd (v1) or its watch in the shared
/// inotify instance (v2).
enum Source {
    V1 {
        event: EventFd,
        /// Kept open: the kernel's registration lives as long as this file.
        _control: File,
    },
    V2(WatchDescriptor),
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
    /// Opened with the first v2 watch and kept for the life of the thread.
    inotify: Option<Inotify>,
    watches: HashMap<u64, Watch>,
    tokens: HashMap<Key, u64>,
    /// The watches behind each inotify watch descriptor: the kernel hands out one descriptor
    /// per file, so two containers given the same cgroup share it.
    descriptors: HashMap<WatchDescriptor, Vec<u64>>,
    next_token: u64,
    report: F,
}

impl<F: Fn(Key, u64)> Watcher<F> {
    fn new(epoll: Epoll, report: F) -> Self {
        Watcher {
            epoll,
            inotify: None,
            watches: HashMap::new(),
            tokens: HashMap::new(),
            descriptors: HashMap::new(),
            next_token: FIRST_WATCH,
            report,
        }
    }

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
                match event.data() {
                    WAKE => {
                        let _ = wake.read();
                        loop {
                            match commands.try_recv() {
                                Ok(Command::Watch { key, cgroup }) => self.watch(key, cgroup),
                                Ok(Command::Unwatch { key }) => self.unwatch(&key),
                                Err(crossbeam_channel::TryRecvError::Empty) => break,
                                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                            }
                        }
                    }
                    INOTIFY => self.inotify_fired(),
                    token => self.fired(token),
                }
            }
        }
    }

    fn watch(&mut self, key: Key, cgroup: Cgroup) {
        self.unwatch(&key);
        let token = self.next_token;
        self.next_token += 1;
        let source = match self.register(&cgroup, token) {
            Ok(source) => source,
            Err(e) => {
                log::warn!("cannot watch {}/{} for oom kills: {e}", key.0, key.1);
                return;
            }
        };
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

    /// Sets up what wakes the thread for `cgroup`, reporting as `token`.
    fn register(&mut self, cgroup: &Cgroup, token: u64) -> io::Result<Source> {
        match cgroup {
            Cgroup::V1(paths) => {
                let dir = paths
                    .dir("memory")
                    .ok_or_else(|| io::Error::other("not in a memory cgroup"))?;
                let control = File::open(dir.join("memory.oom_control"))?;
                let event = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
                let line = format!("{} {}", event.as_raw_fd(), control.as_raw_fd());
                fs::write(dir.join("cgroup.event_control"), line)?;
                self.epoll
                    .add(event.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))?;
                Ok(Source::V1 {
                    event,
                    _control: control,
                })
            }
            Cgroup::V2(dir) => {
                let inotify = self.inotify()?;
                let wd = inotify.add_watch(&dir.join("memory.events"), AddWatchFlags::IN_MODIFY)?;
                self.descriptors.entry(wd).or_default().push(token);
                Ok(Source::V2(wd))
            }
        }
    }

    /// The shared inotify instance, opened and added to epoll on first use (a v1 host never
    /// needs one).
    fn inotify(&mut self) -> io::Result<&Inotify> {
        if self.inotify.is_none() {
            let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
            self.epoll.add(
                inotify.as_fd(),
                EpollEvent::new(EpollFlags::EPOLLIN, INOTIFY),
            )?;
            self.inotify = Some(inotify);
        }
        Ok(self.inotify.as_ref().expect("opened above"))
    }

    fn unwatch(&mut self, key: &Key) {
        let Some(token) = self.tokens.remove(key) else {
            return;
        };
        let Some(watch) = self.watches.remove(&token) else {
            return;
        };
        match watch.source {
            Source::V1 { event, .. } => {
                let _ = self.epoll.delete(event.as_fd());
            }
            Source::V2(wd) => {
                let Some(tokens) = self.descriptors.get_mut(&wd) else {
                    return;
                };
                tokens.retain(|t| *t != token);
                if tokens.is_empty() {
                    self.descriptors.remove(&wd);
                    // Fails when the kernel dropped the watch already (the cgroup is gone).
                    if let Some(inotify) = &self.inotify {
                        let _ = inotify.rm_watch(wd);
                    }
                }
            }
        }
    }

    /// Drains the shared inotify instance and checks each watch it named once.
    fn inotify_fired(&mut self) {
        let Some(inotify) = &self.inotify else {
            return;
        };
        let mut fired = Vec::new();
        let mut overflowed = false;
        loop {
            match inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    for event in events {
                        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                            overflowed = true;
                        } else if let Some(tokens) = self.descriptors.get(&event.wd) {
                            fired.extend(tokens);
                        }
                    }
                }
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("oom notifier: reading inotify: {e}");
                    break;
                }
            }
        }
        // Events were lost: every v2 watch may have changed.
        if overflowed {
            fired = self.descriptors.values().flatten().copied().collect();
        }
        fired.sort_unstable();
        fired.dedup();
        for token in fired {
            self.fired(token);
        }
    }

    fn fired(&mut self, token: u64) {
        let Some(watch) = self.watches.get_mut(&token) else {
            return;
        };
        let counted = watch.cgroup.oom_kills();
        let kills = match (&watch.source, counted) {
            // The cgroup is gone (its removal signals the eventfd too, and drops the inotify
            // watch): nothing more to watch.
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
            (Source::V2(_), Ok(counted)) => counted,
        };
        if kills > watch.kills {
            watch.kills = kills;
            (self.report)(watch.key.clone(), kills);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use runtime::{ContainerId, Namespace};

    /// The tests count this process's inotify instances, so they run one at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    const DEADLINE: Duration = Duration::from_secs(10);

    fn key(id: &str) -> Key {
        (
            Namespace::new("oom").unwrap(),
            ContainerId::new(id).unwrap(),
        )
    }

    /// Writes a `memory.events` as the kernel lays it out, in place and in one write: the
    /// notifier holds a watch on the file, and a truncation would show it empty.
    fn write_events(dir: &Path, kills: u64) {
        assert!(kills < 10, "the content keeps its length");
        let content = format!("low 0\nhigh 0\nmax 3\noom 1\noom_kill {kills}\noom_group_kill 0\n");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("memory.events"))
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
    }

    /// A directory standing in for a container's v2 cgroup.
    fn fake_cgroup(root: &Path, name: &str, kills: u64) -> Cgroup {
        let dir = root.join(name);
        fs::create_dir(&dir).unwrap();
        write_events(&dir, kills);
        Cgroup::V2(dir)
    }

    fn inotify_instances() -> usize {
        fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|fd| {
                fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == "anon_inode:inotify")
            })
            .count()
    }

    fn start() -> (OomNotifier, Receiver<(Key, u64)>) {
        let (tx, rx) = unbounded();
        let notifier = OomNotifier::start(move |key, kills| {
            let _ = tx.send((key, kills));
        })
        .unwrap();
        (notifier, rx)
    }

    fn next(reports: &Receiver<(Key, u64)>) -> (Key, u64) {
        reports.recv_timeout(DEADLINE).expect("an oom report")
    }

    #[test]
    fn each_new_kill_in_memory_events_is_reported_once() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let root = tempfile::tempdir().unwrap();
        let (notifier, reports) = start();
        // A kill before the watch shows in the counter and is reported as the watch is set up.
        let a = fake_cgroup(root.path(), "a", 1);
        let b = fake_cgroup(root.path(), "b", 0);
        notifier.watch(key("a"), a.clone());
        notifier.watch(key("b"), b.clone());
        assert_eq!(next(&reports), (key("a"), 1));
        // Watches are set up in order: with a's report in, b's watch is in place and this
        // write is seen live.
        write_events(root.path().join("b").as_path(), 1);
        assert_eq!(next(&reports), (key("b"), 1));
        // A change that leaves the count alone (another field moved) reports nothing: the next
        // report is b's.
        write_events(root.path().join("a").as_path(), 1);
        write_events(root.path().join("b").as_path(), 2);
        assert_eq!(next(&reports), (key("b"), 2));
        // An unwatched container reports nothing more; the others carry on.
        notifier.unwatch(key("b"));
        write_events(root.path().join("b").as_path(), 3);
        write_events(root.path().join("a").as_path(), 2);
        assert_eq!(next(&reports), (key("a"), 2));
        // A removed cgroup drops its watch; one made again at the same path is watched anew.
        fs::remove_dir_all(root.path().join("a")).unwrap();
        let again = fake_cgroup(root.path(), "a", 0);
        notifier.watch(key("a2"), again);
        write_events(root.path().join("a").as_path(), 4);
        assert_eq!(next(&reports), (key("a2"), 4));
        assert!(reports.try_recv().is_err());
    }

    /// More containers than one user may have inotify instances (`max_user_instances`, 128 by
    /// default): every one of them still reports its kill, through one instance.
    #[test]
    fn one_inotify_instance_watches_more_containers_than_the_instance_limit() {
        let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let limit: usize = fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
            .ok()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(128);
        let containers = (limit + 16).clamp(200, 4096);
        let root = tempfile::tempdir().unwrap();
        let before = inotify_instances();
        let (notifier, reports) = start();
        let names: Vec<String> = (0..containers).map(|n| format!("c{n}")).collect();
        for name in &names {
            notifier.watch(key(name), fake_cgroup(root.path(), name, 0));
        }
        // Watches are set up in order: once this one reports, every other is in place.
        notifier.watch(key("last"), fake_cgroup(root.path(), "last", 1));
        let last = reports.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            panic!("the last of {containers} watches never reported the kill it counts")
        });
        assert_eq!(last, (key("last"), 1));
        assert_eq!(
            inotify_instances() - before,
            1,
            "inotify instances for {containers} containers"
        );

        for name in &names {
            write_events(&root.path().join(name), 1);
        }
        let mut unreported: HashSet<Key> = names.iter().map(|n| key(n)).collect();
        while !unreported.is_empty() {
            let Ok((key, kills)) = reports.recv_timeout(DEADLINE) else {
                panic!(
                    "{} of {containers} containers never reported their kill",
                    unreported.len()
                );
            };
            assert_eq!(kills, 1);
            assert!(unreported.remove(&key), "{key:?} reported twice");
        }
    }
}
