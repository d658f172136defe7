//! `--influx URL`: samples and process summaries written to InfluxDB in line
//! protocol, batched by a sender thread behind a bounded buffer. Sampling
//! only appends to the buffer; a slow or absent server costs buffered lines
//! (the oldest are dropped when it is full, and counted), never a sample.
//! HTTP through ureq (a small blocking client with TLS; the sender thread
//! needs nothing more).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::base::table::{Row, Schema, Value};

/// Lines kept while the server is unreachable (about 100 s at 10 ms).
pub const BUFFER_LINES: usize = 10_000;
/// Lines per request.
const BATCH_LINES: usize = 5_000;
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// At the end, how long remaining lines may take to go out.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct InfluxOptions {
    /// Base URL, e.g. http://127.0.0.1:8086.
    pub url: String,
    /// InfluxDB 1.x database (`/write?db=`).
    pub database: Option<String>,
    /// InfluxDB 2.x bucket and organisation (`/api/v2/write`).
    pub bucket: Option<String>,
    pub org: Option<String>,
    /// Sent as `Authorization: Token ...`.
    pub token: Option<String>,
}

/// Bad `--influx` options.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("--influx {0}: give an http:// or https:// URL of the InfluxDB server")]
    Url(String),
    #[error("--influx needs --influx-db NAME (InfluxDB 1.x) or --influx-bucket NAME with --influx-org (2.x)")]
    Target,
    #[error("cannot start the InfluxDB sender thread: {0}")]
    Thread(std::io::Error),
}

impl InfluxOptions {
    /// The write endpoint.
    pub fn write_url(&self) -> Result<String, InfluxError> {
        let base = self.url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(InfluxError::Url(crate::redact::urls(&self.url)));
        }
        let q = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        match (&self.database, &self.bucket, &self.org) {
            (Some(db), None, _) => Ok(format!("{base}/write?db={}&precision=ns", q(db))),
            (None, Some(b), Some(o)) => Ok(format!("{base}/api/v2/write?org={}&bucket={}&precision=ns", q(o), q(b))),
            _ => Err(InfluxError::Target),
        }
    }
}

/// Escapes a measurement name, tag key/value or field key.
fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, ',' | ' ' | '=' | '\\') {
            o.push('\\');
        }
        if c != '\n' {
            o.push(c);
        }
    }
    o
}

/// One line: `measurement,tags fields time`. Numeric columns of `row` become
/// fields (a missing value is left out); columns named in `tag_columns`
/// become tags; `time_column` (unix seconds) is the timestamp. None when no
/// field has a value.
pub fn line(
    measurement: &str,
    tags: &[(&str, String)],
    schema: &Schema,
    row: &Row,
    tag_columns: &[(&str, &str)],
    time_column: &str,
) -> Option<String> {
    let mut l = escape(measurement);
    let mut fields = String::new();
    let mut time = None;
    let mut tag_list: Vec<(String, String)> = tags.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    for (c, v) in schema.columns.iter().zip(row) {
        if let Some((_, tag)) = tag_columns.iter().find(|(col, _)| *col == c.name) {
            // A column mapped to no tag name is left out.
            if let Value::Ascii(s) = v
                && !s.is_empty()
                && !tag.is_empty()
            {
                tag_list.push((tag.to_string(), s.clone()));
            }
            continue;
        }
        if c.name == time_column {
            if let Value::F64(t) = v {
                time = Some((*t * 1e9).round() as i64);
            }
            continue;
        }
        let sep = if fields.is_empty() { "" } else { "," };
        match v {
            Value::F64(x) if x.is_finite() => {
                let _ = write!(fields, "{sep}{}={x:?}", escape(&c.name));
            }
            Value::I64(x) => {
                let _ = write!(fields, "{sep}{}={x}i", escape(&c.name));
            }
            _ => {}
        }
    }
    if fields.is_empty() {
        return None;
    }
    tag_list.sort();
    for (k, v) in tag_list.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(l, ",{}={}", escape(k), escape(v));
    }
    let _ = write!(l, " {fields}");
    if let Some(t) = time {
        let _ = write!(l, " {t}");
    }
    Some(l)
}

#[derive(Default)]
struct Shared {
    lines: VecDeque<String>,
    dropped: u64,
    failures: u64,
    written: u64,
    done: bool,
}

/// The sender.
pub struct Influx {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

/// What the sender did, at the end.
#[derive(Debug, Clone, Copy, Default)]
pub struct InfluxStats {
    pub written: u64,
    pub dropped: u64,
    pub failures: u64,
    pub unsent: u64,
}

impl Influx {
    pub fn start(opts: &InfluxOptions) -> Result<Self, InfluxError> {
        let url = opts.write_url()?;
        let token = opts.token.clone();
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("messer-influx".into())
            .spawn(move || send_loop(&url, token.as_deref(), &s))
            .map_err(InfluxError::Thread)?;
        Ok(Influx { shared, thread: Some(thread) })
    }

