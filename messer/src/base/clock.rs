//! Clocks: CLOCK_MONOTONIC for windows and deadlines (the clock BPF's
//! `bpf_ktime_get_ns` uses), the wall clock for the file's time columns.

/// CLOCK_MONOTONIC in nanoseconds.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// CPU nanoseconds this process (all its threads) has used.
pub fn own_cpu_ns() -> u64 {
    read(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU nanoseconds the calling thread has used, in user and kernel mode
/// (a BPF iterator's read counts here): what a costly read takes of a core,
/// where its wall time would also count what other threads ran meanwhile
/// and what a hypervisor stole.
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CLOCK_REALTIME in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

/// When the system booted, in ns since the epoch: CLOCK_REALTIME minus
/// CLOCK_BOOTTIME (the clock process start times count in), to the
/// microsecond rather than /proc/stat's whole seconds. Read once per run:
/// the difference moves by microseconds between two reads (and by NTP's
/// slewing over days), and a process's start time, computed from it, is its
/// identity with its pid, the same in every row.
pub fn boot_unix_ns() -> u64 {
    static BOOT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| {
        let (b, r) = (read(libc::CLOCK_BOOTTIME), realtime_ns());
        r.saturating_sub(b)
    })
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime with a valid clock id and out pointer; it cannot
    // fail for these clocks.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The wall-clock time of a past monotonic instant `mono_ns`, in ns since
/// the epoch (both clocks are read together now, then stepped back).
pub fn wall_of(mono_ns: u64) -> u64 {
    let (m, r) = (monotonic_ns(), realtime_ns());
    r.saturating_sub(m.saturating_sub(mono_ns))
}

/// Local time of `unix_ns` as `YYYY-MM-DDTHH:MM:SS.ffffff` (26 characters),
/// the original Messer's `isotime_local`. The zone's offset is looked up
/// once per minute of UTC (chrono's `Local` consults the zone file; a zone
/// changes its offset on whole minutes), the text formatted by hand.
pub fn isotime_local(unix_ns: u64) -> String {
    use chrono::{Datelike as _, Offset as _, TimeZone as _, Timelike as _};
    use std::fmt::Write as _;
    thread_local! {
        /// (UTC minute, the zone's offset from UTC in seconds then).
        static OFFSET: std::cell::Cell<(i64, i64)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    let secs = (unix_ns / 1_000_000_000) as i64;
    let nanos = (unix_ns % 1_000_000_000) as u32;
    let minute = secs.div_euclid(60);
    let offset = OFFSET.with(|c| {
        let (m, o) = c.get();
        if m == minute {
            return Some(o);
        }
        let utc = chrono::DateTime::from_timestamp(secs, 0)?.naive_utc();
        let o = i64::from(chrono::Local.offset_from_utc_datetime(&utc).fix().local_minus_utc());
        c.set((minute, o));
        Some(o)
    });
    let Some(t) = offset.and_then(|o| chrono::DateTime::from_timestamp(secs.checked_add(o)?, nanos)) else {
        return String::new();
    };
    let mut s = String::with_capacity(26);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        nanos / 1000
    );
    s
}

/// Absolute deadlines `start + k * interval`: lateness never accumulates.
#[derive(Debug, Clone)]
pub struct Deadlines {
    start_ns: u64,
    interval_ns: u64,
    k: u64,
}

impl Deadlines {
    pub fn new(start_ns: u64, interval_ns: u64) -> Self {
        Self { start_ns, interval_ns: interval_ns.max(1), k: 0 }
    }

    /// The next deadline after `now_ns`. Deadlines already missed are skipped
    /// (returned in the second value), so a stall never causes a burst.
    pub fn next(&mut self, now_ns: u64) -> (u64, u64) {
        self.k += 1;
        let mut skipped = 0;
        let due = self.start_ns + self.k * self.interval_ns;
        if due <= now_ns {
            let k_now = (now_ns - self.start_ns) / self.interval_ns + 1;
            skipped = k_now - self.k;
            self.k = k_now;
        }
        (self.start_ns + self.k * self.interval_ns, skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_do_not_drift_and_skip_missed_ones() {
        let mut d = Deadlines::new(1000, 100);
        assert_eq!(d.next(1000), (1100, 0));
        assert_eq!(d.next(1150), (1200, 0));
        // Stalled until 1490: 1300 and 1400 are missed.
        assert_eq!(d.next(1490), (1500, 2));
        assert_eq!(d.next(1500), (1600, 0));
    }

    #[test]
    fn isotime_is_chronos_local_format() {
        use chrono::TimeZone as _;
        for ns in
            [1_700_000_000_123_456_789u64, 1_711_846_799_999_999_999, 1_711_846_800_000_000_000, 86_399_999_999_999]
        {
            let t = chrono::Local.timestamp_opt((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32).unwrap();
            assert_eq!(isotime_local(ns), t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
            // Again, from the cached offset.
            assert_eq!(isotime_local(ns), t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
        }
    }

    #[test]
    fn isotime_has_26_characters() {
        let s = isotime_local(1_700_000_000_123_456_789);
        assert_eq!(s.len(), 26, "{s}");
        assert!(s.ends_with(".123456"), "{s}");
    }
}
