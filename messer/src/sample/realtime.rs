//! Running the sampler at real-time priority. A recorder that waits its turn
//! among a thousand busy threads misses its deadlines by tens of
//! milliseconds (measured: 43 ms p99 at 10 ms intervals with every core
//! busy) and takes seconds to start; at SCHED_FIFO it runs when due. Only
//! the sampling thread is raised (SCHED_RESET_ON_FORK: the writer thread and
//! launched commands run normally); the kernel's real-time throttling keeps
//! a runaway sampler from taking more than 95 % of a CPU.

/// The priority used: the lowest real-time one.
const PRIORITY: i32 = 1;

/// Raises the calling thread to SCHED_FIFO; returns whether it worked.
pub fn raise() -> bool {
    let param = libc::sched_param { sched_priority: PRIORITY };
    // SAFETY: setting this thread's own policy with a valid parameter.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) };
    if rc != 0 {
        log::debug!("sampling at normal priority: {}", std::io::Error::last_os_error());
    }
    rc == 0
}
