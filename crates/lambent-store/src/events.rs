//! The durable side of asynchronous invocation as domain operations: accepted events and their
//! state, per-function event invoke configurations, schedules, lambent's named queues with their
//! triggers, and a few stored settings (the test clock).
//!
//! [`EventStore`] names what the control plane does with them (enqueue, claim, conclude with the
//! destination, redrive, fire a schedule, receive and acknowledge messages, ...), never SQL or a
//! connection: [`SqliteEventStore`] is the embedded backend (one file, one writer thread with
//! group commit), and a NATS JetStream backend for a fleet is a second implementation of the same
//! trait. Each operation that must be atomic (an outcome and its destination record, a firing and
//! its event, a redrive's delete and enqueue, a batch's acknowledgement) is one call, so a backend
//! decides how to make it atomic.
//!
//! The trait lives here, beside the row types it speaks in and the error enum that lists every
//! backend's failure, rather than in `lambent-core`: those types are the store's vocabulary
//! (rows, message counts, a backend's error), not domain values the executors share, and keeping
//! them here keeps `lambent-core` (which every crate, wasmtime's included, rebuilds on) free of
//! storage and of `async-trait`.
//!
//! The trait is async (with the `async-trait` crate, so that it stays dyn-compatible and control
//! holds an `Arc<dyn EventStore>`): every call may wait on I/O, a commit's fsync here, a round
//! trip to a JetStream server there. Native `async fn` in traits is not dyn-compatible yet, and
//! hand-written boxed futures would say the same thing at every method with more noise.

mod sqlite;

pub use sqlite::SqliteEventStore;

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// SQLite reported an error
    #[error("event database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// the commit of a batch failed; nothing in it was stored
    #[error("event database commit failed: {0}")]
    Commit(String),
    /// the writer could not be started
    #[error("cannot start the event store's writer: {0}")]
    Start(#[source] std::io::Error),
    /// the writer thread is gone (the server is stopping)
    #[error("the event store is shut down")]
    Closed,
    /// a stored row could not be read back
    #[error("event database row is unreadable: {0}")]
    Corrupt(String),
    /// the event does not exist
    #[error("event {id} does not exist")]
    NoSuchEvent {
        /// the event's id
        id: String,
    },
    /// the queue does not exist
    #[error("queue {name} does not exist")]
    NoSuchQueue {
        /// the queue's name
        name: String,
    },
    /// a queue of that name exists already
    #[error("queue {name} already exists")]
    QueueExists {
        /// the queue's name
        name: String,
    },
    /// a schedule of that name exists already
    #[error("schedule {name} already exists; update it or delete it first")]
    ScheduleExists {
        /// the schedule's name
        name: String,
    },
}

// ----- types ------------------------------------------------------------------------------------

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// accepted, not run yet
    Queued,
    /// a poller is running it
    Running,
    /// failed or throttled; runs again at `next_ms`
    Retrying,
    /// the function succeeded
    Succeeded,
    /// every attempt failed, or the event grew too old
    Failed,
}

impl EventState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for EventState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            other => {
                return Err(format!(
                    "unknown event state {other:?}; use queued, running, retrying, succeeded or failed"
                ));
            }
        })
    }
}

/// An event to accept.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event id, which is also the invocation's request id.
    pub id: String,
    /// The function.
    pub function: String,
    /// The qualifier as invoked.
    pub qualifier: String,
    /// The request body.
    pub payload: Vec<u8>,
    /// Request headers passed to the function.
    pub headers: Vec<(String, String)>,
    /// A caller's key: a second event with the same key for the same function is not stored.
    pub idempotency_key: Option<String>,
    /// What produced it: `api`, `lambda`, `schedule:NAME`, `destination`, `redrive`.
    pub source: String,
    /// When it was accepted (epoch ms).
    pub accepted_ms: i64,
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event id.
    pub id: String,
    /// The function.
    pub function: String,
    /// The qualifier as invoked.
    pub qualifier: String,
    /// The request body.
    pub payload: Vec<u8>,
    /// Request headers passed to the function.
    pub headers: Vec<(String, String)>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// What produced it.
    pub source: String,
    /// Its state.
    pub state: EventState,
    /// Times the function was run for it (the current run included).
    pub attempts: u32,
    /// Times it was throttled.
    pub throttles: u32,
    /// When it was accepted.
    pub accepted_ms: i64,
    /// When it is due (for queued and retrying events).
    pub next_ms: i64,
    /// Its last change.
    pub updated_ms: i64,
    /// The function's response, once it ran.
    pub result: Option<Vec<u8>>,
    /// The last error.
    pub error: Option<String>,
    /// Why it ended, Lambda's words: `Success`, `RetriesExhausted`, `EventAgeExceeded`.
    pub condition: Option<String>,
}

