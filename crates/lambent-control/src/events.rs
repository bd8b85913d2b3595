//! Asynchronous invocation: durable accept, pollers with retries and destinations, event invoke
//! configurations, and a controllable clock.
//!
//! An accepted event is in `events.db` before the caller hears 202. The dispatcher claims due
//! events (marking them running and counting the attempt in the same commit), runs each through
//! [`Platform::invoke`] so that concurrency limits apply, and stores the outcome, with any
//! destination record, in one transaction. A crash between claim and outcome leaves the event
//! `running`; opening the store puts it back, so it runs again: at least once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lambent_core::event::MAX_IDEMPOTENCY_KEY_CHARS;
use lambent_core::limits::MAX_ASYNC_PAYLOAD_BYTES;
use lambent_core::{
    Destination, EventInvokeConfig, FunctionArn, FunctionName, InvokeError, Qualifier, Selector,
};
use lambent_store::events::{
    Conclusion, Delivery, Enqueued, Event, EventConfigRow, EventDepth, EventState, NewEvent,
    NewMessage, Outcome,
};
use lambent_store::metadata::rfc3339_ms;
use lambent_store::{EventStore, EventStoreError};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::platform::{ControlError, InvokeOptions, Platform, new_id, now_ms};

/// Largest function response kept with an event and put in a destination record (Lambda's
/// destination limit).
const MAX_KEPT_RESPONSE_BYTES: usize = 256 * 1024;
/// Finished events are forgotten after this long.
const EVENT_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// Longest wait between two tries of a throttled event.
const MAX_THROTTLE_DELAY_MS: i64 = 60_000;
/// First wait after a throttle.
const FIRST_THROTTLE_DELAY_MS: i64 = 500;
/// Events claimed per commit at most.
const CLAIM_BATCH: usize = 512;
/// Finished events forgotten per write.
const PRUNE_CHUNK: usize = 5_000;
/// Tries to store an event's outcome before leaving it to the janitor.
const CONCLUDE_ATTEMPTS: u32 = 8;
/// An event `running` this long (twice the longest function timeout) lost its outcome.
const STALE_RUNNING_MS: i64 = 2 * lambent_core::limits::MAX_TIMEOUT_S as i64 * 1000;
/// Idempotency key prefixes lambent uses for the events it makes itself.
const RESERVED_KEY_PREFIXES: [&str; 2] = ["schedule:", "destination:"];
/// The largest single move of the test clock.
#[cfg(feature = "test-clock")]
const MAX_CLOCK_STEP_MS: i64 = 366 * 24 * 3600 * 1000;
/// The meta key of the test clock's offset.
#[cfg(feature = "test-clock")]
const CLOCK_KEY: &str = "clock_offset_ms";

impl From<EventStoreError> for ControlError {
    fn from(e: EventStoreError) -> Self {
        match e {
            EventStoreError::NoSuchQueue { name } => queue_not_found(&name),
            e @ EventStoreError::NoSuchEvent { .. } => ControlError::NotFound(e.to_string()),
            e @ (EventStoreError::QueueExists { .. } | EventStoreError::ScheduleExists { .. }) => {
                ControlError::Conflict(e.to_string())
            }
            other => ControlError::Events(other),
        }
    }
}

/// The answer to a queue that does not exist.
pub(crate) fn queue_not_found(name: &str) -> ControlError {
    ControlError::NotFound(format!(
        "queue {name} does not exist; create it with lambent queue create {name}"
    ))
}

/// A poller slot taken by a running event; giving it back wakes the dispatcher.
struct PollerSlot(Arc<Platform>);

impl Drop for PollerSlot {
    fn drop(&mut self) {
        self.0.events.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.events.dispatch.notify_one();
    }
}

/// Wall-clock time, with an offset tests may move forward (`--test-clock`).
#[derive(Debug)]
pub struct Clock {
    offset_ms: AtomicI64,
    #[cfg(feature = "test-clock")]
    controllable: bool,
}

impl Clock {
    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }
}

/// How the asynchronous side runs.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Wait before the first retry of a failed event; doubles for the second (Lambda waits about
    /// a minute, then two).
    pub retry_base: Duration,
    /// Events run at once, at most.
    pub pollers: usize,
    /// Whether `advance_clock` is allowed (tests only; the field exists only with the
    /// `test-clock` feature, so a release build never reads a stored offset).
    #[cfg(feature = "test-clock")]
    pub test_clock: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(60),
            pollers: 256,
            #[cfg(feature = "test-clock")]
            test_clock: false,
        }
    }
}

