//! The durable side of asynchronous invocation, in its own SQLite file (`events.db`, WAL mode,
//! `synchronous = FULL`): accepted events and their state, per-function event invoke
//! configurations, schedules, and lambent's named queues with their triggers.
//!
//! Every write goes through one writer thread that runs the writes waiting at that moment in a
//! single transaction (each in its own savepoint, so one failing write does not undo the others)
//! and answers them only after the commit is on disk: many concurrent accepts cost one fsync.
//! Reads use a second connection.

use std::path::Path;
use std::sync::mpsc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Errors of the event store.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// SQLite reported an error
    #[error("event database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// the commit of a batch failed; nothing in it was stored
    #[error("event database commit failed: {0}")]
    Commit(String),
    /// the writer thread is gone (the server is stopping)
    #[error("the event store is shut down")]
    Closed,
    /// a stored row could not be read back
    #[error("event database row is unreadable: {0}")]
    Corrupt(String),
    /// a named thing does not exist
    #[error("{0}")]
    NotFound(String),
    /// a named thing exists already
    #[error("{0}")]
    Exists(String),
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    id            TEXT    PRIMARY KEY,
    function      TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,          -- as invoked: $LATEST, a version number or an alias
    payload       BLOB    NOT NULL,
    headers       TEXT    NOT NULL,          -- JSON array of [name, value]
    idempotency_key TEXT,
    source        TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    throttles     INTEGER NOT NULL DEFAULT 0,
    accepted_ms   INTEGER NOT NULL,
    next_ms       INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    result        BLOB,
    error         TEXT,
    condition     TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_ms) WHERE state IN ('queued', 'retrying');
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (function, idempotency_key);
CREATE INDEX IF NOT EXISTS events_by_function ON events (function, accepted_ms);
CREATE INDEX IF NOT EXISTS events_by_time ON events (accepted_ms);
CREATE INDEX IF NOT EXISTS events_done ON events (updated_ms) WHERE state IN ('succeeded', 'failed');
CREATE INDEX IF NOT EXISTS events_running ON events (updated_ms) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS event_configs (
    function      TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,
    max_retries   INTEGER NOT NULL,
    max_age_s     INTEGER NOT NULL,
    on_success    TEXT,
    on_failure    TEXT,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (function, qualifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedules (
    name          TEXT    PRIMARY KEY,
    function      TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,
    expression    TEXT    NOT NULL,
    input         TEXT,
    description   TEXT    NOT NULL,
    enabled       INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL,
    anchor_ms     INTEGER NOT NULL,
    last_fire_ms  INTEGER,
    next_fire_ms  INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queues (
    name          TEXT    PRIMARY KEY,
    created_ms    INTEGER NOT NULL,
    visibility_s  INTEGER NOT NULL,
    dead_letter   TEXT,
    max_receives  INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT    NOT NULL UNIQUE,
    queue         TEXT    NOT NULL,
    body          BLOB    NOT NULL,
    attributes    TEXT    NOT NULL,          -- JSON object
    sent_ms       INTEGER NOT NULL,
    visible_ms    INTEGER NOT NULL,
    receives      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_visible ON messages (queue, visible_ms, seq);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, seq);
CREATE TABLE IF NOT EXISTS triggers (
    queue         TEXT    PRIMARY KEY,
    function      TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,
    batch_size    INTEGER NOT NULL,
    window_ms     INTEGER NOT NULL,
    enabled       INTEGER NOT NULL,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key           TEXT    PRIMARY KEY,
    value         TEXT    NOT NULL
) WITHOUT ROWID;
"#;

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

// ----- the store --------------------------------------------------------------------------------

type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The event store: a writer thread with group commit, and a reader connection.
#[derive(Debug)]
pub struct EventStore {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    reader: Mutex<Connection>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn open_conn(path: &Path) -> Result<Connection, EventStoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    Ok(conn)
}

impl EventStore {
    /// Opens (or creates) the store. Events a crash left `running` become `retrying` and due now:
    /// at least once means they run again. Returns how many were put back.
    pub fn open(path: &Path, now_ms: i64) -> Result<(Self, usize), EventStoreError> {
        let conn = open_conn(path)?;
        conn.execute_batch(SCHEMA)?;
        let requeued = conn.execute(
            "UPDATE events SET state = 'retrying', next_ms = ?1, updated_ms = ?1, \
             error = coalesce(error, 'lambent stopped while the event ran') WHERE state = 'running'",
            [now_ms],
        )?;
        let reader = open_conn(path)?;
        let (sender, receiver) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("lambent-events".into())
            .spawn(move || write_loop(conn, &receiver))
            .map_err(|e| EventStoreError::Commit(format!("cannot start the writer: {e}")))?;
        Ok((
            Self {
                sender: Mutex::new(Some(sender)),
                reader: Mutex::new(reader),
                writer: Mutex::new(Some(writer)),
            },
            requeued,
        ))
    }

    /// Runs `f` in the next batch's transaction (in its own savepoint) and answers once the batch
    /// is committed. An error from `f` rolls back only `f`'s changes.
    pub async fn write<T, F>(&self, f: F) -> Result<T, EventStoreError>
    where
        F: FnOnce(&Connection) -> Result<T, EventStoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error| {
                let answer = match commit_error {
                    Some(e) => Err(EventStoreError::Commit(e.to_owned())),
                    None => result,
                };
                let _ = tx.send(answer);
            });
            (ok, reply)
        });
        {
            let sender = self.sender.lock();
            let sender = sender.as_ref().ok_or(EventStoreError::Closed)?;
            sender.send(job).map_err(|_| EventStoreError::Closed)?;
        }
        rx.await.map_err(|_| {
            EventStoreError::Commit("the write was dropped with a failed batch".into())
        })?
    }

    /// Runs a read on the reader connection.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, EventStoreError>,
    ) -> Result<T, EventStoreError> {
        f(&self.reader.lock())
    }

    /// Stops the writer after the writes already sent.
    pub fn shutdown(&self) {
        self.sender.lock().take();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

fn write_loop(mut conn: Connection, receiver: &mpsc::Receiver<Job>) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = std::collections::VecDeque::from([first]);
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push_back(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(jobs.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction()?;
            while let Some(job) = jobs.pop_front() {
                let mut sp = tx.savepoint()?;
                let (ok, reply) = job(&sp);
                if !ok {
                    sp.rollback()?;
                }
                sp.commit()?;
                replies.push(reply);
            }
            tx.commit()
        })();
        let error = outcome.err().map(|e| e.to_string());
        if let Some(e) = &error {
            tracing::error!("event batch not committed: {e}");
        }
        for reply in replies {
            reply(error.as_deref());
        }
        // Writes the failed transaction never reached are dropped unrun: their callers see the
        // store refuse them.
        jobs.clear();
    }
}

