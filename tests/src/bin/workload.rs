//! Workloads with known behaviour for messer's tests and benchmarks. Each
//! prints its own ground truth (getrusage) as one JSON line on stdout at exit.
//!
//! `messer-workload busy --threads N --duty D --seconds S [--period-ms P]`:
//! N threads, each busy for D*P ms and asleep for (1-D)*P ms, for S seconds.

use std::time::{Duration, Instant};

fn usage() -> ! {
    eprintln!("usage: messer-workload busy --threads N --duty D --seconds S [--period-ms P]");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
        None => default.unwrap_or_else(|| usage()),
    }
}

fn spin_until(t: Instant) {
    let mut x = 0u64;
    while Instant::now() < t {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

fn busy(threads: usize, duty: f64, seconds: f64, period: Duration) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let on = period.mul_f64(duty.clamp(0.0, 1.0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                while Instant::now() < end {
                    let start = Instant::now();
                    spin_until((start + on).min(end));
                    let next = start + period;
                    let now = Instant::now();
                    if next > now && next < end {
                        std::thread::sleep(next - now);
                    } else if now < end && next >= end {
                        std::thread::sleep(end - now);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

fn rusage(who: i32) -> (f64, f64) {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("busy") => {
            let threads = arg(&args, "--threads", Some(1usize));
            let duty = arg(&args, "--duty", Some(1.0f64));
            let seconds = arg(&args, "--seconds", None::<f64>);
            let period = Duration::from_millis(arg(&args, "--period-ms", Some(100u64)));
            busy(threads, duty, seconds, period);
        }
        _ => usage(),
    }
    let (user, system) = rusage(libc::RUSAGE_SELF);
    let (cuser, csystem) = rusage(libc::RUSAGE_CHILDREN);
    println!(
        "{{\"user_s\": {user}, \"system_s\": {system}, \"children_user_s\": {cuser}, \"children_system_s\": {csystem}}}"
    );
}