/// Counters of the asynchronous side.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventStats {
    /// Events accepted since start.
    pub accepted: u64,
    /// Repeated idempotency keys answered with the first event's id.
    pub duplicates: u64,
    /// Events that succeeded.
    pub succeeded: u64,
    /// Runs that failed and were scheduled again.
    pub retried: u64,
    /// Events given up (retries exhausted or too old).
    pub failed: u64,
    /// Events running now.
    pub running: u64,
    /// Events a crash left running, put back at start.
    pub recovered: u64,
}

/// A configuration's function and qualifier.
type ConfigKey = (String, String);

/// The asynchronous side's state inside [`Platform`]: the event store behind its trait, the
/// cached event invoke configurations, the clock, the wake-ups of the background tasks and the
/// counters.
#[derive(Debug)]
pub(crate) struct Events {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) clock: Clock,
    config: EventsConfig,
    configs: RwLock<HashMap<ConfigKey, Arc<(EventInvokeConfig, i64)>>>,
    pub(crate) dispatch: Notify,
    pub(crate) schedules_changed: Notify,
    pub(crate) triggers_changed: Notify,
    pub(crate) queue_wakes: parking_lot::Mutex<HashMap<String, Arc<Notify>>>,
    in_flight: AtomicUsize,
    /// Serialises test clock advances.
    #[cfg(feature = "test-clock")]
    clock_lock: tokio::sync::Mutex<()>,
    pub(crate) accepted: AtomicU64,
    duplicates: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    recovered: u64,
}

fn config_from_row(row: &EventConfigRow) -> EventInvokeConfig {
    EventInvokeConfig {
        max_retry_attempts: row.max_retries,
        max_event_age_s: row.max_age_s,
        on_success: row
            .on_success
            .as_deref()
            .and_then(|d| Destination::parse(d).ok()),
        on_failure: row
            .on_failure
            .as_deref()
            .and_then(|d| Destination::parse(d).ok()),
    }
}

impl Events {
    /// The asynchronous side over `store`; `recovered` is how many events opening it put back.
    pub(crate) async fn new(
        store: Arc<dyn EventStore>,
        recovered: usize,
        config: EventsConfig,
    ) -> Result<Self, EventStoreError> {
        if recovered > 0 {
            tracing::warn!(
                events = recovered,
                "events that were running when lambent stopped will run again"
            );
        }
        #[cfg(feature = "test-clock")]
        let offset = if config.test_clock {
            store
                .setting(CLOCK_KEY)
                .await?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        } else {
            0
        };
        #[cfg(not(feature = "test-clock"))]
        let offset = 0;
        let configs = store
            .configs()
            .await?
            .into_iter()
            .map(|row| {
                (
                    (row.function.clone(), row.qualifier.clone()),
                    Arc::new((config_from_row(&row), row.updated_ms)),
                )
            })
            .collect();
        Ok(Self {
            store,
            clock: Clock {
                offset_ms: AtomicI64::new(offset),
                #[cfg(feature = "test-clock")]
                controllable: config.test_clock,
            },
            config,
            configs: RwLock::new(configs),
            dispatch: Notify::new(),
            schedules_changed: Notify::new(),
            triggers_changed: Notify::new(),
            queue_wakes: parking_lot::Mutex::default(),
            in_flight: AtomicUsize::new(0),
            #[cfg(feature = "test-clock")]
            clock_lock: tokio::sync::Mutex::new(()),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            succeeded: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            recovered: recovered as u64,
        })
    }

    /// Stores an event durably and wakes the dispatcher (unless its idempotency key was seen).
    pub(crate) async fn accept(&self, event: NewEvent) -> Result<Enqueued, EventStoreError> {
        let enqueued = self.store.enqueue(event).await?;
        if enqueued.duplicate {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            self.accepted.fetch_add(1, Ordering::Relaxed);
            self.dispatch.notify_one();
        }
        Ok(enqueued)
    }

    /// Moves the test clock forward (only when it is controllable); returns the new time.
    #[cfg(feature = "test-clock")]
    pub(crate) async fn advance_clock(&self, by_ms: i64) -> Result<i64, ControlError> {
        let clock = &self.clock;
        if !clock.controllable {
            return Err(ControlError::NotFound(
                "the clock is not controllable; start lambent with --test-clock".into(),
            ));
        }
        if !(0..=MAX_CLOCK_STEP_MS).contains(&by_ms) {
            return Err(ControlError::Invalid(format!(
                "the clock moves forward by 0 to {MAX_CLOCK_STEP_MS} ms (a year) at a time; got {by_ms}"
            )));
        }
        // One advance at a time, stored before it takes effect, so a restart never sees the
        // clock go back.
        let _guard = self.clock_lock.lock().await;
        let offset = clock
            .offset_ms
            .load(Ordering::Acquire)
            .saturating_add(by_ms);
        self.store
            .put_setting(CLOCK_KEY, &offset.to_string())
            .await?;
        clock.offset_ms.store(offset, Ordering::Release);
        self.dispatch.notify_one();
        self.schedules_changed.notify_one();
        self.triggers_changed.notify_one();
        Ok(clock.now_ms())
    }

