//! The target cgroup's own accounting (`--cgroup`), from cgroupfs, beside
//! what messer counts: CPU (cpu.stat, always there in cgroup v2), the cpu
//! controller's throttling, the memory controller's memory.current, and the
//! cgroup's pressure (PSI). Counters become window figures against the
//! previous read; a file a missing controller does not provide reads as
//! missing, and so does everything once the cgroup is removed (said once).

use std::collections::HashMap;
use std::path::PathBuf;

use super::system::parse_pressure;
use crate::base::table::Column;
use crate::probe::Measure;
use crate::probe::measure::float;

/// cpu.stat keys (µs, or periods for nr_throttled) in column order.
const CPU_KEYS: [&str; 5] = ["usage_usec", "user_usec", "system_usec", "nr_throttled", "throttled_usec"];
const PRESSURE: [&str; 3] = ["cpu", "memory", "io"];

/// Reads one cgroup's figures.
pub struct CgroupFigures {
    dir: PathBuf,
    prev: HashMap<String, u64>,
    gone: bool,
}

/// `key value` lines (cpu.stat) as a map; lines that do not parse are left out.
fn parse_flat(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k, v.trim().parse().ok()?))
        })
        .collect()
}

impl CgroupFigures {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, prev: HashMap::new(), gone: false }
    }

    pub fn columns(&self) -> Vec<Column> {
        let mut c: Vec<Column> =
            ["usage", "user", "system"].iter().map(|k| float(format!("cgroup_cpu_{k}_percent"))).collect();
        c.push(float("cgroup_cpu_throttled_rate_hz"));
        c.push(float("cgroup_cpu_throttled_percent"));
        c.push(float("cgroup_memory_current"));
        c.extend(PRESSURE.iter().map(|r| float(format!("cgroup_pressure_{r}_some_percent"))));
        c
    }

    /// The gain of counter `key` since the previous read; None on the
    /// first read or when it is not there now.
    fn gain(&mut self, key: String, now: Option<u64>) -> Option<f64> {
        let now = now?;
        self.prev.insert(key, now).map(|p| now.saturating_sub(p) as f64)
    }

    /// Reads everything (as many values as `columns`).
    pub fn read(&mut self) -> Vec<Measure> {
        let cpu = std::fs::read_to_string(self.dir.join("cpu.stat"));
        if cpu.is_err() && !self.dir.join("cgroup.procs").exists() {
            if !self.gone {
                log::warn!(
                    "cgroup {} was removed: its cgroup_* columns are missing from now on; recording goes on",
                    self.dir.display()
                );
                self.gone = true;
                self.prev.clear();
            }
            return self.columns().iter().map(|_| Measure::Missing).collect();
        }
        let cpu = cpu.unwrap_or_default();
        let stat = parse_flat(&cpu);
        let mut m = Vec::with_capacity(10);
        for (i, key) in CPU_KEYS.iter().enumerate() {
            let g = self.gain(key.to_string(), stat.get(key).copied());
            m.push(match (g, i) {
                (None, _) => Measure::Missing,
                (Some(n), 3) => Measure::PerSecond(n),
                (Some(us), _) => Measure::PercentOfWindow(us * 1e3),
            });
        }
        let memory = std::fs::read_to_string(self.dir.join("memory.current")).ok();
        m.push(match memory.and_then(|t| t.trim().parse::<u64>().ok()) {
            Some(b) => Measure::Value(b as f64),
            None => Measure::Missing,
        });
        for r in PRESSURE {
            let total = std::fs::read_to_string(self.dir.join(format!("{r}.pressure")))
                .ok()
                .and_then(|t| parse_pressure(&t).ok())
                .and_then(|p| p.get("some").map(|&(_, total)| total));
            m.push(match self.gain(format!("{r}.pressure"), total) {
                Some(us) => Measure::PercentOfWindow(us * 1e3),
                None => Measure::Missing,
            });
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_become_window_figures_and_missing_files_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("cgroup.procs"), "").unwrap();
        std::fs::write(p.join("cpu.stat"), "usage_usec 1000\nuser_usec 600\nsystem_usec 400\n").unwrap();
        std::fs::write(p.join("cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=100\n").unwrap();
        let mut f = CgroupFigures::new(p.to_path_buf());
        assert_eq!(f.columns().len(), 9);
        let first = f.read();
        assert_eq!(first.len(), 9);
        assert!(first.iter().all(|m| *m == Measure::Missing));
        std::fs::write(p.join("cpu.stat"), "usage_usec 251000\nuser_usec 150600\nsystem_usec 100400\n").unwrap();
        std::fs::write(p.join("cpu.pressure"), "some avg10=0.00 avg60=0.00 avg300=0.00 total=5100\n").unwrap();
        let m: Vec<f64> = f.read().into_iter().map(|m| m.value(500_000_000)).collect();
        assert_eq!(&m[..3], &[50.0, 30.0, 20.0]);
        assert!(m[3].is_nan() && m[4].is_nan() && m[5].is_nan(), "no cpu controller, no memory.current");
        assert!((m[6] - 1.0).abs() < 1e-9);
        assert!(m[7].is_nan() && m[8].is_nan());
        // Removed: all missing.
        std::fs::remove_dir_all(p).unwrap();
        assert!(f.read().iter().all(|m| *m == Measure::Missing));
    }
}
