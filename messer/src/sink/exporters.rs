//! The optional live exporters of a recording: a Prometheus endpoint and
//! InfluxDB writes, fed with every `/messer_timeseries` row and every
//! process summary (`/messer_process_info` row).

use std::sync::{Arc, Mutex};

use super::influx::{self, Influx, InfluxOptions};
use super::metrics::Metrics;
use super::prometheus::{self, Endpoint};
use crate::base::table::{Row, Schema};
use crate::sample::Sample;

/// What the command line asked the exporters for.
#[derive(Debug, Clone, Default)]
pub struct ExporterOptions {
    /// `--prometheus ADDR:PORT`, and `--prometheus-per-process`.
    pub prometheus: Option<String>,
    pub prometheus_per_process: bool,
    /// `--influx URL` and where in it to write.
    pub influx: Option<InfluxOptions>,
}

/// An exporter that cannot start: the options are at fault (bad address,
/// a port in use, a bad URL); the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ExporterError(String);

pub struct Exporters {
    /// The metrics the samples update and the endpoint that renders them.
    prometheus: Option<(Arc<Mutex<Metrics>>, Endpoint)>,
    influx: Option<Influx>,
    schema: Schema,
    info_schema: Schema,
    tags: Vec<(&'static str, String)>,
}

impl Exporters {
    /// Starts what the options ask for.
    pub fn start(
        opts: &ExporterOptions,
        schema: &Schema,
        labels: &[(&'static str, String)],
    ) -> Result<Self, ExporterError> {
        let usage = ExporterError;
        let prometheus = match &opts.prometheus {
            Some(a) => {
                let addr = prometheus::parse_addr(a).map_err(|e| usage(e.to_string()))?;
                let mut m = Metrics::new(schema, labels);
                if opts.prometheus_per_process {
                    m = m.with_per_process();
                }
                let m = Arc::new(Mutex::new(m));
                let source = m.clone();
                let render = Arc::new(move || source.lock().map(|m| m.render()).unwrap_or_default());
                let endpoint = Endpoint::start(addr, render).map_err(|e| usage(e.to_string()))?;
                log::info!("Prometheus metrics at http://{}/metrics", endpoint.addr);
                Some((m, endpoint))
            }
            None => None,
        };
        let influx = match &opts.influx {
            Some(opts) => {
                let i = Influx::start(opts).map_err(|e| usage(e.to_string()))?;
                log::info!("writing to InfluxDB at {}", crate::redact::urls(&opts.write_url().unwrap_or_default()));
                Some(i)
            }
            None => None,
        };
        Ok(Exporters {
            prometheus,
            influx,
            schema: schema.clone(),
            info_schema: crate::sample::processes::info_schema(),
            tags: labels.to_vec(),
        })
    }

    /// One sample of `/messer_timeseries` (typed, and as its row).
    pub fn sample(&mut self, sample: &Sample, row: &Row) {
        if let Some((m, _)) = &self.prometheus
            && let Ok(mut m) = m.lock()
        {
            m.observe(sample);
            m.observe_processes(&sample.processes);
        }
        if let Some(i) = &self.influx {
            i.push(influx::line("messer", &self.tags, &self.schema, row, &[("isotime_local", "")], "unixtime"));
        }
    }

    /// A process's life summary (a `/messer_process_info` row).
    pub fn summary(&mut self, row: &Row) {
        if let Some(i) = &self.influx {
            let tags = [("comm", "program"), ("user", "user"), ("exe", ""), ("cmdline", "")];
            let l =
                influx::line("messer_process_summary", &self.tags, &self.info_schema, row, &tags, "last_seen_unixtime");
            i.push(l);
        }
    }

    /// Stops the exporters; returns counts for the file's metadata.
    pub fn finish(&mut self) -> Vec<(&'static str, u64)> {
        self.prometheus = None;
        match self.influx.take() {
            Some(i) => {
                let s = i.finish();
                let lost = s.dropped + s.unsent;
                if s.failures > 0 || lost > 0 {
                    log::warn!(
                        "InfluxDB: {} lines written, {} failed requests, {lost} lines not delivered",
                        s.written,
                        s.failures
                    );
                } else {
                    log::info!("InfluxDB: {} lines written", s.written);
                }
                vec![
                    ("messer_influx_lines_written", s.written),
                    ("messer_influx_lines_lost", lost),
                    ("messer_influx_failed_requests", s.failures),
                ]
            }
            None => Vec::new(),
        }
    }
}
