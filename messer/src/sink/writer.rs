//! The writer thread: takes rows from a bounded queue and appends them to the
//! HDF5 tables, so that a slow disk never delays sampling. A row that finds
//! the queue full is dropped and counted (attribute `messer_rows_lost` of the
//! first table, the time series).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

use super::hdf5::{self as h5, AttrValue, Hdf5Error, Table};
use super::table::Row;

/// Rows the queue holds: at 10 ms intervals, 40 s of a stalled disk.
pub const QUEUE_ROWS: usize = 4096;

/// What the writer is asked to do, for table number `.0` (in the order
/// given to `spawn`).
enum Item {
    Row(usize, Row),
    Attr(usize, String, AttrValue),
}

/// Handle to the writer thread.
pub struct Writer {
    tx: Option<SyncSender<Item>>,
    lost: Arc<AtomicU64>,
    handle: Option<JoinHandle<Result<usize, Hdf5Error>>>,
}

impl Writer {
    /// Starts a thread that owns `file` and appends to `tables`.
    pub fn spawn(file: hdf5::File, tables: Vec<Table>, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let lost = Arc::new(AtomicU64::new(0));
        let lost2 = lost.clone();
        let handle = std::thread::Builder::new()
            .name("messer-writer".into())
            .spawn(move || write_loop(file, tables, rx, lost2))?;
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
        match tx.try_send(Item::Row(table, row)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
                    log::warn!("the writer is behind and its queue is full: rows are being dropped (counted)");
                }
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err("the writer thread stopped".into()),
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
    /// closed; returns the number of rows written to the first table.
    pub fn finish(mut self) -> Result<usize, Hdf5Error> {
        self.tx = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(res)) => res,
            Some(Err(_)) => Err(Hdf5Error::Lib("the writer thread panicked".into())),
            None => Ok(0),
        }
    }
}

fn write_loop(
    file: hdf5::File,
    mut tables: Vec<Table>,
    rx: Receiver<Item>,
    lost: Arc<AtomicU64>,
) -> Result<usize, Hdf5Error> {
    let mut batches: Vec<Vec<Row>> = tables.iter().map(|_| Vec::new()).collect();
    let mut lost_written = 0;
    let main = 0;
    while let Ok(first) = rx.recv() {
        let mut attrs = Vec::new();
        for item in std::iter::once(first).chain(rx.try_iter()) {
            match item {
                Item::Row(t, row) => {
                    if let Some(b) = batches.get_mut(t) {
                        b.push(row);
                    }
                }
                Item::Attr(t, name, value) => attrs.push((t, name, value)),
            }
        }
        for (table, batch) in tables.iter_mut().zip(&mut batches) {
            if !batch.is_empty() {
                table.append(batch)?;
                batch.clear();
            }
        }
        for (t, name, value) in attrs {
            if let Some(table) = tables.get(t) {
                table.set_attr(&name, &value)?;
            }
        }
        let lost_now = lost.load(Ordering::Relaxed);
        if lost_now != lost_written {
            tables[main].set_attr("messer_rows_lost", &AttrValue::I64(lost_now as i64))?;
            lost_written = lost_now;
        }
        h5::flush(&file)?;
    }
    tables[main].set_attr("messer_rows_lost", &AttrValue::I64(lost.load(Ordering::Relaxed) as i64))?;
    h5::flush(&file)?;
    Ok(tables[main].len())
}
