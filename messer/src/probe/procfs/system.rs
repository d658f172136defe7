//! The machine around the tree: load, memory, CPU, pressure, block devices
//! and network interfaces, from /proc (and /sys/block to tell whole disks
//! from partitions). Devices and interfaces are fixed when recording starts
//! (a column per device); one that disappears reads as missing.

use std::collections::HashMap;
use std::path::PathBuf;

use super::kv;
use super::parse::ParseError;
use super::root::{KeptFiles, ProcRoot, ReadError};
use crate::base::table::Column;
use crate::probe::Measure;
use crate::probe::measure::{float, integer};

/// /proc/stat cpu fields, in order: user nice system idle iowait irq softirq steal.
const CPU_FIELDS: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];
const MEM_FIELDS: [&str; 9] =
    ["total", "available", "used", "free", "shared", "buffers", "cached", "active", "inactive"];
const PRESSURE: [&str; 3] = ["cpu", "memory", "io"];

/// Reads the system figures.
pub struct SystemProbe {
    proc: ProcRoot,
    disks: Vec<String>,
    ifaces: Vec<String>,
    /// Per resource: whether the kernel reports a "full" line.
    pressure: Vec<(&'static str, bool)>,
    prev_cpu: Option<[u64; 8]>,
    prev_disk: HashMap<String, [u64; 11]>,
    prev_net: HashMap<String, [u64; 4]>,
    prev_pressure: HashMap<String, u64>,
    kept: KeptFiles,
}

/// A column-name-safe form of a device or interface name.
fn safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn parse_err(file: &'static str, what: &str) -> ParseError {
    ParseError::new(file, what)
}

/// The cpu line of /proc/stat.
pub fn parse_cpu(text: &str) -> Result<[u64; 8], ParseError> {
    let line = text.lines().find(|l| l.starts_with("cpu ")).ok_or_else(|| parse_err("stat", "no cpu line"))?;
    let mut v = [0; 8];
    let mut it = line.split_whitespace().skip(1);
    for slot in v.iter_mut() {
        *slot = it.next().and_then(|x| x.parse().ok()).ok_or_else(|| parse_err("stat", "short cpu line"))?;
    }
    Ok(v)
}

/// /proc/diskstats: name -> the 11 classic counters (fields 4-14).
pub fn parse_diskstats(text: &str) -> Result<HashMap<String, [u64; 11]>, ParseError> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 14 {
            return Err(parse_err("diskstats", "short line"));
        }
        let mut v = [0; 11];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = f[3 + i].parse().map_err(|_| parse_err("diskstats", "not a number"))?;
        }
        out.insert(f[2].to_string(), v);
    }
    Ok(out)
}

/// /proc/net/dev: interface -> [rx bytes, rx packets, tx bytes, tx packets].
pub fn parse_net_dev(text: &str) -> Result<HashMap<String, [u64; 4]>, ParseError> {
    let mut out = HashMap::new();
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line.split_once(':').ok_or_else(|| parse_err("net/dev", "no ':'"))?;
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().map_err(|_| parse_err("net/dev", "not a number")))
            .collect::<Result<_, _>>()?;
        if f.len() < 10 {
            return Err(parse_err("net/dev", "short line"));
        }
        out.insert(name.trim().to_string(), [f[0], f[1], f[8], f[9]]);
    }
    Ok(out)
}

/// /proc/pressure/<r>: "some"/"full" -> (avg10, total µs).
pub fn parse_pressure(text: &str) -> Result<HashMap<String, (f64, u64)>, ParseError> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let kind = parts.next().ok_or_else(|| parse_err("pressure", "empty line"))?;
        let mut avg10 = None;
        let mut total = None;
        for p in parts {
            if let Some(v) = p.strip_prefix("avg10=") {
                avg10 = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("total=") {
                total = v.parse().ok();
            }
        }
        match (avg10, total) {
            (Some(a), Some(t)) => out.insert(kind.to_string(), (a, t)),
            _ => return Err(parse_err("pressure", "no avg10 or total")),
        };
    }
    Ok(out)
}

/// /proc/loadavg: the three averages.
pub fn parse_loadavg(text: &str) -> Result<[f64; 3], ParseError> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok([a, b, c]),
        _ => Err(parse_err("loadavg", "expected three numbers")),
    }
}