// ----- events -----------------------------------------------------------------------------------

const EVENT_COLUMNS: &str = "id, function, qualifier, payload, headers, idempotency_key, source, \
     state, attempts, throttles, accepted_ms, next_ms, updated_ms, result, error, condition";

fn row_to_event(row: &Row<'_>) -> rusqlite::Result<Result<Event, EventStoreError>> {
    let headers: String = row.get(4)?;
    let state: String = row.get(7)?;
    let headers = match serde_json::from_str(&headers) {
        Ok(h) => h,
        Err(e) => return Ok(Err(EventStoreError::Corrupt(format!("headers: {e}")))),
    };
    let state = match state.parse() {
        Ok(s) => s,
        Err(e) => return Ok(Err(EventStoreError::Corrupt(e))),
    };
    Ok(Ok(Event {
        id: row.get(0)?,
        function: row.get(1)?,
        qualifier: row.get(2)?,
        payload: row.get(3)?,
        headers,
        idempotency_key: row.get(5)?,
        source: row.get(6)?,
        state,
        attempts: row.get(8)?,
        throttles: row.get(9)?,
        accepted_ms: row.get(10)?,
        next_ms: row.get(11)?,
        updated_ms: row.get(12)?,
        result: row.get(13)?,
        error: row.get(14)?,
        condition: row.get(15)?,
    }))
}

fn collect<T>(
    rows: impl Iterator<Item = rusqlite::Result<Result<T, EventStoreError>>>,
) -> Result<Vec<T>, EventStoreError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

/// Stores an event, or finds the event that holds its idempotency key.
pub fn enqueue(conn: &Connection, e: &NewEvent) -> Result<Enqueued, EventStoreError> {
    if let Some(key) = &e.idempotency_key {
        let first: Option<String> = conn
            .prepare_cached("SELECT id FROM events WHERE function = ?1 AND idempotency_key = ?2")?
            .query_row(params![e.function, key], |r| r.get(0))
            .optional()?;
        if let Some(id) = first {
            return Ok(Enqueued {
                id,
                duplicate: true,
            });
        }
    }
    let headers = serde_json::to_string(&e.headers).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO events (id, function, qualifier, payload, headers, idempotency_key, source, \
         state, accepted_ms, next_ms, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?8, ?8)",
    )?
    .execute(params![
        e.id,
        e.function,
        e.qualifier,
        e.payload,
        headers,
        e.idempotency_key,
        e.source,
        e.accepted_ms
    ])?;
    Ok(Enqueued {
        id: e.id.clone(),
        duplicate: false,
    })
}

