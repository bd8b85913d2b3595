//! Metering: every call, whether or not its record is kept, is added to per-minute usage totals
//! (flushed to the metadata store every second by the recorder) and to per-function counters
//! and histograms for `/metrics`. Adding a call costs a read lock, a few atomic adds and one
//! short mutex-held map update.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lambent_core::{UsageRow, UsageSums, billed_ms, gb_seconds};
use parking_lot::{Mutex, RwLock};

/// Upper bounds (ms) of the duration and init histogram buckets; the last bucket is `+Inf`.
pub const HISTOGRAM_BOUNDS_MS: [f64; 14] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
];

/// A Prometheus-style histogram of milliseconds, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; HISTOGRAM_BOUNDS_MS.len()],
    count: AtomicU64,
    /// Sum in microseconds, so it can be an integer.
    sum_us: AtomicU64,
}

impl Histogram {
    /// Adds one observation.
    pub fn observe(&self, ms: f64) {
        if let Some(i) = HISTOGRAM_BOUNDS_MS.iter().position(|b| ms <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let us = if ms.is_finite() && ms > 0.0 {
            (ms * 1000.0) as u64
        } else {
            0
        };
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (one per bound), the total count and the sum in ms.
    pub fn snapshot(&self) -> (Vec<u64>, u64, f64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        (
            cumulative,
            self.count.load(Ordering::Relaxed),
            self.sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

/// Lifetime counters of one function, for `/metrics` and `lambent top`.
#[derive(Debug, Default)]
pub struct FunctionMetrics {
    /// Calls that ran.
    pub invocations: AtomicU64,
    /// Calls that ended in an error.
    pub errors: AtomicU64,
    /// Calls refused by a concurrency limit.
    pub throttles: AtomicU64,
    /// Calls that started an instance.
    pub cold_starts: AtomicU64,
    /// GB-seconds, in millionths.
    pub micro_gb_seconds: AtomicU64,
    /// Wall time of calls.
    pub duration: Histogram,
    /// Instance start time of cold calls.
    pub init: Histogram,
}

/// One finished call, as metering sees it.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The tenant billed.
    pub tenant: &'a str,
    /// The function.
    pub function: &'a str,
    /// The version that ran.
    pub version: &'a str,
    /// When it started (ms since the epoch).
    pub started_at_ms: i64,
    /// Its wall time.
    pub duration_ms: f64,
    /// Its instance start time (0 when warm).
    pub init_ms: f64,
    /// Whether it started an instance.
    pub cold_start: bool,
    /// Whether it ended in an error.
    pub error: bool,
    /// The function's memory setting.
    pub memory_mb: u32,
}

type UsageKey = (i64, String, String, String);

/// The account's meter.
#[derive(Debug, Default)]
pub struct Meter {
    pending: Mutex<HashMap<UsageKey, UsageSums>>,
    /// Held from taking rows to storing them, so a reader that flushes first never misses
    /// rows another flush has taken but not yet stored.
    flushing: Mutex<()>,
    functions: RwLock<HashMap<String, Arc<FunctionMetrics>>>,
}

impl Meter {
    /// The counters of `function`, made on first use.
    pub fn function(&self, function: &str) -> Arc<FunctionMetrics> {
        if let Some(m) = self.functions.read().get(function) {
            return m.clone();
        }
        self.functions
            .write()
            .entry(function.to_owned())
            .or_default()
            .clone()
    }

    /// Every function's counters, by name.
    pub fn functions(&self) -> Vec<(String, Arc<FunctionMetrics>)> {
        let mut all: Vec<_> = self
            .functions
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Forgets a deleted function's counters (its usage stays stored).
    pub fn forget(&self, function: &str) {
        self.functions.write().remove(function);
    }

    /// Adds one finished call; returns its billed ms and GB-seconds.
    pub fn call(&self, s: &Sample<'_>) -> (u64, f64) {
        let billed = billed_ms(s.duration_ms);
        let gbs = gb_seconds(s.memory_mb, billed);
        let m = self.function(s.function);
        m.invocations.fetch_add(1, Ordering::Relaxed);
        if s.error {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
        if s.cold_start {
            m.cold_starts.fetch_add(1, Ordering::Relaxed);
            m.init.observe(s.init_ms);
        }
        m.duration.observe(s.duration_ms);
        m.micro_gb_seconds
            .fetch_add((gbs * 1e6).round() as u64, Ordering::Relaxed);
        let sums = UsageSums {
            invocations: 1,
            errors: u64::from(s.error),
            throttles: 0,
            cold_starts: u64::from(s.cold_start),
            duration_ms: s.duration_ms,
            billed_ms: billed,
            gb_seconds: gbs,
            init_ms: if s.cold_start { s.init_ms } else { 0.0 },
        };
        self.add(s.started_at_ms, s.tenant, s.function, s.version, &sums);
        (billed, gbs)
    }

    /// Adds one refused call.
    pub fn throttle(&self, tenant: &str, function: &str, version: &str, at_ms: i64) {
        self.function(function)
            .throttles
            .fetch_add(1, Ordering::Relaxed);
        let sums = UsageSums {
            throttles: 1,
            ..UsageSums::default()
        };
        self.add(at_ms, tenant, function, version, &sums);
    }

    fn add(&self, at_ms: i64, tenant: &str, function: &str, version: &str, sums: &UsageSums) {
        let minute = at_ms - at_ms.rem_euclid(60_000);
        let key = (
            minute,
            tenant.to_owned(),
            function.to_owned(),
            version.to_owned(),
        );
        self.pending.lock().entry(key).or_default().add(sums);
    }

    /// Stores what was metered since the last flush with `store`; on failure the rows are kept
    /// for the next flush.
    pub fn flush<E>(&self, store: impl FnOnce(&[UsageRow]) -> Result<(), E>) -> Result<(), E> {
        let _one_at_a_time = self.flushing.lock();
        let rows = self.take();
        if rows.is_empty() {
            return Ok(());
        }
        store(&rows).inspect_err(|_| self.restore(rows.clone()))
    }

    /// Takes what was metered since the last call, for storing.
    pub fn take(&self) -> Vec<UsageRow> {
        let pending = std::mem::take(&mut *self.pending.lock());
        pending
            .into_iter()
            .map(|((minute_ms, tenant, function, version), sums)| UsageRow {
                minute_ms,
                tenant,
                function,
                version,
                sums,
            })
            .collect()
    }

    /// Puts back rows that could not be stored, so the next flush tries again.
    pub fn restore(&self, rows: Vec<UsageRow>) {
        let mut pending = self.pending.lock();
        for r in rows {
            pending
                .entry((r.minute_ms, r.tenant, r.function, r.version))
                .or_default()
                .add(&r.sums);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(started_at_ms: i64, duration_ms: f64, cold: bool) -> Sample<'static> {
        Sample {
            tenant: "default",
            function: "f",
            version: "1",
            started_at_ms,
            duration_ms,
            init_ms: if cold { 40.0 } else { 0.0 },
            cold_start: cold,
            error: false,
            memory_mb: 1024,
        }
    }

    #[test]
    fn calls_add_up_per_minute_and_bill_whole_milliseconds() {
        let m = Meter::default();
        assert_eq!(m.call(&sample(1_000, 0.2, true)), (1, 0.001));
        assert_eq!(m.call(&sample(59_999, 10.01, false)).0, 11);
        m.call(&sample(60_000, 3.0, false));
        m.throttle("default", "f", "1", 61_000);
        let mut rows = m.take();
        rows.sort_by_key(|r| r.minute_ms);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].sums.invocations, 2);
        assert_eq!(rows[0].sums.billed_ms, 12);
        assert_eq!(rows[0].sums.cold_starts, 1);
        assert!((rows[0].sums.init_ms - 40.0).abs() < 1e-9);
        assert_eq!(rows[1].sums.invocations, 1);
        assert_eq!(rows[1].sums.throttles, 1);
        assert!(m.take().is_empty(), "taken once");
        m.restore(rows);
        assert_eq!(m.take().len(), 2, "put back after a failed write");
        let f = m.function("f");
        assert_eq!(f.invocations.load(Ordering::Relaxed), 3);
        assert_eq!(f.throttles.load(Ordering::Relaxed), 1);
        let (buckets, count, sum) = f.duration.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], 1, "0.2 ms is in the first bucket");
        assert_eq!(*buckets.last().expect("bucket"), 3);
        assert!((sum - 13.21).abs() < 1e-6);
    }
}
