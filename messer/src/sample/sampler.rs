//! The sampling loop: read the probe on absolute deadlines, turn each reading
//! into a sample, hand it on. It waits in `ppoll` on the deadline, the
//! target's pidfd and the stop signals at once, so a target's exit or a signal
//! ends the last (partial) window at once, and deadlines are met to the
//! microsecond rather than to a timer wheel's millisecond.

use std::os::fd::AsRawFd as _;

use super::Sample;
use super::follow::{Follow, Moment};
use crate::base::clock::{self, Deadlines};
use crate::probe::{Probe, ProbeError, ProcEvent};
use crate::signals::Signals;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    TargetExited,
    Signal(i32),
    /// `--duration` elapsed.
    Duration,
}

/// What woke the loop.
enum Wake {
    Deadline,
    /// The watched process exited.
    TargetExited,
    Stop(Stop),
}

/// Errors that end the loop.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("waiting failed: {0}")]
    Wait(std::io::Error),
    #[error("the writer stopped: {0}")]
    Sink(String),
    #[error("{0}")]
    Start(String),
}

/// Lowers this thread's timer slack to 1 µs so that wake-ups are punctual.
fn tighten_timer_slack() {
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64, 0, 0, 0) };
}

fn wait_until(deadline_ns: u64, follow: &Follow, signals: &Signals) -> Result<Wake, SamplerError> {
    loop {
        let now = clock::monotonic_ns();
        let left = deadline_ns.saturating_sub(now);
        let ts = libc::timespec { tv_sec: (left / 1_000_000_000) as i64, tv_nsec: (left % 1_000_000_000) as i64 };
        // A negative fd is ignored by poll.
        let pidfd = follow.pidfd().map_or(-1, |f| f.as_raw_fd());
        let mut fds = [
            libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: signals.fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: ppoll on a local array with a valid timeout and no mask change.
        let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, &ts, std::ptr::null()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(SamplerError::Wait(e));
        }
        if fds[1].revents != 0
            && let Some(sig) = signals.take()
        {
            return Ok(Wake::Stop(Stop::Signal(sig)));
        }
        if fds[0].revents != 0 {
            return Ok(Wake::TargetExited);
        }
        if n == 0 || clock::monotonic_ns() >= deadline_ns {
            return Ok(Wake::Deadline);
        }
    }
}

/// Samples until the target exits (a fixed target), a stop signal arrives or
/// `duration_ns` has passed. Every probe is read on the same ticks; `follow`
/// adds new targets between reads. `start` runs right after the baseline
/// read; `emit` gets each tick's samples (one per probe, possibly none) and
/// process events; an error from either ends the loop.
#[allow(clippy::too_many_arguments)]
pub fn run(
    probes: &mut [Box<dyn Probe>],
    follow: &mut Follow,
    signals: &Signals,
    interval_ns: u64,
    duration_ns: Option<u64>,
    start: impl FnOnce() -> Result<(), String>,
    mut emit: impl FnMut(Vec<Sample>, Vec<ProcEvent>) -> Result<(), String>,
) -> Result<Stop, SamplerError> {
    tighten_timer_slack();
    let found = follow.poll(probes, Moment::Start)?;
    let mut prev = Vec::with_capacity(probes.len());
    let mut events = found;
    for p in probes.iter_mut() {
        p.snap()?;
    }
    for i in 0..probes.len() {
        let baseline = probes[i].read()?;
        if i == 0 {
            let found = follow.observe(&baseline.events, &mut probes[1..]);
            events.extend(baseline.events);
            events.extend(found);
        }
        prev.push(baseline.mono_ns);
    }
    emit(Vec::new(), events).map_err(SamplerError::Sink)?;
    follow.window_pid();
    let mut own_prev = clock::own_cpu_ns();
    // From the baseline on everything is counted: now a launched command may run.
    start().map_err(SamplerError::Start)?;
    let end = duration_ns.map(|d| prev[0].saturating_add(d));
    let mut deadlines = Deadlines::new(prev[0], interval_ns);
    loop {
        let (deadline, skipped) = deadlines.next(clock::monotonic_ns());
        if skipped > 0 {
            log::warn!("sampling fell behind: {skipped} deadline(s) skipped; that window is longer");
        }
        let (deadline, last) = match end {
            Some(e) if e <= deadline => (e, true),
            _ => (deadline, false),
        };
        let mut events = Vec::new();
        let stop = loop {
            match wait_until(deadline, follow, signals)? {
                Wake::Deadline if last => break Some(Stop::Duration),
                Wake::Deadline => break None,
                Wake::Stop(s) => break Some(s),
                Wake::TargetExited => {
                    events.extend(follow.watched_exited());
                    if follow.ends_with_target() {
                        break Some(Stop::TargetExited);
                    }
                }
            }
        };
        // New targets join before the read: a --comm process found by a
        // /proc scan counts from its start if it started in this window.
        events.extend(follow.poll(probes, Moment::BeforeRead)?);
        for p in probes.iter_mut() {
            p.snap()?;
        }
        let mut readings = Vec::with_capacity(probes.len());
        for i in 0..probes.len() {
            let reading = probes[i].read()?;
            if i == 0 {
                let found = follow.observe(&reading.events, &mut probes[1..]);
                events.extend(reading.events.iter().cloned());
                events.extend(found);
            }
            readings.push(reading);
        }
        let pid = follow.window_pid();
        let mut samples = Vec::with_capacity(probes.len());
        for (reading, prev) in readings.iter().zip(prev.iter_mut()) {
            samples.push(Sample::from_reading(reading, *prev, pid));
            *prev = reading.mono_ns;
        }
        let own = clock::own_cpu_ns();
        for s in samples.iter_mut().filter(|s| s.window_ns > 0) {
            s.messer_cpu_percent = own.saturating_sub(own_prev) as f64 / s.window_ns as f64 * 100.0;
        }
        own_prev = own;
        emit(samples, events).map_err(SamplerError::Sink)?;
        if let Some(stop) = stop {
            return Ok(stop);
        }
        let found = follow.poll(probes, Moment::AfterRead)?;
        if !found.is_empty() {
            emit(Vec::new(), found).map_err(SamplerError::Sink)?;
        }
    }
}
