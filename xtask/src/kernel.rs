//! `cargo xtask test-kernel`: messer's correctness tests on the kernels
//! servers run, booted in QEMU.
//!
//! Debian 12's stock kernel (package linux-image-cloud-amd64, 6.1) boots
//! under QEMU's TCG (KVM on this machine kind runs only kernels built for
//! it) through virtme-ng, with this machine's root file system shared
//! read-only over virtio-fs (the cloud kernel has no 9p) and /tmp as a
//! writable overlay. Debian ships qemu's C virtiofsd, whose arguments differ
//! from the Rust one virtme-ng expects: a small wrapper maps them. Inside,
//! the integration tests that compare against the workload's or a cgroup's
//! own truth run as root; their per-test results come back on the console
//! and are printed per kernel.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::setup;

/// What the guest needs beyond `setup`.
const PACKAGES: &[&str] = &["qemu-system-x86", "linux-image-cloud-amd64", "busybox-static"];
const PYTHON: &[&str] = &["virtme-ng==1.42"];

/// The test binaries run in the guest, with the tests of each left out
/// and why. The rest of the suite needs what the guest lacks (a writable
/// root for the exporters' servers, fsfreeze on a loop device) or checks
/// timing, which emulation distorts: `cpu_accuracy` compares every window
/// with a truth sampled every millisecond, which TCG cannot keep up with
/// (its windows are then not covered), and the tests below that start a
/// workload with a fixed delay for messer to attach in (loading and
/// verifying the BPF programs takes longer than that under emulation), or
/// count on a native machine's throughput.
pub const SUITES: &[(&str, &[&str])] = &[
    // Leader exit and non-main-thread exec, both modes, both exit paths.
    ("exits", &[]),
    // Launched commands: exit status, --duration, running as the invoker,
    // the total against the command's cgroup (its exit's teardown included).
    ("launch", &[]),
    // --max-processes, --no-children, syscall IO, BPF statistics.
    (
        "kernel_counters",
        &[
            "fork_storm_children_are_fully_counted",
            "fork_storm_with_many_alive_is_fully_counted",
            "a_wait_begun_before_attach_is_counted_when_it_ends",
            "syscall_io_is_counted_exactly",
            // Expects 10 000 switches of a ping-pong in its span.
            "own_program_cost_is_recorded_and_stats_switched_back",
        ],
    ),
    // --comm, --pid-command, --mode both against compare. Left out: the two
    // modes' totals on a busy workload, within 1 % natively; procfs's
    // schedstat of a running thread lags by up to a tick, which emulation
    // stretches (2.5 % seen).
    // And a --pid-command restart: the command (a shell and pgrep) takes
    // seconds under emulation, so most windows have no target meanwhile.
    (
        "targets",
        &["both_modes_agree_on_a_steady_workload_and_compare_says_so", "pid_command_follows_a_restarted_service"],
    ),
    // PostgreSQL under pgbench -C, truth from its cgroup. Left out: nginx
    // with 2000 connections, whose census and socket IO load and count on
    // 6.1 (1957 connections seen, --io-syscalls attached) but cost beyond
    // their 1 % budget under emulation, so most windows have no count.
    ("real_servers", &["nginx_thousands_of_sockets"]),
    // --cgroup: joins, a move out, a fork storm, against the cgroup's
    // usage (6.1 keeps ancestor ids in the cgroup, 6.2 on pointers).
    ("cgroups", &[]),
    // --threads and --runq-latency: their kernel paths are verified only
    // when they are on. Left out: each 1 ms thread's rows against its own
    // clock, read before its teardown, which takes 0.7 ms under emulation
    // (0.1 ms natively), past the bound; the procfs test and the runq
    // test still load and run the programs with both options on.
    ("threads", &["every_thread_has_its_own_exact_rows_ebpf"]),
    ("runq_latency", &[]),
    // The census (its thread-state and socket walk and the task_file
    // fallback) loads and counts thread states. Left out: the socket tests,
    // whose recordings under emulation hold one counted row (the census of
    // 403 sockets exact there) where they need two; the page-fault,
    // descriptor-limit and OOM tests (the host's).
    (
        "measurands",
        &[
            "sockets_of_one_process_within_and_past_the_census_share",
            "sockets_of_one_process_procfs",
            "minor_page_faults_are_the_kernels_own",
            "major_page_faults_of_a_file_dropped_from_the_page_cache",
            "descriptor_limit_set_before_exec",
            "an_oom_kill_is_told_apart_from_other_kills",
        ],
    ),
];

