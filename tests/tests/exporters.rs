//! Exporters against real servers on loopback: Prometheus scraping messer,
//! InfluxDB receiving its writes; values checked end to end.

use std::time::Duration;

use messer_tests::servers::{self, get, influx_query};
use messer_tests::{column, messer, read_table, workload_bin};

/// The busy workload's own truth from messer's passed-through stdout.
fn truth_cpu_s(stdout: &[u8]) -> f64 {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().find(|l| l.starts_with('{')).expect("the workload's JSON line");
    messer_tests::reported_cpu_s(line.as_bytes())
}

/// `sh -c "busy for S seconds; sleep T"`: messer keeps serving after the work.
fn busy_then_idle(busy_s: &str, idle_s: &str) -> Vec<String> {
    let w = workload_bin();
    vec![
        "sh".into(),
        "-c".into(),
        format!("{} busy --threads 1 --duty 1 --seconds {busy_s}; sleep {idle_s}", w.display()),
    ]
}

/// The same once a line comes through FIFO `go` (the test writes it when
/// Prometheus has scraped messer: per-process series live only while their
/// process does, and a scraper's first scrape comes a while after it
/// starts). The shell waits blocked, using no CPU.
fn when_told(go: &std::path::Path, busy_s: &str, idle_s: &str) -> Vec<String> {
    let path = std::ffi::CString::new(go.display().to_string()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path in the test's directory.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let mut c = busy_then_idle(busy_s, idle_s);
    c[2] = format!("read _ < {}; {}", go.display(), c[2]);
    c
}

#[test]
#[ignore = "needs root"]
fn prometheus_scrapes_the_cpu_counter_of_a_busy_child() {
    if !messer_tests::require_root("prometheus_scrapes_the_cpu_counter_of_a_busy_child") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let prom = servers::prometheus(dir.path(), &format!("127.0.0.1:{port}"));
    let out = dir.path().join("p.h5");
    let go = dir.path().join("go");
    let command = when_told(&go, "3", "3");
    let child = messer()
        .args(["--mode", "ebpf", "--interval", "0.25", "--prometheus", &port.to_string(), "--prometheus-per-process"])
        .arg("-o")
        .arg(&out)
        .arg("--")
        .args(&command)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !get(&format!("http://127.0.0.1:{}/api/v1/query?query=messer_samples_total", prom.port))
        .1
        .contains("messer_samples_total")
    {
        assert!(t0.elapsed() < Duration::from_secs(60), "Prometheus never scraped messer");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&go, "\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth = truth_cpu_s(&o.stdout);
    let q = |expr: &str| {
        let (status, body) = get(&format!("http://127.0.0.1:{}/api/v1/query?query={expr}", prom.port));
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    };
    let cpu = q("max_over_time(messer_process_cpu_seconds_total[2m])");
    let modes: Vec<&str> = cpu.iter().filter_map(|r| r["metric"]["mode"].as_str()).collect();
    assert!(modes.contains(&"user") && modes.contains(&"system"), "{cpu:?}");
    assert!(cpu.iter().all(|r| r["metric"]["target"] == "sh -c ".to_string() + &command[2]));
    assert!(cpu.iter().all(|r| r["metric"]["comm"] == "sh" && r["metric"]["messer_mode"] == "ebpf"), "{cpu:?}");
    let total: f64 = cpu.iter().map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap()).sum();
    let unsplit = q("max_over_time(messer_process_cpu_unsplit_seconds_total[2m])");
    let unsplit: f64 = unsplit.iter().map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap()).sum();
    println!(
        "Prometheus: messer_process_cpu_seconds_total {total:.3} s (+{unsplit:.3} unsplit), the workload reported {truth:.3} s"
    );
    // The tree is the shell and the workload; the shell's own CPU is small.
    let got = total + unsplit;
    assert!(got >= 0.99 * truth && got <= 1.01 * truth + 0.02, "{total} + {unsplit} against {truth}");
    let rss = q("max_over_time(messer_process_resident_memory_bytes[2m])");
    assert!(
        rss.first().is_some_and(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap() > 100_000.0),
        "{rss:?}"
    );
    let threads = q("max_over_time(messer_process_threads[2m])");
    assert!(!threads.is_empty());
    // Per-process series, named by their own process label.
    let per = q("max_over_time(messer_tree_process_cpu_seconds_total[2m])");
    let busy: f64 = per
        .iter()
        .filter(|r| r["metric"]["process"] == "messer-workload")
        .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    println!("Prometheus: per-process series {}, the workload's {busy:.3} s", per.len());
    assert!(per.len() >= 2, "the shell and the workload: {per:?}");
    // Its series ends with the process: what it used after the last
    // scrape (Prometheus scrapes every second here) is not in Prometheus.
    assert!(busy >= truth - 1.3 && busy <= 1.01 * truth, "{busy} against {truth}: {per:?}");
}