/// Marks up to `limit` due events running, counts the attempt, and returns them, oldest due
/// first.
pub fn claim(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<Event>, EventStoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE events SET state = 'running', attempts = attempts + 1, updated_ms = ?1 \
         WHERE id IN (SELECT id FROM events WHERE state IN ('queued', 'retrying') AND next_ms <= ?1 \
                      ORDER BY next_ms LIMIT ?2) \
         RETURNING {EVENT_COLUMNS}"
    ))?;
    let rows = stmt.query_map(params![now_ms, limit], row_to_event)?;
    collect(rows)
}

/// Puts back events `running` since before `stale_before_ms` whose outcome was never stored
/// (a write that kept failing): they become `retrying` and due at `now_ms`. Returns how many.
pub fn requeue_stale(
    conn: &Connection,
    stale_before_ms: i64,
    now_ms: i64,
) -> Result<usize, EventStoreError> {
    Ok(conn
        .prepare_cached(
            "UPDATE events SET state = 'retrying', next_ms = ?2, updated_ms = ?2, \
             error = coalesce(error, 'the outcome of a run was lost; running again') \
             WHERE state = 'running' AND updated_ms < ?1",
        )?
        .execute(params![stale_before_ms, now_ms])?)
}

/// Stores how a run ended.
pub fn finish(
    conn: &Connection,
    id: &str,
    outcome: &Outcome,
    now_ms: i64,
) -> Result<(), EventStoreError> {
    let changed = match outcome {
        Outcome::Succeeded { result } => conn
            .prepare_cached(
                "UPDATE events SET state = 'succeeded', result = ?2, error = NULL, \
                 condition = 'Success', updated_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![id, result, now_ms])?,
        Outcome::Retry {
            at_ms,
            error,
            throttled,
        } => conn
            .prepare_cached(
                "UPDATE events SET state = 'retrying', next_ms = ?2, error = ?3, updated_ms = ?4, \
                 attempts = attempts - ?5, throttles = throttles + ?5 WHERE id = ?1",
            )?
            .execute(params![id, at_ms, error, now_ms, i64::from(*throttled)])?,
        Outcome::Failed {
            result,
            error,
            condition,
        } => conn
            .prepare_cached(
                "UPDATE events SET state = 'failed', result = ?2, error = ?3, condition = ?4, \
                 updated_ms = ?5 WHERE id = ?1",
            )?
            .execute(params![id, result, error, condition, now_ms])?,
    };
    if changed == 0 {
        return Err(EventStoreError::NotFound(format!(
            "event {id} does not exist"
        )));
    }
    Ok(())
}

/// One event.
pub fn event(conn: &Connection, id: &str) -> Result<Option<Event>, EventStoreError> {
    conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([id], row_to_event)
        .optional()?
        .transpose()
}

/// Recent events, newest first, optionally of one function and in one state. The scan walks an
/// index in time order and stops at `limit`.
pub fn events(
    conn: &Connection,
    function: Option<&str>,
    state: Option<EventState>,
    limit: usize,
) -> Result<Vec<Event>, EventStoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
    let mut args: Vec<&dyn rusqlite::ToSql> = Vec::new();
    if let Some(f) = &function {
        sql.push_str(" AND function = ?");
        args.push(f);
    }
    let state = state.map(EventState::as_str);
    if let Some(s) = &state {
        sql.push_str(" AND state = ?");
        args.push(s);
    }
    sql.push_str(" ORDER BY accepted_ms DESC LIMIT ?");
    args.push(&limit);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(args.as_slice(), row_to_event)?;
    collect(rows)
}

/// Events waiting (queued or retrying) and running. Both counts use partial indexes, so they
/// cost nothing for finished events.
pub fn depth(conn: &Connection) -> Result<(u64, u64), EventStoreError> {
    let waiting = conn
        .prepare_cached("SELECT count(*) FROM events WHERE state IN ('queued', 'retrying')")?
        .query_row([], |r| r.get(0))?;
    let running = conn
        .prepare_cached("SELECT count(*) FROM events WHERE state = 'running'")?
        .query_row([], |r| r.get(0))?;
    Ok((waiting, running))
}

/// Events queued or waiting for a retry, per function.
pub fn depth_by_function(conn: &Connection) -> Result<Vec<(String, u64)>, EventStoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT function, count(*) FROM events WHERE state IN ('queued', 'retrying') \
         GROUP BY function ORDER BY function",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When the next waiting event is due.
pub fn next_due(conn: &Connection) -> Result<Option<i64>, EventStoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_ms) FROM events WHERE state IN ('queued', 'retrying')")?
        .query_row([], |r| r.get(0))?)
}

