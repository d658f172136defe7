//! Exact ground truth from inside the workload: a thread samples the CPU
//! clock of every thread of this process (CLOCK_THREAD_CPUTIME_ID via
//! pthread_getcpuclockid). For a thread of one's own process the kernel brings
//! a running thread's clock up to date on its CPU (task_sched_runtime), so
//! unlike /proc/*/schedstat, which lags by up to a tick per running thread,
//! these values are exact at the instant of the read. Each sample also holds
//! the process's voluntary and involuntary context switches (getrusage,
//! summed by the kernel over all threads, exact) and the threads' summed
//! run-queue delay (/proc/self/task/*/schedstat, second field: the kernel
//! adds a wait when it ends, at switch-in, so it is exact at the read too).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// CPU clocks and thread ids of the threads that take part (registered by
/// each thread itself).
#[derive(Clone, Default)]
pub struct Clocks(Arc<Mutex<Vec<(libc::clockid_t, libc::pid_t)>>>);

impl Clocks {
    /// Registers the calling thread's CPU clock.
    pub fn register_self(&self) {
        let mut id: libc::clockid_t = 0;
        // SAFETY: our own thread handle and a valid out pointer.
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) } == 0 {
            // SAFETY: no arguments.
            let tid = unsafe { libc::gettid() };
            self.0.lock().expect("clock list").push((id, tid));
        }
    }

    fn sum_ns(&self) -> Option<u64> {
        let ids = self.0.lock().expect("clock list");
        let mut sum = 0;
        for &(id, _) in ids.iter() {
            sum += clock_ns(id)?;
        }
        Some(sum)
    }

    /// Σ run_delay of the threads (ns).
    fn run_delay_ns(&self) -> Option<u64> {
        let tids: Vec<libc::pid_t> = self.0.lock().expect("clock list").iter().map(|&(_, t)| t).collect();
        let mut sum = 0;
        for tid in tids {
            let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
            sum += text.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        }
        Some(sum)
    }
}

fn clock_ns(id: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer; an invalid (exited) clock returns an error.
    (unsafe { libc::clock_gettime(id, &mut ts) } == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// A running truth sampler.
pub struct Truth {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<[u64; 5]>>,
}

impl Truth {
    /// Samples the registered clocks every `period_us` until `end` or stop.
    /// The sampler registers itself, so its own CPU time is in the sum.
    pub fn start(clocks: Clocks, period_us: u64, end: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            // Real-time priority where allowed, so that busy threads do not
            // preempt a read half-way; a slow read is dropped anyway.
            let param = libc::sched_param { sched_priority: 10 };
            // SAFETY: setting this thread's own policy.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            clocks.register_self();
            let mut v = Vec::new();
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                let t0 = monotonic_ns();
                let Some(delay) = clocks.run_delay_ns() else { break };
                let Some(ns) = clocks.sum_ns() else { break };
                // SAFETY: getrusage into a zeroed struct.
                let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
                // SAFETY: getrusage into a struct of ours.
                unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
                let t1 = monotonic_ns();
                if t1 - t0 < 100_000 {
                    v.push([t0 + (t1 - t0) / 2, ns, ru.ru_nvcsw as u64, ru.ru_nivcsw as u64, delay]);
                }
                std::thread::sleep(std::time::Duration::from_micros(period_us));
            }
            v
        });
        Self { stop, handle }
    }

    /// Stops and writes "monotonic_ns cpu_ns nvcsw nivcsw run_delay_ns" lines to `path`.
    pub fn finish(self, path: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let v = self.handle.join().unwrap_or_default();
        let mut out = String::with_capacity(v.len() * 24);
        for [t, ns, vol, invol, delay] in v {
            out.push_str(&format!("{t} {ns} {vol} {invol} {delay}\n"));
        }
        if let Err(e) = std::fs::File::create(path).and_then(|mut f| f.write_all(out.as_bytes())) {
            eprintln!("messer-workload: writing {path}: {e}");
            std::process::exit(1);
        }
    }
}
