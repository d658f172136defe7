//! Workloads with known behaviour for messer's tests and benchmarks. Each
//! prints its own ground truth (getrusage) as one JSON line on stdout at exit.
//!
//! `messer-workload busy --threads N --duty D --seconds S [--period-ms P]
//! [--truth FILE]`: N threads, each busy for D*P ms and asleep for (1-D)*P ms,
//! for S seconds. With --truth, the process's exact cumulative CPU time is
//! sampled every 1 ms ($MESSER_TRUTH_US) and written to FILE (see truth.rs).
//!
//! `messer-workload pingpong --pairs N --seconds S [--truth FILE]`: N pairs of
//! threads bouncing a byte through pipes (context-switch heavy).
//!
//! `messer-workload sleepers --processes N --seconds S`: N child processes
//! that sleep S seconds (a large tree).
//!
//! `messer-workload forkstorm --children N --child-ms M [--parallel P]`: short
//! child processes (see storm.rs). `messer-workload io --mib N [--chunk-kib
//! K] [--dir D]`: known read/write/send/recv traffic (see io.rs).
//!
//! `messer-workload restarts --count N --seconds S [--threads T] [--gap-ms G]`:
//! a chain of N instances of this program (run under the name it was called
//! by, so a symlink gives them its comm), one after the other, each busy with
//! T threads for S seconds, G ms apart; their CPU is in children_*_s and
//! their pids in `pids`.
//!
//! `messer-workload leader-exit --seconds S`: the main thread exits (the
//! exit system call, as pthread_exit makes) while a worker burns S seconds (the process lives on
//! without its leader). `messer-workload thread-exec --seconds S
//! [--leader-seconds L]`: a non-main thread burns S seconds, then calls exec
//! (the kernel kills the main thread, which burned L seconds meanwhile, and
//! the exec'ing thread takes over its pid) into `busy --seconds S` of this
//! program. Both print the whole process's
//! getrusage at the end (exec keeps it), as every mode does.
//!
//! `messer-workload faults --pages N [--file F] [--linger S]`, `states
//! --sleepers N --busy M --seconds S`, `fds --open N --seconds S`, `sockets
//! --connections N --seconds S`, `hog --mib N`: known page faults, thread
//! states, descriptors, sockets, memory (figures.rs).
//!
//! `messer-workload pools --seconds S`: named thread pools and threads that
//! live a millisecond, each reporting its own CPU clock (see pools.rs).
//!
//! `messer-workload starve --waits-ms 2,20,200 [--gap-ms G]`: a thread kept
//! off its CPU by a SCHED_FIFO hog for known lengths (see starve.rs).
//!
//! Every mode takes `--delay S` (sleep before starting, so that a recorder
//! attached meanwhile sees all of the work) and prints start_cpu_ns and
//! end_cpu_ns (CLOCK_PROCESS_CPUTIME_ID) in its JSON.
//!
//! With $MESSER_WORKLOAD_CGROUP (a cgroup v2 directory) the process moves
//! itself into that cgroup first and prints `cpu_before_move_ns` and
//! `cpu_after_move_ns`, its CPU time just before and just after the write
//! to cgroup.procs (the kernel charges what ran up to the move to the old
//! cgroup; where in the write that is, is not known). The cgroup's
//! usage_usec, read once the process has been reaped, plus the one and the
//! other bound its whole CPU time, including what getrusage at the end
//! cannot see: the exit's own teardown. An exec keeps the figures
//! (thread-exec passes them on).

mod figures;
mod io;
mod pools;
mod starve;
mod storm;
mod truth;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use truth::{Clocks, Truth};

fn usage() -> ! {
    eprintln!(
        "usage: messer-workload busy --threads N --duty D --seconds S [--period-ms P] [--truth FILE]\n       messer-workload pingpong --pairs N --seconds S [--truth FILE]\n       messer-workload forkstorm --children N [--child-ms M] [--parallel P]\n       messer-workload io --mib N [--chunk-kib K] [--dir D]\n       messer-workload restarts --count N --seconds S [--threads T] [--gap-ms G]\n       (all: [--delay S])"
    );
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: Option<T>) -> T {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()),
        None => default.unwrap_or_else(|| usage()),
    }
}