/// The answer to an accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// The event's id: the new one, or the first event's for a repeated idempotency key.
    pub id: String,
    /// Whether an event with the same idempotency key existed, so nothing was stored.
    pub duplicate: bool,
}

/// How a run ended, as the poller decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Done; the function's response.
    Succeeded {
        /// the response
        result: Vec<u8>,
    },
    /// Run again at `at_ms`.
    Retry {
        /// when
        at_ms: i64,
        /// why the run failed
        error: String,
        /// a throttle: the run does not count as an attempt
        throttled: bool,
    },
    /// Given up.
    Failed {
        /// the last response, if the function answered
        result: Option<Vec<u8>>,
        /// why
        error: String,
        /// `RetriesExhausted` or `EventAgeExceeded`
        condition: String,
    },
}

/// A message for a queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its id.
    pub id: String,
    /// The body.
    pub body: Vec<u8>,
    /// Attributes (a JSON object).
    pub attributes: serde_json::Value,
}

/// A stored message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// The body.
    pub body: Vec<u8>,
    /// Attributes (a JSON object).
    pub attributes: serde_json::Value,
    /// When it was sent.
    pub sent_ms: i64,
    /// When it may next be received.
    pub visible_ms: i64,
    /// Times it was received.
    pub receives: u32,
}

/// A named queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    /// Its name.
    pub name: String,
    /// When it was made.
    pub created_ms: i64,
    /// How long a received message stays hidden.
    pub visibility_s: u32,
    /// Where messages go after `max_receives` receives.
    pub dead_letter: Option<String>,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receives: Option<u32>,
}

/// A queue's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages that may be received now.
    pub visible: u64,
    /// Messages received and not yet deleted, or waiting for a retry.
    pub hidden: u64,
}

/// A function consuming a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRow {
    /// The queue.
    pub queue: String,
    /// The function.
    pub function: String,
    /// Its qualifier.
    pub qualifier: String,
    /// Most messages per call.
    pub batch_size: u32,
    /// Longest wait to fill a batch.
    pub window_ms: u32,
    /// Whether it runs.
    pub enabled: bool,
    /// When it was made.
    pub created_ms: i64,
}

/// A per-function (and qualifier) event invoke configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventConfigRow {
    /// The function.
    pub function: String,
    /// The qualifier it applies to (`$LATEST` for the unqualified function).
    pub qualifier: String,
    /// Retries after a failed run: 0-2.
    pub max_retries: u32,
    /// Oldest an event may be when it runs.
    pub max_age_s: u32,
    /// Destination on success.
    pub on_success: Option<String>,
    /// Destination on failure.
    pub on_failure: Option<String>,
    /// Its last change.
    pub updated_ms: i64,
}

/// A schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    /// Its name.
    pub name: String,
    /// The function.
    pub function: String,
    /// Its qualifier.
    pub qualifier: String,
    /// `rate(...)` or `cron(...)`.
    pub expression: String,
    /// A fixed input instead of the scheduled-event document.
    pub input: Option<String>,
    /// Free text.
    pub description: String,
    /// Whether it fires.
    pub enabled: bool,
    /// When it was made.
    pub created_ms: i64,
    /// Where `rate` firings count from.
    pub anchor_ms: i64,
    /// Its last firing.
    pub last_fire_ms: Option<i64>,
    /// Its next firing.
    pub next_fire_ms: Option<i64>,
}

/// Where a concluded event's invocation record goes, in the same atomic operation as the outcome.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A new event for the destination function.
    Event(NewEvent),
    /// A message on a queue. A queue deleted since it was configured loses the record (the
    /// outcome is stored all the same, and [`Concluded::destination_missing`] says so).
    Message {
        /// the queue
        queue: String,
        /// the record
        message: NewMessage,
    },
}