/// The newest installed kernel image of Debian's cloud flavour.
fn cloud_kernel() -> Result<PathBuf> {
    let mut images: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-") && n.ends_with("-cloud-amd64"))
        })
        .collect();
    images.sort();
    images.pop().context("no /boot/vmlinuz-*-cloud-amd64 (package linux-image-cloud-amd64)")
}

/// The wrapper that lets virtme-ng start qemu's C virtiofsd.
fn virtiofsd_wrapper(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let script = r#"#!/bin/sh
# Maps the Rust virtiofsd's arguments (what virtme-ng passes) to the C
# virtiofsd Debian 12's qemu ships. Written by `cargo xtask test-kernel`.
sock= dir= cache=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --version) echo "virtiofsd 1.10.0"; exit 0 ;;
    --help) echo "usage: virtiofsd"; exit 0 ;;
    --socket-path) sock=$2; shift ;;
    --socket-path=*) sock=${1#*=} ;;
    --shared-dir) dir=$2; shift ;;
    --shared-dir=*) dir=${1#*=} ;;
    --cache) cache=$2; shift ;;
    --cache=*) cache=${1#*=} ;;
    --sandbox) shift ;;
    *) ;;
  esac
  shift
done
case "$cache" in never) cache=none ;; esac
# virtme-ng waits for the pid file the Rust daemon writes.
echo $$ > "$sock.pid"
exec /usr/lib/qemu/virtiofsd --socket-path="$sock" -o source="$dir" -o cache="$cache" -o sandbox=chroot
"#;
    let path = dir.join("virtiofsd");
    std::fs::write(&path, script)?;
    let mut perm = std::fs::metadata(&path)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&path, perm)?;
    Ok(())
}

/// The integration test executables by name, built (as `cargo test` would).
fn test_binaries() -> Result<Vec<(String, PathBuf)>> {
    let mut c = crate::cargo();
    c.args(["test", "--release", "-p", "messer-tests", "--no-run", "--message-format=json"]);
    setup::bpf_env(&mut c);
    let out = c.stderr(Stdio::inherit()).output().context("cargo test --no-run")?;
    if !out.status.success() {
        bail!("building the tests failed");
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["reason"] != "compiler-artifact" || v["target"]["kind"][0] != "test" {
            continue;
        }
        if let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str()) {
            bins.push((name.to_string(), PathBuf::from(exe)));
        }
    }
    Ok(bins)
}

/// One test's outcome on one kernel.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub suite: String,
    pub test: String,
    pub ok: bool,
}

/// Parses libtest's `test NAME ... ok|FAILED` lines of suite output marked
/// by `==> SUITE` lines. With --nocapture a test's own output comes between
/// its name and its verdict, which then stands on a line of its own (or at
/// the end of one).
fn outcomes(console: &str) -> Vec<Outcome> {
    let mut suite = String::new();
    let mut pending: Option<String> = None;
    let mut out = Vec::new();
    let verdict = |text: &str| {
        let t = text.trim_end();
        if t.ends_with("FAILED") {
            Some(false)
        } else if t == "ok" || t.ends_with(" ok") {
            Some(true)
        } else {
            None
        }
    };
    for line in console.lines() {
        if let Some(s) = line.strip_prefix("==> ") {
            suite = s.trim().to_string();
            pending = None;
            continue;
        }
        if let Some((name, rest)) = line.strip_prefix("test ").and_then(|r| r.split_once(" ... ")) {
            match verdict(rest) {
                Some(ok) => out.push(Outcome { suite: suite.clone(), test: name.trim().to_string(), ok }),
                None => pending = Some(name.trim().to_string()),
            }
            continue;
        }
        if let Some(name) = &pending
            && let Some(ok) = verdict(line)
        {
            out.push(Outcome { suite: suite.clone(), test: name.clone(), ok });
            pending = None;
        }
    }
    out
}

