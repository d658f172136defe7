//! `messer [OPTIONS] -- CMD`: the command is recorded from its first
//! instruction, runs as the invoking user under sudo, and messer exits with
//! its status; `--duration` ends a recording.

use messer_tests::*;

fn h5_attr(path: &std::path::Path, name: &str) -> serde_json::Value {
    read_table(path, "messer_timeseries", &[])["_attrs"][name].clone()
}

#[test]
fn exit_status_is_passed_on_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let status =
        messer().args(["--mode", "procfs", "-o"]).arg(&out).args(["--", "sh", "-c", "exit 3"]).status().unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(h5_attr(&out, "messer_child_exit_code"), 3);
    assert_eq!(h5_attr(&out, "messer_launched_command"), "sh -c exit 3");
    // It ended within the first interval and is still in the process table.
    let info = read_table(&out, "messer_process_info", &["cmdline", "exit_status"]);
    // One row: its start time (with its pid, its identity) is the same in
    // every read, even once it is a zombie with an empty /proc cmdline.
    assert_eq!(info["cmdline"].as_array().map(Vec::len), Some(1), "{info}");
    assert_eq!(info["cmdline"][0], "sh -c exit 3");
    assert_eq!(info["exit_status"][0], 3.0);

    let out = dir.path().join("killed.h5");
    let status =
        messer().args(["--mode", "procfs", "-o"]).arg(&out).args(["--", "sh", "-c", "kill -9 $$"]).status().unwrap();
    assert_eq!(status.code(), Some(128 + 9));
    assert_eq!(h5_attr(&out, "messer_child_exit_signal"), 9);
}

#[test]
fn a_command_that_does_not_exist_is_127_like_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let o = run({
        let mut c = messer();
        c.args(["--mode", "procfs", "-o"]).arg(&out).args(["--", "no-such-command-xyz"]);
        c
    });
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-command-xyz: command not found"), "{err}");
    assert!(!out.exists(), "no empty file is left behind");
}

#[test]
#[ignore = "needs root"]
fn under_sudo_the_command_runs_as_the_invoking_user() {
    if !require_root("under_sudo_the_command_runs_as_the_invoking_user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
    let out = dir.path().join("rec.h5");
    let o = run({
        let mut c = messer();
        c.env("SUDO_UID", "65534").env("SUDO_GID", "65534").env("SUDO_USER", "nobody");
        c.args(["-o"]).arg(&out).args(["--", "sh", "-c", "id -u; id -g; echo $USER"]);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "65534\n65534\nnobody\n", "stdout is passed through");
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "the file belongs to the invoking user");
    assert_eq!(meta.mode() & 0o002, 0, "not world-writable");
}

#[test]
fn duration_ends_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let t0 = std::time::Instant::now();
    let status = messer()
        .args(["--mode", "procfs", "--duration", "1", "--interval", "0.25", "-o"])
        .arg(&out)
        .args(["--", "sleep", "5"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(t0.elapsed().as_secs_f64() < 3.0, "took {:?}", t0.elapsed());
    let t = read_table(&out, "messer_timeseries", &["window_seconds"]);
    let total: f64 = column(&t, "window_seconds").iter().flatten().sum();
    assert!((total - 1.0).abs() < 0.01, "recorded {total} s");
}

/// Tracked from its first instruction, a launched command's CPU (its
/// children's included) adds up to what its cgroup charged for it, its
/// exit's teardown included (`CgroupTruth`; getrusage at its end, printed
/// beside, lacks the teardown: 5 ms under emulation, 0.8 % of this run).
#[test]
#[ignore = "needs root"]
fn a_launched_command_is_counted_from_its_first_instruction() {
    if !require_root("a_launched_command_is_counted_from_its_first_instruction") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let w = workload_bin();
    let cg = CgroupTruth::new("messer-test-launch");
    let o = run({
        let mut c = messer();
        cg.apply(&mut c);
        c.args(["--mode", "ebpf", "--interval", "0.2", "-o"]).arg(&out).arg("--").arg(&w);
        c.args(["forkstorm", "--children", "50", "--child-ms", "10", "--parallel", "2"]);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = |k: &str| truth[k].as_f64().unwrap();
    let reported = f("end_cpu_ns") / 1e9 + f("children_user_s") + f("children_system_s");
    let (low, high) = cg.seconds(&o.stdout);
    let t = read_table(&out, "messer_timeseries", &["window_seconds", "proc_cpu_util_percent_total"]);
    let w = column(&t, "window_seconds");
    let got: f64 =
        column(&t, "proc_cpu_util_percent_total").iter().zip(&w).map(|(c, w)| c.unwrap() * w.unwrap() / 100.0).sum();
    eprintln!("launched: messer {got:.5} s, cgroup {low:.5} .. {high:.5} s, getrusage at its end {reported:.5} s");
    assert!(
        got <= high * 1.005 + 0.0005 && got >= low * 0.995 - 0.0005,
        "messer {got} s vs the cgroup's {low} .. {high} s"
    );
}