    /// Stores a configuration and caches it.
    async fn put_config(
        &self,
        row: EventConfigRow,
        config: EventInvokeConfig,
    ) -> Result<(), EventStoreError> {
        let key = (row.function.clone(), row.qualifier.clone());
        let updated_ms = row.updated_ms;
        self.store.put_config(row).await?;
        self.configs
            .write()
            .insert(key, Arc::new((config, updated_ms)));
        Ok(())
    }

    /// Deletes a configuration; whether it existed.
    async fn delete_config(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, EventStoreError> {
        let existed = self.store.delete_config(function, qualifier).await?;
        self.configs
            .write()
            .remove(&(function.to_owned(), qualifier.to_owned()));
        Ok(existed)
    }

    /// Stores an event's outcome with its destination record. A failed write (a full disk, say)
    /// is retried with backoff; if it never succeeds the event stays `running` and the janitor
    /// (or the next start) runs it again.
    async fn store_outcome(&self, conclusion: Conclusion) {
        let id = conclusion.id.clone();
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=CONCLUDE_ATTEMPTS {
            match self.store.conclude(conclusion.clone()).await {
                Ok(done) => {
                    if done.destination_missing {
                        tracing::error!(event = %id, "destination lost: its queue does not exist");
                    }
                    return;
                }
                Err(e) if attempt < CONCLUDE_ATTEMPTS => {
                    tracing::warn!(event = %id, "cannot store the event's outcome, trying again: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::error!(event = %id, "cannot store the event's outcome; it will run again: {e}")
                }
            }
        }
    }

    /// Forgets old finished events (in chunks, so accepts never wait long behind it) and puts
    /// back events whose outcome was never stored.
    async fn janitor(&self) {
        let before = self.clock.now_ms() - EVENT_RETENTION_MS;
        loop {
            match self.store.prune(before, PRUNE_CHUNK).await {
                Ok(n) if n == PRUNE_CHUNK => tokio::task::yield_now().await,
                Ok(n) => {
                    tracing::debug!(events = n, "forgot finished events");
                    break;
                }
                Err(e) => {
                    tracing::warn!("cannot prune finished events: {e}");
                    break;
                }
            }
        }
        let now = self.clock.now_ms();
        match self.store.requeue_stale(now - STALE_RUNNING_MS, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::warn!(events = n, "running again events whose outcome was lost");
                self.dispatch.notify_one();
            }
            Err(e) => tracing::warn!("cannot look for lost events: {e}"),
        }
    }

    pub(crate) fn stats(&self) -> EventStats {
        EventStats {
            accepted: self.accepted.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            running: self.in_flight.load(Ordering::Relaxed) as u64,
            recovered: self.recovered,
        }
    }

    /// The configuration that applies to events of `function:qualifier`.
    fn config_for(&self, function: &str, qualifier: &str) -> EventInvokeConfig {
        self.configs
            .read()
            .get(&(function.to_owned(), qualifier.to_owned()))
            .map(|c| c.0.clone())
            .unwrap_or_default()
    }

    pub(crate) fn queue_wake(&self, queue: &str) -> Arc<Notify> {
        self.queue_wakes
            .lock()
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }
}

/// An event to accept.
#[derive(Debug, Clone, Default)]
pub struct EventRequest {
    /// The payload.
    pub payload: Bytes,
    /// Headers for the function (content type and the like).
    pub headers: Vec<(String, String)>,
    /// A caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// What produced it (`api`, `lambda`, ...).
    pub source: String,
    /// The id to use (the request id of the call that carries it); a new one when `None`.
    pub id: Option<String>,
}

/// The Lambda name of a qualifier as stored with an event: `$LATEST`, a number or an alias.
fn qualifier_key(selector: &Selector) -> String {
    selector.to_string()
}

/// `payload` as JSON when it is JSON, else as a string.
fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Exponential backoff with jitter: `base * 2^(n-1)`, scaled by a random factor in [0.5, 1].
fn backoff_ms(base_ms: i64, n: u32, cap_ms: i64) -> i64 {
    let exp = base_ms.saturating_mul(1_i64 << n.saturating_sub(1).min(20));
    let capped = exp.min(cap_ms).max(1);
    capped / 2 + (fastrand::f64() * (capped as f64 / 2.0)) as i64
}

impl Platform {
    fn function_arn(&self, function: &str, qualifier: &str) -> String {
        FunctionArn::new(&self.region, function, Some(qualifier)).to_string()
    }

