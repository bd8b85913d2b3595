//! The embedded event store: one SQLite file (`events.db`, WAL mode, `synchronous = FULL`).
//!
//! Every write goes through one writer thread that runs the writes waiting at that moment in a
//! single transaction (each in its own savepoint, so one failing write does not undo the others)
//! and answers them only after the commit is on disk: many concurrent accepts cost one fsync.
//! Reads use a second connection.

use std::path::Path;
use std::sync::mpsc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{
    Concluded, Conclusion, Delivery, Enqueued, Event, EventConfigRow, EventDepth, EventState,
    EventStore, EventStoreError, Firing, Message, NewEvent, NewMessage, Outcome, QueueCounts,
    QueueRow, Receive, ScheduleRow, Settlement, TriggerRow,
};

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 2048;

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

// ----- the store --------------------------------------------------------------------------------

type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// The event store on SQLite: a writer thread with group commit, and a reader connection.
#[derive(Debug)]
pub struct SqliteEventStore {
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

impl SqliteEventStore {
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
            .map_err(EventStoreError::Start)?;
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
    async fn write<T, F>(&self, f: F) -> Result<T, EventStoreError>
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
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, EventStoreError>,
    ) -> Result<T, EventStoreError> {
        f(&self.reader.lock())
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

#[async_trait::async_trait]
impl EventStore for SqliteEventStore {
    async fn enqueue(&self, event: NewEvent) -> Result<Enqueued, EventStoreError> {
        self.write(move |c| enqueue(c, &event)).await
    }

    async fn claim(&self, now_ms: i64, limit: usize) -> Result<Vec<Event>, EventStoreError> {
        self.write(move |c| claim(c, now_ms, limit)).await
    }

    async fn conclude(&self, conclusion: Conclusion) -> Result<Concluded, EventStoreError> {
        self.write(move |c| conclude(c, &conclusion)).await
    }

    async fn requeue_stale(
        &self,
        stale_before_ms: i64,
        now_ms: i64,
    ) -> Result<usize, EventStoreError> {
        self.write(move |c| requeue_stale(c, stale_before_ms, now_ms))
            .await
    }

    async fn prune(&self, before_ms: i64, limit: usize) -> Result<usize, EventStoreError> {
        self.write(move |c| prune(c, before_ms, limit)).await
    }

    async fn event(&self, id: &str) -> Result<Option<Event>, EventStoreError> {
        self.read(|c| event(c, id))
    }

    async fn events(
        &self,
        function: Option<&str>,
        state: Option<EventState>,
        limit: usize,
    ) -> Result<Vec<Event>, EventStoreError> {
        self.read(|c| events(c, function, state, limit))
    }

    async fn depth(&self) -> Result<EventDepth, EventStoreError> {
        self.read(depth)
    }

    async fn depth_by_function(&self) -> Result<Vec<(String, u64)>, EventStoreError> {
        self.read(depth_by_function)
    }

    async fn next_due(&self) -> Result<Option<i64>, EventStoreError> {
        self.read(next_due)
    }

    async fn put_config(&self, config: EventConfigRow) -> Result<(), EventStoreError> {
        self.write(move |c| put_config(c, &config)).await
    }

    async fn configs(&self) -> Result<Vec<EventConfigRow>, EventStoreError> {
        self.read(configs)
    }

    async fn delete_config(
        &self,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, EventStoreError> {
        let (function, qualifier) = (function.to_owned(), qualifier.to_owned());
        self.write(move |c| delete_config(c, &function, &qualifier))
            .await
    }

    async fn forget_function(&self, function: &str) -> Result<(), EventStoreError> {
        let function = function.to_owned();
        self.write(move |c| forget_function(c, &function)).await
    }

    async fn put_schedule(
        &self,
        schedule: ScheduleRow,
        replace: bool,
    ) -> Result<(), EventStoreError> {
        self.write(move |c| put_schedule(c, &schedule, replace))
            .await
    }

    async fn schedule(&self, name: &str) -> Result<Option<ScheduleRow>, EventStoreError> {
        self.read(|c| schedule(c, name))
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRow>, EventStoreError> {
        self.read(schedules)
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool, EventStoreError> {
        let name = name.to_owned();
        self.write(move |c| delete_schedule(c, &name)).await
    }

    async fn fire(&self, firing: Firing) -> Result<bool, EventStoreError> {
        self.write(move |c| fire(c, &firing)).await
    }

    async fn create_queue(&self, queue: QueueRow) -> Result<(), EventStoreError> {
        self.write(move |c| create_queue(c, &queue)).await
    }

    async fn queue(&self, name: &str) -> Result<Option<QueueRow>, EventStoreError> {
        self.read(|c| queue(c, name))
    }

    async fn queues(&self) -> Result<Vec<QueueRow>, EventStoreError> {
        self.read(queues)
    }

    async fn queue_counts(&self, name: &str, now_ms: i64) -> Result<QueueCounts, EventStoreError> {
        self.read(|c| queue_counts(c, name, now_ms))
    }

    async fn delete_queue(&self, name: &str) -> Result<bool, EventStoreError> {
        let name = name.to_owned();
        self.write(move |c| delete_queue(c, &name)).await
    }

    async fn send(
        &self,
        queue: &str,
        messages: Vec<NewMessage>,
        now_ms: i64,
    ) -> Result<(), EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| send(c, &queue, &messages, now_ms))
            .await
    }

    async fn receive(&self, queue: &str, r: Receive) -> Result<Vec<Message>, EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| receive(c, &queue, r.now_ms, r.limit, r.max_bytes, r.hidden_until_ms))
            .await
    }

    async fn settle(&self, queue: &str, s: Settlement) -> Result<(), EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| {
            delete_messages(c, &queue, &s.done)?;
            unreceive(c, &queue, &s.unsent, s.now_ms)?;
            release(c, &queue, &s.failed, s.visible_ms)
        })
        .await
    }

    async fn delete_messages(
        &self,
        queue: &str,
        ids: Vec<String>,
    ) -> Result<usize, EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| delete_messages(c, &queue, &ids)).await
    }

    async fn peek(&self, queue: &str, limit: usize) -> Result<Vec<Message>, EventStoreError> {
        self.read(|c| peek(c, queue, limit))
    }

    async fn message(&self, queue: &str, id: &str) -> Result<Option<Message>, EventStoreError> {
        self.read(|c| message(c, queue, id))
    }

    async fn purge(&self, queue: &str) -> Result<usize, EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| purge(c, &queue)).await
    }

    async fn next_visible(&self, queue: &str) -> Result<Option<i64>, EventStoreError> {
        self.read(|c| next_visible(c, queue))
    }

    async fn redrive(
        &self,
        queue: &str,
        moves: Vec<(String, NewEvent)>,
    ) -> Result<Vec<(String, String)>, EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| {
            let mut done = Vec::new();
            for (message, event) in &moves {
                if delete_messages(c, &queue, std::slice::from_ref(message))? == 1 {
                    enqueue(c, event)?;
                    done.push((message.clone(), event.id.clone()));
                }
            }
            Ok(done)
        })
        .await
    }

    async fn put_trigger(&self, trigger: TriggerRow) -> Result<(), EventStoreError> {
        self.write(move |c| put_trigger(c, &trigger)).await
    }

    async fn triggers(&self) -> Result<Vec<TriggerRow>, EventStoreError> {
        self.read(triggers)
    }

    async fn delete_trigger(&self, queue: &str) -> Result<bool, EventStoreError> {
        let queue = queue.to_owned();
        self.write(move |c| delete_trigger(c, &queue)).await
    }

    async fn setting(&self, key: &str) -> Result<Option<String>, EventStoreError> {
        self.read(|c| meta(c, key))
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), EventStoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.write(move |c| put_meta(c, &key, &value)).await
    }

    fn shutdown(&self) {
        self.sender.lock().take();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
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
fn enqueue(conn: &Connection, e: &NewEvent) -> Result<Enqueued, EventStoreError> {
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
fn claim(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<Event>, EventStoreError> {
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
fn requeue_stale(
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
fn finish(
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
        return Err(EventStoreError::NoSuchEvent { id: id.to_owned() });
    }
    Ok(())
}

/// Stores an outcome, gives back the attempt of a run that did not happen, and delivers the
/// destination record, in the caller's savepoint. A destination queue that has disappeared since
/// it was configured loses the record; the outcome is stored all the same.
fn conclude(conn: &Connection, c: &Conclusion) -> Result<Concluded, EventStoreError> {
    finish(conn, &c.id, &c.outcome, c.now_ms)?;
    if !c.ran {
        conn.prepare_cached("UPDATE events SET attempts = max(attempts - 1, 0) WHERE id = ?1")?
            .execute([&c.id])?;
    }
    let mut concluded = Concluded::default();
    match &c.destination {
        None => {}
        Some(Delivery::Event(event)) => {
            enqueue(conn, event)?;
        }
        Some(Delivery::Message { queue, message }) => {
            match send(conn, queue, std::slice::from_ref(message), c.now_ms) {
                Ok(()) => {}
                Err(EventStoreError::NoSuchQueue { .. }) => concluded.destination_missing = true,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(concluded)
}

/// One event.
fn event(conn: &Connection, id: &str) -> Result<Option<Event>, EventStoreError> {
    conn.prepare_cached(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = ?1"))?
        .query_row([id], row_to_event)
        .optional()?
        .transpose()
}

/// Recent events, newest first, optionally of one function and in one state. The scan walks an
/// index in time order and stops at `limit`.
fn events(
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
fn depth(conn: &Connection) -> Result<EventDepth, EventStoreError> {
    let waiting = conn
        .prepare_cached("SELECT count(*) FROM events WHERE state IN ('queued', 'retrying')")?
        .query_row([], |r| r.get(0))?;
    let running = conn
        .prepare_cached("SELECT count(*) FROM events WHERE state = 'running'")?
        .query_row([], |r| r.get(0))?;
    Ok(EventDepth { waiting, running })
}

/// Events queued or waiting for a retry, per function.
fn depth_by_function(conn: &Connection) -> Result<Vec<(String, u64)>, EventStoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT function, count(*) FROM events WHERE state IN ('queued', 'retrying') \
         GROUP BY function ORDER BY function",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// When the next waiting event is due.
fn next_due(conn: &Connection) -> Result<Option<i64>, EventStoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_ms) FROM events WHERE state IN ('queued', 'retrying')")?
        .query_row([], |r| r.get(0))?)
}

/// Forgets finished events last changed before `before_ms`.
fn prune(conn: &Connection, before_ms: i64, limit: usize) -> Result<usize, EventStoreError> {
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
fn put_config(conn: &Connection, c: &EventConfigRow) -> Result<(), EventStoreError> {
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
fn configs(conn: &Connection) -> Result<Vec<EventConfigRow>, EventStoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONFIG_COLUMNS} FROM event_configs ORDER BY function, qualifier"
    ))?;
    let rows = stmt.query_map([], row_to_config)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a configuration; whether it existed.
fn delete_config(
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
fn forget_function(conn: &Connection, function: &str) -> Result<(), EventStoreError> {
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
fn put_schedule(conn: &Connection, s: &ScheduleRow, replace: bool) -> Result<(), EventStoreError> {
    if !replace && schedule(conn, &s.name)?.is_some() {
        return Err(EventStoreError::ScheduleExists {
            name: s.name.clone(),
        });
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
fn schedule(conn: &Connection, name: &str) -> Result<Option<ScheduleRow>, EventStoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"
        ))?
        .query_row([name], row_to_schedule)
        .optional()?)
}

/// Every schedule, by name.
fn schedules(conn: &Connection) -> Result<Vec<ScheduleRow>, EventStoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
    ))?;
    let rows = stmt.query_map([], row_to_schedule)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a schedule; whether it existed.
fn delete_schedule(conn: &Connection, name: &str) -> Result<bool, EventStoreError> {
    Ok(conn.execute("DELETE FROM schedules WHERE name = ?1", [name])? > 0)
}

/// Records a firing: the event and the schedule's new times, together. Nothing is stored if the
/// schedule changed since it was read (`expected_next_ms`).
fn fire(conn: &Connection, f: &Firing) -> Result<bool, EventStoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE schedules SET last_fire_ms = ?3, next_fire_ms = ?4 \
             WHERE name = ?1 AND next_fire_ms = ?2 AND enabled = 1",
        )?
        .execute(params![f.name, f.expected_next_ms, f.fired_ms, f.next_ms])?;
    if changed == 0 {
        return Ok(false);
    }
    enqueue(conn, &f.event)?;
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
fn create_queue(conn: &Connection, q: &QueueRow) -> Result<(), EventStoreError> {
    if queue(conn, &q.name)?.is_some() {
        return Err(EventStoreError::QueueExists {
            name: q.name.clone(),
        });
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
fn queue(conn: &Connection, name: &str) -> Result<Option<QueueRow>, EventStoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT name, created_ms, visibility_s, dead_letter, max_receives FROM queues WHERE name = ?1",
        )?
        .query_row([name], row_to_queue)
        .optional()?)
}

/// Every queue.
fn queues(conn: &Connection) -> Result<Vec<QueueRow>, EventStoreError> {
    let mut stmt = conn.prepare(
        "SELECT name, created_ms, visibility_s, dead_letter, max_receives FROM queues ORDER BY name",
    )?;
    let rows = stmt.query_map([], row_to_queue)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a queue, its messages and its trigger; whether it existed.
fn delete_queue(conn: &Connection, name: &str) -> Result<bool, EventStoreError> {
    conn.execute("DELETE FROM messages WHERE queue = ?1", [name])?;
    conn.execute("DELETE FROM triggers WHERE queue = ?1", [name])?;
    Ok(conn.execute("DELETE FROM queues WHERE name = ?1", [name])? > 0)
}

/// A queue's visible and hidden message counts.
fn queue_counts(
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
fn send(
    conn: &Connection,
    queue_name: &str,
    messages: &[NewMessage],
    now_ms: i64,
) -> Result<(), EventStoreError> {
    if queue(conn, queue_name)?.is_none() {
        return Err(EventStoreError::NoSuchQueue {
            name: queue_name.to_owned(),
        });
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
fn receive(
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
fn unreceive(
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
fn delete_messages(
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
fn release(
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
fn peek(
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
fn message(
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
fn purge(conn: &Connection, queue_name: &str) -> Result<usize, EventStoreError> {
    Ok(conn.execute("DELETE FROM messages WHERE queue = ?1", [queue_name])?)
}

/// When a queue's next hidden message becomes visible.
fn next_visible(conn: &Connection, queue_name: &str) -> Result<Option<i64>, EventStoreError> {
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
fn put_trigger(conn: &Connection, t: &TriggerRow) -> Result<(), EventStoreError> {
    if queue(conn, &t.queue)?.is_none() {
        return Err(EventStoreError::NoSuchQueue {
            name: t.queue.clone(),
        });
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
fn triggers(conn: &Connection) -> Result<Vec<TriggerRow>, EventStoreError> {
    let mut stmt = conn.prepare(
        "SELECT queue, function, qualifier, batch_size, window_ms, enabled, created_ms \
         FROM triggers ORDER BY queue",
    )?;
    let rows = stmt.query_map([], row_to_trigger)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes a queue's trigger; whether it existed.
fn delete_trigger(conn: &Connection, queue_name: &str) -> Result<bool, EventStoreError> {
    Ok(conn.execute("DELETE FROM triggers WHERE queue = ?1", [queue_name])? > 0)
}

// ----- meta -------------------------------------------------------------------------------------

/// A stored setting.
fn meta(conn: &Connection, key: &str) -> Result<Option<String>, EventStoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// Stores a setting.
fn put_meta(conn: &Connection, key: &str, value: &str) -> Result<(), EventStoreError> {
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

    fn open(dir: &tempfile::TempDir) -> SqliteEventStore {
        SqliteEventStore::open(&dir.path().join("events.db"), 0)
            .expect("open")
            .0
    }

    fn queue_row(name: &str, dlq: Option<&str>) -> QueueRow {
        QueueRow {
            name: name.into(),
            created_ms: 0,
            visibility_s: 30,
            dead_letter: dlq.map(Into::into),
            max_receives: dlq.map(|_| 2),
        }
    }

    fn message(id: &str, body: &[u8]) -> NewMessage {
        NewMessage {
            id: id.into(),
            body: body.to_vec(),
            attributes: serde_json::json!({}),
        }
    }

    fn receive_at(now_ms: i64, limit: usize, max_bytes: usize, hidden_until_ms: i64) -> Receive {
        Receive {
            now_ms,
            limit,
            max_bytes,
            hidden_until_ms,
        }
    }

    fn ids(messages: &[Message]) -> Vec<&str> {
        messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[tokio::test]
    async fn events_survive_reopen_and_running_ones_run_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.db");
        {
            let (store, requeued) = SqliteEventStore::open(&path, 0).expect("open");
            assert_eq!(requeued, 0);
            let a = store
                .enqueue(new_event("a", Some("k")))
                .await
                .expect("enqueue");
            assert!(!a.duplicate);
            let again = store
                .enqueue(new_event("b", Some("k")))
                .await
                .expect("enqueue");
            assert_eq!(
                again,
                Enqueued {
                    id: "a".into(),
                    duplicate: true
                }
            );
            store.enqueue(new_event("c", None)).await.expect("enqueue");
            let claimed = store.claim(2000, 1).await.expect("claim");
            assert_eq!(claimed.len(), 1);
            assert_eq!(claimed[0].attempts, 1);
            assert_eq!(claimed[0].state, EventState::Running);
            store.shutdown();
        }
        let (store, requeued) = SqliteEventStore::open(&path, 5000).expect("reopen");
        assert_eq!(requeued, 1, "the running event is put back");
        let all = store.events(Some("f"), None, 10).await.expect("list");
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|e| e.state != EventState::Running));
        let claimed = store.claim(6000, 10).await.expect("claim");
        assert_eq!(claimed.len(), 2);
        let first = claimed.iter().find(|e| e.id == "a").expect("a");
        assert_eq!(first.attempts, 2, "the interrupted run counts");
        store
            .conclude(Conclusion {
                id: "a".into(),
                outcome: Outcome::Retry {
                    at_ms: 9000,
                    error: "throttled".into(),
                    throttled: true,
                },
                ran: true,
                destination: None,
                now_ms: 6000,
            })
            .await
            .expect("conclude");
        let a = store.event("a").await.expect("get").expect("a");
        assert_eq!(
            (a.state, a.attempts, a.throttles),
            (EventState::Retrying, 1, 1),
            "a throttle gives its attempt back"
        );
        assert_eq!(store.next_due().await.expect("due"), Some(9000));
        let missing = store
            .conclude(Conclusion {
                id: "nope".into(),
                outcome: Outcome::Succeeded { result: vec![] },
                ran: true,
                destination: None,
                now_ms: 1,
            })
            .await;
        assert!(
            matches!(missing, Err(EventStoreError::NoSuchEvent { id }) if id == "nope"),
            "an unknown event is named"
        );
    }

    #[tokio::test]
    async fn idempotency_keys_are_per_function() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store.enqueue(new_event("a", Some("k"))).await.expect("a");
        let mut other = new_event("b", Some("k"));
        other.function = "g".into();
        let b = store.enqueue(other).await.expect("b");
        assert!(!b.duplicate, "another function's key is another key");
        let dup = store.enqueue(new_event("c", Some("k"))).await.expect("c");
        assert_eq!((dup.id.as_str(), dup.duplicate), ("a", true));
        assert!(store.event("c").await.expect("get").is_none());
        assert_eq!(
            store.depth().await.expect("depth"),
            EventDepth {
                waiting: 2,
                running: 0
            }
        );
    }

    #[tokio::test]
    async fn a_conclusion_and_its_destination_are_stored_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store
            .create_queue(queue_row("dlq", None))
            .await
            .expect("queue");
        for id in ["ok", "bad", "lost"] {
            store.enqueue(new_event(id, None)).await.expect("enqueue");
        }
        assert_eq!(store.claim(2000, 10).await.expect("claim").len(), 3);
        let mut record = new_event("dest-1", Some("destination:ok"));
        record.function = "g".into();
        let done = store
            .conclude(Conclusion {
                id: "ok".into(),
                outcome: Outcome::Succeeded {
                    result: b"yes".to_vec(),
                },
                ran: true,
                destination: Some(Delivery::Event(record)),
                now_ms: 3000,
            })
            .await
            .expect("conclude");
        assert!(!done.destination_missing);
        let ok = store.event("ok").await.expect("get").expect("ok");
        assert_eq!(ok.state, EventState::Succeeded);
        assert_eq!(ok.condition.as_deref(), Some("Success"));
        let dest = store.event("dest-1").await.expect("get").expect("record");
        assert_eq!(
            (dest.function.as_str(), dest.state),
            ("g", EventState::Queued)
        );

        // An event that was too old never ran: its attempt is given back, and the failure
        // record lands on the queue.
        store
            .conclude(Conclusion {
                id: "bad".into(),
                outcome: Outcome::Failed {
                    result: None,
                    error: "too old".into(),
                    condition: "EventAgeExceeded".into(),
                },
                ran: false,
                destination: Some(Delivery::Message {
                    queue: "dlq".into(),
                    message: message("m-bad", b"{\"record\":1}"),
                }),
                now_ms: 3000,
            })
            .await
            .expect("conclude");
        let bad = store.event("bad").await.expect("get").expect("bad");
        assert_eq!((bad.state, bad.attempts), (EventState::Failed, 0));
        let dead = store.peek("dlq", 10).await.expect("peek");
        assert_eq!(ids(&dead), ["m-bad"]);

        // A destination that fails to store undoes the outcome with it.
        let mut clash = new_event("ok", None);
        clash.function = "g".into();
        let refused = store
            .conclude(Conclusion {
                id: "lost".into(),
                outcome: Outcome::Succeeded { result: vec![] },
                ran: true,
                destination: Some(Delivery::Event(clash)),
                now_ms: 3000,
            })
            .await;
        assert!(refused.is_err(), "the record's id is taken");
        let lost = store.event("lost").await.expect("get").expect("lost");
        assert_eq!(lost.state, EventState::Running, "nothing of it was stored");

        // A destination queue deleted since it was configured loses the record only.
        store.delete_queue("dlq").await.expect("delete");
        let gone = store
            .conclude(Conclusion {
                id: "lost".into(),
                outcome: Outcome::Succeeded { result: vec![] },
                ran: true,
                destination: Some(Delivery::Message {
                    queue: "dlq".into(),
                    message: message("m-lost", b"{}"),
                }),
                now_ms: 3000,
            })
            .await
            .expect("conclude");
        assert!(gone.destination_missing);
        let lost = store.event("lost").await.expect("get").expect("lost");
        assert_eq!(lost.state, EventState::Succeeded);
    }

    #[tokio::test]
    async fn stale_running_events_are_put_back_and_old_finished_ones_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        for id in ["old", "new", "done"] {
            store.enqueue(new_event(id, None)).await.expect("enqueue");
        }
        store.claim(1000, 1).await.expect("claim");
        let rest = store.claim(5000, 10).await.expect("claim");
        assert_eq!(rest.len(), 2);
        let first = store.events(None, Some(EventState::Running), 10).await;
        assert_eq!(first.expect("list").len(), 3);
        store
            .conclude(Conclusion {
                id: "done".into(),
                outcome: Outcome::Succeeded { result: vec![] },
                ran: true,
                destination: None,
                now_ms: 5000,
            })
            .await
            .expect("conclude");
        // Claimed at 1000 and at 5000: only what ran since before 2000 is stale.
        let claimed_first = store
            .events(None, Some(EventState::Running), 10)
            .await
            .expect("list")
            .into_iter()
            .find(|e| e.updated_ms == 1000)
            .expect("the first claim")
            .id;
        assert_eq!(store.requeue_stale(2000, 7000).await.expect("requeue"), 1);
        let back = store
            .event(&claimed_first)
            .await
            .expect("get")
            .expect("event");
        assert_eq!((back.state, back.next_ms), (EventState::Retrying, 7000));
        assert!(back.error.is_some_and(|e| e.contains("lost")));
        assert_eq!(
            store.depth().await.expect("depth"),
            EventDepth {
                waiting: 1,
                running: 1
            }
        );
        assert_eq!(store.prune(4000, 10).await.expect("prune"), 0, "too recent");
        assert_eq!(store.prune(6000, 10).await.expect("prune"), 1);
        assert!(store.event("done").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn a_schedule_fires_once_per_due_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let row = ScheduleRow {
            name: "s".into(),
            function: "f".into(),
            qualifier: "$LATEST".into(),
            expression: "rate(1 minute)".into(),
            input: None,
            description: String::new(),
            enabled: true,
            created_ms: 0,
            anchor_ms: 0,
            last_fire_ms: None,
            next_fire_ms: Some(60_000),
        };
        store.put_schedule(row.clone(), false).await.expect("put");
        let exists = store.put_schedule(row.clone(), false).await;
        assert!(matches!(exists, Err(EventStoreError::ScheduleExists { name }) if name == "s"));
        let firing = |id: &str| Firing {
            name: "s".into(),
            expected_next_ms: 60_000,
            fired_ms: 60_000,
            next_ms: Some(120_000),
            event: new_event(id, Some("schedule:s:60000")),
        };
        assert!(store.fire(firing("e1")).await.expect("fire"));
        assert!(
            !store.fire(firing("e2")).await.expect("fire"),
            "the same due time fires once"
        );
        assert!(store.event("e2").await.expect("get").is_none());
        let s = store.schedule("s").await.expect("get").expect("s");
        assert_eq!(
            (s.last_fire_ms, s.next_fire_ms),
            (Some(60_000), Some(120_000))
        );
        assert!(store.event("e1").await.expect("get").is_some());
        // A disabled schedule does not fire.
        store
            .put_schedule(
                ScheduleRow {
                    enabled: false,
                    ..s.clone()
                },
                true,
            )
            .await
            .expect("disable");
        let later = Firing {
            expected_next_ms: 120_000,
            fired_ms: 120_000,
            next_ms: Some(180_000),
            ..firing("e3")
        };
        assert!(!store.fire(later).await.expect("fire"));
        assert!(store.delete_schedule("s").await.expect("delete"));
        assert!(!store.delete_schedule("s").await.expect("delete"));
    }

    #[tokio::test]
    async fn a_redrive_moves_each_message_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store
            .create_queue(queue_row("dlq", None))
            .await
            .expect("queue");
        store
            .send("dlq", vec![message("m1", b"1"), message("m2", b"2")], 10)
            .await
            .expect("send");
        let moved = store
            .redrive("dlq", vec![("m1".into(), new_event("r1", None))])
            .await
            .expect("redrive");
        assert_eq!(moved, [("m1".to_owned(), "r1".to_owned())]);
        let again = store
            .redrive(
                "dlq",
                vec![
                    ("m1".into(), new_event("r1b", None)),
                    ("m2".into(), new_event("r2", None)),
                ],
            )
            .await
            .expect("redrive");
        assert_eq!(
            again,
            [("m2".to_owned(), "r2".to_owned())],
            "m1 was moved already"
        );
        assert!(store.event("r1b").await.expect("get").is_none());
        assert!(store.peek("dlq", 10).await.expect("peek").is_empty());
        assert_eq!(store.depth().await.expect("depth").waiting, 2);
    }

    #[tokio::test]
    async fn a_failing_write_leaves_the_rest_of_its_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(open(&dir));
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
                        .enqueue(new_event(&format!("e{i}"), None))
                        .await
                        .is_ok()
                }
            }));
        }
        for t in tasks {
            assert!(t.await.expect("join"));
        }
        let depth = store.depth().await.expect("depth");
        assert_eq!(depth.waiting, 490, "each failed write rolled back alone");
    }

    #[tokio::test]
    async fn queues_hide_release_and_dead_letter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        store
            .create_queue(queue_row("dlq", None))
            .await
            .expect("create");
        store
            .create_queue(queue_row("main", Some("dlq")))
            .await
            .expect("create");
        let exists = store.create_queue(queue_row("main", None)).await;
        assert!(matches!(exists, Err(EventStoreError::QueueExists { name }) if name == "main"));
        let msgs: Vec<NewMessage> = (0..3)
            .map(|i| message(&format!("m{i}"), format!("body {i}").as_bytes()))
            .collect();
        store.send("main", msgs, 10).await.expect("send");
        let got = store
            .receive("main", receive_at(10, 2, usize::MAX, 100))
            .await
            .expect("receive");
        assert_eq!(ids(&got), ["m0", "m1"]);
        let counts = store.queue_counts("main", 10).await.expect("counts");
        assert_eq!(
            counts,
            QueueCounts {
                visible: 1,
                hidden: 2
            }
        );
        assert!(
            store
                .receive("main", receive_at(50, 10, usize::MAX, 150))
                .await
                .expect("receive")
                .iter()
                .all(|m| m.id == "m2"),
            "hidden messages are not received again before their visibility ends"
        );
        store
            .settle(
                "main",
                Settlement {
                    done: vec!["m0".into()],
                    failed: vec!["m1".into()],
                    unsent: vec!["m2".into()],
                    now_ms: 20,
                    visible_ms: 20,
                },
            )
            .await
            .expect("ack");
        assert!(store.message("main", "m0").await.expect("get").is_none());
        let m2 = store.message("main", "m2").await.expect("get").expect("m2");
        assert_eq!(
            (m2.visible_ms, m2.receives),
            (20, 0),
            "an unsent message is given back"
        );
        // m1 comes back, is received a second time and then moves to the dead-letter queue.
        let again = store
            .receive("main", receive_at(20, 10, usize::MAX, 200))
            .await
            .expect("receive");
        assert_eq!(again.len(), 2);
        store
            .settle(
                "main",
                Settlement {
                    failed: vec!["m1".into(), "m2".into()],
                    now_ms: 30,
                    visible_ms: 30,
                    ..Settlement::default()
                },
            )
            .await
            .expect("release");
        let dead = store.peek("dlq", 10).await.expect("peek");
        assert_eq!(ids(&dead), ["m1"]);
        assert_eq!(dead[0].body, b"body 1");
        assert_eq!(store.purge("dlq").await.expect("purge"), 1);
        // m2 is received a second time and its consumer never answers (a crash): once it is
        // visible again, the next receive dead-letters it instead of handing it out a third time.
        let second = store
            .receive("main", receive_at(40, 10, usize::MAX, 300))
            .await
            .expect("receive");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].receives, 2);
        assert_eq!(store.next_visible("main").await.expect("next"), Some(300));
        let third = store
            .receive("main", receive_at(300, 10, usize::MAX, 400))
            .await
            .expect("receive");
        assert!(third.is_empty(), "m2 must not be delivered a third time");
        let dead = store.peek("dlq", 10).await.expect("peek");
        assert_eq!(ids(&dead), ["m2"]);
        // A byte budget stops a batch early, but always lets one message through.
        let big: Vec<NewMessage> = (0..3)
            .map(|i| message(&format!("b{i}"), &[b'x'; 100]))
            .collect();
        store.send("main", big, 500).await.expect("send");
        let two = store
            .receive("main", receive_at(600, 10, 250, 700))
            .await
            .expect("receive");
        assert_eq!(two.len(), 2);
        store
            .settle(
                "main",
                Settlement {
                    unsent: vec!["b0".into(), "b1".into()],
                    now_ms: 600,
                    ..Settlement::default()
                },
            )
            .await
            .expect("unreceive");
        let one = store
            .receive("main", receive_at(600, 10, 10, 700))
            .await
            .expect("receive");
        assert_eq!(ids(&one), ["b0"]);
        assert_eq!(one[0].receives, 1, "a given-back receive is not counted");
        let missing = store.send("nope", vec![], 0).await;
        assert!(matches!(missing, Err(EventStoreError::NoSuchQueue { name }) if name == "nope"));
        let missing = store
            .put_trigger(TriggerRow {
                queue: "nope".into(),
                function: "f".into(),
                qualifier: "$LATEST".into(),
                batch_size: 1,
                window_ms: 0,
                enabled: true,
                created_ms: 0,
            })
            .await;
        assert!(matches!(missing, Err(EventStoreError::NoSuchQueue { .. })));
        // Deleting a queue takes its messages along.
        assert!(store.delete_queue("main").await.expect("delete"));
        assert!(store.peek("main", 10).await.expect("peek").is_empty());
    }

    #[tokio::test]
    async fn settings_and_configs_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.db");
        {
            let (store, _) = SqliteEventStore::open(&path, 0).expect("open");
            store.put_setting("k", "1").await.expect("put");
            store.put_setting("k", "2").await.expect("put");
            store
                .put_config(EventConfigRow {
                    function: "f".into(),
                    qualifier: "$LATEST".into(),
                    max_retries: 1,
                    max_age_s: 60,
                    on_success: None,
                    on_failure: Some("queue:dlq".into()),
                    updated_ms: 5,
                })
                .await
                .expect("config");
            store.shutdown();
            assert!(matches!(
                store.put_setting("k", "3").await,
                Err(EventStoreError::Closed)
            ));
        }
        let (store, _) = SqliteEventStore::open(&path, 0).expect("reopen");
        assert_eq!(store.setting("k").await.expect("get").as_deref(), Some("2"));
        assert_eq!(store.setting("other").await.expect("get"), None);
        let configs = store.configs().await.expect("configs");
        assert_eq!(configs.len(), 1);
        assert_eq!(configs[0].on_failure.as_deref(), Some("queue:dlq"));
        store.forget_function("f").await.expect("forget");
        assert!(store.configs().await.expect("configs").is_empty());
        assert!(!store.delete_config("f", "$LATEST").await.expect("delete"));
    }
}
