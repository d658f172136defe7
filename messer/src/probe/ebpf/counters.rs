//! Window deltas from the epoch-halved per-CPU counters.
//!
//! Read k flushes every CPU into epoch k; the half of parity (k-1) then
//! holds, frozen, everything of the epochs of that parity up to k-1. The
//! same half read two reads ago held everything up to epoch k-3 of that
//! parity, so their difference is exactly epoch k-1: the window that ended
//! at the flush of read k. Nothing of epoch k (still running) is involved,
//! however long the read takes.

use crate::base::hash::FastMap as HashMap;

use messer_common::{Counters, io};

/// Field-wise sum of two counter sets.
pub fn add(a: &Counters, b: &Counters) -> Counters {
    let mut out = *a;
    out.on_cpu_ns = out.on_cpu_ns.wrapping_add(b.on_cpu_ns);
    out.runq_wait_ns += b.runq_wait_ns;
    out.runq_waits += b.runq_waits;
    out.switches_voluntary += b.switches_voluntary;
    out.switches_involuntary += b.switches_involuntary;
    out.user_ns += b.user_ns;
    out.system_ns += b.system_ns;
    out.faults_minor += b.faults_minor;
    out.faults_major += b.faults_major;
    for i in 0..io::COUNT {
        out.io_calls[i] += b.io_calls[i];
        out.io_bytes[i] += b.io_bytes[i];
    }
    out
}

/// Field-wise `a - b`, or None if any count went backwards. On-CPU time is
/// two's complement (it carries signed corrections, see `Counters`): its
/// difference wraps, to be read as an i64.
pub fn sub(a: &Counters, b: &Counters) -> Option<Counters> {
    let mut out = Counters {
        on_cpu_ns: a.on_cpu_ns.wrapping_sub(b.on_cpu_ns),
        runq_wait_ns: a.runq_wait_ns.checked_sub(b.runq_wait_ns)?,
        runq_waits: a.runq_waits.checked_sub(b.runq_waits)?,
        switches_voluntary: a.switches_voluntary.checked_sub(b.switches_voluntary)?,
        switches_involuntary: a.switches_involuntary.checked_sub(b.switches_involuntary)?,
        user_ns: a.user_ns.checked_sub(b.user_ns)?,
        system_ns: a.system_ns.checked_sub(b.system_ns)?,
        faults_minor: a.faults_minor.checked_sub(b.faults_minor)?,
        faults_major: a.faults_major.checked_sub(b.faults_major)?,
        ..Counters::default()
    };
    for i in 0..io::COUNT {
        out.io_calls[i] = a.io_calls[i].checked_sub(b.io_calls[i])?;
        out.io_bytes[i] = a.io_bytes[i].checked_sub(b.io_bytes[i])?;
    }
    Some(out)
}

/// The frozen-half values of the last two reads, per process.
#[derive(Debug, Default)]
pub struct EpochDeltas {
    history: HashMap<u32, [Counters; 2]>,
}

impl EpochDeltas {
    /// Records `frozen`, the frozen half of `tgid` summed over CPUs at this
    /// read; returns what the process gained in the window.
    pub fn observe(&mut self, tgid: u32, frozen: Counters) -> Counters {
        let h = self.history.entry(tgid).or_default();
        // A half that went backwards was recreated for a new process that
        // reused the pid: everything in it is new.
        let delta = sub(&frozen, &h[0]).unwrap_or(frozen);
        *h = [h[1], frozen];
        delta
    }

    /// Forgets a process whose final counters have been read.
    pub fn forget(&mut self, tgid: u32) {
        self.history.remove(&tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(ns: u64) -> Counters {
        Counters { on_cpu_ns: ns, ..Counters::default() }
    }

    #[test]
    fn deltas_alternate_between_halves() {
        // Epoch contents e0..e4 = 5, 7, 11, 13, 17 ns. Read k sees the half
        // of parity k-1: read 1 -> e0, read 2 -> e1, read 3 -> e0+e2, ...
        let mut d = EpochDeltas::default();
        assert_eq!(d.observe(1, cpu(5)).on_cpu_ns, 5);
        assert_eq!(d.observe(1, cpu(7)).on_cpu_ns, 7);
        assert_eq!(d.observe(1, cpu(5 + 11)).on_cpu_ns, 11);
        assert_eq!(d.observe(1, cpu(7 + 13)).on_cpu_ns, 13);
        assert_eq!(d.observe(1, cpu(5 + 11 + 17)).on_cpu_ns, 17);
    }

    #[test]
    fn a_late_add_to_a_frozen_half_is_counted_two_reads_later() {
        let mut d = EpochDeltas::default();
        d.observe(1, cpu(10));
        d.observe(1, cpu(10));
        // 3 ns landed in the first half after read 1 took it: read 3 sees it.
        assert_eq!(d.observe(1, cpu(10 + 3 + 4)).on_cpu_ns, 7);
    }

    #[test]
    fn a_recreated_entry_counts_whole() {
        let mut d = EpochDeltas::default();
        let c = |n| Counters { switches_voluntary: n, ..cpu(100 * n) };
        d.observe(1, c(100));
        d.observe(1, c(100));
        let fresh = d.observe(1, c(4));
        assert_eq!((fresh.switches_voluntary, fresh.on_cpu_ns), (4, 400));
    }

    #[test]
    fn a_negative_settlement_is_a_negative_window() {
        let mut d = EpochDeltas::default();
        d.observe(1, cpu(1000));
        d.observe(1, cpu(0));
        let back = d.observe(1, cpu(1000u64.wrapping_sub(3)));
        assert_eq!(back.on_cpu_ns as i64, -3);
    }

    #[test]
    fn sums_and_differences_cover_every_field() {
        let mut a = Counters { runq_waits: 2, switches_voluntary: 3, ..cpu(1) };
        a.io_bytes[io::SEND] = 9;
        let b = add(&a, &a);
        assert_eq!(b.io_bytes[io::SEND], 18);
        assert_eq!(sub(&b, &a), Some(a));
        assert_eq!(sub(&a, &b), None);
    }
}