    /// Accepts an asynchronous invocation: stores it durably and returns its id (or, for a
    /// repeated idempotency key, the first event's id) once it is on disk.
    pub async fn accept_event(
        &self,
        name: &FunctionName,
        selector: &Selector,
        request: EventRequest,
    ) -> Result<Enqueued, ControlError> {
        if request.payload.len() > MAX_ASYNC_PAYLOAD_BYTES {
            return Err(InvokeError::PayloadTooLarge {
                limit: MAX_ASYNC_PAYLOAD_BYTES,
            }
            .into());
        }
        if let Some(key) = &request.idempotency_key
            && (key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS)
        {
            return Err(ControlError::Invalid(format!(
                "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )));
        }
        if let Some(key) = &request.idempotency_key
            && RESERVED_KEY_PREFIXES.iter().any(|p| key.starts_with(p))
        {
            return Err(ControlError::Invalid(format!(
                "idempotency keys starting with {} are lambent's own (schedules and \
                 destinations use them); choose another key",
                RESERVED_KEY_PREFIXES.join(" or ")
            )));
        }
        // The function (and alias) must exist when the event is accepted.
        let qualifier = self.route(name, selector)?;
        self.get(name, qualifier)?;
        let event = NewEvent {
            id: request.id.unwrap_or_else(new_id),
            function: name.to_string(),
            qualifier: qualifier_key(selector),
            payload: request.payload.to_vec(),
            headers: request.headers,
            idempotency_key: request.idempotency_key,
            source: request.source,
            accepted_ms: self.events.clock.now_ms(),
        };
        Ok(self.events.accept(event).await?)
    }

    /// One event.
    pub async fn event(&self, id: &str) -> Result<Event, ControlError> {
        self.events.store.event(id).await?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "event {id} does not exist (finished events are kept for 24 hours)"
            ))
        })
    }

    /// Recent events, newest first.
    pub async fn events(
        &self,
        function: Option<&FunctionName>,
        state: Option<EventState>,
        limit: usize,
    ) -> Result<Vec<Event>, ControlError> {
        let function = function.map(FunctionName::as_str);
        Ok(self.events.store.events(function, state, limit).await?)
    }

    /// Events waiting and running.
    pub async fn event_depth(&self) -> Result<(u64, u64), ControlError> {
        let EventDepth { waiting, running } = self.events.store.depth().await?;
        Ok((waiting, running))
    }

    /// Events queued or waiting for a retry, per function.
    pub async fn event_depth_by_function(&self) -> Result<Vec<(String, u64)>, ControlError> {
        Ok(self.events.store.depth_by_function().await?)
    }

    /// Counters of the asynchronous side.
    pub fn event_stats(&self) -> EventStats {
        self.events.stats()
    }

    /// The clock events, schedules and queues run on.
    pub fn clock(&self) -> &Clock {
        &self.events.clock
    }

    /// Moves the test clock forward (only with `--test-clock`); returns the new time.
    #[cfg(feature = "test-clock")]
    pub async fn advance_clock(&self, by_ms: i64) -> Result<i64, ControlError> {
        self.events.advance_clock(by_ms).await
    }

    // ----- event invoke configurations ----------------------------------------------------

