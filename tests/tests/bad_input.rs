//! Bad input: one line on stderr saying what is wrong and what to do, exit 2,
//! and no stray output file.

use messer_tests::*;

fn assert_usage_error(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("messer: error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(!err.contains("panicked"), "{err}");
}

/// A pid that is free now (pid_max is far above what is in use).
fn unused_pid() -> String {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    (1..1000).map(|i| max - i).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap().to_string()
}

#[test]
fn pid_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = messer();
        c.args(["--pid", &unused_pid(), "-o"]).arg(dir.path().join("x.h5"));
        c
    });
    assert_usage_error(&out, "no process with pid");
    assert!(!dir.path().join("x.h5").exists());
}

#[test]
fn unwritable_output_path() {
    let mut c = messer();
    c.args(["--pid", &std::process::id().to_string(), "-o", "/nonexistent-dir/x.h5"]);
    assert_usage_error(&run(c), "does not exist");
}

#[test]
fn bad_intervals() {
    for bad in ["0", "-1", "NaN", "0.0001"] {
        let mut c = messer();
        c.args(["--pid", &std::process::id().to_string(), "--interval", bad, "-o", "/tmp/never.h5"]);
        assert_usage_error(&run(c), "--interval");
    }
}

#[test]
fn existing_output_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep.h5");
    std::fs::write(&path, b"precious").unwrap();
    let mut c = messer();
    c.args(["--pid", &std::process::id().to_string(), "-o"]).arg(&path);
    assert_usage_error(&run(c), "--force");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
#[ignore = "needs root"]
fn ebpf_mode_without_privilege() {
    if !require_root("ebpf_mode_without_privilege") {
        return;
    }
    // Drop to nobody with no capabilities; the output directory is writable.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let path = dir.path().join("x.h5");
    let mut c = std::process::Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(messer_bin())
        .args(["--pid", &std::process::id().to_string(), "--mode", "ebpf", "-o"])
        .arg(&path);
    assert_usage_error(&run(c), "--mode procfs");
    assert!(!path.exists(), "no file is left behind");
}

#[test]
fn comm_longer_than_the_kernel_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = messer();
    c.args(["--comm", "a_name_of_20_chars__", "-o"]).arg(dir.path().join("x.h5"));
    assert_usage_error(&run(c), "at most 15 bytes");
    assert!(!dir.path().join("x.h5").exists());
}

#[test]
fn conflicting_targets() {
    let mut c = messer();
    c.args(["--pid", "1", "--comm", "sshd"]);
    assert_usage_error(&run(c), "cannot be used with");
    let mut c = messer();
    c.args(["--pid-command", "echo 1", "--", "true"]);
    assert_usage_error(&run(c), "cannot be used with");
}

#[test]
fn pid_command_without_a_usable_pid_keeps_trying() {
    for (cmd, said) in [
        ("true", "printed nothing"),
        ("echo hello", "not a pid"),
        ("echo 1 2", "printed 2 pids"),
        ("echo broken >&2; exit 4", "exited with status 4: broken"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.h5");
        let mut c = messer();
        c.args(["--mode", "procfs", "--pid-command", cmd, "--interval", "0.1", "--duration", "0.5", "-o"]).arg(&out);
        let o = run(c);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {err}");
        assert_eq!(err.matches(said).count(), 1, "{cmd}: said once, not every interval: {err}");
        let t = read_table(&out, "messer_timeseries", &["proc_pid", "proc_cpu_util_percent_total"]);
        assert!(column(&t, "proc_cpu_util_percent_total").iter().all(Option::is_none), "{cmd}: no target, no figures");
        assert!(column(&t, "proc_pid").iter().all(|p| *p == Some(0.0)));
    }
}

/// Runs messer in a private mount namespace after `mount` (which hides a
/// kernel file there, and nowhere else).
fn in_private_mounts(mount: &str, args: &str) -> std::process::Output {
    let cmd = format!("{mount} && exec {} {args}", messer_bin().display());
    std::process::Command::new("unshare").args(["-m", "sh", "-c", &cmd]).output().unwrap()
}

#[test]
#[ignore = "needs root"]
fn no_kernel_btf() {
    if !require_root("no_kernel_btf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.path().join("x.h5");
    let o = dir.path().display();
    for (mount, says) in [
        (format!("mount --bind {} /sys/kernel/btf", empty.display()), "this kernel was built without BTF"),
        ("mount --bind /dev/null /sys/kernel/btf/vmlinux".to_string(), "is not usable BTF"),
    ] {
        let r = in_private_mounts(&mount, &format!("--mode ebpf --pid 1 --duration 1 -o {o}/x.h5"));
        assert_usage_error(&r, says);
        assert!(String::from_utf8_lossy(&r.stderr).contains("use --mode procfs"));
        assert!(!out.exists(), "no file left");
        // auto mode records in procfs mode with a warning.
        let r = in_private_mounts(&mount, &format!("--pid 1 --duration 0.5 --force -o {o}/x.h5"));
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(String::from_utf8_lossy(&r.stderr).contains("eBPF unavailable, recording in procfs mode"));
        std::fs::remove_file(&out).unwrap();
    }
}

/// A kernel without syscall tracepoints (CONFIG_FTRACE_SYSCALLS off),
/// simulated by hiding tracefs' `events/syscalls` in a private mount
/// namespace: `--io-syscalls` falls back with a warning naming what is
/// missing, and the IO columns come from /proc/<pid>/io as without it.
#[test]
#[ignore = "needs root"]
fn no_syscall_tracepoints() {
    if !require_root("no_syscall_tracepoints") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = dir.path().join("x.h5");
    // In a private mount namespace: tracefs is mounted there if this machine
    // has not mounted it yet (a fresh machine), and nothing outlives the test.
    let mount = format!(
        "{{ mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing; }} && \
         mount --bind {} /sys/kernel/tracing/events/syscalls",
        empty.display()
    );
    let r = in_private_mounts(&mount, &format!("--mode ebpf --io-syscalls --pid 1 --duration 1 -o {}", out.display()));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(err.contains("this kernel has no syscall tracepoints"), "{err}");
    let t = read_table(&out, "messer_timeseries", &["proc_disk_read_throughput_mibps"]);
    assert!(!column(&t, "proc_disk_read_throughput_mibps").is_empty());
}