/// The fields of /proc/meminfo that `memory` uses.
const MEMINFO_FIELDS: [&str; 11] = [
    "MemTotal",
    "MemFree",
    "Buffers",
    "Cached",
    "SReclaimable",
    "SwapTotal",
    "SwapFree",
    "MemAvailable",
    "Shmem",
    "Active",
    "Inactive",
];

/// Memory figures in bytes, in `MEM_FIELDS` order, then swap total/used/free.
/// `used` and `cached` follow `free(1)`: cached includes SReclaimable, used is
/// total - free - buffers - cached.
pub fn memory(meminfo: &HashMap<String, u64>) -> Result<[u64; 12], ParseError> {
    let g = |k: &str| kv::get(meminfo, "meminfo", k);
    let (total, free, buffers) = (g("MemTotal")?, g("MemFree")?, g("Buffers")?);
    let cached = g("Cached")? + meminfo.get("SReclaimable").copied().unwrap_or(0);
    let used = total.saturating_sub(free + buffers + cached);
    let (swap_total, swap_free) = (g("SwapTotal")?, g("SwapFree")?);
    Ok([
        total,
        g("MemAvailable")?,
        used,
        free,
        g("Shmem")?,
        buffers,
        cached,
        g("Active")?,
        g("Inactive")?,
        swap_total,
        swap_total.saturating_sub(swap_free),
        swap_free,
    ])
}

/// Records counters `now` of device `key`; returns what each gained since
/// the previous read, or None when either read is missing.
fn gain<const N: usize>(prev: &mut HashMap<String, [u64; N]>, key: &str, now: Option<[u64; N]>) -> Option<[f64; N]> {
    let before = match now {
        Some(v) => prev.insert(key.to_string(), v),
        None => prev.remove(key),
    };
    let (n, p) = (now?, before?);
    Some(std::array::from_fn(|i| n[i].wrapping_sub(p[i]) as f64))
}

impl SystemProbe {
    /// Finds the devices, interfaces and pressure files to record. `sys`
    /// is the sysfs root (to tell whole disks from partitions).
    pub fn new(proc: ProcRoot, sys: impl Into<PathBuf>) -> Self {
        let sys = sys.into();
        let mut disks: Vec<String> = proc
            .read("diskstats")
            .ok()
            .and_then(|t| parse_diskstats(&t).ok())
            .map(|d| d.into_keys().filter(|n| sys.join("block").join(n).exists()).collect())
            .unwrap_or_default();
        disks.retain(|n| !n.starts_with("loop") && !n.starts_with("ram"));
        disks.sort();
        let mut ifaces: Vec<String> = proc
            .read("net/dev")
            .ok()
            .and_then(|t| parse_net_dev(&t).ok())
            .map(|d| d.into_keys().collect())
            .unwrap_or_default();
        ifaces.sort();
        let pressure = PRESSURE
            .iter()
            .filter_map(|r| {
                let text = proc.read(format!("pressure/{r}")).ok()?;
                let p = parse_pressure(&text).ok()?;
                Some((*r, p.contains_key("full")))
            })
            .collect();
        Self {
            proc,
            disks,
            ifaces,
            pressure,
            prev_cpu: None,
            prev_disk: HashMap::new(),
            prev_net: HashMap::new(),
            prev_pressure: HashMap::new(),
            kept: KeptFiles::default(),
        }
    }

    pub fn columns(&self) -> Vec<Column> {
        let mut c: Vec<Column> = ["1", "5", "15"].iter().map(|n| float(format!("system_loadavg{n}"))).collect();
        c.extend(MEM_FIELDS.iter().map(|f| integer(format!("system_mem_{f}"))));
        c.extend(["total", "used", "free"].iter().map(|f| integer(format!("system_swap_{f}"))));
        c.extend(CPU_FIELDS.iter().map(|f| float(format!("system_cpu_util_percent_{f}"))));
        for (r, full) in &self.pressure {
            let kinds: &[&str] = if *full { &["some", "full"] } else { &["some"] };
            for k in kinds {
                c.push(float(format!("system_pressure_{r}_{k}_avg10")));
                c.push(float(format!("system_pressure_{r}_{k}_percent")));
            }
        }
        for d in &self.disks {
            let d = safe(d);
            for f in [
                "util_percent",
                "read_latency_ms",
                "write_latency_ms",
                "read_rate_hz",
                "write_rate_hz",
                "merged_read_rate_hz",
                "merged_write_rate_hz",
                "read_throughput_mibps",
                "write_throughput_mibps",
            ] {
                c.push(float(format!("disk_{d}_{f}")));
            }
        }
        for i in &self.ifaces {
            let i = safe(i);
            for f in ["rx_throughput_mibps", "rx_packets_rate_hz", "tx_throughput_mibps", "tx_packets_rate_hz"] {
                c.push(float(format!("net_{i}_{f}")));
            }
        }
        c
    }

