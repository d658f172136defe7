//! `messer-workload pools --seconds S`: named thread pools, as a server has
//! them, and threads that live about a millisecond: three `ingest-N`
//! threads busy 30 % of each 10 ms, one `compute-0` busy 80 %, and a
//! spawner that starts a `short-N` thread every 20 ms, each busy 1 ms.
//! Every thread reads its own CPU clock (CLOCK_THREAD_CPUTIME_ID) as its
//! last act; the JSON's `threads` lists tid, name and cpu_ns of each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::spin_until;

type Results = Arc<Mutex<Vec<(i32, String, u64)>>>;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Runs `work` on a thread named `name`; its CPU is noted when it ends.
fn named(name: String, results: &Results, work: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    let results = results.clone();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            work();
            // SAFETY: no arguments.
            let tid = unsafe { libc::gettid() };
            let cpu = thread_cpu_ns();
            results.lock().expect("results").push((tid, name, cpu));
        })
        .expect("spawn a thread")
}

fn duty(end: Instant, on: Duration, period: Duration) {
    while Instant::now() < end {
        let start = Instant::now();
        spin_until((start + on).min(end));
        if let Some(rest) = (start + period).checked_duration_since(Instant::now()) {
            std::thread::sleep(rest.min(end.saturating_duration_since(Instant::now())));
        }
    }
}

/// Returns the JSON fragment `, "threads": [...]`.
pub fn pools(seconds: f64) -> String {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let results: Results = Arc::default();
    let mut handles = Vec::new();
    for i in 0..3 {
        handles.push(named(format!("ingest-{i}"), &results, move || {
            duty(end, Duration::from_millis(3), Duration::from_millis(10));
        }));
    }
    handles.push(named("compute-0".into(), &results, move || {
        duty(end, Duration::from_millis(8), Duration::from_millis(10));
    }));
    let r = results.clone();
    handles.push(named("spawner".into(), &results, move || {
        let mut k = 0;
        while Instant::now() + Duration::from_millis(25) < end {
            let h = named(format!("short-{k}"), &r, || spin_until(Instant::now() + Duration::from_millis(1)));
            let _ = h.join();
            k += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    }));
    for h in handles {
        let _ = h.join();
    }
    let list = results.lock().expect("results");
    let items: Vec<String> = list
        .iter()
        .map(|(tid, name, cpu)| format!("{{\"tid\": {tid}, \"name\": \"{name}\", \"cpu_ns\": {cpu}}}"))
        .collect();
    format!(", \"threads\": [{}]", items.join(", "))
}
