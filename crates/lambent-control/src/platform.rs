//! [`Platform`]: the functions, their code, and the path every invocation takes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use lambent_core::limits::{LOG_TAIL_BYTES, MAX_CODE_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use lambent_core::{
    Alias, AliasError, AliasName, ConfigError, DEFAULT_TENANT, FunctionArn, FunctionConfig,
    FunctionCreate, FunctionName, FunctionUpdate, FunctionUrlConfig, FunctionVersion,
    InvocationOutcome, InvocationRecord, KeepAliveSetting, MemoryBudget, MemoryReservation,
    NameError, Qualifier, Runtime, RuntimeFamily, ScalingConfig, Selector,
};
use lambent_sandbox::{FunctionSpec, InvokeInput, PackageError, ProcessExecutor, SandboxConfig};
use lambent_store::metadata::now_rfc3339;
use lambent_store::{
    CodeStore, CodeStoreError, MetadataError, MetadataStore, Publish, SqliteEventStore,
    SqliteMetadataStore, UsageGroupSums, UsageQuery,
};
use lambent_wasm::{
    BodyError, CodeError, Completion, EngineError, Failure, InvokeContext, InvokeError, OnComplete,
    PreparedCode, ResponseBody, WasmEngine, WasmEngineConfig,
};
use parking_lot::RwLock;
use tokio::sync::OnceCell;

use crate::assignment::shared::{Seat, SharedInstances};
use crate::assignment::wasm::{WasmCall, WasmExecutor};
use crate::assignment::{
    Executor, InstancePool, LeaseError, PoolConfig, PoolKey, PoolStats, concurrent_starts,
};
use crate::auth::{Bootstrap, KeyError, KeyRing};
use crate::concurrency::Concurrency;
use crate::events::{EventStats, Events, EventsConfig};
use crate::keepalive::{KeepAlive, KeepAlivePolicy};
use crate::meter::{FunctionMetrics, Sample};
use crate::recorder::InvocationRecorder;

const MB: usize = 1024 * 1024;

/// Errors of the control plane. The API maps each to one HTTP status and error code.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// the function (or the version of it) does not exist
    #[error("{0}")]
    NotFound(String),
    /// a function with this name exists already
    #[error(
        "function {0} already exists; update it with PUT /v1/functions/{0}, or delete it first"
    )]
    AlreadyExists(String),
    /// a bad name or qualifier
    #[error(transparent)]
    Name(#[from] NameError),
    /// a bad configuration
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// code refused at deploy
    #[error(transparent)]
    Code(#[from] CodeError),
    /// code larger than the upload limit
    #[error("the code is {size} bytes; the limit is {limit} bytes")]
    CodeTooLarge {
        /// the upload's size
        size: usize,
        /// the limit
        limit: usize,
    },
    /// the function failed or could not be run
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// metadata storage failed
    #[error(transparent)]
    Metadata(MetadataError),
    /// code storage failed
    #[error(transparent)]
    CodeStore(#[from] CodeStoreError),
    /// the engine could not start
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// a code package refused at deploy
    #[error(transparent)]
    Package(#[from] PackageError),
    /// the host cannot run this runtime
    #[error("runtime {runtime} cannot run on this host: {reason}")]
    RuntimeUnavailable {
        /// the runtime asked for
        runtime: Runtime,
        /// why not
        reason: String,
    },
    /// a background task failed
    #[error("internal task failed: {0}")]
    Task(String),
    /// the change conflicts with the current state (an alias in use, a URL that exists)
    #[error("{0}")]
    Conflict(String),
    /// a parameter that is well-formed but not acceptable
    #[error("{0}")]
    Invalid(String),
    /// an access key operation failed
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// the event store failed
    #[error(transparent)]
    Events(lambent_store::EventStoreError),
    /// the caller's `RevisionId` is not the current one: it changed since the caller read it
    #[error(
        "RevisionId {given} is not the current revision ({current}); read the function again and retry"
    )]
    RevisionMismatch {
        /// the revision the caller read
        given: String,
        /// the current revision
        current: String,
    },
}

impl From<AliasError> for ControlError {
    fn from(e: AliasError) -> Self {
        ControlError::Invalid(e.to_string())
    }
}

impl From<MetadataError> for ControlError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::AlreadyExists(name) => ControlError::AlreadyExists(name),
            MetadataError::NoSuchFunction(name) => {
                ControlError::NotFound(format!("function {name} does not exist"))
            }
            e @ (MetadataError::NoSuchVersion { .. }
            | MetadataError::NoSuchAlias { .. }
            | MetadataError::NoSuchUrl(_)) => ControlError::NotFound(e.to_string()),
            e @ (MetadataError::AliasExists { .. }
            | MetadataError::UrlExists(_)
            | MetadataError::VersionInUse { .. }) => ControlError::Conflict(e.to_string()),
            MetadataError::RevisionMismatch { given, current, .. } => {
                ControlError::RevisionMismatch { given, current }
            }
            other => ControlError::Metadata(other),
        }
    }
}

/// Where and how the platform runs.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    /// The data directory: `metadata.db`, `code/`, `artifacts/`.
    pub data_dir: PathBuf,
    /// Instances that may exist at once.
    pub max_instances: u32,
    /// The `lambent` binary, started as the sandbox helper; `None` disables process runtimes.
    pub sandbox_helper: Option<PathBuf>,
    /// Idle time before a warm sandbox is stopped (the fixed policy, and the adaptive one's
    /// fallback).
    pub keep_alive: Duration,
    /// Fixed or adaptive keep-alive for process-tier instances.
    pub adaptive_keep_alive: bool,
    /// Sandboxes that may exist at once.
    pub max_sandboxes: usize,
    /// First uid (and gid) of the range sandboxes run as, one id each.
    pub sandbox_uid_base: u32,
    /// Freeze idle sandboxes between calls.
    pub freeze_idle: bool,
    /// Memory in MB that instances of this node may reserve together (their memory limits).
    pub memory_budget_mb: u64,
    /// The region name in ARNs and `AWS_REGION`, and the one requests must be signed for.
    pub region: String,
    /// Concurrent executions the account may have at once.
    pub account_concurrency: u32,
    /// How long a refused call may wait for a slot, for functions without their own setting.
    pub admission_wait: Duration,
    /// The operator's admin key (`LAMBENT_ACCESS_KEY_ID`, `LAMBENT_SECRET_ACCESS_KEY`).
    pub initial_key: Option<(String, String)>,
    /// How asynchronous invocations run.
    pub events: EventsConfig,
}

/// How a call is made, besides its request.
#[derive(Debug, Clone, Default)]
pub struct InvokeOptions {
    /// The URL prefix the function is served under (wasm functions see it as `SCRIPT_NAME`).
    pub script_name: String,
    /// The caller's address.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The request id to use (an accepted async event keeps its id); a new one when `None`.
    pub request_id: Option<String>,
}