/// Forgets finished events last changed before `before_ms`.
pub fn prune(conn: &Connection, before_ms: i64, limit: usize) -> Result<usize, EventStoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(conn
        .prepare_cached(
            "DELETE FROM events WHERE id IN (SELECT id FROM events \
             WHERE state IN ('succeeded', 'failed') AND updated_ms < ?1 LIMIT ?2)",
        )?
        .execute(params![before_ms, limit])?)
}

// ----- event invoke configurations --------------------------------------------------------------

fn row_to_config(r: &Row<'_>) -> rusqlite::Result<EventConfigRow> {
    Ok(EventConfigRow {
        function: r.get(0)?,
        qualifier: r.get(1)?,
        max_retries: r.get(2)?,
        max_age_s: r.get(3)?,
        on_success: r.get(4)?,
        on_failure: r.get(5)?,
        updated_ms: r.get(6)?,
    })
}

const CONFIG_COLUMNS: &str =
    "function, qualifier, max_retries, max_age_s, on_success, on_failure, updated_ms";

/// Stores (replaces) a configuration.
pub fn put_config(conn: &Connection, c: &EventConfigRow) -> Result<(), EventStoreError> {
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO event_configs ({CONFIG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ),
        params![
            c.function,
            c.qualifier,
            c.max_retries,
            c.max_age_s,
            c.on_success,
            c.on_failure,
            c.updated_ms
        ],
    )?;
    Ok(())
}

/// All configurations (the control plane caches them).
pub fn configs(conn: &Connection) -> Result<Vec<EventConfigRow>, EventStoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONFIG_COLUMNS} FROM event_configs ORDER BY function, qualifier"
    ))?;
    let rows = stmt.query_map([], row_to_config)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a configuration; whether it existed.
pub fn delete_config(
    conn: &Connection,
    function: &str,
    qualifier: &str,
) -> Result<bool, EventStoreError> {
    Ok(conn.execute(
        "DELETE FROM event_configs WHERE function = ?1 AND qualifier = ?2",
        params![function, qualifier],
    )? > 0)
}

/// Removes what belongs to a deleted function: configurations, schedules, triggers.
pub fn forget_function(conn: &Connection, function: &str) -> Result<(), EventStoreError> {
    conn.execute("DELETE FROM event_configs WHERE function = ?1", [function])?;
    conn.execute("DELETE FROM schedules WHERE function = ?1", [function])?;
    conn.execute("DELETE FROM triggers WHERE function = ?1", [function])?;
    Ok(())
}

// ----- schedules --------------------------------------------------------------------------------

const SCHEDULE_COLUMNS: &str = "name, function, qualifier, expression, input, description, \
     enabled, created_ms, anchor_ms, last_fire_ms, next_fire_ms";

fn row_to_schedule(r: &Row<'_>) -> rusqlite::Result<ScheduleRow> {
    Ok(ScheduleRow {
        name: r.get(0)?,
        function: r.get(1)?,
        qualifier: r.get(2)?,
        expression: r.get(3)?,
        input: r.get(4)?,
        description: r.get(5)?,
        enabled: r.get(6)?,
        created_ms: r.get(7)?,
        anchor_ms: r.get(8)?,
        last_fire_ms: r.get(9)?,
        next_fire_ms: r.get(10)?,
    })
}

/// Stores a schedule; `replace` allows overwriting one of the same name.
pub fn put_schedule(
    conn: &Connection,
    s: &ScheduleRow,
    replace: bool,
) -> Result<(), EventStoreError> {
    if !replace && schedule(conn, &s.name)?.is_some() {
        return Err(EventStoreError::Exists(format!(
            "schedule {} already exists; update it or delete it first",
            s.name
        )));
    }
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO schedules ({SCHEDULE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        params![
            s.name,
            s.function,
            s.qualifier,
            s.expression,
            s.input,
            s.description,
            s.enabled,
            s.created_ms,
            s.anchor_ms,
            s.last_fire_ms,
            s.next_fire_ms
        ],
    )?;
    Ok(())
}

/// One schedule.
pub fn schedule(conn: &Connection, name: &str) -> Result<Option<ScheduleRow>, EventStoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"
        ))?
        .query_row([name], row_to_schedule)
        .optional()?)
}

/// Every schedule, by name.
pub fn schedules(conn: &Connection) -> Result<Vec<ScheduleRow>, EventStoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
    ))?;
    let rows = stmt.query_map([], row_to_schedule)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a schedule; whether it existed.
pub fn delete_schedule(conn: &Connection, name: &str) -> Result<bool, EventStoreError> {
    Ok(conn.execute("DELETE FROM schedules WHERE name = ?1", [name])? > 0)
}

