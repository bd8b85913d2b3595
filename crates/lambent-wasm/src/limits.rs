//! Per-instance limits: the memory limiter, the epoch deadline, and turning wasmtime's errors into
//! [`InvokeError`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};

use crate::InvokeError;

const MB: usize = 1024 * 1024;
/// Most table elements one instance may have; generous for interpreters, bounded for the host.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Raised from the memory limiter when a guest asks for more than its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
pub(crate) struct MemoryExceeded {
    pub(crate) limit: usize,
    pub(crate) wanted: usize,
}

/// Raised from the epoch callback at the deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
pub(crate) struct DeadlineExceeded;

/// The memory limit of one instance that serves several calls at once (per-instance
/// concurrency): each call runs in its own store, and their linear memories together stay within
/// the instance's limit.
#[derive(Debug)]
pub struct SharedMemory {
    limit: usize,
    used: AtomicUsize,
}

impl SharedMemory {
    /// An instance's memory of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes of linear memory its calls hold now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Caps the sum of all linear memories of one call, and of the calls sharing its instance.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: usize,
    used: usize,
    shared: Option<Arc<SharedMemory>>,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize, shared: Option<Arc<SharedMemory>>) -> Self {
        Self {
            limit,
            used: 0,
            shared,
        }
    }
}

impl Drop for MemoryLimiter {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.used.fetch_sub(self.used, Ordering::AcqRel);
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used.saturating_sub(current).saturating_add(desired);
        if total > self.limit {
            return Err(wasmtime::Error::new(MemoryExceeded {
                limit: self.limit,
                wanted: total,
            }));
        }
        if let Some(shared) = &self.shared {
            let grow = total.saturating_sub(self.used);
            let shrink = self.used.saturating_sub(total);
            let charged = shared
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    n.saturating_sub(shrink)
                        .checked_add(grow)
                        .filter(|t| *t <= shared.limit)
                });
            if let Err(n) = charged {
                return Err(wasmtime::Error::new(MemoryExceeded {
                    limit: shared.limit,
                    wanted: n.saturating_add(grow),
                }));
            }
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Arms the epoch deadline: wasm yields to the executor on every tick and traps once `timeout`
/// has passed. Host waits are bounded separately by the caller's wall-clock timeout.
pub(crate) fn arm_deadline<T: 'static>(store: &mut Store<T>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
}

/// Classifies an error that came out of running a guest.
pub(crate) fn classify(err: &wasmtime::Error, timeout: Duration) -> InvokeError {
    if err.is::<DeadlineExceeded>() {
        return InvokeError::Timeout { timeout };
    }
    if let Some(m) = err.downcast_ref::<MemoryExceeded>() {
        return InvokeError::OutOfMemory {
            limit_mb: (m.limit / MB) as u64,
            wanted_mb: m.wanted.div_ceil(MB) as u64,
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return InvokeError::Exited(exit.0);
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return InvokeError::Trap(trap.to_string());
    }
    if let Some(limit) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return InvokeError::Capacity(limit.to_string());
    }
    InvokeError::Trap(format!("{err:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_all_memories() {
        let mut l = MemoryLimiter::new(10 * MB, None);
        assert!(l.memory_growing(0, 6 * MB, None).expect("fits"));
        assert!(l.memory_growing(0, 3 * MB, None).expect("fits"));
        let err = l.memory_growing(3 * MB, 5 * MB, None).expect_err("over");
        match classify(&err, Duration::from_secs(1)) {
            InvokeError::OutOfMemory {
                limit_mb,
                wanted_mb,
            } => assert_eq!((limit_mb, wanted_mb), (10, 11)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn calls_sharing_an_instance_share_its_limit() {
        let shared = SharedMemory::new(10 * MB);
        let mut a = MemoryLimiter::new(10 * MB, Some(shared.clone()));
        let mut b = MemoryLimiter::new(10 * MB, Some(shared.clone()));
        assert!(a.memory_growing(0, 6 * MB, None).expect("fits"));
        assert!(b.memory_growing(0, 4 * MB, None).expect("exactly fits"));
        assert_eq!(shared.used(), 10 * MB);
        let err = b
            .memory_growing(4 * MB, 5 * MB, None)
            .expect_err("over the shared limit");
        assert!(matches!(
            classify(&err, Duration::from_secs(1)),
            InvokeError::OutOfMemory { limit_mb: 10, .. }
        ));
        drop(a);
        assert_eq!(
            shared.used(),
            4 * MB,
            "a finished call gives its memory back"
        );
        assert!(b.memory_growing(4 * MB, 9 * MB, None).expect("room again"));
        drop(b);
        assert_eq!(shared.used(), 0);
    }
}