fn truth_arg(args: &[String]) -> Option<&str> {
    args.iter().position(|a| a == "--truth").map(|i| args.get(i + 1).map(String::as_str).unwrap_or_else(|| usage()))
}

fn spin_until(t: Instant) {
    let mut x = 0u64;
    while Instant::now() < t {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Runs `threads` copies of `work` (given its index and the end instant),
/// with the exact truth sampler when `truth` names a file.
fn run_threads(
    threads: usize,
    seconds: f64,
    truth: Option<&str>,
    work: impl Fn(usize, Instant) + Send + Sync + 'static,
) {
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let work = std::sync::Arc::new(work);
    let clocks = Clocks::default();
    clocks.register_self();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (clocks, tx, work) = (clocks.clone(), tx.clone(), work.clone());
            std::thread::spawn(move || {
                clocks.register_self();
                drop(tx);
                work(i, end);
            })
        })
        .collect();
    drop(tx);
    // Every worker has registered its clock once the channel closes.
    let _ = rx.recv();
    let sampler = truth.map(|_| Truth::start(clocks, truth_period_us(), end));
    for h in handles {
        let _ = h.join();
    }
    if let (Some(s), Some(path)) = (sampler, truth) {
        s.finish(path);
    }
}

fn busy(threads: usize, duty: f64, seconds: f64, period: Duration, truth: Option<&str>) {
    let on = period.mul_f64(duty.clamp(0.0, 1.0));
    run_threads(threads, seconds, truth, move |_, end| {
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
    });
}

/// `pairs` pairs of threads bouncing one byte through two pipes: every
/// round trip is two blocking reads, so two voluntary switches.
/// Round trips completed by all pairs (printed as `round_trips`).
static ROUND_TRIPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn pingpong(pairs: usize, seconds: f64, truth: Option<&str>) {
    let pipes: Vec<[i32; 4]> = (0..pairs)
        .map(|_| {
            let mut a = [0i32; 2];
            let mut b = [0i32; 2];
            // SAFETY: pipe(2) into local arrays.
            if unsafe { libc::pipe(a.as_mut_ptr()) } != 0 || unsafe { libc::pipe(b.as_mut_ptr()) } != 0 {
                eprintln!("messer-workload: pipe: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            [a[0], a[1], b[0], b[1]]
        })
        .collect();
    run_threads(pairs * 2, seconds, truth, move |i, end| {
        let [ar, aw, br, bw] = pipes[i / 2];
        // Thread 2k serves; thread 2k+1 starts each round trip.
        let (rd, wr, first) = if i % 2 == 0 { (ar, bw, false) } else { (br, aw, true) };
        if first && !write1(wr) {
            return;
        }
        let mut trips = 0;
        while read1(rd) {
            trips += u64::from(first);
            if Instant::now() >= end {
                // Close our write end: the partner's read returns 0 and it ends.
                // SAFETY: our own pipe end, not used after this.
                unsafe { libc::close(wr) };
                break;
            }
            if !write1(wr) {
                break;
            }
        }
        ROUND_TRIPS.fetch_add(trips, std::sync::atomic::Ordering::Relaxed);
    });
}

fn read1(fd: i32) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte read into a local buffer.
    unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) == 1 }
}

fn write1(fd: i32) -> bool {
    // SAFETY: a one-byte write from a static buffer.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) == 1 }
}