/// Records a firing: the event and the schedule's new times, in one transaction with the caller's
/// batch. Nothing is stored if the schedule changed since it was read (`expected_next`).
pub fn fire(
    conn: &Connection,
    name: &str,
    expected_next: i64,
    fired_ms: i64,
    next_ms: Option<i64>,
    event: Option<&NewEvent>,
) -> Result<bool, EventStoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE schedules SET last_fire_ms = coalesce(?3, last_fire_ms), next_fire_ms = ?4 \
             WHERE name = ?1 AND next_fire_ms = ?2 AND enabled = 1",
        )?
        .execute(params![
            name,
            expected_next,
            event.map(|_| fired_ms),
            next_ms
        ])?;
    if changed == 0 {
        return Ok(false);
    }
    if let Some(e) = event {
        enqueue(conn, e)?;
    }
    Ok(true)
}

// ----- queues and messages ------------------------------------------------------------------------

fn row_to_queue(r: &Row<'_>) -> rusqlite::Result<QueueRow> {
    Ok(QueueRow {
        name: r.get(0)?,
        created_ms: r.get(1)?,
        visibility_s: r.get(2)?,
        dead_letter: r.get(3)?,
        max_receives: r.get(4)?,
    })
}

/// Creates a queue.
pub fn create_queue(conn: &Connection, q: &QueueRow) -> Result<(), EventStoreError> {
    if queue(conn, &q.name)?.is_some() {
        return Err(EventStoreError::Exists(format!(
            "queue {} already exists",
            q.name
        )));
    }
    conn.execute(
        "INSERT INTO queues (name, created_ms, visibility_s, dead_letter, max_receives) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            q.name,
            q.created_ms,
            q.visibility_s,
            q.dead_letter,
            q.max_receives
        ],
    )?;
    Ok(())
}

/// One queue.
pub fn queue(conn: &Connection, name: &str) -> Result<Option<QueueRow>, EventStoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT name, created_ms, visibility_s, dead_letter, max_receives FROM queues WHERE name = ?1",
        )?
        .query_row([name], row_to_queue)
        .optional()?)
}

/// Every queue.
pub fn queues(conn: &Connection) -> Result<Vec<QueueRow>, EventStoreError> {
    let mut stmt = conn.prepare(
        "SELECT name, created_ms, visibility_s, dead_letter, max_receives FROM queues ORDER BY name",
    )?;
    let rows = stmt.query_map([], row_to_queue)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a queue, its messages and its trigger; whether it existed.
pub fn delete_queue(conn: &Connection, name: &str) -> Result<bool, EventStoreError> {
    conn.execute("DELETE FROM messages WHERE queue = ?1", [name])?;
    conn.execute("DELETE FROM triggers WHERE queue = ?1", [name])?;
    Ok(conn.execute("DELETE FROM queues WHERE name = ?1", [name])? > 0)
}

/// A queue's visible and hidden message counts.
pub fn queue_counts(
    conn: &Connection,
    name: &str,
    now_ms: i64,
) -> Result<QueueCounts, EventStoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT coalesce(sum(visible_ms <= ?2), 0), coalesce(sum(visible_ms > ?2), 0) \
             FROM messages WHERE queue = ?1",
        )?
        .query_row(params![name, now_ms], |r| {
            Ok(QueueCounts {
                visible: r.get(0)?,
                hidden: r.get(1)?,
            })
        })?)
}