    /// Checks that a destination exists.
    pub(crate) async fn check_destination(&self, d: &Destination) -> Result<(), ControlError> {
        match d {
            Destination::Function { name, qualifier } => {
                let q = self.route(name, qualifier).map_err(|e| {
                    ControlError::Invalid(format!("destination {d} does not exist: {e}"))
                })?;
                self.get(name, q).map_err(|e| {
                    ControlError::Invalid(format!("destination {d} does not exist: {e}"))
                })?;
            }
            Destination::Queue(q) => {
                if self.events.store.queue(q.as_str()).await?.is_none() {
                    return Err(ControlError::Invalid(format!(
                        "destination queue {q} does not exist; create it first (lambent queue create {q})"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The event invoke configuration of `name:qualifier`, and when it last changed.
    pub fn event_config(
        &self,
        name: &FunctionName,
        qualifier: &Selector,
    ) -> Result<(EventInvokeConfig, i64), ControlError> {
        let key = (name.to_string(), qualifier_key(qualifier));
        self.events
            .configs
            .read()
            .get(&key)
            .map(|c| (c.0.clone(), c.1))
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "function {name}:{qualifier} has no event invoke configuration"
                ))
            })
    }

    /// Every event invoke configuration of a function.
    pub fn event_configs(
        &self,
        name: &FunctionName,
    ) -> Result<Vec<(String, EventInvokeConfig, i64)>, ControlError> {
        self.get(name, Qualifier::Latest)?;
        let mut out: Vec<_> = self
            .events
            .configs
            .read()
            .iter()
            .filter(|((f, _), _)| f == name.as_str())
            .map(|((_, q), c)| (q.clone(), c.0.clone(), c.1))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Stores the event invoke configuration of `name:qualifier`, replacing any.
    pub async fn put_event_config(
        &self,
        name: &FunctionName,
        qualifier: &Selector,
        config: EventInvokeConfig,
    ) -> Result<(EventInvokeConfig, i64), ControlError> {
        let q = self.route(name, qualifier)?;
        self.get(name, q)?;
        for d in [&config.on_success, &config.on_failure]
            .into_iter()
            .flatten()
        {
            if let Destination::Function { name: target, .. } = d
                && target == name
            {
                return Err(ControlError::Invalid(format!(
                    "destination {d} is invalid: a function cannot have itself as a destination; \
                     send its records to a queue or another function"
                )));
            }
            self.check_destination(d).await?;
        }
        let updated_ms = self.events.clock.now_ms();
        let row = EventConfigRow {
            function: name.to_string(),
            qualifier: qualifier_key(qualifier),
            max_retries: config.max_retry_attempts,
            max_age_s: config.max_event_age_s,
            on_success: config.on_success.as_ref().map(ToString::to_string),
            on_failure: config.on_failure.as_ref().map(ToString::to_string),
            updated_ms,
        };
        self.events.put_config(row, config.clone()).await?;
        Ok((config, updated_ms))
    }

    /// Deletes the event invoke configuration of `name:qualifier`.
    pub async fn delete_event_config(
        &self,
        name: &FunctionName,
        qualifier: &Selector,
    ) -> Result<(), ControlError> {
        let existed = self
            .events
            .delete_config(name.as_str(), &qualifier_key(qualifier))
            .await?;
        if !existed {
            return Err(ControlError::NotFound(format!(
                "function {name}:{qualifier} has no event invoke configuration"
            )));
        }
        Ok(())
    }

    /// Forgets a deleted function's configurations, schedules and triggers.
    pub(crate) async fn forget_events_of(&self, name: &FunctionName) {
        let function = name.to_string();
        self.events
            .configs
            .write()
            .retain(|(f, _), _| f != &function);
        if let Err(e) = self.events.store.forget_function(&function).await {
            tracing::error!(function = %name, "cannot forget the function's schedules and triggers: {e}");
        }
        self.events.schedules_changed.notify_one();
        self.events.triggers_changed.notify_one();
    }

    // ----- background work ----------------------------------------------------------------

    /// Starts the dispatcher, the scheduler, the queue triggers and the janitor.
    pub fn start_async(self: &Arc<Self>) {
        let p = self.clone();
        tokio::spawn(async move { p.dispatch_loop().await });
        let p = self.clone();
        tokio::spawn(async move { p.schedule_loop().await });
        let p = self.clone();
        tokio::spawn(async move { p.trigger_supervisor().await });
        let p = self.clone();
        tokio::spawn(async move { p.provisioned_schedule_loop().await });
        let p = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                p.events.janitor().await;
            }
        });
    }

    async fn dispatch_loop(self: Arc<Self>) {
        let ev = &self.events;
        loop {
            let free = ev
                .config
                .pollers
                .saturating_sub(ev.in_flight.load(Ordering::Acquire));
            if free > 0 {
                let now = ev.clock.now_ms();
                let want = free.min(CLAIM_BATCH);
                match ev.store.claim(now, want).await {
                    Ok(batch) => {
                        let full = batch.len() == want;
                        for event in batch {
                            ev.in_flight.fetch_add(1, Ordering::AcqRel);
                            let p = self.clone();
                            tokio::spawn(async move {
                                // Released even if the run panics, so a poller slot is never lost.
                                let _slot = PollerSlot(p.clone());
                                p.run_event(event).await;
                            });
                        }
                        if full {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::error!("cannot claim events: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
            let wait = match ev.store.next_due().await {
                Ok(Some(due)) if free > 0 => {
                    let ms = (due - ev.clock.now_ms()).clamp(0, 1000);
                    Duration::from_millis(ms as u64)
                }
                _ => Duration::from_secs(1),
            };
            if wait.is_zero() && free > 0 {
                continue;
            }
            let _ = tokio::time::timeout(wait, ev.dispatch.notified()).await;
        }
    }

    /// Runs one claimed event and stores its outcome.
    async fn run_event(&self, event: Event) {
        let config = self.events.config_for(&event.function, &event.qualifier);
        let now = self.events.clock.now_ms();
        let max_age_ms = i64::from(config.max_event_age_s) * 1000;
        if now - event.accepted_ms > max_age_ms {
            let error = format!(
                "the event is {} s old, older than its maximum age of {} s; it was not run",
                (now - event.accepted_ms) / 1000,
                config.max_event_age_s
            );
            let outcome = Outcome::Failed {
                result: None,
                error,
                condition: "EventAgeExceeded".into(),
            };
            // The claim counted an attempt that did not happen.
            self.conclude(event, outcome, &config, None, false).await;
            return;
        }
        let (outcome, response) = self.attempt(&event, &config).await;
        self.conclude(event, outcome, &config, response, true).await;
    }

    /// One run of the function for `event`, and what to do next.
    async fn attempt(
        &self,
        event: &Event,
        config: &EventInvokeConfig,
    ) -> (Outcome, Option<Response>) {
        let retry_or_fail = |error: String, response: Option<Response>| {
            // Backoff counts from when the attempt ended, not when it began.
            let at = self.events.clock.now_ms()
                + backoff_ms(
                    i64::try_from(self.events.config.retry_base.as_millis()).unwrap_or(60_000),
                    event.attempts,
                    i64::MAX / 4,
                );
            let too_old = at - event.accepted_ms > i64::from(config.max_event_age_s) * 1000;
            if event.attempts > config.max_retry_attempts {
                let outcome = Outcome::Failed {
                    result: response.as_ref().map(|r| r.body.clone()),
                    error,
                    condition: "RetriesExhausted".into(),
                };
                (outcome, response)
            } else if too_old {
                let outcome = Outcome::Failed {
                    result: response.as_ref().map(|r| r.body.clone()),
                    error: format!("{error}; the next retry would be past the event's maximum age"),
                    condition: "EventAgeExceeded".into(),
                };
                (outcome, response)
            } else {
                (
                    Outcome::Retry {
                        at_ms: at,
                        error,
                        throttled: false,
                    },
                    response,
                )
            }
        };
        let Ok(name) = FunctionName::new(&event.function) else {
            return gone(format!("function name {} is invalid", event.function));
        };
        let Ok(selector) = event.qualifier.parse::<Selector>() else {
            return gone(format!("qualifier {} is invalid", event.qualifier));
        };
        let mut builder = http::Request::builder().method(http::Method::POST).uri("/");
        let mut has_type = false;
        for (k, v) in &event.headers {
            has_type |= k.eq_ignore_ascii_case("content-type");
            builder = builder.header(k.as_str(), v.as_str());
        }
        if !has_type {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        builder = builder
            .header("lambent-event-id", event.id.as_str())
            .header("lambent-event-attempt", event.attempts.to_string());
        let request = match builder.body(Full::new(Bytes::from(event.payload.clone()))) {
            Ok(r) => r,
            Err(e) => return gone(format!("the stored request is unusable: {e}")),
        };
        let options = InvokeOptions {
            script_name: format!("/fn/{name}"),
            remote_addr: None,
            request_id: Some(event.id.clone()),
        };
        match self.invoke(&name, &selector, request, options).await {
            Ok(served) => {
                let status = served.response.status().as_u16();
                let version = served.version.to_string();
                let function_error = served.function_error.clone();
                let body = match served.response.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => {
                        return retry_or_fail(format!("the function's response failed: {e}"), None);
                    }
                };
                let mut kept = body.to_vec();
                kept.truncate(MAX_KEPT_RESPONSE_BYTES);
                let response = Response {
                    status,
                    version,
                    function_error: function_error
                        .clone()
                        .or_else(|| (status >= 500).then(|| format!("HTTP {status}"))),
                    body: kept,
                };
                match &response.function_error {
                    None => (
                        Outcome::Succeeded {
                            result: response.body.clone(),
                        },
                        Some(response),
                    ),
                    Some(e) => {
                        let error = format!(
                            "function error {e}: {}",
                            String::from_utf8_lossy(&response.body[..response.body.len().min(512)])
                        );
                        retry_or_fail(error, Some(response))
                    }
                }
            }
            Err(failure) => match failure.error {
                // A throttle or a full node is not the function's fault: wait and retry
                // without counting an attempt, as Lambda does.
                ControlError::Invoke(
                    e @ (InvokeError::Throttled(_) | InvokeError::Capacity(_)),
                ) => {
                    let at = self.events.clock.now_ms()
                        + backoff_ms(
                            FIRST_THROTTLE_DELAY_MS,
                            event.throttles + 1,
                            MAX_THROTTLE_DELAY_MS,
                        );
                    (
                        Outcome::Retry {
                            at_ms: at,
                            error: e.to_string(),
                            throttled: true,
                        },
                        None,
                    )
                }
                ControlError::NotFound(why) => gone(why),
                other => retry_or_fail(other.to_string(), None),
            },
        }
    }

    /// Stores an outcome with its destination record, both or neither.
    async fn conclude(
        &self,
        event: Event,
        outcome: Outcome,
        config: &EventInvokeConfig,
        response: Option<Response>,
        ran: bool,
    ) {
        let destination = match &outcome {
            Outcome::Succeeded { .. } => config.on_success.clone(),
            Outcome::Failed { .. } => config.on_failure.clone(),
            Outcome::Retry { .. } => None,
        };
        match &outcome {
            Outcome::Succeeded { .. } => self.events.succeeded.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed { error, .. } => {
                tracing::warn!(event = %event.id, function = %event.function, attempts = event.attempts, "event failed: {error}");
                self.events.failed.fetch_add(1, Ordering::Relaxed)
            }
            Outcome::Retry { throttled, .. } => {
                if !throttled {
                    self.events.retried.fetch_add(1, Ordering::Relaxed);
                }
                0
            }
        };
        let now = self.events.clock.now_ms();
        let destination = destination.map(|d| {
            let record = self.invocation_record(&event, &outcome, response.as_ref(), ran, now);
            delivery(&d, &event.id, &record, now)
        });
        self.events
            .store_outcome(Conclusion {
                id: event.id,
                outcome,
                ran,
                destination,
                now_ms: now,
            })
            .await;
    }

    /// Lambda's invocation record for destinations.
    fn invocation_record(
        &self,
        event: &Event,
        outcome: &Outcome,
        response: Option<&Response>,
        ran: bool,
        now: i64,
    ) -> Value {
        let condition = match outcome {
            Outcome::Succeeded { .. } => "Success",
            Outcome::Failed { condition, .. } => condition.as_str(),
            Outcome::Retry { .. } => "Retry",
        };
        let attempts = if ran {
            event.attempts
        } else {
            event.attempts.saturating_sub(1)
        };
        let mut record = json!({
            "version": "1.0",
            "timestamp": rfc3339_ms(now),
            "requestContext": {
                "requestId": event.id,
                "functionArn": self.function_arn(&event.function, &event.qualifier),
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "requestPayload": json_or_string(&event.payload),
        });
        if serde_json::from_slice::<Value>(&event.payload).is_err() {
            use base64::Engine as _;
            record["lambent"] = json!({
                "payloadBase64": base64::engine::general_purpose::STANDARD.encode(&event.payload),
            });
        }
        if let Some(r) = response {
            record["responseContext"] = json!({
                "statusCode": r.status,
                "executedVersion": r.version,
            });
            if r.function_error.is_some() {
                // Lambda reports every uncaught error as "Unhandled"; the type is in the payload.
                record["responseContext"]["functionError"] = json!("Unhandled");
            }
            record["responsePayload"] = json_or_string(&r.body);
        } else if let Outcome::Failed { error, .. } = outcome {
            record["responseContext"] = json!({ "errorMessage": error });
        }
        record
    }
}

/// What the function answered.
#[derive(Debug, Clone)]
struct Response {
    status: u16,
    version: String,
    function_error: Option<String>,
    body: Vec<u8>,
}

fn gone(why: String) -> (Outcome, Option<Response>) {
    (
        Outcome::Failed {
            result: None,
            error: why,
            condition: "RetriesExhausted".into(),
        },
        None,
    )
}

/// A destination record as it is delivered with the outcome of event `source_id`.
fn delivery(d: &Destination, source_id: &str, record: &Value, now: i64) -> Delivery {
    let body = record.to_string().into_bytes();
    match d {
        Destination::Function { name, qualifier } => Delivery::Event(NewEvent {
            id: new_id(),
            function: name.to_string(),
            qualifier: qualifier_key(qualifier),
            payload: body,
            headers: vec![("content-type".into(), "application/json".into())],
            idempotency_key: Some(format!("destination:{source_id}")),
            source: format!("destination:{source_id}"),
            accepted_ms: now,
        }),
        Destination::Queue(q) => Delivery::Message {
            queue: q.to_string(),
            message: NewMessage {
                id: new_id(),
                body,
                attributes: json!({ "sourceEventId": source_id }),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_respects_the_cap() {
        for _ in 0..100 {
            let first = backoff_ms(1000, 1, i64::MAX);
            assert!((500..=1000).contains(&first), "{first}");
            let second = backoff_ms(1000, 2, i64::MAX);
            assert!((1000..=2000).contains(&second), "{second}");
            let capped = backoff_ms(1000, 30, 5000);
            assert!((2500..=5000).contains(&capped), "{capped}");
        }
    }

    /// The events service over the SQLite backend behind its trait, in a temp dir.
    async fn service(dir: &tempfile::TempDir) -> Events {
        let (store, recovered) =
            lambent_store::SqliteEventStore::open(&dir.path().join("events.db"), now_ms())
                .expect("open");
        let config = EventsConfig {
            #[cfg(feature = "test-clock")]
            test_clock: true,
            ..EventsConfig::default()
        };
        Events::new(Arc::new(store), recovered, config)
            .await
            .expect("events")
    }

    fn new_event(id: &str, key: Option<&str>) -> NewEvent {
        NewEvent {
            id: id.into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            headers: Vec::new(),
            idempotency_key: key.map(Into::into),
            source: "api".into(),
            accepted_ms: now_ms(),
        }
    }

    #[tokio::test]
    async fn the_events_service_runs_over_the_store_trait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let events = service(&dir).await;
        let first = events.accept(new_event("a", Some("k"))).await.expect("a");
        let again = events.accept(new_event("b", Some("k"))).await.expect("b");
        assert_eq!((again.id, again.duplicate), (first.id, true));
        let stats = events.stats();
        assert_eq!((stats.accepted, stats.duplicates), (1, 1));

        // A failure configuration naming a queue: the conclusion lands its record there.
        events
            .store
            .create_queue(lambent_store::events::QueueRow {
                name: "dlq".into(),
                created_ms: 0,
                visibility_s: 30,
                dead_letter: None,
                max_receives: None,
            })
            .await
            .expect("queue");
        let config = EventInvokeConfig {
            max_retry_attempts: 0,
            max_event_age_s: 60,
            on_success: None,
            on_failure: Some(Destination::parse("queue:dlq").expect("destination")),
        };
        let row = EventConfigRow {
            function: "f".into(),
            qualifier: "$LATEST".into(),
            max_retries: 0,
            max_age_s: 60,
            on_success: None,
            on_failure: Some("queue:dlq".into()),
            updated_ms: 7,
        };
        events
            .put_config(row, config.clone())
            .await
            .expect("config");
        assert_eq!(events.config_for("f", "$LATEST"), config);

        let now = events.clock.now_ms();
        let claimed = events.store.claim(now, 10).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let failed_on = config.on_failure.as_ref().expect("on failure");
        let record = json!({"requestContext": {"requestId": "a"}});
        events
            .store_outcome(Conclusion {
                id: "a".into(),
                outcome: Outcome::Failed {
                    result: None,
                    error: "boom".into(),
                    condition: "RetriesExhausted".into(),
                },
                ran: true,
                destination: Some(delivery(failed_on, "a", &record, now)),
                now_ms: now,
            })
            .await;
        let a = events.store.event("a").await.expect("get").expect("a");
        assert_eq!(a.state, EventState::Failed);
        let dead = events.store.peek("dlq", 10).await.expect("peek");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attributes, json!({"sourceEventId": "a"}));
        assert_eq!(json_or_string(&dead[0].body), record);

        // The test clock's advance is stored, and a service opened later starts from it.
        #[cfg(feature = "test-clock")]
        let after = {
            let before = events.clock.now_ms();
            let after = events.advance_clock(3_600_000).await.expect("advance");
            assert!(after >= before + 3_600_000);
            assert!(events.advance_clock(-1).await.is_err(), "never backwards");
            after
        };
        assert!(events.delete_config("f", "$LATEST").await.expect("delete"));
        assert_eq!(
            events.config_for("f", "$LATEST"),
            EventInvokeConfig::default()
        );
        events.store.shutdown();
        drop(events);
        let reopened = service(&dir).await;
        #[cfg(feature = "test-clock")]
        assert!(reopened.clock.now_ms() >= after);
        assert!(
            reopened.configs.read().is_empty(),
            "the deleted config stays deleted"
        );
    }

    #[test]
    fn payloads_that_are_not_json_become_strings() {
        assert_eq!(json_or_string(b"{\"a\":1}"), json!({"a": 1}));
        assert_eq!(json_or_string(b"plain"), json!("plain"));
    }
}
