//! Function metadata and invocation records in one SQLite file (WAL mode).
//!
//! `$LATEST` and published versions share one table; `$LATEST` is version 0. Every change is one
//! transaction, so a failed call leaves nothing half-written.

use std::collections::BTreeMap;
use std::path::Path;

use lambent_core::{
    FunctionConfig, FunctionName, FunctionVersion, InvocationOutcome, InvocationRecord, Qualifier,
    Runtime, UsageRow, UsageSums,
};
use parking_lot::Mutex;

use crate::registry::{FunctionStore, InvocationStore, Publish};
use rusqlite::{Connection, OptionalExtension, Row, params};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// SQLite reported an error
    #[error("metadata database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// a function with this name exists already
    #[error("function {0} already exists; update it instead, or delete it first")]
    AlreadyExists(String),
    /// no function with this name
    #[error("function {0} does not exist")]
    NoSuchFunction(String),
    /// no such published version
    #[error("version {version} of function {function} does not exist")]
    NoSuchVersion {
        /// the function
        function: String,
        /// the version
        version: String,
    },
    /// an alias with this name exists already
    #[error("alias {alias} of function {function} already exists; update it instead")]
    AliasExists {
        /// the function
        function: String,
        /// the alias
        alias: String,
    },
    /// no such alias
    #[error("alias {alias} of function {function} does not exist")]
    NoSuchAlias {
        /// the function
        function: String,
        /// the alias
        alias: String,
    },
    /// a version an alias still points at
    #[error(
        "version {version} of function {function} is used by alias {alias}; change or delete the alias first"
    )]
    VersionInUse {
        /// the function
        function: String,
        /// the version
        version: u32,
        /// the alias
        alias: String,
    },
    /// a function URL configuration exists already
    #[error("function {0} already has a URL configuration for this qualifier; update it instead")]
    UrlExists(String),
    /// no function URL configuration
    #[error("function {0} has no URL configuration for this qualifier")]
    NoSuchUrl(String),
    /// the caller's revision is not the current one: someone changed it since it was read
    #[error(
        "RevisionId {given} is not the current revision ({current}); read the function again and retry"
    )]
    RevisionMismatch {
        /// the function
        function: String,
        /// the revision the caller read
        given: String,
        /// the current revision
        current: String,
    },
    /// a stored row could not be read back
    #[error("metadata row for {name} is unreadable: {what}")]
    Corrupt {
        /// the function
        name: String,
        /// what was wrong
        what: String,
    },
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS function_versions (
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,          -- 0 is $LATEST
    runtime       TEXT    NOT NULL,
    memory_mb     INTEGER NOT NULL,
    timeout_s     INTEGER NOT NULL,
    environment   TEXT    NOT NULL,          -- JSON object
    description   TEXT    NOT NULL,
    code_sha256   TEXT    NOT NULL,
    code_size     INTEGER NOT NULL,
    last_modified TEXT    NOT NULL,
    revision_id   TEXT    NOT NULL,
    handler       TEXT    NOT NULL DEFAULT '',
    ephemeral_storage_mb INTEGER NOT NULL DEFAULT 512,
    egress        INTEGER NOT NULL DEFAULT 0,
    role          TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS function_versions_by_code ON function_versions (code_sha256);
CREATE TABLE IF NOT EXISTS invocations (
    id            TEXT    PRIMARY KEY,
    function      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    started_at_ms INTEGER NOT NULL,
    duration_ms   REAL    NOT NULL,
    init_ms       REAL    NOT NULL,
    cold_start    INTEGER NOT NULL,
    outcome       TEXT    NOT NULL,
    error         TEXT,
    logs          TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_by_function ON invocations (function, started_at_ms);
CREATE INDEX IF NOT EXISTS invocations_by_time ON invocations (started_at_ms);
CREATE TABLE IF NOT EXISTS usage (
    minute_ms     INTEGER NOT NULL,
    tenant        TEXT    NOT NULL,
    function      TEXT    NOT NULL,
    version       TEXT    NOT NULL,
    invocations   INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    throttles     INTEGER NOT NULL,
    cold_starts   INTEGER NOT NULL,
    duration_ms   REAL    NOT NULL,
    billed_ms     INTEGER NOT NULL,
    gb_seconds    REAL    NOT NULL,
    init_ms       REAL    NOT NULL,
    PRIMARY KEY (minute_ms, tenant, function, version)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_by_function ON usage (function, minute_ms);
CREATE TABLE IF NOT EXISTS aliases (
    function      TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    version       INTEGER NOT NULL,          -- 0 is $LATEST
    description   TEXT    NOT NULL,
    weights       TEXT    NOT NULL,          -- JSON object: version number -> share
    revision_id   TEXT    NOT NULL,
    PRIMARY KEY (function, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS function_concurrency (
    function      TEXT    PRIMARY KEY,
    reserved      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS function_provisioned (
    function      TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,
    requested     INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    PRIMARY KEY (function, qualifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS function_admission (
    function      TEXT    PRIMARY KEY,
    max_wait_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS provisioned_schedules (
    function      TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    qualifier     TEXT    NOT NULL,
    expression    TEXT    NOT NULL,          -- cron(...)
    provisioned   INTEGER NOT NULL,          -- 0 removes the configuration
    PRIMARY KEY (function, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS function_scaling (
    function              TEXT    PRIMARY KEY,
    instance_concurrency  INTEGER NOT NULL,
    keep_alive            TEXT,               -- NULL: the platform's; 'adaptive'; 'fixed'
    keep_alive_s          INTEGER             -- for 'fixed'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS function_urls (
    function      TEXT    NOT NULL,
    alias         TEXT    NOT NULL,          -- '' for the unqualified function
    auth_type     TEXT    NOT NULL,
    cors          TEXT,                      -- JSON, as given
    created       TEXT    NOT NULL,
    last_modified TEXT    NOT NULL,
    PRIMARY KEY (function, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS access_keys (
    id            TEXT    PRIMARY KEY,
    secret        TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    created       TEXT    NOT NULL,
    admin         INTEGER NOT NULL,          -- role = 'admin', kept for older lambent
    role          TEXT    NOT NULL DEFAULT '' -- admin, deploy or invoke
) WITHOUT ROWID;
"#;

const COLUMNS: &str = "name, version, runtime, memory_mb, timeout_s, environment, description, \
                       code_sha256, code_size, last_modified, revision_id, handler, \
                       ephemeral_storage_mb, egress, role";

/// Columns added after the first release, with their definitions, for databases made before.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("handler", "TEXT NOT NULL DEFAULT ''"),
    ("ephemeral_storage_mb", "INTEGER NOT NULL DEFAULT 512"),
    ("egress", "INTEGER NOT NULL DEFAULT 0"),
    ("role", "TEXT NOT NULL DEFAULT ''"),
];

/// Metering columns of invocation records, added after the first release.
const ADDED_INVOCATION_COLUMNS: &[(&str, &str)] = &[
    ("tenant", "TEXT NOT NULL DEFAULT 'default'"),
    ("memory_mb", "INTEGER NOT NULL DEFAULT 0"),
    ("billed_ms", "INTEGER NOT NULL DEFAULT 0"),
    ("gb_seconds", "REAL NOT NULL DEFAULT 0"),
];

/// Access-key columns added after the first release.
const ADDED_ACCESS_KEY_COLUMNS: &[(&str, &str)] = &[("role", "TEXT NOT NULL DEFAULT ''")];

/// Adds the columns a database from an older lambent lacks, and gives keys from before roles
/// theirs: the admin key stays `admin`; the others become `deploy`, which keeps all they were
/// meant to do (deploy, configure, invoke, read) and takes away only the key management that
/// the unchecked `admin` flag never meant to give them.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (table, added) in [
        ("function_versions", ADDED_COLUMNS),
        ("invocations", ADDED_INVOCATION_COLUMNS),
        ("access_keys", ADDED_ACCESS_KEY_COLUMNS),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))?;
        let existing: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for (name, definition) in added {
            if !existing.iter().any(|c| c == name) {
                conn.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {name} {definition}"
                ))?;
            }
        }
    }
    conn.execute_batch(
        "UPDATE access_keys SET role = CASE WHEN admin != 0 THEN 'admin' ELSE 'deploy' END \
         WHERE role = ''",
    )?;
    Ok(())
}

/// How usage is grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGroup {
    /// One total.
    Total,
    /// Per tenant.
    Tenant,
    /// Per function.
    Function,
    /// Per function version.
    Version,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day (UTC).
    Day,
}

/// A usage question: which calls, grouped how.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// Calls that started at or after this time (ms since the epoch).
    pub from_ms: i64,
    /// Calls that started before this time.
    pub to_ms: i64,
    /// Only this function.
    pub function: Option<String>,
    /// Only this tenant.
    pub tenant: Option<String>,
    /// The grouping.
    pub group: UsageGroup,
}

/// One group of a usage answer: its key (empty for a total; a time group's start in ms as a
/// string) and its sums.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageGroupSums {
    /// The group's key.
    pub key: String,
    /// The sums.
    pub sums: UsageSums,
}

/// The SQLite metadata store. One connection behind a mutex: SQLite serialises writers anyway,
/// and every statement here is short.
#[derive(Debug)]
pub struct SqliteMetadataStore {
    pub(crate) conn: Mutex<Connection>,
    /// A second connection for invocation records, with `synchronous = NORMAL`: in WAL mode that
    /// survives a crash of lambent and loses at most the last records on power loss, and it spares
    /// every batch an fsync. Function metadata keeps `FULL` on `conn`.
    records: Mutex<Connection>,
}

pub(crate) fn version_number(q: Qualifier) -> i64 {
    match q {
        Qualifier::Latest => 0,
        Qualifier::Version(n) => i64::from(n),
    }
}

fn row_to_version(row: &Row<'_>) -> rusqlite::Result<Result<FunctionVersion, MetadataError>> {
    let name: String = row.get(0)?;
    let version: i64 = row.get(1)?;
    let runtime: String = row.get(2)?;
    let environment: String = row.get(5)?;
    let corrupt = |what: String| MetadataError::Corrupt {
        name: name.clone(),
        what,
    };
    let parsed = (|| {
        let fname = FunctionName::new(&name).map_err(|e| corrupt(e.to_string()))?;
        let runtime: Runtime = runtime.parse().map_err(|e| corrupt(format!("{e}")))?;
        let environment: BTreeMap<String, String> =
            serde_json::from_str(&environment).map_err(|e| corrupt(e.to_string()))?;
        let version = match version {
            0 => Qualifier::Latest,
            n => Qualifier::Version(
                u32::try_from(n).map_err(|_| corrupt(format!("version {n} out of range")))?,
            ),
        };
        Ok::<_, MetadataError>((fname, runtime, environment, version))
    })();
    let (fname, runtime, environment, version) = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(FunctionVersion {
        name: fname,
        version,
        config: FunctionConfig {
            runtime,
            memory_mb: row.get(3)?,
            timeout_s: row.get(4)?,
            environment,
            description: row.get(6)?,
            handler: row.get(11)?,
            ephemeral_storage_mb: row.get(12)?,
            egress: row.get(13)?,
            role: row.get(14)?,
        },
        code_sha256: row.get(7)?,
        code_size: row.get(8)?,
        last_modified: row.get(9)?,
        revision_id: row.get(10)?,
    }))
}

fn collect_versions(
    rows: impl Iterator<Item = rusqlite::Result<Result<FunctionVersion, MetadataError>>>,
) -> Result<Vec<FunctionVersion>, MetadataError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(row??);
    }
    Ok(out)
}

fn insert_version(conn: &Connection, v: &FunctionVersion) -> rusqlite::Result<usize> {
    let env = serde_json::to_string(&v.config.environment).unwrap_or_else(|_| "{}".into());
    conn.execute(
        &format!("INSERT INTO function_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
        params![
            v.name.as_str(),
            version_number(v.version),
            v.config.runtime.as_str(),
            v.config.memory_mb,
            v.config.timeout_s,
            env,
            v.config.description,
            v.code_sha256,
            v.code_size,
            v.last_modified,
            v.revision_id,
            v.config.handler,
            v.config.ephemeral_storage_mb,
            v.config.egress,
            v.config.role,
        ],
    )
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// Refuses a change when the caller expects a revision other than the current one.
pub(crate) fn check_revision(
    function: &str,
    current: &str,
    expected: Option<&str>,
) -> Result<(), MetadataError> {
    match expected {
        Some(given) if given != current => Err(MetadataError::RevisionMismatch {
            function: function.to_owned(),
            given: given.to_owned(),
            current: current.to_owned(),
        }),
        _ => Ok(()),
    }
}

impl SqliteMetadataStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, MetadataError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let records = Connection::open(path)?;
        records.pragma_update(None, "synchronous", "NORMAL")?;
        records.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            conn: Mutex::new(conn),
            records: Mutex::new(records),
        })
    }
}

