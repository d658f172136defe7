//! `messer-workload starve --waits-ms 2,20,200 [--gap-ms G]`: run-queue waits
//! of known lengths. A `victim` thread spins on the last CPU, always
//! runnable; a `hog` thread on the same CPU, SCHED_FIFO, sleeps G ms (the
//! victim runs), then spins for each wait's length: the victim waits in the
//! run queue all that time. The victim reads CLOCK_MONOTONIC in its loop
//! and notes every gap of 200 µs or more (the time it did not run, as its
//! own clock saw it); the hog notes its spins. The JSON gets
//! `"gaps": [[end_ns, len_ns], ...]` (CLOCK_MONOTONIC), `"spins": [[start_ns,
//! end_ns], ...]` and `"pcount"`: the switch-ins (schedstat field 3) of each
//! of the three threads over its life, read as its last act.

use std::time::Duration;

use crate::truth::monotonic_ns;

/// A thread's switch-ins so far: field 3 of /proc/thread-self/schedstat.
fn pcount() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| fail("cannot read /proc/thread-self/schedstat (a kernel without CONFIG_SCHEDSTATS?)"))
}

fn fail(what: &str) -> ! {
    eprintln!("messer-workload starve: {what}");
    std::process::exit(1)
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET writes inside it.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        fail(&format!("cannot pin a thread to CPU {cpu}: {}", std::io::Error::last_os_error()));
    }
}

fn spin_ns(ns: u64) {
    let end = monotonic_ns() + ns;
    while monotonic_ns() < end {
        std::hint::spin_loop();
    }
}

/// Returns the JSON fragment with the gaps, spins and switch-ins.
pub fn starve(waits_ms: &[f64], gap_ms: f64) -> String {
    // SAFETY: no arguments.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let cpu = cpus - 1;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let victim = std::thread::Builder::new()
        .name("victim".into())
        .spawn(move || {
            pin(cpu);
            let mut gaps = Vec::new();
            let mut last = monotonic_ns();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let now = monotonic_ns();
                if now - last >= 200_000 {
                    gaps.push((now, now - last));
                }
                last = now;
            }
            (gaps, pcount())
        })
        .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
    let waits: Vec<u64> = waits_ms.iter().map(|ms| (ms * 1e6) as u64).collect();
    let gap = Duration::from_secs_f64(gap_ms / 1e3);
    let hog = std::thread::Builder::new()
        .name("hog".into())
        .spawn(move || {
            pin(cpu);
            let param = libc::sched_param { sched_priority: 10 };
            // SAFETY: valid parameter, this thread.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
                fail(&format!("SCHED_FIFO: {} (needs root)", std::io::Error::last_os_error()));
            }
            let mut spins = Vec::new();
            for w in waits {
                std::thread::sleep(gap);
                let start = monotonic_ns();
                spin_ns(w);
                spins.push((start, monotonic_ns()));
            }
            std::thread::sleep(gap);
            (spins, pcount())
        })
        .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
    let (spins, hog_pcount) = hog.join().unwrap_or_else(|_| fail("the hog panicked"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (gaps, victim_pcount) = victim.join().unwrap_or_else(|_| fail("the victim panicked"));
    let pairs = |v: &[(u64, u64)]| v.iter().map(|(a, b)| format!("[{a}, {b}]")).collect::<Vec<_>>().join(", ");
    format!(
        ", \"cpu\": {cpu}, \"gaps\": [{}], \"spins\": [{}], \"pcount\": {{\"victim\": {victim_pcount}, \"hog\": {hog_pcount}, \"main\": {}}}",
        pairs(&gaps),
        pairs(&spins),
        pcount()
    )
}