/// Appends messages to a queue, visible at once.
pub fn send(
    conn: &Connection,
    queue_name: &str,
    messages: &[NewMessage],
    now_ms: i64,
) -> Result<(), EventStoreError> {
    if queue(conn, queue_name)?.is_none() {
        return Err(EventStoreError::NotFound(format!(
            "queue {queue_name} does not exist; create it with POST /v1/queues"
        )));
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO messages (id, queue, body, attributes, sent_ms, visible_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?;
    for m in messages {
        stmt.execute(params![
            m.id,
            queue_name,
            m.body,
            m.attributes.to_string(),
            now_ms
        ])?;
    }
    Ok(())
}

const MESSAGE_COLUMNS: &str = "id, queue, body, attributes, sent_ms, visible_ms, receives";

fn row_to_message(r: &Row<'_>) -> rusqlite::Result<Message> {
    let attributes: String = r.get(3)?;
    Ok(Message {
        id: r.get(0)?,
        queue: r.get(1)?,
        body: r.get(2)?,
        attributes: serde_json::from_str(&attributes).unwrap_or(serde_json::Value::Null),
        sent_ms: r.get(4)?,
        visible_ms: r.get(5)?,
        receives: r.get(6)?,
    })
}

/// Receives up to `limit` visible messages, oldest first, whose bodies add up to at most
/// `max_bytes` (the first message always fits), and hides them until `hidden_until_ms`.
/// Visible messages already received `max_receives` times move to the dead-letter queue first
/// (their consumer never acknowledged them: it crashed or timed out).
pub fn receive(
    conn: &Connection,
    queue_name: &str,
    now_ms: i64,
    limit: usize,
    max_bytes: usize,
    hidden_until_ms: i64,
) -> Result<Vec<Message>, EventStoreError> {
    if let Some(QueueRow {
        dead_letter: Some(dlq),
        max_receives: Some(max),
        ..
    }) = queue(conn, queue_name)?
    {
        conn.prepare_cached(
            "UPDATE messages SET queue = ?3, visible_ms = ?2, receives = 0 \
             WHERE queue = ?1 AND visible_ms <= ?2 AND receives >= ?4",
        )?
        .execute(params![queue_name, now_ms, dlq, max])?;
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut pick = Vec::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT seq, length(body) FROM messages WHERE queue = ?1 AND visible_ms <= ?2 \
             ORDER BY seq LIMIT ?3",
        )?;
        let mut rows = stmt.query(params![queue_name, now_ms, limit])?;
        let mut total = 0usize;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let len = usize::try_from(row.get::<_, i64>(1)?).unwrap_or(usize::MAX);
            total = total.saturating_add(len);
            if !pick.is_empty() && total > max_bytes {
                break;
            }
            pick.push(seq);
        }
    }
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE messages SET visible_ms = ?2, receives = receives + 1 WHERE seq = ?1 \
         RETURNING {MESSAGE_COLUMNS}"
    ))?;
    let mut out = Vec::with_capacity(pick.len());
    for seq in pick {
        out.push(stmt.query_row(params![seq, hidden_until_ms], row_to_message)?);
    }
    Ok(out)
}

/// Gives received messages back untouched: visible now, their receive not counted (a batch
/// that could not be sent whole).
pub fn unreceive(
    conn: &Connection,
    queue_name: &str,
    ids: &[String],
    now_ms: i64,
) -> Result<(), EventStoreError> {
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET visible_ms = ?3, receives = max(receives - 1, 0) \
         WHERE queue = ?1 AND id = ?2",
    )?;
    for id in ids {
        stmt.execute(params![queue_name, id, now_ms])?;
    }
    Ok(())
}

/// Deletes messages (handled); returns how many existed.
pub fn delete_messages(
    conn: &Connection,
    queue_name: &str,
    ids: &[String],
) -> Result<usize, EventStoreError> {
    let mut stmt = conn.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND id = ?2")?;
    let mut n = 0;
    for id in ids {
        n += stmt.execute(params![queue_name, id])?;
    }
    Ok(n)
}

/// Makes messages visible again at `visible_ms` (a failed batch item), or moves those received
/// `max_receives` times to the queue's dead-letter queue.
pub fn release(
    conn: &Connection,
    queue_name: &str,
    ids: &[String],
    visible_ms: i64,
) -> Result<(), EventStoreError> {
    let q = queue(conn, queue_name)?;
    let mut stmt =
        conn.prepare_cached("UPDATE messages SET visible_ms = ?3 WHERE queue = ?1 AND id = ?2")?;
    for id in ids {
        if let Some(QueueRow {
            dead_letter: Some(dlq),
            max_receives: Some(max),
            ..
        }) = &q
        {
            let moved = conn
                .prepare_cached(
                    "UPDATE messages SET queue = ?3, visible_ms = ?4, receives = 0 \
                     WHERE queue = ?1 AND id = ?2 AND receives >= ?5",
                )?
                .execute(params![queue_name, id, dlq, visible_ms, max])?;
            if moved > 0 {
                continue;
            }
        }
        stmt.execute(params![queue_name, id, visible_ms])?;
    }
    Ok(())
}

/// Messages of a queue, oldest first, without receiving them.
pub fn peek(
    conn: &Connection,
    queue_name: &str,
    limit: usize,
) -> Result<Vec<Message>, EventStoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue = ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![queue_name, limit], row_to_message)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One message.
pub fn message(
    conn: &Connection,
    queue_name: &str,
    id: &str,
) -> Result<Option<Message>, EventStoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE queue = ?1 AND id = ?2"
        ))?
        .query_row(params![queue_name, id], row_to_message)
        .optional()?)
}

/// Deletes every message of a queue; how many.
pub fn purge(conn: &Connection, queue_name: &str) -> Result<usize, EventStoreError> {
    Ok(conn.execute("DELETE FROM messages WHERE queue = ?1", [queue_name])?)
}

