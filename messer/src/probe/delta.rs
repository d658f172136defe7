//! Window deltas from cumulative per-entity counters.
//!
//! Probes read cumulative counters (CPU ns of a thread, ticks of a process)
//! whose entities come and go. The delta over a window is the sum, over the
//! entities seen now, of what each gained since the previous read; an entity
//! seen for the first time was born during the window, so all of its counter
//! belongs to it. An entity that disappeared takes its last partial delta with
//! it: procfs cannot see it any more (the eBPF probe keeps final counters).

use std::hash::Hash;

use crate::base::hash::FastMap as HashMap;

/// Tracks one cumulative counter per entity key.
#[derive(Debug)]
pub struct DeltaTracker<K> {
    prev: HashMap<K, u64>,
    next: HashMap<K, u64>,
    primed: bool,
}

impl<K: Eq + Hash + Copy> Default for DeltaTracker<K> {
    fn default() -> Self {
        Self { prev: HashMap::default(), next: HashMap::default(), primed: false }
    }
}

impl<K: Eq + Hash + Copy> DeltaTracker<K> {
    /// Records the current value of entity `key`; returns what it gained
    /// since the previous read (its whole value if it is new, 0 on the very
    /// first read, which only sets the baseline).
    pub fn observe(&mut self, key: K, value: u64) -> u64 {
        self.next.insert(key, value);
        gain(self.prev.get(&key).copied(), value, self.primed)
    }

    /// Takes `value` as the baseline of entity `key` for the next read: it
    /// existed before and only what it gains from now on counts.
    pub fn prime(&mut self, key: K, value: u64) {
        self.prev.insert(key, value);
    }

    /// Ends a read: what was observed becomes the baseline for the next one.
    pub fn commit(&mut self) {
        std::mem::swap(&mut self.prev, &mut self.next);
        self.next.clear();
        self.primed = true;
    }

    /// The value entity `key` had at the last committed read.
    pub fn previous(&self, key: &K) -> Option<u64> {
        self.prev.get(key).copied()
    }

    /// Entities of the last committed read that `keep` selects, with their
    /// values (a walk over all of them: for rare cases).
    pub fn previous_where(&self, keep: impl Fn(&K) -> bool) -> Vec<(K, u64)> {
        self.prev.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (*k, *v)).collect()
    }

    /// Sets what entity `key` gains this read: its value `value` is
    /// recorded, and `baseline` taken as where it stood before.
    pub fn observe_from(&mut self, key: K, value: u64, baseline: u64) -> u64 {
        self.next.insert(key, value);
        value.saturating_sub(baseline)
    }

    /// Entities observed at the last committed read.
    pub fn len(&self) -> usize {
        self.prev.len()
    }

    /// True before anything was observed.
    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

/// What a counter at `value` gained since `prev`, its value at the last
/// read (None: not seen then); `primed` once a read was committed.
fn gain(prev: Option<u64>, value: u64, primed: bool) -> u64 {
    match prev {
        // A counter that went backwards belongs to a new entity that
        // reused the key: all of its value is new.
        Some(p) => value.checked_sub(p).unwrap_or(value),
        None if primed => value,
        None => 0,
    }
}

/// `N` cumulative counters per entity key, kept together (one hash lookup
/// per entity and read instead of one per counter), each with
/// `DeltaTracker`'s rules; a counter unknown at a read (None) is as one
/// not seen then. One map holds each entity's baselines and this read's
/// values side by side, so a read updates its row in place and the commit
/// only flips which side is which.
#[derive(Debug)]
pub struct DeltaRows<K, const N: usize> {
    rows: HashMap<K, Row<N>>,
    /// The reads committed so far: a row observed in this read has it as
    /// its `read`.
    reads: u64,
    primed: bool,
}

/// An entity's counters: `side[base]` the baselines (values at the last
/// committed read, or primed since), the other side this read's values.
#[derive(Debug, Clone, Copy)]
struct Row<const N: usize> {
    side: [Values<N>; 2],
    base: usize,
    /// The read in which the other side was observed (`u64::MAX`: not yet).
    read: u64,
}

/// Counter values, a bit per counter saying it is known.
#[derive(Debug, Clone, Copy)]
struct Values<const N: usize> {
    value: [u64; N],
    known: u32,
}

impl<const N: usize> Values<N> {
    const NONE: Self = Values { value: [0; N], known: 0 };

    fn get(&self, i: usize) -> Option<u64> {
        (self.known & (1 << i) != 0).then_some(self.value[i])
    }

