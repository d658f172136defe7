//! Short-lived child processes: `forkstorm --children N --child-ms M
//! [--parallel P]` forks N children, at most P alive at once, each spinning
//! M ms of its own CPU time and exiting. The parent's getrusage(CHILDREN)
//! afterwards is the exact truth of what they used.

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn child(cpu_ns: u64) -> ! {
    let start = thread_cpu_ns();
    let mut x = 0u64;
    while thread_cpu_ns() - start < cpu_ns {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    // SAFETY: leave the forked child without running the parent's exit handlers.
    unsafe { libc::_exit(0) }
}

fn reap_one() {
    let mut status = 0;
    // SAFETY: waiting for any child of ours.
    unsafe { libc::wait(&mut status) };
}

pub fn forkstorm(children: usize, child_ms: f64, parallel: usize) {
    let cpu_ns = (child_ms * 1e6) as u64;
    let mut alive = 0;
    for _ in 0..children {
        if alive >= parallel.max(1) {
            reap_one();
            alive -= 1;
        }
        // SAFETY: this mode runs single-threaded, so fork is safe.
        match unsafe { libc::fork() } {
            0 => child(cpu_ns),
            -1 => {
                eprintln!("messer-workload: fork: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            _ => alive += 1,
        }
    }
    while alive > 0 {
        reap_one();
        alive -= 1;
    }
}

/// `n` children that sleep `seconds`, then exit; the parent sleeps as long
/// and waits for all.
pub fn sleepers(n: usize, seconds: f64) {
    for _ in 0..n {
        // SAFETY: this mode runs single-threaded, so fork is safe.
        match unsafe { libc::fork() } {
            0 => {
                std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
                // SAFETY: leave the child without the parent's exit handlers.
                unsafe { libc::_exit(0) }
            }
            -1 => {
                eprintln!("messer-workload: fork: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            _ => {}
        }
    }
    // The parent lives as long as its children (also when there are none).
    std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
    for _ in 0..n {
        reap_one();
    }
}
