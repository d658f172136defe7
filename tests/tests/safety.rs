//! Safe as root and hard to break: --force never destroys what messer did
//! not create, secrets stay out of files and logs, every number has a
//! range, output to a closed pipe ends quietly, a slow --pid-command never
//! stalls the sampler, damaged files are bad input, and a recording in
//! progress can be read.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use messer_tests::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with one `messer: error:` line containing `needle`, no panic.
fn assert_usage_error(o: &std::process::Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("messer: error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(!err.contains("panicked"), "{err}");
}

/// A short procfs recording of this test process into `path`.
/// `extra` may set --interval and --duration (else 0.1 and 0.5 s).
fn record(path: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = messer();
    c.args(["--mode", "procfs", "--pid", &std::process::id().to_string()]);
    for (opt, default) in [("--interval", "0.1"), ("--duration", "0.5")] {
        if !extra.contains(&opt) {
            c.args([opt, default]);
        }
    }
    c.args(extra).arg("-o").arg(path);
    run(c)
}

#[test]
fn force_replaces_only_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        run({
            let mut c = Command::new("mkfifo");
            c.arg(&fifo);
            c
        })
        .status
        .success()
    );
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (path, says) in [
        (Path::new("/dev/full"), "/dev"),
        (Path::new("/dev/null"), "/dev"),
        (Path::new("/proc/self/comm"), "/proc"),
        (Path::new("/sys/kernel/x.h5"), "/sys"),
        (fifo.as_path(), "is a FIFO"),
        (sub.as_path(), "is a directory"),
    ] {
        let before = std::fs::symlink_metadata(path).ok().map(|m| (m.file_type(), m.len()));
        let mut c = messer();
        c.args(["--mode", "procfs", "--pid", &std::process::id().to_string(), "--duration", "0.2", "--force", "-o"])
            .arg(path);
        assert_usage_error(&run(c), says);
        let after = std::fs::symlink_metadata(path).ok().map(|m| (m.file_type(), m.len()));
        assert_eq!(before, after, "{} left as it was", path.display());
    }
    // A device node outside /dev is refused for what it is.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let node = dir.path().join("null");
        assert!(
            run({
                let mut c = Command::new("mknod");
                c.arg(&node).args(["c", "1", "3"]);
                c
            })
            .status
            .success()
        );
        let mut c = messer();
        c.args(["--mode", "procfs", "--pid", &std::process::id().to_string(), "--duration", "0.2", "--force", "-o"])
            .arg(&node);
        assert_usage_error(&run(c), "character device");
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(&std::fs::symlink_metadata(&node).unwrap().file_type()));
    }
    // A regular file is replaced, and a symbolic link is replaced itself,
    // never written through.
    let old = dir.path().join("old.h5");
    std::fs::write(&old, b"old").unwrap();
    assert!(record(&old, &["--force"]).status.success());
    assert!(read_table(&old, "messer_timeseries", &[])["_rows"].as_u64().unwrap() > 0);
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"keep").unwrap();
    let link = dir.path().join("link.h5");
    std::os::unix::fs::symlink(&precious, &link).unwrap();
    assert!(record(&link, &["--force"]).status.success());
    assert_eq!(std::fs::read(&precious).unwrap(), b"keep");
    assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
}

#[test]
fn secrets_never_reach_the_file_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    // Nothing listens on port 9 of loopback: writes fail and are logged.
    let o = record(
        &out,
        &[
            "--influx",
            "http://alice:PASSWORD42@127.0.0.1:9",
            "--influx-db",
            "db",
            "--influx-token",
            "SECRET123",
            "--label",
            "plain",
        ],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let bytes = std::fs::read(&out).unwrap();
    for secret in ["SECRET123", "PASSWORD42"] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the file");
        assert!(!err.contains(secret), "{secret} is in the log: {err}");
    }
    let t = read_table(&out, "messer_timeseries", &[]);
    let cmd = t["_attrs"]["messer_command"].as_str().unwrap().to_string();
    assert!(cmd.contains("--influx-token ***"), "{cmd}");
    assert!(cmd.contains("http://***@127.0.0.1:9"), "{cmd}");
    assert!(cmd.contains("--label plain"), "{cmd}");
    // The same with --opt=value spellings.
    let out2 = dir.path().join("y.h5");
    let o = record(&out2, &["--influx=http://bob:PW77@127.0.0.1:9", "--influx-db=db", "--influx-token=TOK88"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out2).unwrap();
    for secret in ["PW77", "TOK88"] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the file");
        assert!(!stderr(&o).contains(secret));
    }
}