    /// Queues lines; never blocks on the network.
    pub fn push(&self, lines: impl IntoIterator<Item = String>) {
        let (m, cv) = &*self.shared;
        if let Ok(mut s) = m.lock() {
            for l in lines {
                if s.lines.len() >= BUFFER_LINES {
                    s.lines.pop_front();
                    s.dropped += 1;
                }
                s.lines.push_back(l);
            }
            cv.notify_one();
        }
    }

    /// Sends what is left (for a few seconds at most) and stops.
    pub fn finish(mut self) -> InfluxStats {
        self.stop()
    }

    fn stop(&mut self) -> InfluxStats {
        let (m, cv) = &*self.shared;
        if let Ok(mut s) = m.lock() {
            s.done = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let s = m.lock().map(|s| InfluxStats {
            written: s.written,
            dropped: s.dropped,
            failures: s.failures,
            unsent: s.lines.len() as u64,
        });
        s.unwrap_or_default()
    }
}

impl Drop for Influx {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &str) -> Result<(), String> {
    let mut req = agent.post(url).set("Content-Type", "text/plain; charset=utf-8");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Token {t}"));
    }
    match req.send_string(body) {
        Ok(_) => Ok(()),
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            Err(format!("HTTP {code}: {}", text.lines().next().unwrap_or("")))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn send_loop(url: &str, token: Option<&str>, shared: &(Mutex<Shared>, Condvar)) {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
    let (m, cv) = shared;
    let mut backoff = Duration::ZERO;
    let mut final_deadline = None;
    loop {
        let batch: Vec<String> = {
            let Ok(mut s) = m.lock() else { return };
            // Wait for lines (batching what arrives within a second).
            while s.lines.is_empty() && !s.done {
                s = match cv.wait_timeout(s, Duration::from_secs(1)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            if s.done {
                let d = *final_deadline.get_or_insert_with(|| Instant::now() + FINAL_FLUSH);
                if s.lines.is_empty() || Instant::now() > d {
                    return;
                }
            }
            let n = s.lines.len().min(BATCH_LINES);
            s.lines.drain(..n).collect()
        };
        let mut body = batch.join("\n");
        body.push('\n');
        match post(&agent, url, token, &body) {
            Ok(()) => {
                backoff = Duration::ZERO;
                if let Ok(mut s) = m.lock() {
                    s.written += batch.len() as u64;
                }
            }
            Err(e) => {
                let failures = m.lock().map(|mut s| {
                    s.failures += 1;
                    // Put the batch back in front, within the buffer's bound.
                    for l in batch.into_iter().rev() {
                        if s.lines.len() >= BUFFER_LINES {
                            s.dropped += 1;
                        } else {
                            s.lines.push_front(l);
                        }
                    }
                    s.failures
                });
                let failures = failures.unwrap_or(0);
                // Said at the first failure and then rarely.
                if failures.is_power_of_two() {
                    log::warn!(
                        "InfluxDB write failed ({failures} so far): {}; retrying, lines are kept",
                        crate::redact::urls(&e)
                    );
                }
                backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                let stop = final_deadline.is_some_and(|d| Instant::now() + backoff > d);
                if stop {
                    return;
                }
                if let Ok(s) = m.lock() {
                    let _ = cv.wait_timeout(s, backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::table::{Column, Kind};

    #[test]
    fn line_protocol() {
        let schema = Schema::new(vec![
            Column::new("unixtime", Kind::F64),
            Column::new("comm", Kind::Ascii(16)),
            Column::new("cpu", Kind::F64),
            Column::new("pid", Kind::I64),
            Column::new("gone", Kind::F64),
        ]);
        let row =
            vec![Value::F64(1.5), Value::Ascii("my tool".into()), Value::F64(2.0), Value::I64(7), Value::F64(f64::NAN)];
        let l = line("messer", &[("host", "h,1".into())], &schema, &row, &[("comm", "program")], "unixtime").unwrap();
        assert_eq!(l, "messer,host=h\\,1,program=my\\ tool cpu=2.0,pid=7i 1500000000");
        let empty = vec![Value::F64(1.0), Value::Ascii(String::new()), Value::F64(f64::NAN), Value::F64(f64::NAN)];
        let schema2 = Schema::new(schema.columns[..3].iter().cloned().chain([Column::new("x", Kind::F64)]).collect());
        assert_eq!(line("m", &[], &schema2, &empty, &[], "unixtime"), None);
    }

    #[test]
    fn urls_for_both_versions() {
        let mut o = InfluxOptions {
            url: "http://h:8086/".into(),
            database: Some("db 1".into()),
            bucket: None,
            org: None,
            token: None,
        };
        assert_eq!(o.write_url().unwrap(), "http://h:8086/write?db=db%201&precision=ns");
        o.database = None;
        o.bucket = Some("b".into());
        o.org = Some("o".into());
        assert_eq!(o.write_url().unwrap(), "http://h:8086/api/v2/write?org=o&bucket=b&precision=ns");
        o.url = "h:8086".into();
        assert!(o.write_url().is_err());
    }
}