    /// Reads everything; counters become window figures against the
    /// previous read (missing on the first).
    pub fn read(&mut self) -> Result<Vec<Measure>, ReadError> {
        let mut m = Vec::new();
        let root = self.proc.path().to_path_buf();
        fn parsed<T>(root: &std::path::Path, rel: &str, r: Result<T, ParseError>) -> Result<T, ReadError> {
            r.map_err(|source| ReadError::Parse { path: root.join(rel), source })
        }
        let load = parsed(&root, "loadavg", parse_loadavg(&self.kept.read(&self.proc, "loadavg")?))?;
        m.extend(load.iter().map(|&v| Measure::Value(v)));
        let meminfo =
            parsed(&root, "meminfo", kv::parse("meminfo", &self.kept.read(&self.proc, "meminfo")?, &MEMINFO_FIELDS))?;
        let mem = parsed(&root, "meminfo", memory(&meminfo))?;
        m.extend(mem.iter().map(|&v| Measure::Total(v)));

        let cpu = parsed(&root, "stat", parse_cpu(&self.kept.read(&self.proc, "stat")?))?;
        match self.prev_cpu.replace(cpu) {
            Some(prev) => {
                let d: Vec<u64> = cpu.iter().zip(prev).map(|(a, b)| a.saturating_sub(b)).collect();
                let total: u64 = d.iter().sum();
                m.extend(d.iter().map(|&x| {
                    if total == 0 { Measure::Missing } else { Measure::Value(x as f64 / total as f64 * 100.0) }
                }));
            }
            None => m.extend(CPU_FIELDS.iter().map(|_| Measure::Missing)),
        }

        for (r, full) in self.pressure.clone() {
            let p = match self.kept.read(&self.proc, &format!("pressure/{r}")) {
                Ok(t) => parse_pressure(&t).ok(),
                Err(_) => None,
            };
            let kinds: &[&str] = if full { &["some", "full"] } else { &["some"] };
            for k in kinds {
                let key = format!("{r}_{k}");
                match p.as_ref().and_then(|p| p.get(*k)) {
                    Some(&(avg10, total)) => {
                        m.push(Measure::Value(avg10));
                        m.push(match self.prev_pressure.insert(key, total) {
                            Some(prev) => Measure::PercentOfWindow(total.saturating_sub(prev) as f64 * 1e3),
                            None => Measure::Missing,
                        });
                    }
                    None => m.extend([Measure::Missing, Measure::Missing]),
                }
            }
        }

        let disks =
            self.kept.read(&self.proc, "diskstats").ok().and_then(|t| parse_diskstats(&t).ok()).unwrap_or_default();
        for d in &self.disks {
            match gain(&mut self.prev_disk, d, disks.get(d).copied()) {
                Some(x) => {
                    // 0 reads 1 reads merged 2 sectors read 3 ms reading
                    // 4 writes 5 merged 6 sectors written 7 ms writing 8 in flight
                    // 9 ms doing IO 10 weighted ms
                    m.extend([
                        Measure::PercentOfWindow(x[9] * 1e6),
                        Measure::Mean { sum: x[3], count: x[0], scale: 1.0 },
                        Measure::Mean { sum: x[7], count: x[4], scale: 1.0 },
                        Measure::PerSecond(x[0]),
                        Measure::PerSecond(x[4]),
                        Measure::PerSecond(x[1]),
                        Measure::PerSecond(x[5]),
                        Measure::MibPerSecond(x[2] * 512.0),
                        Measure::MibPerSecond(x[6] * 512.0),
                    ]);
                }
                None => m.extend((0..9).map(|_| Measure::Missing)),
            }
        }

        let net = self.kept.read(&self.proc, "net/dev").ok().and_then(|t| parse_net_dev(&t).ok()).unwrap_or_default();
        for i in &self.ifaces {
            match gain(&mut self.prev_net, i, net.get(i).copied()) {
                Some(x) => m.extend([
                    Measure::MibPerSecond(x[0]),
                    Measure::PerSecond(x[1]),
                    Measure::MibPerSecond(x[2]),
                    Measure::PerSecond(x[3]),
                ]),
                None => m.extend((0..4).map(|_| Measure::Missing)),
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::proc::testutil::FakeProc;

    const MEMINFO: &str = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 600 kB\nBuffers: 50 kB\nCached: 300 kB\n\
        SReclaimable: 20 kB\nShmem: 10 kB\nActive: 400 kB\nInactive: 200 kB\nSwapTotal: 64 kB\nSwapFree: 60 kB\n";

    fn fake() -> (FakeProc, tempfile::TempDir) {
        let p = FakeProc::new();
        p.file("loadavg", "0.50 0.25 0.10 1/100 4242\n");
        p.file("meminfo", MEMINFO);
        p.file("stat", "cpu  100 0 50 800 10 0 5 0 0 0\ncpu0 100 0 50 800 10 0 5 0 0 0\n");
        p.file(
            "pressure/cpu",
            "some avg10=1.50 avg60=0.00 avg300=0.00 total=1000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
        p.file("pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
        p.file(
            "diskstats",
            "   8       0 sda 10 1 80 20 5 2 40 30 0 25 50\n   8       1 sda1 10 1 80 20 5 2 40 30 0 25 50\n",
        );
        p.file("net/dev", "Inter-|   Receive\n face |bytes packets\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n");
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(sys.path().join("block/sda")).unwrap();
        (p, sys)
    }

    #[test]
    fn columns_follow_the_machine() {
        let (p, sys) = fake();
        let s = SystemProbe::new(p.root(), sys.path());
        let names: Vec<String> = s.columns().into_iter().map(|c| c.name).collect();
        assert!(names.contains(&"disk_sda_util_percent".to_string()));
        assert!(!names.iter().any(|n| n.contains("sda1")), "partitions are not disks");
        assert!(names.contains(&"net_eth0_rx_throughput_mibps".to_string()));
        assert!(names.contains(&"system_pressure_cpu_full_percent".to_string()));
        assert!(!names.contains(&"system_pressure_io_full_avg10".to_string()));
        assert!(!names.iter().any(|n| n.contains("pressure_memory")), "no memory pressure file in the fake");
    }

    #[test]
    fn counters_become_window_figures() {
        let (p, sys) = fake();
        let mut s = SystemProbe::new(p.root(), sys.path());
        let cols = s.columns();
        let first = s.read().unwrap();
        assert_eq!(first.len(), cols.len());
        let at = |name: &str| cols.iter().position(|c| c.name == name).unwrap();
        assert_eq!(first[at("system_mem_total")], Measure::Total(1000 * 1024));
        assert_eq!(first[at("system_mem_cached")], Measure::Total(320 * 1024));
        assert_eq!(first[at("system_mem_used")], Measure::Total((1000 - 100 - 50 - 320) * 1024));
        assert_eq!(first[at("system_swap_used")], Measure::Total(4 * 1024));
        assert_eq!(first[at("system_cpu_util_percent_user")], Measure::Missing);
        p.file("stat", "cpu  150 0 100 800 10 0 5 0 0 0\n");
        p.file("diskstats", "   8       0 sda 10 1 80 20 9 2 48 34 0 35 50\n");
        p.file(
            "pressure/cpu",
            "some avg10=2.00 avg60=0.00 avg300=0.00 total=251000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        );
        let second = s.read().unwrap();
        assert_eq!(second[at("system_cpu_util_percent_user")], Measure::Value(50.0));
        assert_eq!(second[at("system_pressure_cpu_some_percent")].value(500_000_000), 50.0);
        assert!(second[at("disk_sda_read_latency_ms")].value(1).is_nan(), "no read completed: no latency");
        assert_eq!(second[at("disk_sda_write_latency_ms")].value(1), 1.0);
        assert_eq!(second[at("disk_sda_util_percent")].value(1_000_000_000), 1.0);
        assert_eq!(second[at("disk_sda_write_throughput_mibps")].value(1_000_000_000), 8.0 * 512.0 / 1048576.0);
    }

    #[test]
    fn malformed_system_files_are_errors_not_panics() {
        assert!(parse_cpu("cpu  1 2\n").is_err());
        assert!(parse_diskstats("8 0 sda 1 2\n").is_err());
        assert!(parse_net_dev("a\nb\n eth0 1 2\n").is_err());
        assert!(parse_pressure("some avg10=x\n").is_err());
        assert!(parse_loadavg("").is_err());
        assert!(memory(&HashMap::new()).is_err());
    }
}