#[test]
fn every_numeric_option_has_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.h5");
    let pid = std::process::id().to_string();
    let extremes = ["0", "-1", "NaN", "inf", "-inf", "1e308", "4294967296", "18446744073709551616", "1e-300", "x"];
    // (option, values that are in range)
    let options: [(&str, &[&str]); 6] = [
        ("--interval", &[]),
        ("--duration", &["1e-300"]),
        ("--max-processes", &[]),
        ("--max-threads", &[]),
        ("--rotate-size", &["4294967296"]),
        ("--retain-size", &["4294967296"]),
    ];
    for (opt, ok) in options {
        for v in extremes.iter().filter(|v| !ok.contains(v)) {
            let mut c = messer();
            c.args(["--mode", "procfs", "--pid", &pid, "--duration", "0.3"]);
            if opt == "--retain-size" {
                c.args(["--rotate-size", "1"]);
            }
            c.args([opt, v, "-o"]).arg(&out);
            let o = run(c);
            assert_usage_error(&o, opt);
            assert!(!out.exists(), "{opt} {v}: no file");
        }
    }
    // The cases: a huge interval and a map size the kernel refuses.
    let t = Instant::now();
    let mut c = messer();
    c.args(["--pid", &pid, "--interval", "1e308", "--duration", "1", "-o"]).arg(&out);
    assert_usage_error(&run(c), "at most 86400");
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut c = messer();
    c.args(["--pid", &pid, "--max-threads", "4000000000", "--duration", "1", "-o"]).arg(&out);
    assert_usage_error(&run(c), "from 1 to 4194304");
    for bad in ["0", "-5", "2147483648"] {
        let mut c = messer();
        c.args(["--pid", bad, "-o"]).arg(&out);
        assert_eq!(run(c).status.code(), Some(2), "--pid {bad}");
    }
    let mut c = messer();
    c.args(["compare", "/nonexistent.h5", "--worst", "-1"]);
    assert_eq!(run(c).status.code(), Some(2));
    assert!(!out.exists());
}

#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    assert!(record(&out, &["--interval", "0.01", "--duration", "1"]).status.success());
    for args in [
        vec!["export", "--format", "csv"],
        vec!["export", "--format", "json"],
        vec!["export", "--format", "csv", "--table", "messer_processes"],
        vec!["inspect"],
    ] {
        let mut c = messer();
        c.args(&args[..1]).arg(&out).args(&args[1..]).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        // Read one line, then go away like `head -1`.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 16];
        let _ = stdout.read(&mut first).unwrap();
        drop(stdout);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{args:?}: {}", stderr(&o));
    }
    // Through a real shell pipe too.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("{} export {} --format csv | head -1 >/dev/null", messer_bin().display(), out.display()))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    assert!(record(&out, &[]).status.success());
    let mut c = messer();
    c.arg("compare").arg(&out);
    assert_usage_error(&run(c), "was recorded without --mode both (no /messer_procfs_timeseries)");
    let mut c = messer();
    c.arg("plot").arg(&out).args(["--metric", "no_such_column", "-o"]).arg(dir.path().join("p.png"));
    let o = run(c);
    assert_usage_error(&o, "no column no_such_column in /messer_timeseries");
    assert!(stderr(&o).contains("messer inspect"));
    let mut c = messer();
    c.arg("export").arg(&out).args(["--format", "csv", "--table", "no_such_table"]);
    assert_usage_error(&run(c), "no_such_table");
}

