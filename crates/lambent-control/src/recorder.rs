//! Writes invocation records to the metadata store off the request path, in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use lambent_core::InvocationRecord;
use lambent_store::MetadataStore;
use parking_lot::Mutex;

/// Records waiting to be written before new ones are dropped (and counted as dropped).
const QUEUE_CAPACITY: usize = 16_384;
/// Records written per transaction at most.
const BATCH: usize = 512;
/// Invocation records kept in the database; older ones are pruned.
pub const MAX_INVOCATION_RECORDS: u64 = 100_000;
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
}

impl InvocationRecorder {
    /// Starts the writer thread.
    pub fn start(metadata: Arc<MetadataStore>) -> Self {
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("lambent-recorder".into())
            .spawn(move || write_loop(&metadata, &rx))
            .ok();
        Self {
            tx,
            thread: Mutex::new(thread),
            dropped: Arc::default(),
        }
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

fn write_loop(metadata: &MetadataStore, rx: &Receiver<Message>) {
    let mut batches = 0u64;
    let mut stop = false;
    while !stop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
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
}