/// How a claimed event ended, with everything that is stored with it.
#[derive(Debug, Clone)]
pub struct Conclusion {
    /// The event.
    pub id: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// Whether the function ran: an event found too old when claimed did not, so the attempt the
    /// claim counted is given back.
    pub ran: bool,
    /// The destination record, if the event's configuration names one for this outcome.
    pub destination: Option<Delivery>,
    /// When it ended (epoch ms).
    pub now_ms: i64,
}

/// What [`EventStore::conclude`] did besides storing the outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Concluded {
    /// The destination queue no longer exists, so its record was dropped.
    pub destination_missing: bool,
}

/// A receive from a queue.
#[derive(Debug, Clone, Copy)]
pub struct Receive {
    /// Now (epoch ms): messages visible at this time may be received.
    pub now_ms: i64,
    /// Most messages.
    pub limit: usize,
    /// Most body bytes together (the first message always fits).
    pub max_bytes: usize,
    /// Received messages stay hidden until then.
    pub hidden_until_ms: i64,
}

/// How a received batch is settled, in one atomic operation.
#[derive(Debug, Clone, Default)]
pub struct Settlement {
    /// Handled: deleted.
    pub done: Vec<String>,
    /// Not sent to the function (the batch was cut short): visible at `now_ms`, the receive not
    /// counted.
    pub unsent: Vec<String>,
    /// Failed: visible again at `visible_ms`, or moved to the dead-letter queue once received
    /// its queue's `max_receives` times.
    pub failed: Vec<String>,
    /// Now (epoch ms).
    pub now_ms: i64,
    /// When failed messages become visible again.
    pub visible_ms: i64,
}

/// One firing of a schedule.
#[derive(Debug, Clone)]
pub struct Firing {
    /// The schedule.
    pub name: String,
    /// The next firing time it was read with: nothing is stored if it changed since.
    pub expected_next_ms: i64,
    /// The firing's time.
    pub fired_ms: i64,
    /// The schedule's next firing after this one.
    pub next_ms: Option<i64>,
    /// The event it sends.
    pub event: NewEvent,
}

/// Events waiting and running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventDepth {
    /// Queued or waiting for a retry.
    pub waiting: u64,
    /// Running now.
    pub running: u64,
}