/// How long the guest may take in all, and without a line on its console
/// (its script prints a heartbeat each minute, and each test bounds its
/// own commands), before it is killed: `$MESSER_GUEST_TIMEOUT` seconds,
/// else 30 min; 5 min.
fn guest_limits() -> (Duration, Duration) {
    let all = std::env::var("MESSER_GUEST_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(1800);
    (Duration::from_secs(all), Duration::from_secs(300))
}

enum Guest {
    /// The console of a guest whose script ran, and why it was killed
    /// before the script's end, if it was.
    Ran(String, Option<String>),
    /// Why the guest never started its script.
    NoBoot(String),
}

/// Boots `kernel` with virtme-ng to run `script`, the console going to
/// `log` as it comes (follow it with tail -f), under a watchdog: a guest
/// past its limits is killed and the console's tail printed.
fn boot(venv: &Path, path: &str, kernel: &Path, script: &Path, log: &Path) -> Result<Guest> {
    use std::os::unix::process::CommandExt as _;
    let file = std::fs::File::create(log)?;
    let started = Instant::now();
    let mut child = Command::new(venv.join("vng"))
        .env("PATH", path)
        .arg("--run")
        .arg(kernel)
        .args(["--disable-kvm", "--cpus", "2", "--memory", "4G", "--exec"])
        .arg(format!("sh {}", script.display()))
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        // Its own process group, so that a timeout ends qemu with it.
        .process_group(0)
        .spawn()
        .context("starting vng (virtme-ng)")?;
    let (all, idle) = guest_limits();
    let (mut size, mut grew) = (0, Instant::now());
    let timed_out = loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                eprintln!("xtask: vng ended with {status}");
            }
            break None;
        }
        let now = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if now != size {
            (size, grew) = (now, Instant::now());
        }
        if started.elapsed() > all {
            break Some(format!("the guest ran past {} s", all.as_secs()));
        }
        if grew.elapsed() > idle {
            break Some(format!("the guest's console was silent for {} s", idle.as_secs()));
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if timed_out.is_some() {
        // SAFETY: kill(2) on the process group we created.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    // Its virtiofsd may outlive it.
    let _ = Command::new("pkill").args(["-f", "/usr/lib/qemu/virtiofsd"]).status();
    let console = std::fs::read_to_string(log)?;
    if let Some(why) = &timed_out {
        eprintln!("xtask: {why}: killed it; its console ended:");
    }
    if console.contains("==> kernel ") {
        if timed_out.is_some() {
            tail(&console);
        }
        return Ok(Guest::Ran(console, timed_out));
    }
    tail(&console);
    let why = timed_out.unwrap_or_else(|| format!("the guest ended after {} s", started.elapsed().as_secs()));
    Ok(Guest::NoBoot(format!("{why} without running the tests")))
}

/// Prints the last lines of a console.
fn tail(console: &str) {
    let lines: Vec<&str> = console.lines().collect();
    for l in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("  | {}", l.chars().take(300).collect::<String>());
    }
}

/// The guest script's heartbeat: each minute, the uptime and messer's and
/// the tests' processes. Not a suite line (`==> `) nor a verdict.
const HEARTBEAT: &str = "( while sleep 60; do echo \"--- alive at $(cut -d' ' -f1 /proc/uptime) s: $(ps -eo pid,stat,etime,args --no-headers | grep -E 'messer|/deps/' | grep -v grep | cut -c1-150 | tr '\\n' ';') ---\"; done ) &\nheartbeat=$!\n";

