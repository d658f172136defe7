//! A recording while it samples and when it ends: each tick's samples and
//! events to the writer, the exporters and the status line; at the end the
//! launched command's status, the process summaries, the file finished and
//! compacted.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use super::tables::{EVENTS, Optional, PROCESS_INFO, PROCESSES, TIMESERIES};
use super::{Outcome, RecordError, output, status};
use crate::probe::ProcEvent;
use crate::sample::processes::Registry;
use crate::sample::sampler::{SamplerError, Stop};
use crate::sample::{Sample, sampler};
use crate::sink::exporters::Exporters;
use crate::sink::hdf5 as h5;
use crate::sink::writer::Writer;
use crate::targets::launch;

/// Where samples go.
pub struct Session {
    pub writer: Writer,
    pub exporters: Exporters,
    status: Option<status::Status>,
    /// Every process seen (its summary row when it is gone); shared with
    /// the sampler's start hook, which notes a launched command.
    pub registry: Rc<RefCell<Registry>>,
    pub path: PathBuf,
    compress: bool,
    tables: Optional,
}

impl Session {
    pub fn new(
        writer: Writer,
        exporters: Exporters,
        registry: Registry,
        path: PathBuf,
        quiet: bool,
        compress: bool,
        tables: Optional,
    ) -> Self {
        Session {
            status: status::Status::new(quiet, path.clone()),
            writer,
            exporters,
            registry: Rc::new(RefCell::new(registry)),
            path,
            compress,
            tables,
        }
    }

    /// One tick: its events, then each probe's sample (the first is the
    /// recording's; a second is `--mode both`'s procfs one).
    pub fn tick(&mut self, samples: Vec<Sample>, events: Vec<ProcEvent>) -> Result<(), String> {
        for e in &events {
            self.writer.send(EVENTS, e.row())?;
        }
        self.registry.borrow_mut().note_exits(&events);
        let mut samples = samples.into_iter();
        if let Some(s) = samples.next() {
            let row = s.row();
            self.exporters.sample(&s, &row);
            if let Some(st) = &mut self.status {
                st.sample(s.cpu_total_percent, s.rss_bytes(), self.writer.lost());
            }
            self.writer.send(TIMESERIES, row)?;
            for row in s.process_rows() {
                self.writer.send(PROCESSES, row)?;
            }
            if let Some((t, g)) = self.tables.threads {
                for row in s.thread_rows() {
                    self.writer.send(t, row)?;
                }
                for row in s.thread_group_rows() {
                    self.writer.send(g, row)?;
                }
            }
            if let Some(t) = self.tables.runq {
                for row in s.runq_rows() {
                    self.writer.send(t, row)?;
                }
            }
            for row in self.registry.borrow_mut().observe(&s.processes, s.unixtime) {
                self.exporters.summary(&row);
                self.writer.send(PROCESS_INFO, row)?;
            }
        }
        if let (Some(s), Some(t)) = (samples.next(), self.tables.procfs) {
            self.writer.send(t, s.row())?;
            if let Some((t, g)) = self.tables.procfs_threads {
                for row in s.thread_rows() {
                    self.writer.send(t, row)?;
                }
                for row in s.thread_group_rows() {
                    self.writer.send(g, row)?;
                }
            }
        }
        Ok(())
    }

    /// Ends the recording after the sampler stopped with `result`:
    /// `launched` is the command messer started (waited for if it exited),
    /// `launch_error` why it could not be started (then no file is left).
    pub fn finish(
        self,
        result: Result<Stop, SamplerError>,
        launched: Option<&launch::Paused>,
        launch_error: Option<launch::LaunchError>,
    ) -> Result<Outcome, RecordError> {
        let Session { writer, mut exporters, status, registry, path, compress, .. } = self;
        let exit = match (launched, &result) {
            (Some(p), Ok(Stop::TargetExited)) => child_exit(p, &writer),
            (Some(p), _) => {
                log::info!("the command is still running (pid {}); it is no longer recorded", p.pid);
                None
            }
            _ => None,
        };
        // A launched command's status as a number: its exit code, or minus the signal.
        let child = exit.zip(launched.map(|p| p.pid)).map(|(e, pid)| match e {
            launch::Exit::Code(c) => (pid, f64::from(c)),
            launch::Exit::Signal(s) => (pid, -f64::from(s)),
        });
        drop(status);
        let rows = registry.borrow_mut().finish(child);
        for row in rows {
            exporters.summary(&row);
            let _ = writer.send(PROCESS_INFO, row);
        }
        for (name, v) in exporters.finish() {
            let _ = writer.set_attr(TIMESERIES, name, h5::AttrValue::I64(v as i64));
        }
        // Whatever happened, write what was sampled; a failed write says
        // why, and whether the file system is full.
        let written = writer.finish().map_err(|e| {
            let full = output::free_bytes(&path).is_some_and(|b| b < 1 << 20);
            let hint = if full { "the file system is full; " } else { "" };
            RecordError::Runtime(format!(
                "writing {} failed ({e}); {hint}the rows written before are in the file",
                path.display()
            ))
        });
        if let Some(e) = launch_error {
            // Nothing of the command was recorded: leave no file behind.
            let _ = std::fs::remove_file(&path);
            return Err(RecordError::Launch(e.to_string(), e.exit_code()));
        }
        match result {
            Ok(Stop::TargetExited) => log::info!("the target exited"),
            Ok(Stop::Signal(sig)) => log::info!("stopped by signal {sig}"),
            Ok(Stop::Duration) => log::info!("--duration elapsed"),
            // The writer's own error says more than "the writer stopped".
            Err(sampler::SamplerError::Sink(_)) if written.is_err() => {}
            Err(e) => return Err(RecordError::Runtime(e.to_string())),
        }
        let (rows, path) = written?;
        log::info!("wrote {rows} rows to {}", path.display());
        if compress {
            let t0 = std::time::Instant::now();
            match h5::compact::compact(&path) {
                Ok(()) => log::info!("compressed {} in {:.2} s", path.display(), t0.elapsed().as_secs_f64()),
                Err(e) => {
                    log::warn!("could not compress {} ({e}); it stays uncompressed and complete", path.display())
                }
            }
        }
        Ok(Outcome { rows, child_exit: exit.map(|e| e.code()) })
    }
}

/// Waits for the launched command that exited; its status goes into the file.
fn child_exit(p: &launch::Paused, writer: &Writer) -> Option<launch::Exit> {
    match launch::wait(p.pid) {
        Ok(exit) => {
            let (name, v) = match exit {
                launch::Exit::Code(c) => ("messer_child_exit_code", c),
                launch::Exit::Signal(s) => ("messer_child_exit_signal", s),
            };
            let _ = writer.set_attr(TIMESERIES, name, h5::AttrValue::I64(i64::from(v)));
            log::info!("the command exited: {exit:?}");
            Some(exit)
        }
        Err(e) => {
            log::warn!("cannot learn the command's exit status: {e}");
            None
        }
    }
}