fn rusage(who: i32) -> (f64, f64) {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage into a struct of ours.
    unsafe { libc::getrusage(who, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU ns this process had used just before and just after it moved
/// itself into $MESSER_WORKLOAD_CGROUP.
static CPU_AROUND_MOVE_NS: OnceLock<(u64, u64)> = OnceLock::new();
const CGROUP_ENV: &str = "MESSER_WORKLOAD_CGROUP";
const AROUND_ENV: &str = "MESSER_WORKLOAD_CPU_AROUND_MOVE_NS";

/// Moves this process into $MESSER_WORKLOAD_CGROUP, noting its CPU time
/// around the move, or takes the figures an earlier image of this process
/// passed on.
fn enter_cgroup() {
    if let Some(dir) = std::env::var_os(CGROUP_ENV) {
        let procs = std::path::Path::new(&dir).join("cgroup.procs");
        let before = process_cpu_ns();
        if let Err(e) = std::fs::write(&procs, std::process::id().to_string()) {
            eprintln!("messer-workload: {}: {e}", procs.display());
            std::process::exit(1);
        }
        let _ = CPU_AROUND_MOVE_NS.set((before, process_cpu_ns()));
    } else if let Some((a, b)) = std::env::var(AROUND_ENV).ok().as_deref().and_then(|v| v.split_once(','))
        && let (Ok(a), Ok(b)) = (a.parse(), b.parse())
    {
        let _ = CPU_AROUND_MOVE_NS.set((a, b));
    }
}

fn main() {
    enter_cgroup();
    let args: Vec<String> = std::env::args().skip(1).collect();
    // --delay S: sleep first (so that a recorder can attach), then note the
    // CPU time used so far: the JSON's start_cpu_ns.
    std::thread::sleep(Duration::from_secs_f64(arg(&args, "--delay", Some(0.0f64))));
    let start_cpu_ns = process_cpu_ns();
    let mut extra = String::new();
    match args.first().map(String::as_str) {
        Some("busy") => {
            let threads = arg(&args, "--threads", Some(1usize));
            let duty = arg(&args, "--duty", Some(1.0f64));
            let seconds = arg(&args, "--seconds", None::<f64>);
            let period = Duration::from_millis(arg(&args, "--period-ms", Some(100u64)));
            busy(threads, duty, seconds, period, truth_arg(&args));
        }
        Some("pingpong") => {
            let pairs = arg(&args, "--pairs", Some(1usize));
            let seconds = arg(&args, "--seconds", None::<f64>);
            pingpong(pairs, seconds, truth_arg(&args));
            extra = format!(", \"round_trips\": {}", ROUND_TRIPS.load(std::sync::atomic::Ordering::Relaxed));
        }
        Some("sleepers") => {
            let n = arg(&args, "--processes", None::<usize>);
            let seconds = arg(&args, "--seconds", None::<f64>);
            storm::sleepers(n, seconds);
        }
        Some("restarts") => {
            let count = arg(&args, "--count", None::<usize>);
            let secs = arg(&args, "--seconds", None::<f64>);
            let threads = arg(&args, "--threads", Some(1usize));
            let gap = arg(&args, "--gap-ms", Some(100u64));
            // The name we were run by (a symlink keeps its comm).
            let me = std::env::args().next().unwrap_or_else(|| usage());
            let mut pids = Vec::new();
            for i in 0..count {
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(gap));
                }
                let status = std::process::Command::new(&me)
                    .args(["busy", "--threads", &threads.to_string(), "--duty", "1", "--seconds", &secs.to_string()])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .and_then(|mut c| {
                        pids.push(c.id());
                        c.wait()
                    });
                if !status.is_ok_and(|s| s.success()) {
                    eprintln!("messer-workload: instance {i} failed");
                    std::process::exit(1);
                }
            }
            extra = format!(", \"pids\": {pids:?}");
        }
        Some("forkstorm") => {
            let children = arg(&args, "--children", None::<usize>);
            let child_ms = arg(&args, "--child-ms", Some(1.0f64));
            let parallel = arg(&args, "--parallel", Some(1usize));
            storm::forkstorm(children, child_ms, parallel);
        }
        Some("io") => {
            let mib = arg(&args, "--mib", None::<usize>);
            let chunk = arg(&args, "--chunk-kib", Some(64usize));
            let dir = arg(&args, "--dir", Some(String::from("/tmp")));
            let c = io::io(mib, chunk, &dir);
            extra = format!(", \"io_calls\": {:?}, \"io_bytes\": {:?}", c.calls, c.bytes);
        }
        Some("leader-exit") => {
            let seconds = arg(&args, "--seconds", None::<f64>);
            std::thread::spawn(move || {
                // The leader is gone before the work begins.
                std::thread::sleep(Duration::from_millis(100));
                spin_until(Instant::now() + Duration::from_secs_f64(seconds));
                report(start_cpu_ns, "");
                std::process::exit(0);
            });
            // The exit system call (not exit_group) ends only this thread,
            // as pthread_exit does, without unwinding Rust frames.
            // SAFETY: the worker uses nothing this thread owns.
            unsafe { libc::syscall(libc::SYS_exit, 0) };
            unreachable!("exit returned")
        }
        Some("thread-exec") => {
            let seconds = arg(&args, "--seconds", None::<f64>);
            let me = std::env::args().next().unwrap_or_else(|| usage());
            // The main thread's own CPU before it waits (its figures must
            // survive its death at the exec).
            let leader_s = arg(&args, "--leader-seconds", Some(0.0f64));
            let worker = std::thread::spawn(move || {
                spin_until(Instant::now() + Duration::from_secs_f64(seconds));
                let mut next = std::process::Command::new(&me);
                next.args(["busy", "--threads", "1", "--seconds", &seconds.to_string()]);
                // The new image is in the cgroup already: it only keeps the figure.
                if let Some((a, b)) = CPU_AROUND_MOVE_NS.get() {
                    next.env_remove(CGROUP_ENV).env(AROUND_ENV, format!("{a},{b}"));
                }
                let e = std::os::unix::process::CommandExt::exec(&mut next);
                eprintln!("messer-workload: exec: {e}");
                std::process::exit(1);
            });
            spin_until(Instant::now() + Duration::from_secs_f64(leader_s));
            let _ = worker.join();
            std::process::exit(1);
        }
        Some("faults") => {
            let pages = arg(&args, "--pages", None::<usize>);
            let file = args.iter().position(|a| a == "--file").and_then(|i| args.get(i + 1)).cloned();
            extra = figures::faults(pages, file.as_deref());
            // Stay until the recorder's next read has seen the process.
            std::thread::sleep(Duration::from_secs_f64(arg(&args, "--linger", Some(0.0f64))));
        }
        Some("states") => {
            let sleepers = arg(&args, "--sleepers", None::<usize>);
            let busy = arg(&args, "--busy", None::<usize>);
            figures::states(sleepers, busy, arg(&args, "--seconds", None::<f64>));
        }
        Some("sockets") => {
            extra = figures::sockets(arg(&args, "--connections", None::<usize>), arg(&args, "--seconds", None::<f64>))
        }
        Some("fds") => figures::fds(arg(&args, "--open", None::<usize>), arg(&args, "--seconds", None::<f64>)),
        Some("hog") => figures::hog(arg(&args, "--mib", None::<usize>)),
        Some("pools") => extra = pools::pools(arg(&args, "--seconds", None::<f64>)),
        Some("starve") => {
            let waits = arg(&args, "--waits-ms", Some(String::from("2,20,200")));
            let waits: Vec<f64> = waits.split(',').map(|w| w.parse().unwrap_or_else(|_| usage())).collect();
            extra = starve::starve(&waits, arg(&args, "--gap-ms", Some(700.0f64)));
        }
        _ => usage(),
    }
    report(start_cpu_ns, &extra);
}

/// Prints the process's truth as one JSON line.
fn report(start_cpu_ns: u64, extra: &str) {
    let end_cpu_ns = process_cpu_ns();
    let (user, system) = rusage(libc::RUSAGE_SELF);
    let (cuser, csystem) = rusage(libc::RUSAGE_CHILDREN);
    let outside = match CPU_AROUND_MOVE_NS.get() {
        Some((a, b)) => format!(", \"cpu_before_move_ns\": {a}, \"cpu_after_move_ns\": {b}"),
        None => String::new(),
    };
    println!(
        "{{\"user_s\": {user}, \"system_s\": {system}, \"children_user_s\": {cuser}, \"children_system_s\": {csystem}, \"start_cpu_ns\": {start_cpu_ns}, \"end_cpu_ns\": {end_cpu_ns}{outside}{extra}}}"
    );
}

/// Truth sampling period: $MESSER_TRUTH_US, else 1 ms. Window boundaries
/// fall between samples and are interpolated, so the period must be short
/// against the workload's own rhythm (a 20 ms busy/sleep cycle sampled every
/// 10 ms interpolates up to ~5 ms wrong).
fn truth_period_us() -> u64 {
    std::env::var("MESSER_TRUTH_US").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000)
}