#[test]
#[ignore = "needs root"]
fn influxdb_receives_every_sample_and_the_process_summaries() {
    if !messer_tests::require_root("influxdb_receives_every_sample_and_the_process_summaries") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = "messer";
    let influx = servers::influxdb(dir.path(), db);
    let out = dir.path().join("i.h5");
    let o = messer()
        .args(["--mode", "ebpf", "--interval", "0.2", "-o"])
        .arg(&out)
        .args(["--influx", &format!("http://127.0.0.1:{}", influx.port), "--influx-db", db, "--"])
        .args(busy_then_idle("1.5", "0.5"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let truth = truth_cpu_s(&o.stdout);
    // Writes are asynchronous but flushed at the end; the server indexes at once.
    std::thread::sleep(Duration::from_millis(200));
    let (cols, rows) = influx_query(influx.port, db, "SELECT proc_cpu_util_percent_total, window_seconds FROM messer");
    let file = read_table(&out, "messer_timeseries", &["proc_cpu_util_percent_total", "window_seconds"]);
    let file_cpu = column(&file, "proc_cpu_util_percent_total");
    assert_eq!(rows.len(), file_cpu.len(), "one point per row: {cols:?}");
    let idx = cols.iter().position(|c| c == "proc_cpu_util_percent_total").unwrap();
    for (r, f) in rows.iter().zip(&file_cpu) {
        assert_eq!(r[idx].as_f64(), *f, "InfluxDB holds the file's values (missing stays missing)");
    }
    let (scols, srows) =
        influx_query(influx.port, db, "SELECT * FROM messer_process_summary WHERE program = 'messer-workload'");
    assert_eq!(srows.len(), 1, "one summary for the workload: {scols:?} {srows:?}");
    let at =
        |n: &str| srows[0][scols.iter().position(|c| c == n).unwrap_or_else(|| panic!("no {n} in {scols:?}"))].clone();
    let cpu_s = at("cpu_seconds").as_f64().unwrap();
    println!(
        "InfluxDB: summary cpu_seconds {cpu_s:.3} s, credits {}, the workload reported {truth:.3} s",
        at("cpu_credits")
    );
    assert!((cpu_s - truth).abs() < 0.01 * truth, "{cpu_s} against {truth}");
    assert!((at("cpu_credits").as_f64().unwrap() - cpu_s / 60.0).abs() < 1e-9);
    assert_eq!(at("user"), serde_json::Value::from("root"));
}

#[test]
fn influx_down_is_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.h5");
    let port = servers::free_port();
    let o = messer()
        .args(["--mode", "procfs", "--interval", "0.1", "--duration", "1", "--pid", "1", "-o"])
        .arg(&out)
        .args(["--influx", &format!("http://127.0.0.1:{port}"), "--influx-db", "x"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("InfluxDB write failed"), "{err}");
    let rows = column(&read_table(&out, "messer_timeseries", &["window_seconds"]), "window_seconds").len();
    assert!(rows >= 9, "sampling went on: {rows} rows");
}

/// `promtool check metrics` (Debian's prometheus package) on the endpoint's
/// exposition, for every mode with and without per-process series: a scrape
/// that Prometheus would reject is a bug.
#[test]
#[ignore = "needs root"]
fn promtool_accepts_the_exposition_of_every_option() {
    if !messer_tests::require_root("promtool_accepts_the_exposition_of_every_option") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for mode in ["ebpf", "procfs", "both"] {
        for per_process in [false, true] {
            let port = servers::free_port();
            let out = dir.path().join(format!("{mode}-{per_process}.h5"));
            let mut c = messer();
            // At 0.5 s every row has every figure (at shorter intervals the
            // thread states are counted about twice a second: README).
            c.args(["--mode", mode, "--interval", "0.5", "--io-syscalls", "--prometheus", &port.to_string(), "-o"])
                .arg(&out)
                .args(["--force", "--duration", "2.5"]);
            if per_process {
                c.arg("--prometheus-per-process");
            }
            let w = workload_bin().display().to_string();
            let mut child = c
                .args(["--", &w, "pingpong", "--pairs", "1", "--seconds", "5"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(1800));
            let (status, body) = get(&format!("http://127.0.0.1:{port}/metrics"));
            let _ = child.wait();
            assert_eq!(status, 200, "{mode} per-process {per_process}: {body}");
            assert!(body.contains("messer_process_page_faults_total"), "{body}");
            assert!(body.contains("messer_process_threads_by_state"), "{body}");
            assert_eq!(body.contains("messer_tree_process_cpu_seconds_total{"), per_process, "{body}");
            let mut check = std::process::Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("promtool (package prometheus, installed by `cargo xtask setup`)");
            use std::io::Write as _;
            check.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
            let r = check.wait_with_output().unwrap();
            let said = String::from_utf8_lossy(&r.stdout).to_string() + &String::from_utf8_lossy(&r.stderr);
            assert!(
                r.status.success() && said.trim().is_empty(),
                "{mode} per-process {per_process}: promtool: {said}\n{body}"
            );
        }
    }
}
