//! The sampling loop: read the probe on absolute deadlines, turn each reading
//! into a sample, hand it on. It waits in `ppoll` on the deadline, the
//! target's pidfd and the stop signals at once, so a target's exit or a signal
//! ends the last (partial) window at once, and deadlines are met to the
//! microsecond rather than to a timer wheel's millisecond.

use std::os::fd::AsRawFd as _;

use super::Sample;
use super::clock::{self, Deadlines};
use crate::probe::{Probe, ProbeError};
use crate::signals::Signals;
use crate::target::Target;

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

fn wait_until(deadline_ns: u64, target: &Target, signals: &Signals) -> Result<Wake, SamplerError> {
    loop {
        let now = clock::monotonic_ns();
        let left = deadline_ns.saturating_sub(now);
        let ts = libc::timespec { tv_sec: (left / 1_000_000_000) as i64, tv_nsec: (left % 1_000_000_000) as i64 };
        let mut fds = [
            libc::pollfd { fd: target.pidfd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
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
            return Ok(Wake::Stop(Stop::TargetExited));
        }
        if n == 0 || clock::monotonic_ns() >= deadline_ns {
            return Ok(Wake::Deadline);
        }
    }
}

/// Samples until the target exits, a stop signal arrives or `duration_ns`
/// has passed. `start` runs right after the baseline read; `emit` gets every
/// sample; an error from either ends the loop.
pub fn run(
    probe: &mut dyn Probe,
    target: &Target,
    signals: &Signals,
    interval_ns: u64,
    duration_ns: Option<u64>,
    start: impl FnOnce() -> Result<(), String>,
    mut emit: impl FnMut(Sample) -> Result<(), String>,
) -> Result<Stop, SamplerError> {
    tighten_timer_slack();
    let baseline = probe.read()?;
    let mut own_prev = clock::own_cpu_ns();
    // From the baseline on everything is counted: now a launched command may run.
    start().map_err(SamplerError::Start)?;
    let mut prev = baseline.mono_ns;
    let end = duration_ns.map(|d| baseline.mono_ns.saturating_add(d));
    let mut deadlines = Deadlines::new(baseline.mono_ns, interval_ns);
    loop {
        let (deadline, skipped) = deadlines.next(clock::monotonic_ns());
        if skipped > 0 {
            log::warn!("sampling fell behind: {skipped} deadline(s) skipped; that window is longer");
        }
        let (deadline, last) = match end {
            Some(e) if e <= deadline => (e, true),
            _ => (deadline, false),
        };
        let wake = match wait_until(deadline, target, signals)? {
            Wake::Deadline if last => Wake::Stop(Stop::Duration),
            w => w,
        };
        let reading = probe.read()?;
        let mut sample = Sample::from_reading(&reading, prev, target.pid);
        let own = clock::own_cpu_ns();
        if sample.window_ns > 0 {
            sample.messer_cpu_percent = own.saturating_sub(own_prev) as f64 / sample.window_ns as f64 * 100.0;
        }
        own_prev = own;
        emit(sample).map_err(SamplerError::Sink)?;
        prev = reading.mono_ns;
        if let Wake::Stop(stop) = wake {
            return Ok(stop);
        }
    }
}
