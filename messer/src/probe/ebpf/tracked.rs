//! The tracked set as the loader knows it, without walking the `TRACKED`
//! hash map at every read.
//!
//! Walking a hash map visits every bucket (16384 by default) however few
//! processes are tracked: a tenth of messer's CPU at 10 ms. The kernel side
//! announces every process it adds (a fork of a tracked process, a `--comm`
//! match) in the `EVENTS` ring buffer right after adding it, in the same
//! program run, so once the flush has run on every CPU, the events drained
//! name every process added before the window's end. The set is walked in
//! full at the start, after the loader adds processes itself, and whenever
//! the kernel side counts a lost event.

use std::collections::BTreeSet;

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use messer_common::{Event, Tracked, event, stat};

use super::batch::BatchReader;
use super::{EbpfError, stats};
use crate::base::hash::FastMap;

/// Known processes from which a read walks the map in batches instead of
/// looking each one up. A batch walk visits every bucket (as many as
/// `--max-processes`, 16384 by default), empty ones cheaply; a lookup is a
/// system call. Chosen by that reasoning, not measured: 10 ms recordings
/// of 63 and 64 processes varied more than the difference.
const BATCH_FROM: usize = 64;

#[derive(Default)]
pub struct TrackedSet {
    known: BTreeSet<u32>,
    /// Walk the map at the next read.
    stale: bool,
    /// The kernel side's lost-event count when the set was last complete.
    events_lost: Option<u64>,
    /// The map's batch reader, made at the first read that needs it.
    batch: Option<BatchReader>,
}

impl TrackedSet {
    pub fn new() -> Self {
        Self { stale: true, ..Self::default() }
    }

    /// The loader added processes itself.
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Notes a process the kernel side added.
    pub fn note(&mut self, e: &Event) {
        if e.kind == event::FORK || e.kind == event::MATCH || e.kind == event::JOIN {
            self.known.insert(e.pid);
        }
    }

    /// Every tracked tgid with its entry, in tgid order.
    pub fn read(&mut self, bpf: &Ebpf) -> Result<Vec<(u32, Tracked)>, EbpfError> {
        let lost = stats::failure(bpf, stat::EVENTS_LOST);
        if lost.is_none() || lost != self.events_lost {
            self.stale = true;
        }
        let map = bpf.map("TRACKED").ok_or_else(|| EbpfError::Map("no map TRACKED".into()))?;
        let tracked: BpfHashMap<&MapData, u32, Tracked> = BpfHashMap::try_from(map).map_err(EbpfError::map)?;
        // A full walk, or many processes: the whole map in batches (a few
        // system calls) beats an iteration (two per entry) or a lookup (one
        // per process). None where the kernel has no batch lookup.
        let all = if self.stale || self.known.len() >= BATCH_FROM {
            if self.batch.is_none() {
                self.batch = Some(BatchReader::of(bpf, "TRACKED")?);
            }
            self.batch.as_mut().map(BatchReader::read::<u32, Tracked>).transpose()?.flatten()
        } else {
            None
        };
        if self.stale {
            let mut all = match all {
                Some(all) => all,
                None => tracked.iter().collect::<Result<Vec<_>, _>>().map_err(EbpfError::map)?,
            };
            all.sort_unstable_by_key(|(t, _)| *t);
            self.known = all.iter().map(|(t, _)| *t).collect();
            self.stale = false;
            self.events_lost = lost;
            return Ok(all);
        }
        let mut out = Vec::with_capacity(self.known.len());
        let mut gone = Vec::new();
        if let Some(all) = all {
            let found: FastMap<u32, Tracked> = all.into_iter().collect();
            for &tgid in &self.known {
                match found.get(&tgid) {
                    Some(t) => out.push((tgid, *t)),
                    None => gone.push(tgid),
                }
            }
        } else {
            for &tgid in &self.known {
                match tracked.get(&tgid, 0) {
                    Ok(t) => out.push((tgid, t)),
                    // Retired, or the kernel side could not add it after all.
                    Err(MapError::KeyNotFound) => gone.push(tgid),
                    Err(e) => return Err(EbpfError::map(e)),
                }
            }
        }
        for tgid in gone {
            self.known.remove(&tgid);
        }
        Ok(out)
    }
}