/// When a queue's next hidden message becomes visible.
pub fn next_visible(conn: &Connection, queue_name: &str) -> Result<Option<i64>, EventStoreError> {
    Ok(conn
        .prepare_cached("SELECT min(visible_ms) FROM messages WHERE queue = ?1")?
        .query_row([queue_name], |r| r.get(0))?)
}

// ----- triggers ---------------------------------------------------------------------------------

fn row_to_trigger(r: &Row<'_>) -> rusqlite::Result<TriggerRow> {
    Ok(TriggerRow {
        queue: r.get(0)?,
        function: r.get(1)?,
        qualifier: r.get(2)?,
        batch_size: r.get(3)?,
        window_ms: r.get(4)?,
        enabled: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

/// Stores (replaces) a queue's trigger.
pub fn put_trigger(conn: &Connection, t: &TriggerRow) -> Result<(), EventStoreError> {
    if queue(conn, &t.queue)?.is_none() {
        return Err(EventStoreError::NotFound(format!(
            "queue {} does not exist",
            t.queue
        )));
    }
    conn.execute(
        "INSERT OR REPLACE INTO triggers (queue, function, qualifier, batch_size, window_ms, \
         enabled, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.queue,
            t.function,
            t.qualifier,
            t.batch_size,
            t.window_ms,
            t.enabled,
            t.created_ms
        ],
    )?;
    Ok(())
}

/// Every trigger.
pub fn triggers(conn: &Connection) -> Result<Vec<TriggerRow>, EventStoreError> {
    let mut stmt = conn.prepare(
        "SELECT queue, function, qualifier, batch_size, window_ms, enabled, created_ms \
         FROM triggers ORDER BY queue",
    )?;
    let rows = stmt.query_map([], row_to_trigger)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a queue's trigger; whether it existed.
pub fn delete_trigger(conn: &Connection, queue_name: &str) -> Result<bool, EventStoreError> {
    Ok(conn.execute("DELETE FROM triggers WHERE queue = ?1", [queue_name])? > 0)
}

// ----- meta -------------------------------------------------------------------------------------

/// A stored setting.
pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>, EventStoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Stores a setting.
pub fn put_meta(conn: &Connection, key: &str, value: &str) -> Result<(), EventStoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(id: &str, key: Option<&str>) -> NewEvent {
        NewEvent {
            id: id.into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            payload: b"{}".to_vec(),
            headers: vec![("content-type".into(), "application/json".into())],
            idempotency_key: key.map(Into::into),
            source: "api".into(),
            accepted_ms: 1000,
        }
    }

    #[tokio::test]
    async fn events_survive_reopen_and_running_ones_run_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.db");
        {
            let (store, requeued) = EventStore::open(&path, 0).expect("open");
            assert_eq!(requeued, 0);
            let a = store
                .write(|c| enqueue(c, &new_event("a", Some("k"))))
                .await
                .expect("enqueue");
            assert!(!a.duplicate);
            let again = store
                .write(|c| enqueue(c, &new_event("b", Some("k"))))
                .await
                .expect("enqueue");
            assert_eq!(
                again,
                Enqueued {
                    id: "a".into(),
                    duplicate: true
                }
            );
            store
                .write(|c| enqueue(c, &new_event("c", None)))
                .await
                .expect("enqueue");
            let claimed = store.write(|c| claim(c, 2000, 1)).await.expect("claim");
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].attempts, 1);
            assert_eq!(claimed[0].state, EventState::Running);
            store.shutdown();
        }
        let (store, requeued) = EventStore::open(&path, 5000).expect("reopen");
        assert_eq!(requeued, 1, "the running event is put back");
        let all = store
            .read(|c| events(c, Some("f"), None, 10))
            .expect("list");
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|e| e.state != EventState::Running));
        let claimed = store.write(|c| claim(c, 6000, 10)).await.expect("claim");
        assert_eq!(claimed.len(), 2);
        let first = claimed.iter().find(|e| e.id == "a").expect("a");
        assert_eq!(first.attempts, 2, "the interrupted run counts");
        store
            .write(|c| {
                finish(
                    c,
                    "a",
                    &Outcome::Retry {
                        at_ms: 9000,
                        error: "throttled".into(),
                        throttled: true,
                    },
                    6000,
                )
            })
            .await
            .expect("finish");
        let a = store.read(|c| event(c, "a")).expect("get").expect("a");
        assert_eq!(
            (a.state, a.attempts, a.throttles),
            (EventState::Retrying, 1, 1)
        );
        assert_eq!(store.read(next_due).expect("due"), Some(9000));
        let missing = store
            .write(|c| finish(c, "nope", &Outcome::Succeeded { result: vec![] }, 1))
            .await;
        assert!(matches!(missing, Err(EventStoreError::NotFound(_))));
    }

    #[tokio::test]
    async fn a_failing_write_leaves_the_rest_of_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = EventStore::open(&dir.path().join("e.db"), 0).expect("open");
        let store = std::sync::Arc::new(store);
        let mut tasks = Vec::new();
        for i in 0..500 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                if i % 50 == 0 {
                    store
                        .write(|c| {
                            enqueue(c, &new_event("dup", None))?;
                            enqueue(c, &new_event("dup", None))
                        })
                        .await
                        .is_err()
                } else {
                    store
                        .write(move |c| enqueue(c, &new_event(&format!("e{i}"), None)))
                        .await
                        .is_ok()
                }
            }));
        }
        for t in tasks {
            assert!(t.await.expect("join"));
        }
        let (waiting, _) = store.read(depth).expect("depth");
        assert_eq!(waiting, 490, "each failed write rolled back alone");
    }

    #[tokio::test]
    async fn queues_hide_release_and_dead_letter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _) = EventStore::open(&dir.path().join("e.db"), 0).expect("open");
        let q = |name: &str, dlq: Option<&str>| QueueRow {
            name: name.into(),
            created_ms: 0,
            visibility_s: 30,
            dead_letter: dlq.map(Into::into),
            max_receives: dlq.map(|_| 2),
        };
        let (main, dlq) = (q("main", Some("dlq")), q("dlq", None));
        store
            .write(move |c| {
                create_queue(c, &dlq)?;
                create_queue(c, &main)
            })
            .await
            .expect("create");
        let msgs: Vec<NewMessage> = (0..3)
            .map(|i| NewMessage {
                id: format!("m{i}"),
                body: format!("body {i}").into_bytes(),
                attributes: serde_json::json!({}),
            })
            .collect();
        store
            .write(move |c| send(c, "main", &msgs, 10))
            .await
            .expect("send");
        let got = store
            .write(|c| receive(c, "main", 10, 2, usize::MAX, 100))
            .await
            .expect("receive");
        assert_eq!(
            got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["m0", "m1"]
        );
        let counts = store.read(|c| queue_counts(c, "main", 10)).expect("counts");
        assert_eq!(
            counts,
            QueueCounts {
                visible: 1,
                hidden: 2
            }
        );
        store
            .write(|c| {
                delete_messages(c, "main", &["m0".into()])?;
                release(c, "main", &["m1".into()], 20)
            })
            .await
            .expect("ack");
        // m1 comes back, is received a second time and then moves to the dead-letter queue.
        let again = store
            .write(|c| receive(c, "main", 20, 10, usize::MAX, 200))
            .await
            .expect("receive");
        assert_eq!(again.len(), 2);
        store
            .write(|c| release(c, "main", &["m1".into(), "m2".into()], 30))
            .await
            .expect("release");
        let dead = store.read(|c| peek(c, "dlq", 10)).expect("peek");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, "m1");
        assert_eq!(dead[0].body, b"body 1");
        assert_eq!(store.write(|c| purge(c, "dlq")).await.expect("purge"), 1);
        // m2 is received a second time and its consumer never answers (a crash): once it is
        // visible again, the next receive dead-letters it instead of handing it out a third time.
        let second = store
            .write(|c| receive(c, "main", 40, 10, usize::MAX, 300))
            .await
            .expect("receive");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].receives, 2);
        let third = store
            .write(|c| receive(c, "main", 300, 10, usize::MAX, 400))
            .await
            .expect("receive");
        assert!(third.is_empty(), "m2 must not be delivered a third time");
        let dead = store.read(|c| peek(c, "dlq", 10)).expect("peek");
        assert_eq!(
            dead.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["m2"]
        );
        // A byte budget stops a batch early, but always lets one message through.
        let big: Vec<NewMessage> = (0..3)
            .map(|i| NewMessage {
                id: format!("b{i}"),
                body: vec![b'x'; 100],
                attributes: serde_json::json!({}),
            })
            .collect();
        store
            .write(move |c| send(c, "main", &big, 500))
            .await
            .expect("send");
        let two = store
            .write(|c| receive(c, "main", 600, 10, 250, 700))
            .await
            .expect("receive");
        assert_eq!(two.len(), 2);
        store
            .write(|c| unreceive(c, "main", &["b0".into(), "b1".into()], 600))
            .await
            .expect("unreceive");
        let one = store
            .write(|c| receive(c, "main", 600, 10, 10, 700))
            .await
            .expect("receive");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, "b0");
        assert_eq!(one[0].receives, 1, "a given-back receive is not counted");
        let missing = store
            .write(|c| send(c, "nope", &[], 0))
            .await
            .expect_err("unknown queue");
        assert!(missing.to_string().contains("does not exist"));
    }
}
