//! The writer's queue: bounded, and sparing with wake-ups. std's channels
//! wake the reader at every item; here the sampler wakes the writer only
//! when the writer waits for a first item, when a batch is complete
//! (`batch` counted items queued), or when the queue is half full. Each
//! wake-up is a futex call and, for a writer asleep on another CPU, an
//! inter-processor interrupt (a VM exit on a virtual machine): once per
//! sample it was about a tenth of messer's CPU at 10 ms. The writer itself
//! wakes when the oldest queued item is `wait` old, so nothing stays
//! queued longer than that (the crash-loss bound).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State<T> {
    items: VecDeque<T>,
    /// When the oldest queued item came.
    first_at: Option<Instant>,
    /// Counted items queued (rows of the batching table).
    counted: usize,
    /// The reader waits for a first item (without a deadline).
    reader_idle: bool,
    sender_gone: bool,
    reader_gone: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// The reader waits here.
    ready: Condvar,
    /// A blocking send waits here for room.
    room: Condvar,
    capacity: usize,
    batch: usize,
    wait: Duration,
}

impl<T> Shared<T> {
    /// The state, even after a thread panicked while holding it (the
    /// queue's invariants hold between statements).
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why an item was not queued; the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    Full(T),
    Disconnected(T),
}

/// The sampler's end (one).
pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

/// The writer's end (one).
pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue of at most `capacity` items, read in batches: a batch is ready
/// when `batch` counted items are queued or its oldest item is `wait` old.
pub fn channel<T>(capacity: usize, batch: usize, wait: Duration) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            first_at: None,
            counted: 0,
            reader_idle: false,
            sender_gone: false,
            reader_gone: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
        capacity: capacity.max(1),
        batch: batch.max(1),
        wait,
    });
    (Sender { shared: shared.clone() }, Receiver { shared })
}

impl<T> Sender<T> {
    /// Queues `item` if there is room (`counted`: it counts towards a
    /// batch); never waits.
    pub fn try_send(&self, item: T, counted: bool) -> Result<(), SendError<T>> {
        let s = &self.shared;
        let mut st = s.lock();
        if st.reader_gone {
            return Err(SendError::Disconnected(item));
        }
        if st.items.len() >= s.capacity {
            return Err(SendError::Full(item));
        }
        self.push(&mut st, item, counted);
        Ok(())
    }

    /// Queues `item`, waiting for room if the queue is full.
    pub fn send(&self, item: T) -> Result<(), SendError<T>> {
        let s = &self.shared;
        let mut st = s.lock();
        while st.items.len() >= s.capacity && !st.reader_gone {
            st = s.room.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        if st.reader_gone {
            return Err(SendError::Disconnected(item));
        }
        self.push(&mut st, item, false);
        Ok(())
    }

    fn push(&self, st: &mut State<T>, item: T, counted: bool) {
        let s = &self.shared;
        if st.items.is_empty() {
            st.first_at = Some(Instant::now());
        }
        st.items.push_back(item);
        st.counted += usize::from(counted);
        let wake = std::mem::replace(&mut st.reader_idle, false)
            || (counted && st.counted == s.batch)
            || st.items.len() == s.capacity.div_ceil(2);
        if wake {
            s.ready.notify_one();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.ready.notify_one();
    }
}

impl<T> Receiver<T> {
    /// Waits until a batch is ready and moves every queued item into `out`
    /// (in order). False once the sender is gone and nothing is left:
    /// `out` then holds the last items, if any.
    pub fn next_batch(&self, out: &mut Vec<T>) -> bool {
        let s = &self.shared;
        let mut st = s.lock();
        loop {
            if st.sender_gone {
                break;
            }
            match st.first_at {
                None => {
                    st.reader_idle = true;
                    st = s.ready.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                Some(first) => {
                    let due = first + s.wait;
                    let now = Instant::now();
                    if st.counted >= s.batch || st.items.len() >= s.capacity.div_ceil(2) || now >= due {
                        break;
                    }
                    st.reader_idle = false;
                    st = s.ready.wait_timeout(st, due - now).unwrap_or_else(std::sync::PoisonError::into_inner).0;
                }
            }
        }
        st.reader_idle = false;
        out.extend(st.items.drain(..));
        st.first_at = None;
        st.counted = 0;
        let more = !st.sender_gone;
        drop(st);
        s.room.notify_all();
        more
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.lock().reader_gone = true;
        self.shared.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_ready_at_its_count_without_waiting_for_the_deadline() {
        let (tx, rx) = channel(100, 3, Duration::from_secs(30));
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let more = rx.next_batch(&mut out);
            (out, more)
        });
        let t0 = Instant::now();
        for i in 0..3 {
            tx.try_send(i, true).unwrap();
        }
        let (out, more) = reader.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10));
        assert!(more);
        assert_eq!(out, vec![0, 1, 2]);
    }

    #[test]
    fn an_item_waits_at_most_the_deadline() {
        let wait = Duration::from_millis(50);
        let (tx, rx) = channel(100, 1000, wait);
        let t0 = Instant::now();
        tx.try_send(7, true).unwrap();
        let mut out = Vec::new();
        assert!(rx.next_batch(&mut out));
        let took = t0.elapsed();
        assert_eq!(out, vec![7]);
        assert!(took >= wait && took < wait * 20, "{took:?}");
    }

    #[test]
    fn an_idle_reader_is_woken_by_the_first_item() {
        let (tx, rx) = channel(100, 1000, Duration::from_millis(20));
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            rx.next_batch(&mut out);
            out
        });
        std::thread::sleep(Duration::from_millis(50));
        tx.try_send(1, false).unwrap();
        assert_eq!(reader.join().unwrap(), vec![1]);
    }

    #[test]
    fn a_full_queue_refuses_and_a_blocking_send_waits_for_room() {
        let (tx, rx) = channel(2, 1000, Duration::from_secs(30));
        tx.try_send(1, false).unwrap();
        tx.try_send(2, false).unwrap();
        assert_eq!(tx.try_send(3, false), Err(SendError::Full(3)));
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            // Half full: ready at once.
            rx.next_batch(&mut out);
            (out, rx)
        });
        let (out, rx) = reader.join().unwrap();
        assert_eq!(out, vec![1, 2]);
        tx.send(4).unwrap();
        drop(tx);
        let mut last = Vec::new();
        assert!(!rx.next_batch(&mut last));
        assert_eq!(last, vec![4]);
    }

    #[test]
    fn a_gone_reader_disconnects_the_sender() {
        let (tx, rx) = channel::<u32>(1, 1, Duration::from_secs(1));
        drop(rx);
        assert_eq!(tx.try_send(1, true), Err(SendError::Disconnected(1)));
        assert_eq!(tx.send(2), Err(SendError::Disconnected(2)));
    }
}