/// A successful start of an invocation.
#[derive(Debug)]
pub struct Served {
    /// The invocation's id.
    pub invocation_id: String,
    /// The version that ran.
    pub version: Qualifier,
    /// The function's response.
    pub response: http::Response<ResponseBody>,
    /// Whether this was the version's first instance in this process.
    pub cold_start: bool,
    /// Time to make the instance ready (loading code on a cold start, then instantiating).
    pub init: Duration,
    /// Time from the start of the invocation to the response head.
    pub duration: Duration,
    /// The error type when a process-tier function raised an error (the body is its error
    /// document).
    pub function_error: Option<String>,
    /// The last 4 KB of the invocation's log, for process-tier functions.
    pub log_tail: Option<String>,
}

/// A failed invocation.
#[derive(Debug)]
pub struct InvokeFailure {
    /// The invocation's id, when it got far enough to have one.
    pub invocation_id: Option<String>,
    /// Why it failed.
    pub error: ControlError,
    /// Time spent before it failed.
    pub duration: Duration,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PlatformStats {
    /// Invocations started.
    pub invocations: u64,
    /// Invocations that failed.
    pub invocation_errors: u64,
    /// Cold starts.
    pub cold_starts: u64,
    /// Compilations since start.
    pub compilations: u64,
    /// Artifact cache hits since start.
    pub artifact_cache_hits: u64,
    /// Invocation records dropped because the writer fell behind.
    pub records_dropped: u64,
    /// Whether the pooling allocator is in use.
    pub pooling: bool,
    /// Sandbox counters (zero when process runtimes are unavailable).
    pub sandboxes: PoolStats,
    /// Calls refused by a concurrency limit.
    pub throttles: u64,
    /// Calls in flight now.
    pub concurrent_executions: u64,
    /// Asynchronous invocations.
    pub events: EventStats,
}

/// A resolved version in the invocation path's cache.
#[derive(Debug)]
pub(crate) struct ResolvedVersion {
    pub(crate) version: FunctionVersion,
    started: AtomicBool,
    spec: std::sync::OnceLock<Arc<FunctionSpec>>,
    /// Whose instances the process tier's pool keeps for it.
    pool_key: std::sync::OnceLock<PoolKey>,
}

impl ResolvedVersion {
    /// The pool key of this version's instances.
    pub(crate) fn pool_key(&self) -> &PoolKey {
        self.pool_key.get_or_init(|| {
            let v = &self.version;
            PoolKey::new(DEFAULT_TENANT, v.name.as_str(), &v.version.to_string())
        })
    }
}

/// Code ready to run: compiled wasm, or an unpacked package for the process executor.
#[derive(Debug, Clone)]
pub(crate) enum LoadedCode {
    Wasm(PreparedCode),
    Package(PathBuf),
}

type CodeCell = Arc<OnceCell<LoadedCode>>;

/// One node's control plane.
#[derive(Debug)]
pub struct Platform {
    pub(crate) metadata: Arc<dyn MetadataStore>,
    code: CodeStore,
    /// The wasm tier: no pool, each call instantiates its prepared code.
    wasm: WasmExecutor,
    /// The process tier's warm sandboxes, or why there are none.
    sandbox: Result<InstancePool<ProcessExecutor>, String>,
    max_sandboxes: usize,
    pub(crate) keep_alive: Arc<KeepAlive>,
    /// The platform's keep-alive (fixed, or the adaptive policy's fallback).
    pub(crate) default_keep_alive: Duration,
    /// The node's memory budget, shared by sandboxes and wasm instances.
    budget: Arc<MemoryBudget>,
    /// Wasm instances that serve several calls at once.
    shared: SharedInstances,
    /// Functions' own scaling settings.
    pub(crate) scaling: RwLock<HashMap<FunctionName, ScalingConfig>>,
    pub(crate) region: String,
    pub(crate) data_dir: PathBuf,
    versions: RwLock<HashMap<(FunctionName, Qualifier), Arc<ResolvedVersion>>>,
    prepared: RwLock<HashMap<String, CodeCell>>,
    pub(crate) writes: tokio::sync::Mutex<()>,
    recorder: Arc<InvocationRecorder>,
    invocations: AtomicU64,
    invocation_errors: Arc<AtomicU64>,
    cold_starts: AtomicU64,
    pub(crate) throttles: AtomicU64,
    pub(crate) events: Events,
    pub(crate) keys: KeyRing,
    pub(crate) bootstrap: Bootstrap,
    pub(crate) concurrency: Concurrency,
    pub(crate) aliases: RwLock<HashMap<(FunctionName, AliasName), Arc<Alias>>>,
    pub(crate) urls: RwLock<HashMap<UrlKey, Arc<FunctionUrlConfig>>>,
}

/// A function URL configuration's key: the function, and the alias for an alias's URL.
pub(crate) type UrlKey = (FunctionName, Option<AliasName>);

/// The longest a call may wait for a concurrency slot.
pub const MAX_ADMISSION_WAIT: Duration = Duration::from_secs(60);

pub(crate) use lambent_core::now_ms;

/// Refuses a change made from a revision (`given`) other than the `current` one.
pub(crate) fn check_revision(current: &str, given: Option<&str>) -> Result<(), ControlError> {
    match given {
        Some(given) if given != current => Err(ControlError::RevisionMismatch {
            given: given.to_owned(),
            current: current.to_owned(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Platform {
    /// Opens the data directory and starts the executor. This is the composition root: the one
    /// place that picks the storage backends (SQLite files in the data directory) and hands them
    /// to the services behind their traits.
    pub async fn open(config: &PlatformConfig) -> Result<Self, ControlError> {
        crate::data_dir::secure(&config.data_dir).map_err(|source| CodeStoreError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let metadata: Arc<dyn MetadataStore> = Arc::new(SqliteMetadataStore::open(
            &config.data_dir.join("metadata.db"),
        )?);
        let code = CodeStore::open(config.data_dir.join("code"))?;
        let (event_store, recovered) =
            SqliteEventStore::open(&config.data_dir.join("events.db"), now_ms())?;
        let events = Events::new(Arc::new(event_store), recovered, config.events.clone()).await?;
        let engine = WasmEngine::new(&WasmEngineConfig {
            cache_dir: config.data_dir.join("artifacts"),
            max_instances: config.max_instances,
        })?;
        let keep_alive = Arc::new(KeepAlive::new(if config.adaptive_keep_alive {
            KeepAlivePolicy::Adaptive {
                fallback: config.keep_alive,
            }
        } else {
            KeepAlivePolicy::Fixed(config.keep_alive)
        }));
        let budget = MemoryBudget::new(config.memory_budget_mb);
        let sandbox = match &config.sandbox_helper {
            None => Err("process runtimes are disabled in this server".to_owned()),
            Some(helper) => ProcessExecutor::new(SandboxConfig {
                data_dir: config.data_dir.clone(),
                helper: helper.clone(),
                max_sandboxes: config.max_sandboxes,
                uid_base: config.sandbox_uid_base,
                freeze_idle: config.freeze_idle,
            })
            .map(|executor| {
                InstancePool::new(
                    executor,
                    PoolConfig {
                        keep_alive: config.keep_alive,
                        max_instances: config.max_sandboxes,
                        budget: budget.clone(),
                        concurrent_starts: concurrent_starts(),
                    },
                    keep_alive.clone(),
                )
            })
            .map_err(|e| e.to_string()),
        };
        if let Err(reason) = &sandbox {
            tracing::warn!("process runtimes unavailable: {reason}");
        }
        let (keys, bootstrap) = KeyRing::open(
            metadata.clone(),
            &config.data_dir,
            &config.region,
            config.initial_key.clone(),
        )?;
        let mut reservations = Vec::new();
        for (name, reserved) in metadata.reserved_concurrency()? {
            if let Ok(name) = FunctionName::new(&name) {
                reservations.push((name, reserved));
            }
        }
        let concurrency = Concurrency::new(config.account_concurrency, reservations);
        concurrency.set_default_wait(config.admission_wait.min(MAX_ADMISSION_WAIT));
        for (name, ms) in metadata.admission_waits()? {
            if let Ok(name) = FunctionName::new(&name) {
                concurrency.set_max_wait(&name, Some(Duration::from_millis(u64::from(ms))));
            }
        }
        let mut scaling = HashMap::new();
        for (name, settings) in metadata.scaling()? {
            if let Ok(name) = FunctionName::new(&name) {
                if let Some(policy) = keep_alive_policy(settings.keep_alive, config.keep_alive) {
                    keep_alive.set_policy(name.as_str(), Some(policy));
                }
                scaling.insert(name, settings);
            }
        }
        let urls = metadata
            .urls()?
            .into_iter()
            .map(|u| ((u.function.clone(), u.alias.clone()), Arc::new(u)))
            .collect();
        Ok(Self {
            keys,
            bootstrap,
            concurrency,
            max_sandboxes: config.max_sandboxes,
            keep_alive,
            default_keep_alive: config.keep_alive,
            budget,
            shared: SharedInstances::default(),
            scaling: RwLock::new(scaling),
            aliases: RwLock::default(),
            urls: RwLock::new(urls),
            throttles: AtomicU64::new(0),
            events,
            recorder: Arc::new(InvocationRecorder::start(metadata.clone())),
            metadata,
            code,
            wasm: WasmExecutor::new(engine),
            sandbox,
            region: config.region.clone(),
            data_dir: config.data_dir.clone(),
            versions: RwLock::default(),
            prepared: RwLock::default(),
            writes: tokio::sync::Mutex::new(()),
            invocations: AtomicU64::new(0),
            invocation_errors: Arc::new(AtomicU64::new(0)),
            cold_starts: AtomicU64::new(0),
        })
    }

    /// Loads every stored function's compiled code (from the artifact cache: nothing is compiled
    /// again after a restart) so that first calls do not pay for it. Returns how many code objects
    /// were loaded; failures are logged and left to the first invocation to report.
    pub async fn warm_up(&self) -> Result<usize, ControlError> {
        let metadata = self.metadata.clone();
        let all = tokio::task::spawn_blocking(move || metadata.all_versions())
            .await
            .map_err(|e| ControlError::Task(e.to_string()))??;
        let mut loaded = 0;
        for v in all {
            match self.prepared_code(&v).await {
                Ok((_, _)) => loaded += 1,
                Err(e) => {
                    tracing::warn!(function = %v.name, version = %v.version, error = %e, "cannot load code")
                }
            }
        }
        self.restore_provisioned().await;
        Ok(loaded)
    }

    /// Sandboxes this node may run at once.
    pub fn max_sandboxes(&self) -> usize {
        self.max_sandboxes
    }

    /// Counters.
    pub fn stats(&self) -> PlatformStats {
        let engine = self.wasm.engine().stats();
        PlatformStats {
            invocations: self.invocations.load(Ordering::Relaxed),
            invocation_errors: self.invocation_errors.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            compilations: engine.compilations,
            artifact_cache_hits: engine.cache_hits,
            records_dropped: self.recorder.dropped(),
            pooling: engine.pooling,
            sandboxes: self
                .sandbox
                .as_ref()
                .map(InstancePool::stats)
                .unwrap_or_default(),
            throttles: self.throttles.load(Ordering::Relaxed),
            concurrent_executions: self.concurrency.in_flight(),
            events: self.events.stats(),
        }
    }

    /// Flushes invocation records and stops sandboxes; call after the server stopped taking
    /// requests.
    pub fn shutdown(&self) {
        if let Ok(s) = &self.sandbox {
            s.shutdown();
        }
        self.recorder.shutdown();
        self.events.store.shutdown();
    }

    /// After [`Platform::shutdown`]: waits (up to `timeout`) for the stopped sandboxes to be
    /// cleaned up (their cgroups removed).
    pub async fn drain(&self, timeout: Duration) {
        if let Ok(s) = &self.sandbox
            && !s.executor().drained(timeout).await
        {
            tracing::warn!(
                "some sandboxes were still stopping at exit; the next start removes their cgroups"
            );
        }
    }

    /// The process tier's pool, or why there is none.
    pub(crate) fn process_pool(
        &self,
        runtime: Runtime,
    ) -> Result<&InstancePool<ProcessExecutor>, ControlError> {
        let unavailable = |reason: String| ControlError::RuntimeUnavailable { runtime, reason };
        let pool = self.sandbox.as_ref().map_err(|r| unavailable(r.clone()))?;
        pool.executor()
            .supports(runtime.family())
            .map_err(unavailable)?;
        Ok(pool)
    }

    /// Stops warm sandboxes of a function whose version changed or that was deleted.
    pub(crate) fn retire(&self, name: &FunctionName, version: Option<Qualifier>) {
        if let Ok(s) = &self.sandbox {
            let v = version.map(|q| q.to_string());
            s.retire(DEFAULT_TENANT, name.as_str(), v.as_deref());
        }
    }

    // ----- deploy -------------------------------------------------------------------------

    /// The runtime given, or the one detected from wasm code. A zip needs an explicit runtime.
    fn runtime_for(runtime: Option<Runtime>, code: &[u8]) -> Result<Runtime, ControlError> {
        match runtime {
            Some(r) => Ok(r),
            None if lambent_sandbox::package::is_zip(code) => {
                Err(ConfigError::RuntimeRequired.into())
            }
            None => Ok(WasmEngine::detect_runtime(code)?),
        }
    }

    /// Validates and compiles `code` for `runtime` (wasm), or checks and unpacks it (a zip for the
    /// process executor).
    async fn prepare(&self, runtime: Runtime, code: Bytes) -> Result<LoadedCode, ControlError> {
        if code.len() > MAX_CODE_BYTES {
            return Err(ControlError::CodeTooLarge {
                size: code.len(),
                limit: MAX_CODE_BYTES,
            });
        }
        if !runtime.is_wasm() {
            let executor = self.process_pool(runtime)?.executor().clone();
            let dir = tokio::task::spawn_blocking(move || executor.prepare(runtime, &code))
                .await
                .map_err(|e| ControlError::Task(e.to_string()))??;
            return Ok(LoadedCode::Package(dir));
        }
        let wasm = self.wasm.clone();
        let prepared = tokio::task::spawn_blocking(move || wasm.prepare(runtime, &code))
            .await
            .map_err(|e| ControlError::Task(e.to_string()))??;
        Ok(LoadedCode::Wasm(prepared))
    }

    /// Stores code, then runs `write` (the metadata change); if `write` fails, code this call
    /// stored and nothing references is removed again, so a failed deploy leaves nothing behind.
    async fn store_code_then<F>(
        &self,
        code: &Bytes,
        prepared: LoadedCode,
        write: F,
    ) -> Result<(String, Option<String>), ControlError>
    where
        F: FnOnce(&dyn MetadataStore, &str) -> Result<Option<String>, ControlError>,
    {
        let (sha, new) = self.code.put(code)?;
        match write(&*self.metadata, &sha) {
            Ok(replaced) => {
                self.prepared
                    .write()
                    .entry(sha.clone())
                    .or_insert_with(|| Arc::new(OnceCell::new_with(Some(prepared))));
                Ok((sha, replaced))
            }
            Err(e) => {
                if !self.metadata.code_in_use(&sha).unwrap_or(true) {
                    if new {
                        let _ = self.code.remove(&sha);
                    }
                    if let (LoadedCode::Package(_), Ok(s)) = (&prepared, &self.sandbox) {
                        s.executor().remove_package(&sha);
                    }
                }
                Err(e)
            }
        }
    }

    /// Removes code objects (and their loaded forms) that no version references any more.
    pub(crate) fn collect_garbage(&self, hashes: impl IntoIterator<Item = String>) {
        for sha in hashes {
            match self.metadata.code_in_use(&sha) {
                Ok(false) => {
                    self.prepared.write().remove(&sha);
                    if let Ok(s) = &self.sandbox {
                        s.executor().remove_package(&sha);
                    }
                    if let Err(e) = self.code.remove(&sha) {
                        tracing::warn!(sha = %sha, error = %e, "cannot remove unused code");
                    }
                }
                Ok(true) => {}
                Err(e) => tracing::warn!(sha = %sha, error = %e, "cannot check code use"),
            }
        }
    }

    pub(crate) fn forget(&self, name: &FunctionName) {
        self.versions.write().retain(|(n, _), _| n != name);
    }

    fn latest_record(
        name: &FunctionName,
        config: FunctionConfig,
        sha: &str,
        size: usize,
    ) -> FunctionVersion {
        FunctionVersion {
            name: name.clone(),
            version: Qualifier::Latest,
            config,
            code_sha256: sha.to_owned(),
            code_size: size as u64,
            last_modified: now_rfc3339(),
            revision_id: new_id(),
        }
    }

    /// Creates a function; fails with `AlreadyExists` if the name is taken.
    pub async fn create(
        &self,
        name: FunctionName,
        create: FunctionCreate,
        code: Bytes,
    ) -> Result<FunctionVersion, ControlError> {
        self.deploy_inner(name, create, code, false)
            .await
            .map(|(v, _)| v)
    }

    /// Creates the function or replaces its `$LATEST` code and configuration; the boolean says
    /// whether it was created.
    pub async fn deploy(
        &self,
        name: FunctionName,
        create: FunctionCreate,
        code: Bytes,
    ) -> Result<(FunctionVersion, bool), ControlError> {
        self.deploy_inner(name, create, code, true).await
    }

    async fn deploy_inner(
        &self,
        name: FunctionName,
        create: FunctionCreate,
        code: Bytes,
        replace: bool,
    ) -> Result<(FunctionVersion, bool), ControlError> {
        let runtime = create.runtime.as_deref().map(str::parse).transpose()?;
        // Check the configuration before the (slow) compilation, with the runtime it will have.
        let runtime = Self::runtime_for(runtime, &code)?;
        let config = FunctionConfig::from_create(&create, runtime)?;
        let prepared = self.prepare(runtime, code.clone()).await?;
        let _guard = self.writes.lock().await;
        let record = |sha: &str| Self::latest_record(&name, config.clone(), sha, code.len());
        let mut created = true;
        let (sha, replaced) = self
            .store_code_then(&code, prepared, |metadata, sha| {
                let latest = record(sha);
                match metadata.create(&latest) {
                    Ok(()) => Ok(None),
                    Err(MetadataError::AlreadyExists(_)) if replace => {
                        let old = metadata.get(&name, Qualifier::Latest)?;
                        metadata.replace_latest_if_revision(&latest, None)?;
                        created = false;
                        Ok(old.map(|o| o.code_sha256))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await?;
        self.forget(&name);
        self.retire(&name, Some(Qualifier::Latest));
        self.collect_garbage(replaced);
        let stored = self
            .metadata
            .get(&name, Qualifier::Latest)?
            .ok_or_else(|| ControlError::NotFound(format!("function {name} does not exist")))?;
        debug_assert_eq!(stored.code_sha256, sha);
        tracing::info!(function = %name, runtime = %stored.config.runtime, sha256 = %sha, created, "deployed");
        Ok((stored, created))
    }

    /// Replaces the code of `$LATEST`, keeping its configuration; with `revision`, only if
    /// `$LATEST` still has that revision.
    pub async fn update_code(
        &self,
        name: &FunctionName,
        code: Bytes,
        revision: Option<&str>,
    ) -> Result<FunctionVersion, ControlError> {
        let current = self.get(name, Qualifier::Latest)?;
        // Fail before the compilation; the store checks again as it writes.
        check_revision(&current.revision_id, revision)?;
        let prepared = self.prepare(current.config.runtime, code.clone()).await?;
        let _guard = self.writes.lock().await;
        let config = self.get(name, Qualifier::Latest)?.config;
        let latest = |sha: &str| Self::latest_record(name, config.clone(), sha, code.len());
        let (_, replaced) = self
            .store_code_then(&code, prepared, |metadata, sha| {
                metadata.replace_latest_if_revision(&latest(sha), revision)?;
                Ok(Some(current.code_sha256.clone()))
            })
            .await?;
        self.forget(name);
        self.retire(name, Some(Qualifier::Latest));
        self.collect_garbage(replaced);
        self.get(name, Qualifier::Latest)
    }

    /// Changes the configuration of `$LATEST`, keeping its code; with `revision`, only if
    /// `$LATEST` still has that revision.
    pub async fn update_config(
        &self,
        name: &FunctionName,
        update: &FunctionUpdate,
        revision: Option<&str>,
    ) -> Result<FunctionVersion, ControlError> {
        let _guard = self.writes.lock().await;
        let mut latest = self.get(name, Qualifier::Latest)?;
        check_revision(&latest.revision_id, revision)?;
        latest.config = latest.config.updated(update)?;
        latest.last_modified = now_rfc3339();
        latest.revision_id = new_id();
        self.metadata
            .replace_latest_if_revision(&latest, revision)?;
        self.forget(name);
        self.retire(name, Some(Qualifier::Latest));
        Ok(latest)
    }

    /// One version of a function.
    pub fn get(
        &self,
        name: &FunctionName,
        qualifier: Qualifier,
    ) -> Result<FunctionVersion, ControlError> {
        self.metadata
            .get(name, qualifier)?
            .ok_or_else(|| not_found(name, qualifier))
    }

    /// A page of functions by name, and the marker of the next page.
    pub fn list(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<(Vec<FunctionVersion>, Option<String>), ControlError> {
        let mut page = self.metadata.list(limit.saturating_add(1), after)?;
        let next = if page.len() > limit as usize {
            page.truncate(limit as usize);
            page.last().map(|v| v.name.to_string())
        } else {
            None
        };
        Ok((page, next))
    }

    /// Every version of a function, `$LATEST` first.
    pub fn versions(&self, name: &FunctionName) -> Result<Vec<FunctionVersion>, ControlError> {
        let versions = self.metadata.versions(name)?;
        if versions.is_empty() {
            return Err(not_found(name, Qualifier::Latest));
        }
        Ok(versions)
    }

    /// Publishes `$LATEST` as an immutable version (or returns the newest version when nothing
    /// changed since it); the boolean says whether a version was created. With `revision`, only
    /// if `$LATEST` still has that revision.
    pub async fn publish(
        &self,
        name: &FunctionName,
        description: Option<&str>,
        revision: Option<&str>,
    ) -> Result<(FunctionVersion, bool), ControlError> {
        if let Some(d) = description {
            let chars = d.chars().count();
            if chars > lambent_core::limits::MAX_DESCRIPTION_CHARS {
                return Err(ConfigError::DescriptionTooLong(chars).into());
            }
        }
        let _guard = self.writes.lock().await;
        let publish = Publish {
            description,
            now: &now_rfc3339(),
            revision_id: &new_id(),
        };
        Ok(self
            .metadata
            .publish_if_revision(name, &publish, revision)?)
    }

    /// Deletes a function, all its versions, and code nothing else uses.
    pub async fn delete(&self, name: &FunctionName) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        let hashes = self.metadata.delete(name)?;
        self.forget(name);
        self.aliases.write().retain(|(n, _), _| n != name);
        self.urls.write().retain(|(n, _), _| n != name);
        self.concurrency.forget(name);
        self.recorder.meter().forget(name.as_str());
        if let Ok(sandbox) = &self.sandbox {
            sandbox.forget_provisioned(DEFAULT_TENANT, name.as_str());
        }
        self.keep_alive.forget(name.as_str());
        self.shared.forget(name);
        self.scaling.write().remove(name);
        self.retire(name, None);
        self.collect_garbage(hashes);
        self.forget_events_of(name).await;
        tracing::info!(function = %name, "deleted");
        Ok(())
    }

    /// The code of a version, as it was uploaded.
    pub async fn code_of(
        &self,
        name: &FunctionName,
        qualifier: Qualifier,
    ) -> Result<Bytes, ControlError> {
        let v = self.get(name, qualifier)?;
        let store = self.code.clone();
        let bytes = tokio::task::spawn_blocking(move || store.get(&v.code_sha256))
            .await
            .map_err(|e| ControlError::Task(e.to_string()))??;
        Ok(Bytes::from(bytes))
    }

    /// The runtime family of the version a call to `name:selector` would read (for an alias, its
    /// main version), from the invocation path's cache.
    pub fn runtime_family(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Result<RuntimeFamily, ControlError> {
        let q = self.main_version(name, selector)?;
        Ok(self.resolve(name, q)?.version.config.runtime.family())
    }

    /// The newest invocations of a function, newest first.
    pub fn recent_invocations(
        &self,
        name: &FunctionName,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, ControlError> {
        Ok(self.metadata.recent_invocations(name, limit)?)
    }

    /// Invocation records that started in `[from_ms, to_ms)`, oldest first.
    pub fn invocations_between(
        &self,
        function: Option<&FunctionName>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, ControlError> {
        Ok(self.metadata.invocations_between(
            function.map(FunctionName::as_str),
            from_ms,
            to_ms,
            limit,
        )?)
    }

    /// Metered usage. What was metered in the last second is stored first, so a call that
    /// has answered is always counted.
    pub fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageGroupSums>, ControlError> {
        self.recorder
            .meter()
            .flush(|rows| self.metadata.add_usage(rows))?;
        Ok(self.metadata.usage(query)?)
    }

    /// Per-function counters and histograms.
    pub fn function_metrics(&self) -> Vec<(String, Arc<FunctionMetrics>)> {
        self.recorder.meter().functions()
    }

    /// Calls in flight per function.
    pub fn in_flight_by_function(&self) -> Vec<(FunctionName, u32)> {
        self.concurrency.in_flight_by_function()
    }

    /// One invocation's record.
    pub fn invocation(&self, id: &str) -> Result<InvocationRecord, ControlError> {
        self.metadata
            .invocation(id)?
            .ok_or_else(|| ControlError::NotFound(format!(
                "no invocation {id} is recorded (calls that succeed without writing logs are counted in /metrics, not stored)"
            )))
    }

    // ----- invoke -------------------------------------------------------------------------

    pub(crate) fn resolve(
        &self,
        name: &FunctionName,
        qualifier: Qualifier,
    ) -> Result<Arc<ResolvedVersion>, ControlError> {
        let key = (name.clone(), qualifier);
        if let Some(v) = self.versions.read().get(&key) {
            return Ok(v.clone());
        }
        let version = self.get(name, qualifier)?;
        let resolved = Arc::new(ResolvedVersion {
            version,
            started: AtomicBool::new(false),
            spec: std::sync::OnceLock::new(),
            pool_key: std::sync::OnceLock::new(),
        });
        Ok(self.versions.write().entry(key).or_insert(resolved).clone())
    }

    /// The prepared code of a version, loading it (from the code store and the artifact cache)
    /// if this process has not yet; the duration is the time spent loading.
    pub(crate) async fn prepared_code(
        &self,
        v: &FunctionVersion,
    ) -> Result<(LoadedCode, Duration), ControlError> {
        let cell = {
            let existing = self.prepared.read().get(&v.code_sha256).cloned();
            match existing {
                Some(c) => c,
                None => self
                    .prepared
                    .write()
                    .entry(v.code_sha256.clone())
                    .or_default()
                    .clone(),
            }
        };
        if let Some(p) = cell.get() {
            return Ok((p.clone(), Duration::ZERO));
        }
        let started = Instant::now();
        let prepared = cell
            .get_or_try_init(|| async {
                let store = self.code.clone();
                let sha = v.code_sha256.clone();
                let bytes = tokio::task::spawn_blocking(move || store.get(&sha))
                    .await
                    .map_err(|e| ControlError::Task(e.to_string()))??;
                self.prepare(v.config.runtime, Bytes::from(bytes)).await
            })
            .await?;
        Ok((prepared.clone(), started.elapsed()))
    }

    /// Runs one invocation of `name:qualifier` with `request`. `script_name` is the URL prefix
    /// the function is served under.
    pub async fn invoke<B>(
        &self,
        name: &FunctionName,
        selector: &Selector,
        request: http::Request<B>,
        options: InvokeOptions,
    ) -> Result<Served, InvokeFailure>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let refused = refusal(Instant::now());
        let qualifier = self.route(name, selector).map_err(&refused)?;
        let resolved = self.resolve(name, qualifier).map_err(&refused)?;
        let seat = self.seat(name, &resolved).await.map_err(|e| {
            self.throttles.fetch_add(1, Ordering::Relaxed);
            self.recorder.meter().throttle(
                DEFAULT_TENANT,
                name.as_str(),
                &resolved.version.version.to_string(),
                now_ms(),
            );
            refused(e.into())
        })?;
        // Billing starts when the call has its slot: time spent waiting in the admission
        // queue is not the function's.
        let started = Instant::now();
        let started_at_ms = now_ms();
        let refused = refusal(started);
        let v = &resolved.version;
        let (code, load) = self.prepared_code(v).await.map_err(refused)?;
        let id = options.request_id.unwrap_or_else(new_id);
        let mut code = match code {
            LoadedCode::Wasm(code) => code,
            LoadedCode::Package(dir) => {
                let call = ProcessCall {
                    id,
                    started,
                    started_at_ms,
                    _seat: seat,
                };
                return self.invoke_process(&resolved, dir, request, call).await;
            }
        };
        let script_name = options.script_name;
        let remote_addr = options.remote_addr;
        let cold_start = !resolved.started.swap(true, Ordering::Relaxed);
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if cold_start {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        let ctx = InvokeContext {
            memory_bytes: v.config.memory_mb as usize * MB,
            shared_memory: seat.shared_memory(),
            timeout: Duration::from_secs(u64::from(v.config.timeout_s)),
            environment: v
                .config
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            script_name,
            remote_addr,
        };
        let call = Arc::new(Call {
            id,
            resolved: resolved.clone(),
            started,
            started_at_ms,
            cold_start,
        });
        // Completed when the guest has finished, which can be after the response head was sent.
        let on_complete: OnComplete = {
            let call = call.clone();
            let recorder = self.recorder.clone();
            let errors = self.invocation_errors.clone();
            // The seat is given back when the guest has finished (or the call was dropped).
            let seat = seat;
            Box::new(move |c: Completion| {
                let _seat = &seat;
                let init = load + c.init;
                match c.result {
                    Ok(()) => call.keep(&recorder, None, init, c.logs),
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        call.keep(&recorder, Some(&e), init, c.logs);
                    }
                }
            })
        };
        let wasm_call = WasmCall {
            request,
            ctx,
            on_complete,
        };
        match self.wasm.invoke(&mut code, wasm_call, None).await {
            Ok(invocation) => Ok(Served {
                invocation_id: call.id.clone(),
                version: v.version,
                response: invocation.response,
                cold_start,
                init: load + invocation.init,
                duration: started.elapsed(),
                function_error: None,
                log_tail: None,
            }),
            Err(Failure { error, logs, init }) => {
                self.invocation_errors.fetch_add(1, Ordering::Relaxed);
                call.keep(&self.recorder, Some(&error), load + init, logs);
                Err(InvokeFailure {
                    invocation_id: Some(call.id.clone()),
                    error: error.into(),
                    duration: started.elapsed(),
                })
            }
        }
    }

    /// Takes a seat for one call: a place on a shared wasm instance with room, or a concurrency
    /// permit (waiting in line up to the function's admission wait) and, for wasm, the
    /// instance's memory from the node's budget.
    async fn seat(
        &self,
        name: &FunctionName,
        resolved: &ResolvedVersion,
    ) -> Result<Seat, InvokeError> {
        let config = &resolved.version.config;
        let wasm = config.runtime.family() == RuntimeFamily::Wasm;
        let per_instance = if wasm {
            self.scaling
                .read()
                .get(name)
                .map_or(1, |s| s.instance_concurrency)
        } else {
            1
        };
        let revision = &resolved.version.revision_id;
        if per_instance > 1
            && let Some(seat) = self.shared.join(name, revision, per_instance)
        {
            return Ok(seat);
        }
        let permit = match self.concurrency.acquire_waiting(name).await {
            Ok(p) => p,
            Err(t) => {
                // A seat on an instance started meanwhile needs no permit of its own.
                if per_instance > 1
                    && let Some(seat) = self.shared.join(name, revision, per_instance)
                {
                    return Ok(seat);
                }
                return Err(InvokeError::Throttled(t));
            }
        };
        if !wasm {
            return Ok(Seat::Own {
                _permit: permit,
                _memory: None,
            });
        }
        let memory = self.reserve_memory(config.memory_mb)?;
        if per_instance > 1 {
            let bytes = config.memory_mb as usize * MB;
            return Ok(self
                .shared
                .start(name, revision, per_instance, permit, memory, bytes));
        }
        Ok(Seat::Own {
            _permit: permit,
            _memory: Some(memory),
        })
    }

    /// Reserves a wasm instance's memory from the node's budget, stopping idle sandboxes (least
    /// recently used first) if that is what it takes.
    fn reserve_memory(&self, memory_mb: u32) -> Result<MemoryReservation, InvokeError> {
        let mb = u64::from(memory_mb);
        if let Some(r) = self.budget.try_reserve(mb) {
            return Ok(r);
        }
        if let Ok(sandbox) = &self.sandbox
            && sandbox.evict_idle_for(mb)
            && let Some(r) = self.budget.try_reserve(mb)
        {
            return Ok(r);
        }
        Err(InvokeError::Capacity(format!(
            "the node's memory budget is taken: {} of {} MB are reserved by running or provisioned instances, and this function needs {mb} MB; a higher instanceConcurrency lets calls share an instance's memory",
            self.budget.reserved_mb(),
            self.budget.limit_mb()
        )))
    }

    /// The node's memory budget.
    pub fn memory_budget(&self) -> (u64, u64) {
        (self.budget.limit_mb(), self.budget.reserved_mb())
    }

    /// Instances per function now: (busy, idle). Sandboxes are counted by the process
    /// executor; a wasm instance is a concurrency permit (a call alone on its instance, or a
    /// shared instance however many calls it serves).
    pub fn instances_by_function(&self) -> Vec<(String, u32, u32)> {
        let mut out: HashMap<String, (u32, u32)> = HashMap::new();
        if let Ok(sandbox) = &self.sandbox {
            for (f, n) in sandbox.instances_by_function() {
                out.insert(f, (n.live.saturating_sub(n.idle), n.idle));
            }
        }
        for (f, in_flight) in self.concurrency.in_flight_by_function() {
            // A process-tier call's permit is its sandbox, counted above.
            if in_flight > 0 && !out.contains_key(f.as_str()) {
                out.insert(f.to_string(), (in_flight, 0));
            }
        }
        let mut out: Vec<_> = out.into_iter().map(|(f, (b, i))| (f, b, i)).collect();
        out.sort();
        out
    }

    /// Calls running on shared wasm instances, and those instances, per function.
    pub fn shared_instances(&self) -> HashMap<FunctionName, (u32, u32)> {
        self.shared.by_function()
    }

    /// The executor's view of a version: limits, environment and the code's directory.
    pub(crate) fn spec(&self, resolved: &ResolvedVersion, code_dir: PathBuf) -> Arc<FunctionSpec> {
        resolved
            .spec
            .get_or_init(|| {
                let v = &resolved.version;
                let c = &v.config;
                let version = match v.version {
                    Qualifier::Version(n) => Some(n.to_string()),
                    Qualifier::Latest => None,
                };
                let arn =
                    FunctionArn::new(&self.region, v.name.as_str(), version.as_deref()).to_string();
                let mut env: Vec<(String, String)> = c
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let reserved = lambda_environment(v, &self.region);
                env.retain(|(k, _)| !reserved.iter().any(|(r, _)| r == k));
                env.extend(reserved);
                Arc::new(FunctionSpec {
                    function: v.name.to_string(),
                    version: v.version.to_string(),
                    revision: v.revision_id.clone(),
                    family: c.runtime.family(),
                    memory_mb: c.memory_mb,
                    timeout: Duration::from_secs(u64::from(c.timeout_s)),
                    init_timeout: lambent_sandbox::INIT_TIMEOUT,
                    ephemeral_storage_mb: c.ephemeral_storage_mb,
                    egress: c.egress,
                    environment: env,
                    code_dir,
                    function_arn: arn,
                })
            })
            .clone()
    }

    /// Runs a process-tier function: the request body is the event, the answer the response.
    async fn invoke_process<B>(
        &self,
        resolved: &Arc<ResolvedVersion>,
        code_dir: PathBuf,
        request: http::Request<B>,
        process_call: ProcessCall,
    ) -> Result<Served, InvokeFailure>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let ProcessCall {
            id,
            started,
            started_at_ms,
            _seat,
        } = process_call;
        let v = &resolved.version;
        let refused = refusal(started);
        let pool = self.process_pool(v.config.runtime).map_err(&refused)?;
        let spec = self.spec(resolved, code_dir);
        let (parts, body) = request.into_parts();
        let body = body.map_err(Into::<BodyError>::into);
        let payload = match http_body_util::Limited::new(body, MAX_SYNC_PAYLOAD_BYTES)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                let too_large = e.is::<http_body_util::LengthLimitError>()
                    || matches!(
                        e.downcast_ref::<BodyError>(),
                        Some(BodyError::TooLarge { .. })
                    );
                let error = if too_large {
                    InvokeError::PayloadTooLarge {
                        limit: MAX_SYNC_PAYLOAD_BYTES,
                    }
                } else {
                    InvokeError::BadRequest(e.to_string())
                };
                return Err(refused(error.into()));
            }
        };
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        };
        let input = InvokeInput {
            request_id: id.clone(),
            payload,
            trace_id: header("x-amzn-trace-id").unwrap_or_else(|| {
                format!(
                    "Root=1-{:08x}-{}",
                    started_at_ms / 1000,
                    &id.replace('-', "")[..24]
                )
            }),
            client_context: header("x-amz-client-context"),
            cognito_identity: None,
        };
        self.invocations.fetch_add(1, Ordering::Relaxed);
        // Metered even if the caller goes away mid-call (the future is dropped, and with it
        // the sandbox): that time was the function's.
        let mut abandoned = Abandoned {
            call: Some(Call {
                id: id.clone(),
                resolved: resolved.clone(),
                started,
                started_at_ms,
                cold_start: false,
            }),
            recorder: &self.recorder,
            errors: &self.invocation_errors,
        };
        let result = match pool.lease(resolved.pool_key(), &spec, &id).await {
            Ok(mut lease) => {
                let init = lease.init();
                let result =
                    Executor::invoke::<B>(pool.executor(), lease.instance(), input, init).await;
                if result.is_ok() {
                    lease.release();
                }
                // Dropped after a failure, the lease stops the instance.
                result
            }
            Err(LeaseError::NoRoom(why)) => Err(lambent_sandbox::InvokeFailure {
                error: InvokeError::Capacity(why),
                logs: String::new(),
                cold_start: true,
                init: Duration::ZERO,
                init_error: None,
            }),
            Err(LeaseError::Start(failure)) => Err(failure),
        };
        abandoned.call = None;
        let call = Call {
            id: id.clone(),
            resolved: resolved.clone(),
            started,
            started_at_ms,
            cold_start: match &result {
                Ok(o) => o.cold_start,
                Err(f) => f.cold_start,
            },
        };
        if call.cold_start {
            self.cold_starts.fetch_add(1, Ordering::Relaxed);
            resolved.started.store(true, Ordering::Relaxed);
        }
        let (outcome, init, logs) = match result {
            Ok(out) => (
                Ok((
                    out.payload,
                    out.function_error.map(|e| (e.error_type, e.message)),
                )),
                out.init,
                out.logs,
            ),
            Err(f) => match f.init_error {
                // Init errors answer like function errors, as on Lambda.
                Some(e) => (
                    Ok((e.payload.clone(), Some((e.error_type, e.message)))),
                    f.init,
                    f.logs,
                ),
                None => (Err(f.error), f.init, f.logs),
            },
        };
        let log_tail = Some(tail(&logs, LOG_TAIL_BYTES).to_owned());
        match outcome {
            Ok((payload, function_error)) => {
                let error_line = function_error.as_ref().map(|(t, m)| format!("{t}: {m}"));
                if error_line.is_some() {
                    self.invocation_errors.fetch_add(1, Ordering::Relaxed);
                }
                call.record(
                    &self.recorder,
                    if error_line.is_some() {
                        InvocationOutcome::FunctionError
                    } else {
                        InvocationOutcome::Success
                    },
                    error_line,
                    init,
                    logs,
                );
                let body = http_body_util::Full::new(payload)
                    .map_err(|never| match never {})
                    .boxed_unsync();
                let response = http::Response::builder()
                    .status(http::StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .map_err(|e| refused(ControlError::Task(e.to_string())))?;
                Ok(Served {
                    invocation_id: id,
                    version: v.version,
                    response,
                    cold_start: call.cold_start,
                    init,
                    duration: started.elapsed(),
                    function_error: function_error.map(|(t, _)| t),
                    log_tail,
                })
            }
            Err(error @ InvokeError::Capacity(_)) => {
                // The node had no room for an instance: a refusal, metered like a throttle and
                // not billed.
                self.throttles.fetch_add(1, Ordering::Relaxed);
                self.recorder.meter().throttle(
                    DEFAULT_TENANT,
                    v.name.as_str(),
                    &v.version.to_string(),
                    started_at_ms,
                );
                Err(InvokeFailure {
                    invocation_id: None,
                    error: error.into(),
                    duration: started.elapsed(),
                })
            }
            Err(error) => {
                self.invocation_errors.fetch_add(1, Ordering::Relaxed);
                call.record(
                    &self.recorder,
                    error.outcome(),
                    Some(error.to_string()),
                    init,
                    logs,
                );
                Err(InvokeFailure {
                    invocation_id: Some(id),
                    error: error.into(),
                    duration: started.elapsed(),
                })
            }
        }
    }
}

/// Turns an error into the failure of a call that never ran, timed from `started`.
fn refusal(started: Instant) -> impl Fn(ControlError) -> InvokeFailure {
    move |error| InvokeFailure {
        invocation_id: None,
        error,
        duration: started.elapsed(),
    }
}

/// A process-tier call's identity and its concurrency slot, held until the call ends.
#[derive(Debug)]
struct ProcessCall {
    id: String,
    started: Instant,
    started_at_ms: i64,
    _seat: Seat,
}

/// Records a process call as abandoned if dropped while still holding it.
struct Abandoned<'a> {
    call: Option<Call>,
    recorder: &'a InvocationRecorder,
    errors: &'a AtomicU64,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            call.record(
                self.recorder,
                InvocationOutcome::Abandoned,
                Some("the caller went away before the function answered".into()),
                Duration::ZERO,
                String::new(),
            );
        }
    }
}

/// What the record of one call is made from.
#[derive(Debug)]
struct Call {
    id: String,
    resolved: Arc<ResolvedVersion>,
    started: Instant,
    started_at_ms: i64,
    cold_start: bool,
}

impl Call {
    /// Meters the call, and stores its record if there is something to look at later: logs,
    /// or a failure. Calls that succeed silently are metered (usage and metrics) but not stored
    /// one by one; storing every one cost a fifth of the server's CPU at ten thousand calls a
    /// second.
    fn keep(
        &self,
        recorder: &InvocationRecorder,
        error: Option<&InvokeError>,
        init: Duration,
        logs: String,
    ) {
        if error.is_none() && logs.is_empty() {
            self.meter(recorder, false, init);
            return;
        }
        self.record(
            recorder,
            error.map_or(InvocationOutcome::Success, InvokeError::outcome),
            error.map(ToString::to_string),
            init,
            logs,
        );
    }

    /// Adds the call to the meter; returns its wall time, billed ms and GB-seconds.
    fn meter(&self, recorder: &InvocationRecorder, error: bool, init: Duration) -> (f64, u64, f64) {
        let v = &self.resolved.version;
        let duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        let version = v.version.to_string();
        let (billed, gbs) = recorder.meter().call(&Sample {
            tenant: DEFAULT_TENANT,
            function: v.name.as_str(),
            version: &version,
            started_at_ms: self.started_at_ms,
            duration_ms,
            init_ms: init.as_secs_f64() * 1e3,
            cold_start: self.cold_start,
            error,
            memory_mb: v.config.memory_mb,
        });
        (duration_ms, billed, gbs)
    }

    /// Meters the call and stores its record.
    fn record(
        &self,
        recorder: &InvocationRecorder,
        outcome: InvocationOutcome,
        error: Option<String>,
        init: Duration,
        logs: String,
    ) {
        let (duration_ms, billed_ms, gb_seconds) =
            self.meter(recorder, outcome != InvocationOutcome::Success, init);
        let v = &self.resolved.version;
        recorder.record(InvocationRecord {
            id: self.id.clone(),
            function: v.name.to_string(),
            version: v.version.to_string(),
            started_at_ms: self.started_at_ms,
            duration_ms,
            init_ms: init.as_secs_f64() * 1e3,
            cold_start: self.cold_start,
            outcome,
            tenant: DEFAULT_TENANT.to_owned(),
            memory_mb: v.config.memory_mb,
            billed_ms,
            gb_seconds,
            error,
            logs,
        });
    }
}

/// The keep-alive policy of a function's own setting, with the platform's keep-alive as the
/// adaptive policy's fallback.
pub(crate) fn keep_alive_policy(
    setting: Option<KeepAliveSetting>,
    platform: Duration,
) -> Option<KeepAlivePolicy> {
    setting.map(|s| match s {
        KeepAliveSetting::Fixed(d) => KeepAlivePolicy::Fixed(d),
        KeepAliveSetting::Adaptive => KeepAlivePolicy::Adaptive { fallback: platform },
    })
}

fn not_found(name: &FunctionName, qualifier: Qualifier) -> ControlError {
    match qualifier {
        Qualifier::Latest => ControlError::NotFound(format!("function {name} does not exist")),
        Qualifier::Version(n) => {
            ControlError::NotFound(format!("version {n} of function {name} does not exist"))
        }
    }
}

/// The variables AWS sets in every execution environment; a function cannot override them.
fn lambda_environment(v: &FunctionVersion, region: &str) -> Vec<(String, String)> {
    let c = &v.config;
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_FUNCTION_NAME", v.name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", v.version.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", c.memory_mb.to_string()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", v.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("lambent/{}", v.revision_id),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_DEFAULT_REGION", region.to_owned()),
        ("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", c.runtime)),
        ("_HANDLER", c.handler.clone()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH",
            "/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib"
                .into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    match c.runtime.family() {
        RuntimeFamily::Python => {
            env.push(("PYTHONUNBUFFERED".into(), "1".into()));
            env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        }
        RuntimeFamily::Node => env.push((
            "NODE_PATH".into(),
            "/opt/nodejs/node_modules:/var/runtime/node_modules:/var/task/node_modules".into(),
        )),
        RuntimeFamily::Provided | RuntimeFamily::Wasm => {}
    }
    env
}

/// The last `max` bytes of `text`, starting at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}
