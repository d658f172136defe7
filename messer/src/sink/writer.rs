//! The writer thread: takes rows from a bounded queue and appends them to the
//! HDF5 tables, so that a slow disk never delays sampling. A row that finds
//! the queue full is dropped and counted (attribute `messer_rows_lost` of the
//! first table, the time series). With a `Rotation` it starts a new file of
//! the series when the current one reaches its size limit, compresses the
//! finished one, and deletes the oldest beyond the retained size.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use super::hdf5::{self as h5, AttrValue, Hdf5Error, Table};
use super::queue::{self, Receiver, SendError, Sender};
use crate::base::table::Row;

/// Rows the queue holds: at 10 ms intervals, 40 s of a stalled disk.
pub const QUEUE_ROWS: usize = 4096;

/// What the writer is asked to do, for table number `.0` (in the order
/// given to `spawn`).
enum Item {
    Row(usize, Row),
    Attr(usize, String, AttrValue),
}

/// Makes the file of series index `.1` at path `.0`, with its tables.
pub type OpenFile = Box<dyn Fn(&Path, u64) -> Result<(hdf5::File, Vec<Table>), Hdf5Error> + Send>;

/// `--rotate-size` / `--retain-size`.
pub struct Rotation {
    /// Start a new file once the current one is this large (bytes).
    pub limit_bytes: u64,
    /// Delete the oldest files while the series is larger than this.
    pub retain_bytes: Option<u64>,
    /// The first file's path; file i > 0 is `<stem>.<i:04>.<ext>`.
    pub base: PathBuf,
    /// Compress each finished file.
    pub compress: bool,
    pub open: OpenFile,
}

/// Path of file `index` of the series that starts at `base`.
pub fn series_path(base: &Path, index: u64) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match base.extension() {
        Some(e) => format!("{stem}.{index:04}.{}", e.to_string_lossy()),
        None => format!("{stem}.{index:04}"),
    };
    base.with_file_name(name)
}

/// Handle to the writer thread.
pub struct Writer {
    tx: Option<Sender<Item>>,
    lost: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<(usize, PathBuf), Hdf5Error>>>,
}

impl Writer {
    /// Starts a thread that owns `file` (at `path`) and appends to `tables`.
    pub fn spawn(
        file: hdf5::File,
        path: PathBuf,
        tables: Vec<Table>,
        capacity: usize,
        rotation: Option<Rotation>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = queue::channel(capacity, BATCH_ROWS, BATCH_WAIT);
        let lost = Arc::new(AtomicU64::new(0));
        let lost2 = lost.clone();
        let handle = std::thread::Builder::new()
            .name("messer-writer".into())
            .spawn(move || write_loop(Current { file, path, tables, index: 0 }, rx, lost2, rotation))?;
        Ok(Self { tx: Some(tx), lost, handle: Some(handle) })
    }

    /// Rows dropped so far because the queue was full.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Queues a row for table `table`. Fails only when the writer thread has
    /// stopped (its error comes from `finish`).
    pub fn send(&self, table: usize, row: Row) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("writer closed".into());
        };
        // The first table's rows make up a batch.
        match tx.try_send(Item::Row(table, row), table == 0) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => {
                if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!("the writer is behind and its queue is full: rows are being dropped (counted)");
                }
                Ok(())
            }
            Err(SendError::Disconnected(_)) => Err("the writer thread stopped".into()),
        }
    }

    /// Sets attribute `name` of table `table` after the rows queued so far
    /// (waits for room in the queue: nothing is dropped).
    pub fn set_attr(&self, table: usize, name: &str, value: AttrValue) -> Result<(), String> {
        let Some(tx) = &self.tx else {
            return Err("writer closed".into());
        };
        tx.send(Item::Attr(table, name.to_string(), value)).map_err(|_| "the writer thread stopped".to_string())
    }

    /// Closes the queue, waits until everything queued is written and the file
    /// closed; returns the number of rows written to the first table (over
    /// all files of a series) and the path of the last file.
    pub fn finish(mut self) -> Result<(usize, PathBuf), Hdf5Error> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(res)) => res,
            Some(Err(_)) => Err(Hdf5Error::Lib("the writer thread panicked".into())),
            None => Err(Hdf5Error::Lib("the writer thread is gone".into())),
        }
    }
}

/// The file being written.
struct Current {
    file: hdf5::File,
    path: PathBuf,
    tables: Vec<Table>,
    index: u64,
}

/// Closes `cur` (rows lost noted, flushed) and returns its path.
fn close(cur: Current, lost: u64) -> Result<PathBuf, Hdf5Error> {
    cur.tables[0].set_attr("messer_rows_lost", &AttrValue::I64(lost as i64))?;
    h5::flush(&cur.file)?;
    Ok(cur.path)
}