/// Runs the suites on this machine's kernel or, with `guest`, in QEMU on
/// the cloud kernel; returns each test's outcome and the kernel release.
fn run_suites(
    bins: &[(String, PathBuf)],
    guest: Option<&Path>,
    root: &Path,
    only: &[String],
) -> Result<(String, Vec<Outcome>, Option<String>)> {
    let messer = root.join("target/release/messer");
    let mut script = String::from("set +e\nexport CI=true RUST_BACKTRACE=0\necho \"==> kernel $(uname -r)\"\n");
    // A heartbeat with what runs, so that a hang shows where it is.
    script.push_str(HEARTBEAT);
    script.push_str(&format!("export MESSER_BIN={}\n", messer.display()));
    for (suite, skip) in SUITES.iter().filter(|(s, _)| only.is_empty() || only.iter().any(|o| o == s)) {
        let Some((_, exe)) = bins.iter().find(|(n, _)| n == suite) else {
            bail!("no test binary {suite}");
        };
        let skips: String = skip.iter().map(|t| format!(" --skip {t}")).collect();
        script.push_str(&format!(
            "echo '==> {suite}'\n{} --test-threads=1 --include-ignored --nocapture{skips} 2>&1\n",
            exe.display()
        ));
    }
    script.push_str("kill $heartbeat 2>/dev/null\n");
    let dir = root.join("target/kernel-test");
    std::fs::create_dir_all(&dir)?;
    let script_path = dir.join(if guest.is_some() { "guest.sh" } else { "host.sh" });
    std::fs::write(&script_path, &script)?;
    let (console, killed) = match guest {
        None => {
            let out = Command::new("sh").arg(&script_path).output().context("running the suites")?;
            (String::from_utf8_lossy(&out.stdout).into_owned(), None)
        }
        Some(kernel) => {
            let bin = dir.join("bin");
            virtiofsd_wrapper(&bin)?;
            let venv = root.join(".venv/bin");
            let path = format!("{}:{}:{}", bin.display(), venv.display(), std::env::var("PATH").unwrap_or_default());
            let log = dir.join("console.log");
            eprintln!(
                "xtask: booting {} under QEMU (TCG) for the tests; console in {}",
                kernel.display(),
                log.display()
            );
            let mut tries = 0;
            loop {
                tries += 1;
                match boot(&venv, &path, kernel, &script_path, &log)? {
                    Guest::Ran(console, killed) => break (console, killed),
                    // The script never started: the boot itself hung (not
                    // something a test did); once more, then a failure.
                    Guest::NoBoot(why) if tries < 2 => eprintln!("xtask: {why}; booting once more"),
                    Guest::NoBoot(why) => bail!("{why}"),
                }
            }
        }
    };
    let release = console
        .lines()
        .find_map(|l| l.strip_prefix("==> kernel "))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "?".into());
    for line in console.lines().filter(|l| l.contains("recorded") || l.contains("truth") || l.contains("panicked")) {
        eprintln!("  [{release}] {line}");
    }
    Ok((release, outcomes(&console), killed))
}

/// `cargo xtask test-kernel`: the suites on the cloud kernel in QEMU and,
/// with `host`, on this machine's kernel beside it; a table per test.
pub fn run(root: &Path, host: bool, only: &[String]) -> Result<()> {
    if !setup::is_root() {
        bail!("the kernel test boots a VM and loads BPF programs: run it as root");
    }
    setup::install_debian(PACKAGES)?;
    setup::install_python("virtme", PYTHON)?;
    let bins = test_binaries()?;
    let kernel = cloud_kernel()?;
    let mut kernels = vec![run_suites(&bins, Some(&kernel), root, only)?];
    if host {
        kernels.push(run_suites(&bins, None, root, only)?);
    }
    let mut names: Vec<(String, String)> = Vec::new();
    for (_, outs, _) in &kernels {
        for o in outs {
            if !names.contains(&(o.suite.clone(), o.test.clone())) {
                names.push((o.suite.clone(), o.test.clone()));
            }
        }
    }
    let header: Vec<&str> = kernels.iter().map(|(k, _, _)| k.as_str()).collect();
    println!("| test | {} |", header.join(" | "));
    println!("| --- |{}", " --- |".repeat(header.len()));
    let (mut passed, mut failed) = (0, 0);
    for (suite, test) in &names {
        let cells: Vec<&str> = kernels
            .iter()
            .map(|(_, outs, _)| match outs.iter().find(|o| &o.suite == suite && &o.test == test) {
                Some(o) if o.ok => "pass",
                Some(_) => "FAIL",
                None => "not run",
            })
            .collect();
        for c in &cells {
            match *c {
                "pass" => passed += 1,
                _ => failed += 1,
            }
        }
        println!("| {suite}::{test} | {} |", cells.join(" | "));
    }
    let guest_ran = kernels[0].1.len();
    println!("test-kernel: {passed} passed, {failed} failed");
    for (k, _, killed) in &kernels {
        if let Some(why) = killed {
            bail!("the tests on {k} did not finish: {why} (its console's tail is above)");
        }
    }
    if guest_ran == 0 {
        bail!("no test ran in the guest (see target/kernel-test/console.log)");
    }
    if failed > 0 {
        bail!("{failed} test run(s) failed or did not run");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_per_suite() {
        let console = "==> kernel 6.1.0\n==> exits\nrunning 3 tests\ntest a ... ok\ntest b ... ebpf: recorded 1 s\nmore\nFAILED\ntest c ... x: recorded 2 s\nok\n==> launch\ntest d ... FAILED\n";
        let o = outcomes(console);
        let got: Vec<(&str, &str, bool)> = o.iter().map(|o| (o.suite.as_str(), o.test.as_str(), o.ok)).collect();
        assert_eq!(
            got,
            vec![("exits", "a", true), ("exits", "b", false), ("exits", "c", true), ("launch", "d", false)]
        );
    }
}
