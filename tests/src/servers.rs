//! Real Prometheus and InfluxDB servers (Debian's packages), started on
//! loopback ports in a temporary directory and stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `url`: (status, body); status 0 if the server did not answer.
pub fn get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

fn wait_ready(url: &str, ok: u16, what: &str, child: &mut Child) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if get(url).0 == ok {
            return;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("{what} exited at start: {s}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not become ready at {url}");
}

/// Prometheus scraping `target` (host:port) every second.
pub fn prometheus(dir: &Path, target: &str) -> Server {
    let port = free_port();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: messer\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus (installed by `cargo xtask setup`)");
    wait_ready(&format!("http://127.0.0.1:{port}/-/ready"), 200, "prometheus", &mut child);
    Server { child, port }
}

/// InfluxDB 1.x with its data in `dir` and database `db` created.
pub fn influxdb(dir: &Path, db: &str) -> Server {
    let port = free_port();
    let rpc = free_port();
    let d = dir.display();
    let cfg = dir.join("influxdb.conf");
    std::fs::write(
        &cfg,
        format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  enabled = true\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n"
        ),
    )
    .unwrap();
    let mut child = Command::new("influxd")
        .arg("-config")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start influxd (installed by `cargo xtask setup`)");
    wait_ready(&format!("http://127.0.0.1:{port}/ping"), 204, "influxd", &mut child);
    let r = ureq::post(&format!("http://127.0.0.1:{port}/query")).send_form(&[("q", &format!("CREATE DATABASE {db}"))]);
    assert!(r.is_ok(), "create database: {r:?}");
    Server { child, port }
}

/// An InfluxQL query's first series as (columns, values).
pub fn influx_query(port: u16, db: &str, q: &str) -> (Vec<String>, Vec<Vec<serde_json::Value>>) {
    let url = format!("http://127.0.0.1:{port}/query?db={db}&epoch=ns&q={}", q.replace(' ', "%20").replace('"', "%22"));
    let (status, body) = get(&url);
    assert_eq!(status, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let s = &v["results"][0]["series"][0];
    let cols = s["columns"].as_array().map(|a| a.iter().map(|c| c.as_str().unwrap_or("").to_string()).collect());
    let vals = s["values"].as_array().map(|a| a.iter().map(|r| r.as_array().cloned().unwrap_or_default()).collect());
    (cols.unwrap_or_default(), vals.unwrap_or_default())
}