impl FunctionStore for SqliteMetadataStore {
    fn create(&self, latest: &FunctionVersion) -> Result<(), MetadataError> {
        let conn = self.conn.lock();
        match insert_version(&conn, latest) {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(MetadataError::AlreadyExists(latest.name.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn replace_latest_if_revision(
        &self,
        latest: &FunctionVersion,
        revision: Option<&str>,
    ) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let name = latest.name.as_str();
        let current: String = tx
            .query_row(
                "SELECT revision_id FROM function_versions WHERE name = ?1 AND version = 0",
                [name],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| MetadataError::NoSuchFunction(name.to_owned()))?;
        check_revision(name, &current, revision)?;
        tx.execute(
            "DELETE FROM function_versions WHERE name = ?1 AND version = 0",
            [name],
        )?;
        insert_version(&tx, latest)?;
        tx.commit()?;
        Ok(())
    }

    fn get(
        &self,
        name: &FunctionName,
        qualifier: Qualifier,
    ) -> Result<Option<FunctionVersion>, MetadataError> {
        let conn = self.conn.lock();
        let row = conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM function_versions WHERE name = ?1 AND version = ?2"
                ),
                params![name.as_str(), version_number(qualifier)],
                row_to_version,
            )
            .optional()?;
        row.transpose()
    }

    fn list(&self, limit: u32, after: Option<&str>) -> Result<Vec<FunctionVersion>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM function_versions WHERE version = 0 AND name > ?1 \
             ORDER BY name LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![after.unwrap_or(""), limit], row_to_version)?;
        collect_versions(rows)
    }

    fn versions(&self, name: &FunctionName) -> Result<Vec<FunctionVersion>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM function_versions WHERE name = ?1 ORDER BY version"
        ))?;
        let rows = stmt.query_map([name.as_str()], row_to_version)?;
        collect_versions(rows)
    }

    fn all_versions(&self) -> Result<Vec<FunctionVersion>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM function_versions ORDER BY name, version"
        ))?;
        let rows = stmt.query_map([], row_to_version)?;
        collect_versions(rows)
    }

    fn publish_if_revision(
        &self,
        name: &FunctionName,
        publish: &Publish<'_>,
        revision: Option<&str>,
    ) -> Result<(FunctionVersion, bool), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let select = format!(
            "SELECT {COLUMNS} FROM function_versions WHERE name = ?1 ORDER BY version DESC LIMIT 1 OFFSET ?2"
        );
        let latest = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM function_versions WHERE name = ?1 AND version = 0"),
                [name.as_str()],
                row_to_version,
            )
            .optional()?
            .transpose()?
            .ok_or_else(|| MetadataError::NoSuchFunction(name.to_string()))?;
        check_revision(name.as_str(), &latest.revision_id, revision)?;
        let newest = tx
            .query_row(&select, params![name.as_str(), 0], row_to_version)
            .optional()?
            .transpose()?;
        if let Some(newest) = newest.filter(|v| v.version != Qualifier::Latest) {
            let same_config = FunctionConfig {
                description: latest.config.description.clone(),
                ..newest.config.clone()
            } == latest.config;
            if newest.code_sha256 == latest.code_sha256 && same_config {
                return Ok((newest, false));
            }
        }
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM function_versions WHERE name = ?1",
            [name.as_str()],
            |r| r.get(0),
        )?;
        let number = u32::try_from(next).map_err(|_| MetadataError::Corrupt {
            name: name.to_string(),
            what: format!("version {next} out of range"),
        })?;
        let mut version = latest;
        version.version = Qualifier::Version(number);
        if let Some(d) = publish.description {
            version.config.description = d.to_owned();
        }
        version.last_modified = publish.now.to_owned();
        version.revision_id = publish.revision_id.to_owned();
        insert_version(&tx, &version)?;
        tx.commit()?;
        Ok((version, true))
    }

    fn delete(&self, name: &FunctionName) -> Result<Vec<String>, MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let hashes = {
            let mut stmt =
                tx.prepare("SELECT DISTINCT code_sha256 FROM function_versions WHERE name = ?1")?;
            stmt.query_map([name.as_str()], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        if hashes.is_empty() {
            return Err(MetadataError::NoSuchFunction(name.to_string()));
        }
        for table in [
            "DELETE FROM function_versions WHERE name = ?1",
            "DELETE FROM aliases WHERE function = ?1",
            "DELETE FROM function_urls WHERE function = ?1",
            "DELETE FROM function_concurrency WHERE function = ?1",
            "DELETE FROM function_admission WHERE function = ?1",
            "DELETE FROM function_scaling WHERE function = ?1",
            "DELETE FROM provisioned_schedules WHERE function = ?1",
            "DELETE FROM function_provisioned WHERE function = ?1",
        ] {
            tx.execute(table, [name.as_str()])?;
        }
        tx.commit()?;
        Ok(hashes)
    }

    fn code_in_use(&self, sha256: &str) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM function_versions WHERE code_sha256 = ?1",
            [sha256],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }
}

