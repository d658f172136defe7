//! Constants of the running system that turn /proc's units into ours.

use super::root::ProcRoot;
use crate::probe::{CpuWindow, ProcessWindow};

/// Boot time, clock ticks per second and page size.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Boot time in seconds since the epoch (from the clocks; `btime` of a
    /// /proc/stat for another root); NaN if unknown.
    pub boot_unixtime: f64,
    pub ticks_per_second: f64,
    pub page_size: u64,
}

/// `btime` of /proc/stat.
pub fn parse_btime(text: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

impl Host {
    pub fn new(proc: &ProcRoot) -> Self {
        // SAFETY: sysconf has no preconditions.
        let (page, hz) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
        Self {
            // From the clocks, unless reading a /proc other than this system's.
            boot_unixtime: if proc.is_live() {
                crate::base::clock::boot_unix_ns() as f64 / 1e9
            } else {
                proc.read("stat").ok().and_then(|t| parse_btime(&t)).unwrap_or(f64::NAN)
            },
            ticks_per_second: if hz > 0 { hz as f64 } else { 100.0 },
            page_size: u64::try_from(page).unwrap_or(4096),
        }
    }

    /// A process's start in seconds since the epoch.
    pub fn start_unixtime(&self, stat: &super::parse::Stat) -> f64 {
        self.boot_unixtime + stat.starttime as f64 / self.ticks_per_second
    }

    /// A process's window from its stat and what was measured for it:
    /// read/write bytes, minor/major page faults.
    pub fn window(
        &self,
        stat: &super::parse::Stat,
        cpu: CpuWindow,
        rw: Option<(u64, u64)>,
        faults: Option<(u64, u64)>,
    ) -> ProcessWindow {
        ProcessWindow {
            pid: stat.pid,
            ppid: stat.ppid,
            start_unixtime: self.start_unixtime(stat),
            comm: stat.comm.clone(),
            cpu,
            rss_bytes: (stat.rss_pages * self.page_size) as f64,
            num_threads: stat.num_threads as f64,
            read_bytes: rw.map_or(f64::NAN, |(r, _)| r as f64),
            write_bytes: rw.map_or(f64::NAN, |(_, w)| w as f64),
            faults_minor: faults.map_or(f64::NAN, |(m, _)| m as f64),
            faults_major: faults.map_or(f64::NAN, |(_, m)| m as f64),
            extras: crate::probe::ProcessExtras::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_time_from_proc_stat() {
        assert_eq!(parse_btime("cpu 1 2\nbtime 1700000000\nprocesses 5\n"), Some(1.7e9));
        assert_eq!(parse_btime("cpu 1 2\n"), None);
    }
}
