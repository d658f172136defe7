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

#[test]
fn prometheus_scrapes_the_cpu_counter_of_a_busy_child() {
    if !messer_tests::require_root("prometheus_scrapes_the_cpu_counter_of_a_busy_child") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = servers::free_port();
    let prom = servers::prometheus(dir.path(), &format!("127.0.0.1:{port}"));
    let out = dir.path().join("p.h5");
    let o = messer()
        .args(["--mode", "ebpf", "--interval", "0.25", "--prometheus", &port.to_string(), "-o"])
        .arg(&out)
        .arg("--")
        .args(busy_then_idle("3", "3"))
        .output()
        .unwrap();
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
    assert!(cpu.iter().all(|r| r["metric"]["target"] == "sh -c ".to_string() + &busy_then_idle("3", "3")[2]));
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
}

#[test]
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