/// Starts the next file of the series; compresses the finished one and
/// applies the retention limit.
fn rotate(cur: Current, r: &Rotation, lost: u64, done: &mut VecDeque<PathBuf>) -> Result<Current, Hdf5Error> {
    let index = cur.index + 1;
    let next = series_path(&r.base, index);
    let (file, tables) = (r.open)(&next, index)?;
    let old = close(cur, lost)?;
    log::info!("{} reached the rotation size; continuing in {}", old.display(), next.display());
    if r.compress
        && let Err(e) = h5::compact::compact(&old)
    {
        log::warn!("could not compress {} ({e}); it stays uncompressed and complete", old.display());
    }
    done.push_back(old);
    if let Some(limit) = r.retain_bytes {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut total: u64 = done.iter().map(|p| size(p)).sum::<u64>() + size(&next);
        while total > limit {
            let Some(oldest) = done.pop_front() else { break };
            total -= size(&oldest);
            match std::fs::remove_file(&oldest) {
                Ok(()) => log::info!("deleted {} (--retain-size)", oldest.display()),
                Err(e) => log::warn!("could not delete {} for --retain-size: {e}", oldest.display()),
            }
        }
    }
    Ok(Current { file, path: next, tables, index })
}

/// A batch is written once the first table has this many rows queued...
pub const BATCH_ROWS: usize = 8;
/// ... or this long after its first row came, whichever first.
pub const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// Sorts one queued item into the batches (rows) or `attrs`.
fn take(item: Item, batches: &mut [Vec<Row>], attrs: &mut Vec<(usize, String, AttrValue)>) {
    match item {
        Item::Row(t, row) => {
            if let Some(b) = batches.get_mut(t) {
                b.push(row);
            }
        }
        Item::Attr(t, name, value) => attrs.push((t, name, value)),
    }
}

fn write_loop(
    mut cur: Current,
    rx: Receiver<Item>,
    lost: Arc<AtomicU64>,
    rotation: Option<Rotation>,
) -> Result<(usize, PathBuf), Hdf5Error> {
    let mut batches: Vec<Vec<Row>> = cur.tables.iter().map(|_| Vec::new()).collect();
    let mut lost_written = 0;
    let main = 0;
    // Rows of the first table in finished files of the series.
    let mut rows_before = 0;
    let mut done = VecDeque::new();
    let mut items = Vec::new();
    loop {
        // Rows are written in batches: up to BATCH_ROWS rows of the first
        // table, or what came within BATCH_WAIT of the oldest queued row,
        // whichever first (see `queue`). So a row is on disk at most
        // BATCH_WAIT after it was queued (the crash-loss bound), and at
        // 10 ms one append and flush, and one wake-up of this thread, serve
        // 8 samples instead of one.
        let more = rx.next_batch(&mut items);
        let mut attrs = Vec::new();
        for item in items.drain(..) {
            take(item, &mut batches, &mut attrs);
        }
        let closed = !more;
        // A full file is followed by a new one when there are rows for it
        // (so that no file of a series is empty).
        if let Some(r) = &rotation
            && batches.iter().any(|b| !b.is_empty())
            && std::fs::metadata(&cur.path).is_ok_and(|m| m.len() >= r.limit_bytes)
        {
            rows_before += cur.tables[main].len();
            cur = rotate(cur, r, lost.load(Ordering::Relaxed), &mut done)?;
            lost_written = u64::MAX;
        }
        for (table, batch) in cur.tables.iter_mut().zip(&mut batches) {
            if !batch.is_empty() {
                table.append(batch)?;
                batch.clear();
            }
        }
        for (t, name, value) in attrs {
            if let Some(table) = cur.tables.get(t) {
                table.set_attr(&name, &value)?;
            }
        }
        let lost_now = lost.load(Ordering::Relaxed);
        if lost_now != lost_written {
            cur.tables[main].set_attr("messer_rows_lost", &AttrValue::I64(lost_now as i64))?;
            lost_written = lost_now;
        }
        h5::flush(&cur.file)?;
        if closed {
            break;
        }
    }
    let rows = rows_before + cur.tables[main].len();
    Ok((rows, close(cur, lost.load(Ordering::Relaxed))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_names() {
        assert_eq!(series_path(Path::new("/d/run.h5"), 0), Path::new("/d/run.h5"));
        assert_eq!(series_path(Path::new("/d/run.h5"), 12), Path::new("/d/run.0012.h5"));
        assert_eq!(series_path(Path::new("run"), 1), Path::new("run.0001"));
    }
}
