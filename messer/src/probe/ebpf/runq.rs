//! The tree's run-queue latency distribution (`--runq-latency`). At a
//! tracked thread's switch-out (or a flush that finds it running) the
//! kernel side has the gain of its `sched_info.run_delay` and `pcount`
//! since it last looked: when `pcount` gained one, that gain is the one
//! wait that ended at this stint's switch-in, and it goes into its bucket
//! (8 per octave, at most 12.5 % wide) in this CPU's epoch parity, as the
//! counters do. After a flush the closing epoch's parity is still: its
//! counts, less those seen the last time that parity was read, are the
//! window's waits.

use aya::Ebpf;
use aya::maps::{MapData, PerCpuArray};
use messer_common::{RUNQ_BUCKETS, RunqHist, runq_bucket_bounds};

use super::EbpfError;
use crate::base::table::Column;
use crate::probe::Measure;
use crate::probe::measure::float;

/// Reads the kernel side's histogram.
pub struct RunqLatency {
    map: PerCpuArray<MapData, RunqHist>,
    /// Per parity: the counts summed over CPUs at its last reading.
    prev: [Vec<u64>; 2],
    prev_unresolved: [u64; 2],
}

/// One window's waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunqWindow {
    /// (lower ns, upper ns, waits) of every bucket that has any.
    pub buckets: Vec<(u64, u64, u64)>,
    /// The longest wait; None without waits.
    pub max_ns: Option<u64>,
    /// Waits not told apart (several between two readings of a thread).
    pub unresolved: u64,
}

/// Percentiles given, in column order.
const QUANTILES: [(&str, f64); 3] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)];

impl RunqLatency {
    pub fn take(bpf: &mut Ebpf) -> Result<Self, EbpfError> {
        let map = bpf.take_map("RUNQ_HIST").ok_or_else(|| EbpfError::Map("no map RUNQ_HIST".into()))?;
        Ok(Self {
            map: PerCpuArray::try_from(map).map_err(EbpfError::map)?,
            prev: [vec![0; RUNQ_BUCKETS], vec![0; RUNQ_BUCKETS]],
            prev_unresolved: [0; 2],
        })
    }

    pub fn columns() -> Vec<Column> {
        let mut c: Vec<Column> = QUANTILES.iter().map(|(q, _)| float(format!("proc_runq_latency_{q}_us"))).collect();
        c.push(float("proc_runq_latency_max_us"));
        c.push(float("proc_runq_waits_unresolved"));
        c
    }

    /// The waits of epoch `closing`, which the flush just ended.
    pub fn read(&mut self, closing: u64) -> Result<RunqWindow, EbpfError> {
        let p = (closing & 1) as usize;
        let per_cpu = self.map.get(&0, 0).map_err(EbpfError::map)?;
        let mut now = vec![0u64; RUNQ_BUCKETS];
        let mut unresolved = 0;
        let mut max_ns = None;
        for h in per_cpu.iter() {
            for (n, c) in now.iter_mut().zip(h.count[p].iter()) {
                *n += c;
            }
            unresolved += h.unresolved[p];
            if h.max_epoch[p] == closing {
                max_ns = max_ns.max(Some(h.max_ns[p]));
            }
        }
        let buckets: Vec<(u64, u64, u64)> = now
            .iter()
            .zip(&self.prev[p])
            .enumerate()
            .filter_map(|(i, (n, before))| {
                let d = n.saturating_sub(*before);
                (d > 0).then(|| {
                    let (lo, hi) = runq_bucket_bounds(i);
                    (lo, hi, d)
                })
            })
            .collect();
        let unresolved_gain = unresolved.saturating_sub(self.prev_unresolved[p]);
        self.prev[p] = now;
        self.prev_unresolved[p] = unresolved;
        let max_ns = if buckets.is_empty() { None } else { max_ns };
        Ok(RunqWindow { buckets, max_ns, unresolved: unresolved_gain })
    }
}

impl RunqWindow {
    /// The `q` quantile in ns: the upper edge of the bucket that holds
    /// that rank, or the longest wait if that is shorter (the true value is
    /// at most either); None without waits.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().map(|b| b.2).sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for &(_, hi, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(self.max_ns.map_or(hi, |m| m.min(hi)));
            }
        }
        self.max_ns
    }

    /// Values for `RunqLatency::columns`.
    pub fn measures(&self) -> Vec<Measure> {
        let us = |ns: Option<u64>| ns.map_or(Measure::Missing, |v| Measure::Value(v as f64 / 1e3));
        let mut m: Vec<Measure> = QUANTILES.iter().map(|&(_, q)| us(self.quantile_ns(q))).collect();
        m.push(us(self.max_ns));
        m.push(Measure::Value(self.unresolved as f64));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_and_never_exceed_the_longest_wait() {
        let w = RunqWindow {
            buckets: vec![(1000, 1125, 50), (8000, 9000, 49), (64000, 72000, 1)],
            max_ns: Some(65000),
            unresolved: 0,
        };
        assert_eq!(w.quantile_ns(0.5), Some(1125));
        assert_eq!(w.quantile_ns(0.9), Some(9000));
        assert_eq!(w.quantile_ns(0.99), Some(9000));
        assert_eq!(w.quantile_ns(1.0), Some(65000));
        let m = w.measures();
        assert_eq!(m[3], Measure::Value(65.0));
        assert_eq!(RunqWindow::default().quantile_ns(0.5), None);
        assert_eq!(RunqWindow::default().measures()[0], Measure::Missing);
    }
}