impl InvocationStore for SqliteMetadataStore {
    fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), MetadataError> {
        let mut conn = self.records.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO invocations (id, function, version, started_at_ms, \
                 duration_ms, init_ms, cold_start, outcome, error, logs, tenant, memory_mb, \
                 billed_ms, gb_seconds) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for r in records {
                stmt.execute(params![
                    r.id,
                    r.function,
                    r.version,
                    r.started_at_ms,
                    r.duration_ms,
                    r.init_ms,
                    r.cold_start,
                    r.outcome.as_str(),
                    r.error,
                    r.logs,
                    r.tenant,
                    r.memory_mb,
                    i64::try_from(r.billed_ms).unwrap_or(i64::MAX),
                    r.gb_seconds,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn prune_invocations(&self, keep: u64) -> Result<usize, MetadataError> {
        let conn = self.records.lock();
        Ok(conn.execute(
            "DELETE FROM invocations WHERE rowid <= \
             (SELECT rowid FROM invocations ORDER BY rowid DESC LIMIT 1 OFFSET ?1)",
            [keep],
        )?)
    }

    fn invocation(&self, id: &str) -> Result<Option<InvocationRecord>, MetadataError> {
        let conn = self.records.lock();
        let r = conn
            .query_row(
                &format!("SELECT {INVOCATION_COLUMNS} FROM invocations WHERE id = ?1"),
                [id],
                row_to_invocation,
            )
            .optional()?;
        Ok(r)
    }

    fn recent_invocations(
        &self,
        function: &FunctionName,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, MetadataError> {
        let conn = self.records.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INVOCATION_COLUMNS} FROM invocations WHERE function = ?1 \
             ORDER BY started_at_ms DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![function.as_str(), limit], row_to_invocation)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn invocations_between(
        &self,
        function: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, MetadataError> {
        let conn = self.records.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INVOCATION_COLUMNS} FROM invocations \
             WHERE started_at_ms >= ?1 AND started_at_ms < ?2 AND (?3 IS NULL OR function = ?3) \
             ORDER BY started_at_ms, rowid LIMIT ?4"
        ))?;
        let rows = stmt.query_map(params![from_ms, to_ms, function, limit], row_to_invocation)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), MetadataError> {
        let mut conn = self.records.lock();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO usage (minute_ms, tenant, function, version, invocations, errors, \
                 throttles, cold_starts, duration_ms, billed_ms, gb_seconds, init_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (minute_ms, tenant, function, version) DO UPDATE SET \
                 invocations = invocations + excluded.invocations, \
                 errors = errors + excluded.errors, \
                 throttles = throttles + excluded.throttles, \
                 cold_starts = cold_starts + excluded.cold_starts, \
                 duration_ms = duration_ms + excluded.duration_ms, \
                 billed_ms = billed_ms + excluded.billed_ms, \
                 gb_seconds = gb_seconds + excluded.gb_seconds, \
                 init_ms = init_ms + excluded.init_ms",
            )?;
            for r in rows {
                let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                stmt.execute(params![
                    r.minute_ms,
                    r.tenant,
                    r.function,
                    r.version,
                    n(r.sums.invocations),
                    n(r.sums.errors),
                    n(r.sums.throttles),
                    n(r.sums.cold_starts),
                    r.sums.duration_ms,
                    n(r.sums.billed_ms),
                    r.sums.gb_seconds,
                    r.sums.init_ms,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageGroupSums>, MetadataError> {
        let key = match q.group {
            UsageGroup::Total => "''",
            UsageGroup::Tenant => "tenant",
            UsageGroup::Function => "function",
            UsageGroup::Version => "function || ':' || version",
            UsageGroup::Minute => "CAST(minute_ms AS TEXT)",
            UsageGroup::Hour => "CAST(minute_ms - minute_ms % 3600000 AS TEXT)",
            UsageGroup::Day => "CAST(minute_ms - minute_ms % 86400000 AS TEXT)",
        };
        let order = match q.group {
            UsageGroup::Minute | UsageGroup::Hour | UsageGroup::Day => "min(minute_ms)",
            _ => "k",
        };
        let conn = self.records.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {key} AS k, sum(invocations), sum(errors), sum(throttles), sum(cold_starts), \
             sum(duration_ms), sum(billed_ms), sum(gb_seconds), sum(init_ms) FROM usage \
             WHERE minute_ms >= ?1 AND minute_ms < ?2 AND (?3 IS NULL OR function = ?3) \
             AND (?4 IS NULL OR tenant = ?4) GROUP BY k HAVING count(*) > 0 ORDER BY {order}"
        ))?;
        let rows = stmt.query_map(params![q.from_ms, q.to_ms, q.function, q.tenant], |r| {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0))
            };
            Ok(UsageGroupSums {
                key: r.get(0)?,
                sums: UsageSums {
                    invocations: n(1)?,
                    errors: n(2)?,
                    throttles: n(3)?,
                    cold_starts: n(4)?,
                    duration_ms: r.get(5)?,
                    billed_ms: n(6)?,
                    gb_seconds: r.get(7)?,
                    init_ms: r.get(8)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

const INVOCATION_COLUMNS: &str = "id, function, version, started_at_ms, duration_ms, init_ms, \
                                  cold_start, outcome, error, logs, tenant, memory_mb, \
                                  billed_ms, gb_seconds";

fn row_to_invocation(row: &Row<'_>) -> rusqlite::Result<InvocationRecord> {
    let outcome: String = row.get(7)?;
    Ok(InvocationRecord {
        id: row.get(0)?,
        function: row.get(1)?,
        version: row.get(2)?,
        started_at_ms: row.get(3)?,
        duration_ms: row.get(4)?,
        init_ms: row.get(5)?,
        cold_start: row.get(6)?,
        outcome: InvocationOutcome::parse(&outcome).unwrap_or(InvocationOutcome::PlatformError),
        error: row.get(8)?,
        logs: row.get(9)?,
        tenant: row.get(10)?,
        memory_mb: row.get(11)?,
        billed_ms: u64::try_from(row.get::<_, i64>(12)?).unwrap_or(0),
        gb_seconds: row.get(13)?,
    })
}

// The clock's formats live in lambent-core; re-exported for the store's callers.
pub use lambent_core::clock::{now_rfc3339, parse_rfc3339_ms, rfc3339_ms};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn version(name: &str, sha: &str) -> FunctionVersion {
        FunctionVersion {
            name: FunctionName::new(name).expect("name"),
            version: Qualifier::Latest,
            config: FunctionConfig {
                runtime: Runtime::WasiHttp,
                memory_mb: 128,
                timeout_s: 3,
                environment: BTreeMap::from([("A".into(), "1".into())]),
                description: String::new(),
                handler: String::new(),
                ephemeral_storage_mb: 512,
                egress: false,
                role: "arn:aws:iam::000000000000:role/r".into(),
            },
            code_sha256: sha.into(),
            code_size: 10,
            last_modified: now_rfc3339(),
            revision_id: "r1".into(),
        }
    }

    /// Publishes `$LATEST` of `name` whatever its revision.
    pub(crate) fn publish(
        store: &SqliteMetadataStore,
        name: &FunctionName,
        description: Option<&str>,
        revision_id: &str,
    ) -> Result<(FunctionVersion, bool), MetadataError> {
        let publish = Publish {
            description,
            now: "t",
            revision_id,
        };
        store.publish_if_revision(name, &publish, None)
    }

    #[test]
    fn changes_from_a_stale_revision_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        let name = FunctionName::new("f").expect("name");
        store.create(&version("f", "aa")).expect("create");
        let mut next = version("f", "bb");
        next.revision_id = "r2".into();
        let stale = store.replace_latest_if_revision(&next, Some("r0"));
        assert!(
            matches!(&stale, Err(MetadataError::RevisionMismatch { given, current, .. })
                if given == "r0" && current == "r1"),
            "{stale:?}"
        );
        let kept = store
            .get(&name, Qualifier::Latest)
            .expect("get")
            .expect("f");
        assert_eq!(kept.code_sha256, "aa", "a refused change writes nothing");
        store
            .replace_latest_if_revision(&next, Some("r1"))
            .expect("current revision");
        // The revision the first writer read is gone now: a second writer holding it loses.
        let mut late = version("f", "cc");
        late.revision_id = "r3".into();
        assert!(matches!(
            store.replace_latest_if_revision(&late, Some("r1")),
            Err(MetadataError::RevisionMismatch { .. })
        ));
        let v = Publish {
            description: None,
            now: "t",
            revision_id: "p1",
        };
        assert!(matches!(
            store.publish_if_revision(&name, &v, Some("r1")),
            Err(MetadataError::RevisionMismatch { .. })
        ));
        assert_eq!(store.versions(&name).expect("versions").len(), 1);
        let (one, created) = store
            .publish_if_revision(&name, &v, Some("r2"))
            .expect("publish");
        assert!(created);
        assert_eq!(
            (one.version, one.code_sha256.as_str()),
            (Qualifier::Version(1), "bb")
        );
        let missing = FunctionName::new("nope").expect("name");
        late.name = missing;
        assert!(matches!(
            store.replace_latest_if_revision(&late, Some("r1")),
            Err(MetadataError::NoSuchFunction(_))
        ));
    }

    #[test]
    fn create_publish_and_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        let v = version("f", "aa");
        store.create(&v).expect("create");
        assert!(matches!(
            store.create(&v),
            Err(MetadataError::AlreadyExists(_))
        ));
        let name = v.name.clone();
        let (v1, created) = publish(&store, &name, None, "r2").expect("publish");
        assert!(created);
        assert_eq!(v1.version, Qualifier::Version(1));
        let (again, created) = store
            .publish_if_revision(
                &name,
                &Publish {
                    description: None,
                    now: "t",
                    revision_id: "r3",
                },
                None,
            )
            .expect("publish again");
        assert!(!created, "unchanged $LATEST publishes nothing new");
        assert_eq!(again.version, Qualifier::Version(1));

        let mut changed = version("f", "bb");
        changed.config.memory_mb = 256;
        store
            .replace_latest_if_revision(&changed, None)
            .expect("update");
        let (v2, created) = store
            .publish_if_revision(
                &name,
                &Publish {
                    description: Some("two"),
                    now: "t",
                    revision_id: "r4",
                },
                None,
            )
            .expect("publish");
        assert!(created);
        assert_eq!(v2.version, Qualifier::Version(2));
        assert_eq!(v2.config.description, "two");
        let old = store
            .get(&name, Qualifier::Version(1))
            .expect("get")
            .expect("exists");
        assert_eq!(old.code_sha256, "aa", "published versions are immutable");
        assert_eq!(store.versions(&name).expect("versions").len(), 3);
        assert!(store.code_in_use("aa").expect("in use"));
        let mut hashes = store.delete(&name).expect("delete");
        hashes.sort();
        assert_eq!(hashes, vec!["aa".to_string(), "bb".to_string()]);
        assert!(!store.code_in_use("aa").expect("in use"));
        assert!(matches!(
            store.delete(&name),
            Err(MetadataError::NoSuchFunction(_))
        ));
    }

    #[test]
    fn list_pages_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        for n in ["c", "a", "b"] {
            store.create(&version(n, "aa")).expect("create");
        }
        let page = store.list(2, None).expect("list");
        let names: Vec<_> = page.iter().map(|v| v.name.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        let page = store.list(2, Some("b")).expect("list");
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].name.as_str(), "c");
    }

    #[test]
    fn invocations_round_trip_and_prune() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        let recs: Vec<_> = (0..5)
            .map(|i| InvocationRecord {
                id: format!("id{i}"),
                function: "f".into(),
                version: "$LATEST".into(),
                started_at_ms: i,
                duration_ms: 1.5,
                init_ms: 0.1,
                cold_start: i == 0,
                outcome: InvocationOutcome::Success,
                tenant: "default".into(),
                memory_mb: 128,
                billed_ms: 2,
                gb_seconds: lambent_core::gb_seconds(128, 2),
                error: None,
                logs: format!("line {i}\n"),
            })
            .collect();
        store.record_invocations(&recs).expect("record");
        let got = store.invocation("id3").expect("get").expect("exists");
        assert_eq!(got, recs[3]);
        let recent = store
            .recent_invocations(&FunctionName::new("f").expect("name"), 2)
            .expect("recent");
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].id, "id4");
        assert_eq!(store.prune_invocations(2).expect("prune"), 3);
        assert!(store.invocation("id0").expect("get").is_none());
        let between = store
            .invocations_between(Some("f"), 3, 5, 10)
            .expect("between");
        assert_eq!(between.len(), 2);
        assert_eq!(between[0].id, "id3");
    }

    #[test]
    fn usage_adds_up_and_groups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        let row = |minute: i64, tenant: &str, function: &str, n: u64| UsageRow {
            minute_ms: minute * 60_000,
            tenant: tenant.into(),
            function: function.into(),
            version: "$LATEST".into(),
            sums: UsageSums {
                invocations: n,
                errors: 1,
                throttles: 0,
                cold_starts: 1,
                duration_ms: 10.5 * n as f64,
                billed_ms: 11 * n,
                gb_seconds: lambent_core::gb_seconds(512, 11 * n),
                init_ms: 2.0,
            },
        };
        store
            .add_usage(&[row(0, "a", "f", 2), row(0, "b", "g", 3)])
            .expect("add");
        // The same minute again adds to it; a later minute is a new row.
        store
            .add_usage(&[row(0, "a", "f", 5), row(61, "a", "f", 1)])
            .expect("add");
        let query = |group, function: Option<&str>, to_ms| UsageQuery {
            from_ms: 0,
            to_ms,
            function: function.map(Into::into),
            tenant: None,
            group,
        };
        let total = store
            .usage(&query(UsageGroup::Total, None, i64::MAX))
            .expect("usage");
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].sums.invocations, 11);
        assert_eq!(total[0].sums.billed_ms, 121);
        assert_eq!(total[0].sums.errors, 4);
        assert!((total[0].sums.gb_seconds - 0.5 * 0.121).abs() < 1e-9);
        let tenants = store
            .usage(&query(UsageGroup::Tenant, None, i64::MAX))
            .expect("usage");
        let per: Vec<(&str, u64)> = tenants
            .iter()
            .map(|g| (g.key.as_str(), g.sums.invocations))
            .collect();
        assert_eq!(per, [("a", 8), ("b", 3)]);
        let hours = store
            .usage(&query(UsageGroup::Hour, Some("f"), i64::MAX))
            .expect("usage");
        let per: Vec<(&str, u64)> = hours
            .iter()
            .map(|g| (g.key.as_str(), g.sums.invocations))
            .collect();
        assert_eq!(per, [("0", 7), ("3600000", 1)]);
        let early = store
            .usage(&query(UsageGroup::Total, None, 60_000))
            .expect("usage");
        assert_eq!(
            early[0].sums.invocations, 10,
            "the range ends before minute 61"
        );
    }
}