/// The durable store of the asynchronous side: events, their configurations, schedules, queues,
/// triggers and settings, as domain operations. See the module doc for why it is async and
/// where it lives.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug {
    // ----- events -------------------------------------------------------------------------

    /// Stores an event durably, or finds the event that holds its idempotency key (for the same
    /// function), in which case nothing is stored.
    async fn enqueue(&self, event: NewEvent) -> Result<Enqueued, EventStoreError>;

    /// Marks up to `limit` events due at `now_ms` running, counts the attempt, and returns them,
    /// oldest due first.
    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Vec<Event>, EventStoreError>;

    /// Stores how a run ended and delivers its destination record, both or neither.
    async fn conclude(&self, conclusion: Conclusion) -> Result<Concluded, EventStoreError>;

    /// Puts back events `running` since before `stale_before_ms` whose outcome was never stored:
    /// they become due at `now_ms`. Returns how many.
    async fn requeue_stale(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
    ) -> Result<usize, EventStoreError>;

    /// Forgets up to `limit` finished events last changed before `before_ms`; how many.
    async fn prune(&self, before_ms: i64, limit: usize) -> Result<usize, EventStoreError>;

    /// One event.
    async fn event(&self, id: &str) -> Result<Option<Event>, EventStoreError>;

    /// Recent events, newest first, optionally of one function and in one state.
    async fn events(
        &self,
        function: Option<&str>,
        state: Option<EventState>,
        limit: usize,
    ) -> Result<Vec<Event>, EventStoreError>;

    /// Events waiting and running.
    async fn depth(&self) -> Result<EventDepth, EventStoreError>;

    /// Events waiting, per function, by function name.
    async fn depth_by_function(&self) -> Result<Vec<(String, u64)>, EventStoreError>;

    /// When the next waiting event is due.
    async fn next_due(&self) -> Result<Option<i64>, EventStoreError>;

    // ----- event invoke configurations ----------------------------------------------------

    /// Stores (replaces) a configuration.
    async fn put_config(&self, config: EventConfigRow) -> Result<(), EventStoreError>;

    /// Every configuration.
    async fn configs(&self) -> Result<Vec<EventConfigRow>, EventStoreError>;

    /// Deletes a configuration; whether it existed.
    async fn delete_config(&self, function: &str, qualifier: &str)
    -> Result<bool, EventStoreError>;

    /// Removes what belongs to a deleted function: configurations, schedules, triggers.
    async fn forget_function(&self, function: &str) -> Result<(), EventStoreError>;

    // ----- schedules ----------------------------------------------------------------------

    /// Stores a schedule; `replace` allows overwriting one of the same name.
    async fn put_schedule(
        &self,
        schedule: ScheduleRow,
        replace: bool,
    ) -> Result<(), EventStoreError>;

    /// One schedule.
    async fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>, EventStoreError>;

    /// Every schedule, by name.
    async fn schedules(&self) -> Result<Vec<ScheduleRow>, EventStoreError>;

    /// Deletes a schedule; whether it existed.
    async fn delete_schedule(&self, name: &str) -> Result<bool, EventStoreError>;

    /// Records a firing: its event and the schedule's new times, both or neither. Nothing is
    /// stored, and the answer is false, if the schedule changed (or was disabled) since it was
    /// read, so one due time fires once.
    async fn fire(&self, firing: Firing) -> Result<bool, EventStoreError>;

    // ----- queues and messages ------------------------------------------------------------

    /// Creates a queue.
    async fn create_queue(&self, queue: QueueRow) -> Result<(), EventStoreError>;

    /// One queue.
    async fn queue(&self, name: &str) -> Result<Option<QueueRow>, EventStoreError>;

    /// Every queue, by name.
    async fn queues(&self) -> Result<Vec<QueueRow>, EventStoreError>;

    /// A queue's visible and hidden message counts at `now_ms`.
    async fn queue_counts(&self, name: &str, now_ms: i64) -> Result<QueueCounts, EventStoreError>;

    /// Deletes a queue, its messages and its trigger; whether it existed.
    async fn delete_queue(&self, name: &str) -> Result<bool, EventStoreError>;

    /// Appends messages to a queue, visible at once.
    async fn send(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        now_ms: i64,
    ) -> Result<(), EventStoreError>;

    /// Receives visible messages, oldest first, and hides them. Visible messages already
    /// received `max_receives` times move to the dead-letter queue first.
    async fn receive(&self, queue: &str, receive: Receive)
    -> Result<Vec<Message>, EventStoreError>;

    /// Settles a received batch: deletes, gives back and releases its messages.
    async fn settle(&self, queue: &str, settlement: Settlement) -> Result<(), EventStoreError>;

    /// Deletes messages; how many existed.
    async fn delete_messages(
        &self,
        queue: &str,
        ids: Vec<String>,
    ) -> Result<usize, EventStoreError>;

    /// Messages of a queue, oldest first, without receiving them.
    async fn peek(&self, queue: &str, limit: usize) -> Result<Vec<Message>, EventStoreError>;

    /// One message.
    async fn message(&self, queue: &str, id: &str) -> Result<Option<Message>, EventStoreError>;

    /// Deletes every message of a queue; how many.
    async fn purge(&self, queue: &str) -> Result<usize, EventStoreError>;

    /// When a queue's next hidden message becomes visible.
    async fn next_visible(&self, queue: &str) -> Result<Option<i64>, EventStoreError>;

    /// Turns messages into events: each message this call deletes from `queue` is enqueued as
    /// its event, both or neither, so two redrives racing over one message enqueue it once.
    /// Returns (message id, event id) of those moved.
    async fn redrive(
        &self,
        queue: &str,
        moves: Vec<(String, NewEvent)>,
    ) -> Result<Vec<(String, String)>, EventStoreError>;

    // ----- triggers -----------------------------------------------------------------------

    /// Stores (replaces) a queue's trigger; the queue must exist.
    async fn put_trigger(&self, trigger: TriggerRow) -> Result<(), EventStoreError>;

    /// Every trigger, by queue.
    async fn triggers(&self) -> Result<Vec<TriggerRow>, EventStoreError>;

    /// Deletes a queue's trigger; whether it existed.
    async fn delete_trigger(&self, queue: &str) -> Result<bool, EventStoreError>;

    // ----- settings -----------------------------------------------------------------------

    /// A stored setting.
    async fn setting(&self, key: &str) -> Result<Option<String>, EventStoreError>;

    /// Stores a setting.
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), EventStoreError>;

    /// Stops after the writes already accepted.
    fn shutdown(&self);
}
