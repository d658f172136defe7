//! Real Prometheus and InfluxDB servers (Debian's packages), started on
//! loopback ports in a temporary directory and stopped when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sends `signal` to our child and waits up to 10 s for it to end, then
/// kills it.
fn stop(child: &mut Child, signal: i32) {
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

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

/// A cgroup v2 child made by a test (under the unified hierarchy), removed
/// on drop once its processes are gone: its `cpu.stat` usage_usec is the
/// exact CPU truth of what runs in it.
pub struct Cgroup {
    pub path: std::path::PathBuf,
}

impl Cgroup {
    /// A new cgroup named `name` (made unique) under the cgroup2 mount:
    /// /sys/fs/cgroup/unified on a host with v1 beside it, else /sys/fs/cgroup.
    pub fn new(name: &str) -> Cgroup {
        let base = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.controllers").exists())
            .expect("a cgroup v2 hierarchy (/sys/fs/cgroup/unified or /sys/fs/cgroup)");
        let path = base.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Cgroup { path }
    }

    /// CPU used by everything that ran in it, µs (cpu.stat usage_usec).
    pub fn usage_usec(&self) -> u64 {
        let text = std::fs::read_to_string(self.path.join("cpu.stat")).expect("cpu.stat");
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
            .expect("usage_usec in cpu.stat")
    }

    /// Pids in it now.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Whatever is left is killed; the directory goes once it is empty.
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        for pid in self.pids() {
            // SAFETY: kill(2) of processes this test started in its cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let t0 = Instant::now();
        while std::fs::remove_dir(&self.path).is_err() && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A throwaway PostgreSQL cluster from Debian's packages: initdb in `dir`,
/// the server listening only on a unix socket in `dir` (no TCP), run as the
/// `postgres` user inside `cgroup`. Stopped (fast shutdown) on drop.
pub struct Postgres {
    child: Child,
    pub socket_dir: std::path::PathBuf,
    pub port: u16,
    bin: std::path::PathBuf,
}

/// The newest installed PostgreSQL's bin directory.
fn postgres_bin() -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql (package postgresql, installed by `cargo xtask setup`)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL server in /usr/lib/postgresql/*/bin")
}

impl Postgres {
    pub fn start(dir: &Path, cgroup: &Cgroup) -> Postgres {
        let bin = postgres_bin();
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir).status().expect("chown");
        assert!(chown.success());
        let as_postgres = |program: &Path| {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]).arg(program);
            c
        };
        let out = as_postgres(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        // The shell joins the cgroup and becomes the server: every process
        // of the server is in the cgroup from its start.
        let server = format!(
            "echo $$ > {procs} && exec setpriv --reuid=postgres --regid=postgres --init-groups {postgres} -D {data} \
             -k {sock} -p {port} -c listen_addresses= -c fsync=off -c max_connections=50",
            procs = cgroup.path.join("cgroup.procs").display(),
            postgres = bin.join("postgres").display(),
            data = data.display(),
            sock = dir.display(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(server)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.log")).expect("log"))
            .spawn()
            .expect("start postgres");
        let pg = Postgres { child, socket_dir: dir.to_path_buf(), port, bin };
        let t0 = Instant::now();
        loop {
            let ready = Command::new(pg.bin.join("pg_isready"))
                .args(["-q", "-h"])
                .arg(&pg.socket_dir)
                .args(["-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// `pgbench` against this server with `args`; panics if it fails.
    pub fn pgbench(&self, args: &[&str]) -> String {
        let out = Command::new(self.bin.join("pgbench"))
            .args(["-h"])
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .output()
            .expect("pgbench");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pgbench {args:?}: {text}");
        text
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (the postmaster ends its backends).
        stop(&mut self.child, libc::SIGINT);
    }
}

/// Debian's nginx serving `dir/www` on a loopback port with a master and
/// `workers` worker processes: keep-alive connections kept open (many
/// thousands allowed), no sendfile (static files go out through
/// read/writev, the syscalls --io-syscalls counts), and an access log of
/// each reply's bytes sent and request length (`dir/access.log`: the
/// truth of what went over the sockets). Stopped (SIGTERM, then SIGKILL)
/// on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

impl Nginx {
    pub fn start(dir: &Path, workers: u32) -> Nginx {
        let port = free_port();
        let www = dir.join("www");
        std::fs::create_dir_all(&www).expect("www dir");
        // A 64 KiB page.
        std::fs::write(www.join("page"), vec![b'x'; 65536]).expect("page");
        let d = dir.display();
        let conf = format!(
            "worker_processes {workers};\nworker_rlimit_nofile 20000;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n  log_format bytes '$bytes_sent $request_length';\n  access_log {d}/access.log bytes;\n\
             sendfile off;\n  keepalive_timeout 120s;\n  keepalive_requests 10000000;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n",
            www = www.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).expect("log"))
            .spawn()
            .expect("start nginx (package nginx-light, installed by `cargo xtask setup`)");
        wait_ready(&format!("http://127.0.0.1:{port}/page"), 200, "nginx", &mut child);
        Nginx { child, port, dir: dir.to_path_buf() }
    }

    /// The master's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// (Σ bytes sent, Σ request length, requests) in the access log.
    pub fn logged(&self) -> (u64, u64, u64) {
        let text = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let mut out = (0, 0, 0);
        for l in text.lines() {
            let mut f = l.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
            out.0 += f.next().unwrap_or(0);
            out.1 += f.next().unwrap_or(0);
            out.2 += 1;
        }
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown.
        stop(&mut self.child, libc::SIGTERM);
    }
}

/// Established TCP connections whose local port is `port`, now (ss).
pub fn established_on(port: u16) -> usize {
    let out = Command::new("ss")
        .args(["-Htn", "state", "established", &format!("( sport = :{port} )")])
        .output()
        .expect("ss (package iproute2)");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.trim().is_empty()).count()
}