    fn set(&mut self, i: usize, v: Option<u64>) {
        match v {
            Some(v) => {
                self.value[i] = v;
                self.known |= 1 << i;
            }
            None => self.known &= !(1 << i),
        }
    }
}

impl<const N: usize> Row<N> {
    const NEW: Self = Row { side: [Values::NONE; 2], base: 0, read: u64::MAX };
}

impl<K: Eq + Hash + Copy, const N: usize> Default for DeltaRows<K, N> {
    fn default() -> Self {
        const { assert!(N <= 32, "a row's known bits are a u32") };
        Self { rows: HashMap::default(), reads: 0, primed: false }
    }
}

impl<K: Eq + Hash + Copy, const N: usize> DeltaRows<K, N> {
    /// Records the current values of entity `key`; returns what each known
    /// one gained (as `DeltaTracker::observe`), None where unknown.
    pub fn observe(&mut self, key: K, values: [Option<u64>; N]) -> [Option<u64>; N] {
        let row = self.rows.entry(key).or_insert(Row::NEW);
        let (base, now) = (row.base, 1 - row.base);
        let mut out = [None; N];
        for (i, (o, v)) in out.iter_mut().zip(values).enumerate() {
            *o = v.map(|v| gain(row.side[base].get(i), v, self.primed));
            row.side[now].set(i, v);
        }
        row.read = self.reads;
        out
    }

    /// Takes the known ones of `values` as entity `key`'s baselines for the
    /// next read (as `DeltaTracker::prime`).
    pub fn prime(&mut self, key: K, values: [Option<u64>; N]) {
        let row = self.rows.entry(key).or_insert(Row::NEW);
        let base = &mut row.side[row.base];
        for (i, v) in values.into_iter().enumerate() {
            if v.is_some() {
                base.set(i, v);
            }
        }
    }

    /// Ends a read: what was observed becomes the baseline for the next one;
    /// an entity not observed in it is forgotten.
    pub fn commit(&mut self) {
        let reads = self.reads;
        self.rows.retain(|_, row| {
            if row.read != reads {
                return false;
            }
            row.base = 1 - row.base;
            row.read = u64::MAX;
            true
        });
        self.reads += 1;
        self.primed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_read_is_a_baseline_then_new_entities_count_whole() {
        let mut t = DeltaTracker::default();
        assert_eq!(t.observe(1, 100), 0);
        t.commit();
        assert_eq!(t.observe(1, 150), 50);
        assert_eq!(t.observe(2, 30), 30, "born during the window");
        t.commit();
        assert_eq!(t.observe(2, 31), 1);
        t.commit();
        assert_eq!(t.len(), 1, "entity 1 vanished");
    }

    #[test]
    fn rows_follow_each_counter_as_its_own_tracker_would() {
        let mut r: DeltaRows<i32, 2> = DeltaRows::default();
        r.prime(1, [Some(10), None]);
        assert_eq!(r.observe(1, [Some(15), Some(7)]), [Some(5), Some(0)], "first read: a baseline unless primed");
        r.commit();
        r.prime(2, [Some(3), Some(4)]);
        assert_eq!(r.observe(1, [Some(20), None]), [Some(5), None]);
        assert_eq!(r.observe(2, [Some(5), Some(4)]), [Some(2), Some(0)], "primed before the read");
        assert_eq!(r.observe(3, [Some(9), Some(1)]), [Some(9), Some(1)], "born during the window");
        r.commit();
        assert_eq!(r.observe(1, [Some(21), Some(8)]), [Some(1), Some(8)], "unknown last time: all of it");
        assert_eq!(r.observe(2, [Some(1), Some(6)]), [Some(1), Some(2)], "went backwards: a new entity");
    }

    #[test]
    fn rows_not_observed_in_a_read_are_forgotten() {
        let mut r: DeltaRows<i32, 2> = DeltaRows::default();
        r.observe(1, [Some(10), Some(1)]);
        r.prime(2, [Some(5), None]);
        r.commit();
        assert_eq!(r.observe(2, [Some(7), Some(3)]), [Some(7), Some(3)], "primed, then a read passed without it");
        r.commit();
        assert_eq!(r.observe(1, [Some(12), Some(2)]), [Some(12), Some(2)], "not seen last read: all of it");
        assert_eq!(r.observe(2, [Some(8), None]), [Some(1), None]);
        r.commit();
        assert_eq!(r.observe(2, [Some(9), Some(5)]), [Some(1), Some(5)], "unknown last time: all of it");
    }

    #[test]
    fn a_counter_going_backwards_is_a_new_entity() {
        let mut t = DeltaTracker::default();
        t.observe(7, 500);
        t.commit();
        assert_eq!(t.observe(7, 20), 20);
    }
}
