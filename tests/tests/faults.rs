//! Faults: kill -9 at a random moment leaves a readable file with every
//! sample older than two intervals and the writer's batch time (100 ms); without privilege, auto mode falls back
//! to procfs with a warning; no panic ever reaches the user.

use std::time::Duration;

use messer_tests::*;

/// A small pseudo-random sequence (no dependency needed for test jitter).
fn jitter(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn kill_9_at_random_moments_leaves_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    for round in 0..20 {
        // Half the rounds at 10 ms, where the writer batches 8 rows.
        let interval = if round % 2 == 0 { 0.1 } else { 0.01 };
        let out = dir.path().join(format!("k{round}.h5"));
        let mut sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let mut m = messer()
            .args(["--pid", &sleeper.id().to_string(), "--mode", "procfs", "--interval", &interval.to_string(), "-o"])
            .arg(&out)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + jitter(&mut seed) % 1200));
        let killed_at = monotonic_ns();
        m.kill().unwrap();
        m.wait().unwrap();
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let t = read_table(&out, "messer_timeseries", &["monotime"]);
        let mono = column(&t, "monotime");
        let last = mono.last().copied().flatten().unwrap_or(0.0);
        // The README's crash-loss bound: rows reach the file at most 100 ms
        // after they are queued (the writer's batch time).
        let oldest_required = killed_at as f64 / 1e9 - 2.0 * interval - 0.1;
        assert!(
            last >= oldest_required,
            "round {round}: last sample at {last:.3} s, killed at {:.3} s",
            killed_at as f64 / 1e9
        );
        read_table(&out, "messer_processes", &["pid"]);
    }
}

#[test]
fn without_privilege_auto_mode_falls_back_to_procfs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = dir.path().join("x.h5");
    let o = run({
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
            .arg(messer_bin())
            .args(["--mode", "auto", "--interval", "0.2", "-o"])
            .arg(&out)
            .args(["--", "sleep", "0.5"]);
        c
    });
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("WARN") && err.contains("procfs"), "a one-line warning says so: {err}");
    let t = read_table(&out, "messer_timeseries", &[]);
    assert_eq!(t["_attrs"]["messer_mode"], "procfs");
}

/// Every failing invocation in this suite and a few more: nothing panics.
#[test]
fn no_panic_reaches_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["--pid".into(), "999999999".into()],
        vec!["--pid".into(), "2".into()],
        vec!["--pid".into(), "1".into(), "--interval".into(), "nan".into()],
        vec!["--pid".into(), "1".into(), "--duration".into(), "-1".into()],
        vec!["--pid".into(), "1".into(), "-o".into(), "/no/such/dir/x.h5".into()],
        vec!["--".into(), "/no/such/command".into()],
        vec!["--mode".into(), "bogus".into()],
        vec![],
        vec![
            "-o".into(),
            dir.path().join("y.h5").display().to_string(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            "exit 4".into(),
        ],
    ];
    for args in cases {
        let o = run({
            let mut c = messer();
            c.args(&args).env("RUST_BACKTRACE", "1");
            c
        });
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        // A launched command's own status is passed on without a message.
        if matches!(o.status.code(), Some(1 | 2 | 126 | 127)) {
            let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO ") && !l.contains(" WARN ")).collect();
            assert_eq!(lines.len(), 1, "{args:?}: one line, got {lines:?}");
        }
    }
}

/// Ids of the BPF programs loaded in the kernel (BPF_PROG_GET_NEXT_ID).
fn bpf_prog_ids() -> Vec<u32> {
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    let mut ids = Vec::new();
    let mut attr = [0u32; 4]; // start_id, next_id, open_flags, pad
    loop {
        // SAFETY: bpf(2) with a zero-padded attr large enough for this command.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_GET_NEXT_ID, attr.as_mut_ptr(), 16u32) };
        if rc != 0 {
            break;
        }
        ids.push(attr[1]);
        attr[0] = attr[1];
    }
    ids
}

#[test]
#[ignore = "needs root"]
fn nothing_is_left_loaded_or_pinned_after_exit() {
    if !require_root("nothing_is_left_loaded_or_pinned_after_exit") {
        return;
    }
    let before = bpf_prog_ids();
    let dir = tempfile::tempdir().unwrap();
    let mut m = messer()
        .args(["--mode", "ebpf", "-o"])
        .arg(dir.path().join("x.h5"))
        .args(["--", "sleep", "1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let ours: Vec<u32> = bpf_prog_ids().into_iter().filter(|id| !before.contains(id)).collect();
    assert!(ours.len() >= 5, "messer's programs are visible while it runs: {ours:?}");
    assert!(m.wait().unwrap().success());
    // Programs are freed once their last reference (our fds and links) is gone.
    std::thread::sleep(Duration::from_millis(200));
    let after = bpf_prog_ids();
    let left: Vec<&u32> = ours.iter().filter(|id| after.contains(id)).collect();
    assert!(left.is_empty(), "programs left loaded: {left:?}");
    let pinned = std::fs::read_dir("/sys/fs/bpf").map(|d| d.count()).unwrap_or(0);
    assert_eq!(pinned, 0, "nothing pinned in bpffs");
}

/// The disk filling up mid-recording: exit 1 with one line that says so,
/// and the rows written before stay readable.
#[test]
#[ignore = "needs root"]
fn a_full_disk_is_a_clear_error_and_keeps_the_rows() {
    if !require_root("a_full_disk_is_a_clear_error_and_keeps_the_rows") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=300k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(mounted.success());
    let out = mnt.join("f.h5");
    let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
    let o = run({
        let mut c = messer();
        c.args(["--pid", &sleeper.id().to_string(), "--mode", "procfs", "--interval", "0.01", "-o"]).arg(&out);
        c
    });
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(" INFO ") && !l.contains(" WARN ")).collect();
    let t = std::panic::catch_unwind(|| read_table(&out, "messer_timeseries", &["monotime"]));
    let _ = std::process::Command::new("umount").arg(&mnt).status();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("file system is full"), "{}", lines[0]);
    let t = t.expect("the file is readable");
    assert!(t["_rows"].as_u64().unwrap() > 50, "rows kept: {}", t["_rows"]);
}
