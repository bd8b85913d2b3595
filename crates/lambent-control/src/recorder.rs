//! Writes invocation records to the metadata store off the request path, in batches, and the
//! meter's per-minute usage every second.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lambent_core::InvocationRecord;
use lambent_store::MetadataStore;
use parking_lot::Mutex;

use crate::meter::Meter;

/// Records waiting to be written before new ones are dropped (and counted as dropped).
const QUEUE_CAPACITY: usize = 16_384;
/// Records written per transaction at most.
const BATCH: usize = 512;
/// Invocation records kept in the database; older ones are pruned.
pub const MAX_INVOCATION_RECORDS: u64 = 100_000;
/// How often metered usage is stored.
const USAGE_FLUSH: Duration = Duration::from_secs(1);
/// Batches between two prunings.
const PRUNE_EVERY_BATCHES: u64 = 200;

enum Message {
    Record(Box<InvocationRecord>),
    Stop,
}

/// The handle the platform sends records through.
#[derive(Debug)]
pub struct InvocationRecorder {
    tx: SyncSender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: Arc<AtomicU64>,
    meter: Arc<Meter>,
}

impl InvocationRecorder {
    /// Starts the writer thread.
    pub fn start(metadata: Arc<dyn MetadataStore>) -> Self {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let meter = Arc::new(Meter::default());
        let m = meter.clone();
        let thread = std::thread::Builder::new()
            .name("lambent-recorder".into())
            .spawn(move || write_loop(&*metadata, &rx, &m))
            .ok();
        Self {
            tx,
            thread: Mutex::new(thread),
            dropped: Arc::default(),
            meter,
        }
    }

    /// The meter every call goes through.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Queues a record; never blocks the caller. When the queue is full the record is dropped and
    /// counted.
    pub fn record(&self, record: InvocationRecord) {
        match self.tx.try_send(Message::Record(Box::new(record))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Message::Stop);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// Stores what the meter gathered; on failure keeps it for the next try.
fn flush_usage(metadata: &dyn MetadataStore, meter: &Meter) {
    if let Err(e) = meter.flush(|rows| metadata.add_usage(rows)) {
        tracing::error!(error = %e, "cannot store usage; trying again");
    }
}

fn write_loop(metadata: &dyn MetadataStore, rx: &Receiver<Message>, meter: &Meter) {
    let mut batches = 0u64;
    let mut stop = false;
    let mut flushed = Instant::now();
    while !stop {
        if flushed.elapsed() >= USAGE_FLUSH {
            flush_usage(metadata, meter);
            flushed = Instant::now();
        }
        let first = match rx.recv_timeout(USAGE_FLUSH) {
            Ok(Message::Record(r)) => *r,
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => continue,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Message::Record(r)) => batch.push(*r),
                Ok(Message::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = metadata.record_invocations(&batch) {
            tracing::error!(error = %e, records = batch.len(), "cannot store invocation records");
        }
        batches += 1;
        if batches.is_multiple_of(PRUNE_EVERY_BATCHES)
            && let Err(e) = metadata.prune_invocations(MAX_INVOCATION_RECORDS)
        {
            tracing::warn!(error = %e, "cannot prune invocation records");
        }
    }
    // Whatever arrived before the stop is still written.
    let rest: Vec<_> = rx
        .try_iter()
        .filter_map(|m| match m {
            Message::Record(r) => Some(*r),
            Message::Stop => None,
        })
        .collect();
    if !rest.is_empty()
        && let Err(e) = metadata.record_invocations(&rest)
    {
        tracing::error!(error = %e, "cannot store invocation records at shutdown");
    }
    flush_usage(metadata, meter);
}
