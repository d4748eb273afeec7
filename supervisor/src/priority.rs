//! CPU priority for the threads that answer clients and collect exits.
//!
//! When a host is busy starting containers, runc processes fill every core, and the threads that
//! make ctrd responsive (the socket server, the supervisor actor, the exit reader and forwarder)
//! wait for a time slice behind them. Those threads use little CPU, so giving them a lower nice
//! value costs the containers almost nothing and keeps a status request fast under load.
//!
//! Linux keeps a nice value per thread, and a new thread or process inherits its creator's. So
//! the boost is applied only to threads that never spawn anything: the worker threads, which
//! spawn runc and through it every container, keep the daemon's own priority.

use std::io;

/// Sets the calling thread's nice value; 0 means "leave it alone". Lowering it needs root or
/// CAP_SYS_NICE.
pub fn set_this_thread(nice: i32) -> io::Result<()> {
    if nice == 0 {
        return Ok(());
    }
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    let result = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's nice value.
    fn this_thread() -> io::Result<i32> {
        // SAFETY: gettid and getpriority have no preconditions; errno is this thread's own,
        // cleared first because -1 is also a valid nice value.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t);
            match io::Error::last_os_error().raw_os_error() {
                Some(0) | None => Ok(nice),
                Some(_) => Err(io::Error::last_os_error()),
            }
        }
    }

    #[test]
    fn only_the_calling_thread_changes() {
        let before = this_thread().unwrap();
        let raised = std::thread::spawn(move || {
            // Raising a nice value needs no privilege.
            set_this_thread(before + 3).unwrap();
            this_thread().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(raised, before + 3);
        assert_eq!(this_thread().unwrap(), before);
    }
}