#[test]
fn damaged_and_foreign_files_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    assert!(record(&good, &["--duration", "1"]).status.success());
    let bytes = std::fs::read(&good).unwrap();
    let mut files = Vec::new();
    for (name, content) in [
        ("empty.h5", Vec::new()),
        ("text.h5", b"not an HDF5 file\n".to_vec()),
        ("random.h5", (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()),
        ("head.h5", bytes[..bytes.len().min(600)].to_vec()),
        ("half.h5", bytes[..bytes.len() / 2].to_vec()),
        ("most.h5", bytes[..bytes.len() - bytes.len() / 10].to_vec()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        files.push(p);
    }
    // An HDF5 file that is not messer's: made by h5py.
    let foreign = dir.path().join("foreign.h5");
    let o = Command::new(python())
        .arg("-c")
        .arg("import h5py, numpy as np, sys; f = h5py.File(sys.argv[1], 'w'); f['messer_timeseries'] = np.arange(10); f['x'] = np.zeros((3, 3)); f.close()")
        .arg(&foreign)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    files.push(foreign);
    for f in &files {
        for args in [
            vec!["inspect"],
            vec!["export", "--format", "csv"],
            vec!["export", "--format", "json", "--table", "messer_events"],
            vec!["compare"],
            vec!["plot", "-o", "/tmp/never-written.png"],
        ] {
            let mut c = messer();
            c.args(&args[..1]).arg(f).args(&args[1..]);
            let o = run(c);
            let err = stderr(&o);
            assert!(!err.contains("panicked"), "{args:?} {}: {err}", f.display());
            assert_eq!(o.status.code(), Some(2), "{args:?} {}: {err}", f.display());
            assert_eq!(err.lines().filter(|l| l.starts_with("messer: error:")).count(), 1, "{err}");
        }
    }
}

#[test]
fn a_slow_pid_command_does_not_stall_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    // The first run finds a process at once; it lives 0.6 s; every later run
    // takes 3 s to print the next one (a fresh sleep).
    let marker = dir.path().join("found-once");
    let cmd = format!(
        "if [ -e {m} ]; then sleep 3; else touch {m}; fi; sleep 0.6 >/dev/null 2>&1 & echo $!",
        m = marker.display()
    );
    let mut c = messer();
    c.args(["--mode", "procfs", "--pid-command", &cmd, "--interval", "0.2", "--duration", "5", "-o"]).arg(&out);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = read_table(&out, "messer_timeseries", &["window_seconds", "proc_pid"]);
    let w: Vec<f64> = column(&t, "window_seconds").into_iter().flatten().collect();
    assert!(w.len() >= 22, "rows every 0.2 s for 5 s: {}", w.len());
    let longest = w.iter().copied().fold(0.0, f64::max);
    assert!(longest <= 0.3, "longest window {longest} s (the command ran on the sampling thread?)");
    let pids: Vec<f64> = column(&t, "proc_pid").into_iter().flatten().collect();
    let distinct: std::collections::BTreeSet<u64> = pids.iter().filter(|p| **p > 0.0).map(|p| *p as u64).collect();
    assert!(distinct.len() >= 2, "the next instance was followed: {pids:?}");
    assert!(pids.contains(&0.0), "rows while the command ran, without a target: {pids:?}");

    // A command that prints 1 MB (not a pid) keeps being retried, no stall.
    let out = dir.path().join("y.h5");
    let mut c = messer();
    c.args(["--mode", "procfs", "--pid-command", "head -c 1000000 /dev/zero | tr '\\0' 7", "--interval", "0.1"])
        .args(["--duration", "1.5", "-o"])
        .arg(&out);
    let t0 = Instant::now();
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());
    let t = read_table(&out, "messer_timeseries", &["window_seconds"]);
    let w: Vec<f64> = column(&t, "window_seconds").into_iter().flatten().collect();
    assert!(w.len() >= 13, "{}", w.len());
    assert!(w.iter().all(|x| *x <= 0.15), "{w:?}");
}

#[test]
fn a_recording_in_progress_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.h5");
    let pid = std::process::id().to_string();
    let o = out.display().to_string();
    let (child, log) = start_recording(&["--mode", "procfs", "--pid", &pid, "--interval", "0.02", "-o", &o]);
    std::thread::sleep(Duration::from_millis(700));
    let rows = |args: &[&str]| {
        let mut c = messer();
        c.args(&args[..1]).arg(&out).args(&args[1..]);
        let r = run(c);
        assert!(r.status.success(), "{args:?} while recording: {}", stderr(&r));
        r
    };
    // Each reader, several times while rows are being appended.
    let mut counts = Vec::new();
    for _ in 0..5 {
        let csv = rows(&["export", "--format", "csv"]);
        counts.push(String::from_utf8_lossy(&csv.stdout).lines().count() - 1);
        let inspect = rows(&["inspect"]);
        assert!(String::from_utf8_lossy(&inspect.stdout).contains("messer_timeseries"));
        let png = dir.path().join("live.png");
        rows(&["plot", "-o", png.to_str().unwrap()]);
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        // pandas (PyTables) and h5py, as the README tells users to read it.
        let py = Command::new(python())
            .arg("-c")
            .arg(
                // As the README says to read a live file: an open that met
                // a flush half done is tried again.
                "import sys, time, h5py, pandas as pd\n\
                 p = sys.argv[1]\n\
                 def retry(f):\n\
                 \x20   for i in range(5):\n\
                 \x20       try: return f()\n\
                 \x20       except Exception:\n\
                 \x20           if i == 4: raise\n\
                 \x20           time.sleep(0.04 * 2 ** i)\n\
                 df = retry(lambda: pd.read_hdf(p, 'messer_timeseries'))\n\
                 def h5():\n\
                 \x20   with h5py.File(p, 'r') as f: return len(f['messer_timeseries'])\n\
                 n = retry(h5)\n\
                 assert len(df) > 0 and n > 0, (len(df), n)\n\
                 print(len(df), n)",
            )
            .arg(&out)
            .output()
            .unwrap();
        assert!(py.status.success(), "pandas/h5py while recording: {}", stderr(&py));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(interrupt(child), Some(0), "{}", log.lock().unwrap());
    assert!(counts[0] > 0, "{counts:?}");
    assert!(counts.windows(2).all(|w| w[0] <= w[1]) && counts[4] > counts[0], "rows grow: {counts:?}");
    // The finished file is whole and has at least what was seen.
    let t = read_table(&out, "messer_timeseries", &[]);
    assert!(t["_rows"].as_u64().unwrap() as usize >= counts[4]);
}
