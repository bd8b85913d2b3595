//! The process executor: functions that run as native processes in a Linux sandbox that lambent
//! builds itself, talking to lambent over the AWS Lambda Runtime API.
//!
//! This is the only crate with `unsafe` code (in [`helper`], each block with a `SAFETY:` note).
//! It knows nothing of storage or of lambent's HTTP API: the control plane hands it a
//! [`FunctionSpec`] (what to run, with which limits) and an [`InvokeInput`] (the event), and gets
//! the function's answer, its logs and its measurements back.
//!
//! - [`package`] checks and unpacks code zips.
//! - [`plan`] decides what a sandbox looks like; [`helper`] builds it (namespaces, mounts,
//!   pivot_root, rlimits, capabilities, uid, `no_new_privs`, seccomp) in a separate process;
//!   [`seccomp`] holds the system-call allow list.
//! - [`network`] gives every sandbox its own network namespace, and egress sandboxes a veth link
//!   to the host with NAT that reaches the outside but not the host or other sandboxes.
//! - [`cgroup`] applies memory, pids and CPU limits through cgroup v2 or v1, behind the [`os::Os`]
//!   boundary so the logic is tested without root.
//! - [`runtime_api`] serves the Runtime API inside each sandbox.
//! - [`identity`] gives every sandbox its own uid and gid from a reserved range.
//! - [`ProcessExecutor`] keeps warm instances per function version (one invocation at a time per
//!   instance, as on Lambda), starts new ones when none is idle, freezes idle ones between calls,
//!   and reaps them after the keep-alive.

#![deny(unsafe_code)]

pub mod cgroup;
pub mod helper;
pub mod identity;
mod instance;
pub mod network;
pub mod os;
pub mod package;
pub mod plan;
pub mod runtime_api;
pub mod seccomp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lambent_core::{InvokeError, MemoryBudget, MemoryReservation, RuntimeFamily};
use parking_lot::Mutex;

pub use cgroup::CgroupDriver;
pub use helper::{HELPER_ARG, helper_main};
pub use identity::{DEFAULT_UID_BASE, IdentityError};
pub use package::{PackageError, PackageSummary};
pub use runtime_api::FunctionError;

use instance::{Instance, InstanceError, Launch};
use os::{HostOs, Os};

/// Idle time after which a warm instance is stopped (AWS keeps instances about this long).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// Sandboxes that may exist at once on this node, busy or idle.
pub const DEFAULT_MAX_SANDBOXES: usize = 256;
/// Longest a runtime may take to initialise (import the handler) before its first event (Lambda's
/// 10 s init limit).
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

const PYTHON_BOOTSTRAP: &str = include_str!("../../../runtimes/python/bootstrap.py");
const NODE_BOOTSTRAP: &str = include_str!("../../../runtimes/node/bootstrap.js");

/// Why the process executor is not available on this host.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// sandboxes need root for namespaces, mounts and cgroups
    #[error(
        "process runtimes need lambent to run as root (it builds namespaces, mounts and cgroups); this process runs as uid {0}"
    )]
    NotRoot(u32),
    /// the uid range cannot be used
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// a directory could not be prepared
    #[error("cannot prepare {path}: {source}")]
    Io {
        /// the path
        path: PathBuf,
        /// the error
        source: std::io::Error,
    },
}

/// Settings of the process executor.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// lambent's data directory; the executor uses `packages/`, `runtimes/` and `sandbox-root/`.
    pub data_dir: PathBuf,
    /// The `lambent` binary, started with [`HELPER_ARG`] to build each sandbox.
    pub helper: PathBuf,
    /// Idle time before a warm instance is stopped, for functions the advisor says nothing of.
    pub keep_alive: Duration,
    /// Sandboxes that may exist at once.
    pub max_sandboxes: usize,
    /// The node's memory budget, shared with the wasm executor: each sandbox reserves its
    /// memory limit for as long as it lives.
    pub budget: Arc<MemoryBudget>,
    /// Decides per function how long an idle instance stays and when one is started again
    /// ahead of a call; without one every function gets `keep_alive`.
    pub advisor: Option<Arc<dyn KeepAliveAdvisor>>,
    /// First uid (and gid) of the range sandboxes run as ([`identity::UID_RANGE`] ids); see
    /// [`DEFAULT_UID_BASE`].
    pub uid_base: u32,
    /// Freeze idle instances between calls (the cgroup freezer), as Lambda does; without a
    /// freezer on the host they keep running, with a warning.
    pub freeze_idle: bool,
}

/// Keep-alive decisions per function (the control plane's policy).
pub trait KeepAliveAdvisor: Send + Sync + std::fmt::Debug {
    /// `function` was idle for `idle` (from the end of its last call) before a call.
    fn observe_idle(&self, function: &str, idle: Duration);
    /// After a call of `function`: unload its instance and start one again after the first
    /// duration (zero: keep it loaded), then keep it warm for the second.
    fn windows(&self, function: &str) -> (Duration, Duration);
}

/// An instance to start again ahead of an expected call (a pre-warm).
struct Prewarm {
    at: Instant,
    keep: Duration,
    epoch: u64,
    spec: Arc<FunctionSpec>,
}

/// What to run: one version of a function, as the executor needs it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The function's name.
    pub function: String,
    /// `$LATEST` or the version number.
    pub version: String,
    /// Changes whenever the version's code or configuration changes; instances of another
    /// revision are never reused.
    pub revision: String,
    /// Python, Node.js or provided.
    pub family: RuntimeFamily,
    /// Memory limit in MB.
    pub memory_mb: u32,
    /// Invocation timeout.
    pub timeout: Duration,
    /// Init timeout.
    pub init_timeout: Duration,
    /// Size of `/tmp` in MB.
    pub ephemeral_storage_mb: u32,
    /// Whether the sandbox reaches the outside (through its own link to the host, with NAT); else
    /// its network namespace has loopback only.
    pub egress: bool,
    /// The complete environment of the runtime.
    pub environment: Vec<(String, String)>,
    /// The unpacked code on the host.
    pub code_dir: PathBuf,
    /// The ARN the function is invoked as.
    pub function_arn: String,
}

/// One invocation's input.
#[derive(Debug, Clone)]
pub struct InvokeInput {
    /// The request id (`Lambda-Runtime-Aws-Request-Id`).
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// The trace header value.
    pub trace_id: String,
    /// The caller's client context (base64 JSON), if any.
    pub client_context: Option<String>,
    /// The caller's Cognito identity (JSON), if any.
    pub cognito_identity: Option<String>,
}

/// An invocation that ran: the function answered or raised an error.
#[derive(Debug)]
pub struct InvokeOutput {
    /// The response, or the error document when `function_error` is set.
    pub payload: Bytes,
    /// The function's error, when it raised one.
    pub function_error: Option<FunctionError>,
    /// What the function printed, framed by Lambda's START, END and REPORT lines.
    pub logs: String,
    /// Whether a new sandbox was started for this call.
    pub cold_start: bool,
    /// Time to start the sandbox and initialise the runtime (zero when warm).
    pub init: Duration,
    /// Time from handing over the event to the answer.
    pub duration: Duration,
    /// Peak memory of the sandbox so far, in MB.
    pub max_memory_used_mb: u64,
}

/// An invocation that did not produce an answer.
#[derive(Debug)]
pub struct InvokeFailure {
    /// Why.
    pub error: InvokeError,
    /// What the function printed before.
    pub logs: String,
    /// Whether a new sandbox was started for this call.
    pub cold_start: bool,
    /// Time spent starting the sandbox.
    pub init: Duration,
    /// The function's error when init failed (`Runtime.ImportModuleError` and the like): the
    /// caller answers it like a function error.
    pub init_error: Option<FunctionError>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SandboxStats {
    /// Sandboxes started.
    pub started: u64,
    /// Sandboxes stopped after their keep-alive.
    pub reaped: u64,
    /// Sandboxes started ahead of an expected call by the keep-alive policy.
    pub prewarmed: u64,
    /// Idle sandboxes stopped early to make room for another.
    pub evicted: u64,
    /// Sandboxes alive now.
    pub live: u64,
    /// Of those, idle and warm.
    pub idle: u64,
}

struct Pooled {
    instance: Instance,
    last_used: Instant,
    /// When the keep-alive policy lets it go (never, for a provisioned instance).
    expires: Instant,
    /// Set on instances that provisioned concurrency keeps.
    provisioned: Option<ProvisionedMark>,
    _slot: Slot,
}

/// Counts a provisioned instance while it exists.
struct ProvisionedMark(Arc<AtomicU32>);

impl Drop for ProvisionedMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Provisioned concurrency of one version: how many instances to keep, and how many exist.
struct Provisioned {
    spec: Arc<FunctionSpec>,
    requested: u32,
    alive: Arc<AtomicU32>,
    starting: Arc<AtomicU32>,
    /// Instance starts that failed in a row, and why the last one did.
    failures: u32,
    last_error: Option<String>,
    /// No new start before this, after a failure (backing off).
    retry_at: Option<Instant>,
}

/// Failed provisioned starts in a row after which the configuration reports FAILED (it keeps
/// retrying, backing off).
pub const PROVISIONED_FAILURES: u32 = 3;
/// Longest wait between retries of a failing provisioned start.
const PROVISIONED_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How far a version's provisioned concurrency is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedStatus {
    /// Instances asked for.
    pub requested: u32,
    /// Instances initialised and kept (idle or busy).
    pub allocated: u32,
    /// Why the last instance could not start, once [`PROVISIONED_FAILURES`] starts in a row
    /// failed.
    pub failure: Option<String>,
}

/// A place among the node's sandboxes and its memory, given back when dropped.
struct Slot {
    live: Arc<AtomicUsize>,
    /// The function's count of live sandboxes.
    function: Arc<AtomicU32>,
    _memory: MemoryReservation,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.function.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A function's sandboxes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunctionInstances {
    /// Alive, idle or busy.
    pub live: u32,
    /// Of those, idle and warm.
    pub idle: u32,
}

type VersionKey = (String, String);

#[derive(Default)]
struct Pools {
    /// Idle instances per function, per (version, revision); the newest is last.
    idle: HashMap<String, HashMap<VersionKey, Vec<Pooled>>>,
    /// Bumped when a function's instances are retired, so busy ones are not put back.
    epochs: HashMap<String, u64>,
    /// Bumped when one version's instances are retired.
    version_epochs: HashMap<(String, String), u64>,
    /// When each function's last call ended (for its idle-time history).
    last_end: HashMap<String, Instant>,
    /// Pre-warms due, at most one per version.
    prewarms: HashMap<(String, VersionKey), Prewarm>,
    /// Provisioned concurrency per (function, version).
    provisioned: HashMap<(String, String), Provisioned>,
    /// Live sandboxes per function (counted by their slots).
    live: HashMap<String, Arc<AtomicU32>>,
}

impl Pools {
    /// Changes whenever this version's instances are retired, alone (the low half counts) or
    /// with the whole function (the high half counts; the version counters start again): a busy
    /// instance whose epoch changed is stopped, not put back.
    fn epoch(&self, spec: &FunctionSpec) -> u64 {
        let function = self.epochs.get(&spec.function).copied().unwrap_or(0);
        let version = self
            .version_epochs
            .get(&(spec.function.clone(), spec.version.clone()))
            .copied()
            .unwrap_or(0);
        function.wrapping_mul(1 << 32).wrapping_add(version)
    }
}

struct Inner {
    config: SandboxConfig,
    cgroups: CgroupDriver,
    os: Arc<dyn Os>,
    runtime_dir: PathBuf,
    root_dir: PathBuf,
    packages_dir: PathBuf,
    python: PathBuf,
    node: Option<PathBuf>,
    pools: Mutex<Pools>,
    live: Arc<AtomicUsize>,
    started: AtomicU64,
    reaped: AtomicU64,
    prewarmed: AtomicU64,
    evicted: AtomicU64,
    /// Sandboxes being built at once. A burst of cold starts shares the CPU: building a few at
    /// a time finishes each one sooner (and the burst no later) than building all at once,
    /// where every start is slow and late ones pass the init timeout.
    starting: tokio::sync::Semaphore,
    /// Sandboxes whose cgroup is not removed yet.
    cgroups_alive: Arc<AtomicUsize>,
    /// Each sandbox's own uid and gid.
    identities: Arc<identity::IdentityPool>,
    /// Whether idle instances are frozen.
    freeze_idle: bool,
    /// The host's side of network egress (its rules are installed before the first egress
    /// sandbox).
    egress: Arc<network::EgressNet>,
    reaper_running: AtomicBool,
    /// Set at shutdown: nothing starts any more.
    stopped: AtomicBool,
}

/// Runs process-tier functions in sandboxes, keeping warm instances per version.
#[derive(Clone)]
pub struct ProcessExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("cgroups", &self.inner.cgroups)
            .finish_non_exhaustive()
    }
}

/// Sandboxes built at once per core: enough to cover the waits in a start (the helper's exec,
/// the handshake, the runtime's first request) without every start of a burst sharing the CPU.
const STARTS_PER_CORE: usize = 4;

fn concurrent_starts() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * STARTS_PER_CORE).clamp(4, 256)
}

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

impl ProcessExecutor {
    /// Checks the host, detects its cgroups and writes the runtime bootstraps.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid != 0 {
            return Err(SandboxError::NotRoot(uid));
        }
        identity::check_range(config.uid_base, config.max_sandboxes)?;
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SandboxError::Io { path, source }
        };
        let runtime_dir = config.data_dir.join("runtimes");
        let root_dir = config.data_dir.join("sandbox-root");
        let packages_dir = config.data_dir.join("packages");
        for dir in [&runtime_dir, &root_dir, &packages_dir] {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        for (rel, contents) in [
            ("python/bootstrap.py", PYTHON_BOOTSTRAP),
            ("node/bootstrap.js", NODE_BOOTSTRAP),
        ] {
            let path = runtime_dir.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(contents) {
                std::fs::write(&path, contents).map_err(io(&path))?;
            }
            // Sandboxes read the bootstraps as their own uids, whatever lambent's umask.
            set_mode(&path, 0o644);
        }
        let leftovers = package::remove_leftovers(&packages_dir);
        if leftovers > 0 {
            tracing::info!(
                leftovers,
                "removed code packages a crash left half-unpacked"
            );
        }
        set_mode(&runtime_dir, 0o755);
        set_mode(&runtime_dir.join("python"), 0o755);
        set_mode(&runtime_dir.join("node"), 0o755);
        let os: Arc<dyn Os> = Arc::new(HostOs);
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let cgroups = CgroupDriver::detect(os.as_ref(), &mountinfo, &self_cgroup);
        let me = std::process::id();
        cgroups.remove_stale(|pid| pid == me || Path::new(&format!("/proc/{pid}")).exists());
        if matches!(cgroups, CgroupDriver::Unavailable { .. }) {
            tracing::warn!("sandboxes: {}", cgroups.describe());
        } else {
            tracing::info!("sandboxes: {}", cgroups.describe());
        }
        let python = find_program(&["/usr/bin/python3", "/usr/local/bin/python3"])
            .unwrap_or_else(|| PathBuf::from("/usr/bin/python3"));
        let node = find_program(&["/usr/bin/node", "/usr/local/bin/node"]);
        let identities =
            identity::IdentityPool::new(config.uid_base, &identity::default_lock_file());
        tracing::info!(
            "sandboxes run as their own uid and gid, from {} to {}",
            config.uid_base,
            config.uid_base + (identity::UID_RANGE - 1)
        );
        let freeze_idle = if !config.freeze_idle {
            tracing::info!("idle sandboxes are not frozen between calls (--no-freeze-idle)");
            false
        } else if !cgroups.can_freeze() {
            tracing::warn!(
                "this host has no cgroup freezer for sandboxes ({}): idle sandboxes keep running between calls",
                cgroups.describe()
            );
            false
        } else {
            true
        };
        if let Some(e) = network::EgressNet::tools_missing() {
            tracing::warn!("sandboxes: egress functions cannot start: {e}");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                cgroups,
                os,
                runtime_dir,
                root_dir,
                packages_dir,
                python,
                node,
                pools: Mutex::new(Pools::default()),
                live: Arc::new(AtomicUsize::new(0)),
                started: AtomicU64::new(0),
                reaped: AtomicU64::new(0),
                prewarmed: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                starting: tokio::sync::Semaphore::new(concurrent_starts()),
                cgroups_alive: Arc::default(),
                identities,
                freeze_idle,
                egress: Arc::new(network::EgressNet::new()),
                stopped: AtomicBool::new(false),
                reaper_running: AtomicBool::new(false),
            }),
        })
    }

    /// What cgroups sandboxes get on this host.
    pub fn cgroups(&self) -> &CgroupDriver {
        &self.inner.cgroups
    }

    /// Whether a runtime family can run on this host (Node.js must be installed).
    pub fn supports(&self, family: RuntimeFamily) -> Result<(), String> {
        match family {
            RuntimeFamily::Python if !self.inner.python.is_file() => Err(format!(
                "Python is not installed on this host ({} is missing)",
                self.inner.python.display()
            )),
            RuntimeFamily::Node if self.inner.node.is_none() => {
                Err("Node.js is not installed on this host (no /usr/bin/node)".into())
            }
            RuntimeFamily::Wasm => Err("WebAssembly runs in the wasm executor".into()),
            _ => Ok(()),
        }
    }

    /// Where the package with this hash is unpacked.
    pub fn package_dir(&self, sha256: &str) -> PathBuf {
        self.inner.packages_dir.join(sha256)
    }

    /// Unpacks a checked package once per hash; returns its directory.
    pub fn unpack(&self, sha256: &str, bytes: &[u8]) -> Result<PathBuf, PackageError> {
        let dir = self.package_dir(sha256);
        if !dir.is_dir() {
            package::unpack(bytes, &dir)?;
        }
        Ok(dir)
    }

    /// Removes an unpacked package no version uses any more.
    pub fn remove_package(&self, sha256: &str) {
        let dir = self.package_dir(sha256);
        if dir.is_dir()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove unpacked code");
        }
    }

    /// Counters.
    pub fn stats(&self) -> SandboxStats {
        let idle = self
            .inner
            .pools
            .lock()
            .idle
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum::<usize>();
        SandboxStats {
            started: self.inner.started.load(Ordering::Relaxed),
            reaped: self.inner.reaped.load(Ordering::Relaxed),
            prewarmed: self.inner.prewarmed.load(Ordering::Relaxed),
            evicted: self.inner.evicted.load(Ordering::Relaxed),
            live: self.inner.live.load(Ordering::Relaxed) as u64,
            idle: idle as u64,
        }
    }

    /// Stops the idle instances of a function (of one version, or all), and makes busy ones stop
    /// when they finish. Call it when a version's code or configuration changes or the function
    /// is deleted.
    pub fn retire(&self, function: &str, version: Option<&str>) {
        let dropped = {
            let mut pools = self.inner.pools.lock();
            match version {
                Some(v) => {
                    *pools
                        .version_epochs
                        .entry((function.to_owned(), v.to_owned()))
                        .or_default() += 1;
                }
                None => {
                    *pools.epochs.entry(function.to_owned()).or_default() += 1;
                    pools.version_epochs.retain(|(f, _), _| f != function);
                }
            }
            // Pre-warms made before the bump would be refused anyway.
            pools
                .prewarms
                .retain(|(f, (v, _)), _| f != function || version.is_some_and(|r| r != v));
            if let Some(v) = version {
                pools
                    .provisioned
                    .remove(&(function.to_owned(), v.to_owned()));
            }
            if version.is_none() {
                pools.last_end.remove(function);
            }
            match (pools.idle.get_mut(function), version) {
                (Some(versions), Some(v)) => {
                    let keys: Vec<VersionKey> = versions
                        .keys()
                        .filter(|(ver, _)| ver == v)
                        .cloned()
                        .collect();
                    keys.into_iter()
                        .filter_map(|k| versions.remove(&k))
                        .flatten()
                        .collect::<Vec<_>>()
                }
                (Some(_), None) => pools
                    .idle
                    .remove(function)
                    .into_iter()
                    .flat_map(HashMap::into_values)
                    .flatten()
                    .collect(),
                (None, _) => Vec::new(),
            }
        };
        drop(dropped);
    }

    /// Stops every instance (at shutdown).
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        let all = {
            let mut pools = self.inner.pools.lock();
            pools.provisioned.clear();
            pools.prewarms.clear();
            std::mem::take(&mut pools.idle)
        };
        drop(all);
    }

    /// Waits (up to `timeout`) until every stopped sandbox's cgroup is removed; false if some
    /// are left (the next start sweeps them).
    pub async fn drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.inner.cgroups_alive.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A mass stop can outlast a cgroup's own removal retries (its processes still
        // exiting): sweep this process's cgroups until they are gone.
        let me = std::process::id();
        loop {
            let cgroups = self.inner.cgroups.clone();
            let left = tokio::task::spawn_blocking(move || {
                cgroups.remove_stale(|pid| pid != me && Path::new(&format!("/proc/{pid}")).exists())
            })
            .await
            .unwrap_or(1);
            if left == 0 {
                // The sandboxes are gone, and with them the last use of the egress rules.
                let egress = self.inner.egress.clone();
                let _ = tokio::task::spawn_blocking(move || egress.uninstall()).await;
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn ensure_reaper(&self) {
        if self.inner.reaper_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let keep_alive = self.inner.config.keep_alive;
        let tick = (keep_alive / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.stopped.load(Ordering::Acquire) {
                    return;
                }
                let now = Instant::now();
                let due: Vec<Prewarm> = {
                    let mut pools = inner.pools.lock();
                    let keys: Vec<_> = pools
                        .prewarms
                        .iter()
                        .filter(|(_, p)| p.at <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    keys.iter()
                        .filter_map(|k| pools.prewarms.remove(k))
                        .collect()
                };
                for p in due {
                    let executor = ProcessExecutor {
                        inner: inner.clone(),
                    };
                    tokio::spawn(async move { executor.prewarm(p).await });
                }
                ProcessExecutor {
                    inner: inner.clone(),
                }
                .fill_provisioned();
                let expired: Vec<Pooled> = {
                    let mut pools = inner.pools.lock();
                    let mut out = Vec::new();
                    for versions in pools.idle.values_mut() {
                        for list in versions.values_mut() {
                            let (old, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|p| {
                                (p.provisioned.is_none() && now >= p.expires)
                                    || p.instance.is_dead()
                            });
                            *list = keep;
                            out.extend(old);
                        }
                        versions.retain(|_, l| !l.is_empty());
                    }
                    pools.idle.retain(|_, v| !v.is_empty());
                    out
                };
                if !expired.is_empty() {
                    inner
                        .reaped
                        .fetch_add(expired.len() as u64, Ordering::Relaxed);
                    tracing::debug!(count = expired.len(), "stopping idle sandboxes");
                }
                drop(expired);
            }
        });
    }

    /// Takes an idle instance of this version, if one is warm.
    fn take_idle(&self, spec: &FunctionSpec) -> Option<Pooled> {
        let mut pools = self.inner.pools.lock();
        let list = pools
            .idle
            .get_mut(&spec.function)?
            .get_mut(&(spec.version.clone(), spec.revision.clone()))?;
        // Provisioned instances serve first; then the most recently used.
        while let Some(i) = list
            .iter()
            .rposition(|p| p.provisioned.is_some())
            .or_else(|| list.len().checked_sub(1))
        {
            let p = list.remove(i);
            if !p.instance.is_dead() {
                return Some(p);
            }
        }
        None
    }

    /// Reserves a place for a new sandbox of `spec`, stopping idle instances of any function,
    /// least recently used first, while the node is full (by count or by memory).
    fn reserve(&self, spec: &FunctionSpec) -> Result<Slot, InvokeError> {
        loop {
            if let Some(slot) = self.free_slot(spec) {
                return Ok(slot);
            }
            if !self.evict_one() {
                let max = self.inner.config.max_sandboxes;
                let budget = &self.inner.config.budget;
                let live = self.inner.live.load(Ordering::Acquire);
                return Err(InvokeError::Capacity(if live >= max {
                    format!("all {max} sandboxes of this node are busy")
                } else {
                    format!(
                        "the node's memory budget is taken: {} of {} MB are reserved by busy or provisioned instances, and this function needs {} MB",
                        budget.reserved_mb(),
                        budget.limit_mb(),
                        spec.memory_mb
                    )
                }));
            }
        }
    }

    /// Runs one invocation: on a warm instance of this version if one is idle, else on a new one.
    pub async fn invoke(
        &self,
        spec: &FunctionSpec,
        input: InvokeInput,
    ) -> Result<InvokeOutput, InvokeFailure> {
        self.ensure_reaper();
        let (epoch, idle) = {
            let mut pools = self.inner.pools.lock();
            // A call makes any pre-warm of its version moot.
            pools.prewarms.remove(&(
                spec.function.clone(),
                (spec.version.clone(), spec.revision.clone()),
            ));
            (
                pools.epoch(spec),
                pools.last_end.get(&spec.function).map(Instant::elapsed),
            )
        };
        if let (Some(advisor), Some(idle)) = (&self.inner.config.advisor, idle) {
            advisor.observe_idle(&spec.function, idle);
        }
        let (mut pooled, cold_start, init, mut log) = match self.take_idle(spec) {
            Some(p) => (p, false, Duration::ZERO, String::new()),
            None => {
                let slot = self.reserve(spec).map_err(|error| InvokeFailure {
                    error,
                    logs: String::new(),
                    cold_start: true,
                    init: Duration::ZERO,
                    init_error: None,
                })?;
                let launch = self.launch();
                // Waiting for a turn is not part of the sandbox's init time or timeout.
                let _turn = self.inner.starting.acquire().await.ok();
                self.inner.started.fetch_add(1, Ordering::Relaxed);
                match Instance::start(launch, spec).await {
                    Ok((instance, init)) => {
                        let init_output = instance.logs.take();
                        (
                            Pooled {
                                instance,
                                last_used: Instant::now(),
                                expires: Instant::now() + self.inner.config.keep_alive,
                                provisioned: None,
                                _slot: slot,
                            },
                            true,
                            init,
                            init_output,
                        )
                    }
                    Err((e, output)) => {
                        return Err(init_failure(spec, &input.request_id, e, output));
                    }
                }
            }
        };
        if !cold_start {
            // Output written between invocations (a background thread) belongs to this one.
            log.push_str(&pooled.instance.logs.take());
        }
        log.push_str(&format!(
            "START RequestId: {} Version: {}\n",
            input.request_id, spec.version
        ));
        let started = Instant::now();
        let result = pooled.instance.invoke(spec, &input).await;
        let duration = started.elapsed();
        log.push_str(&pooled.instance.logs.take());
        let max_memory_used_mb = pooled.instance.max_memory_used_mb();
        let failure = match &result {
            Err(e) => Some(describe_failure(spec, e)),
            Ok(_) => None,
        };
        if let Some(line) = &failure {
            log.push_str(&format!(
                "{} {} {line}\n",
                lambent_core_time(),
                input.request_id
            ));
        }
        log.push_str(&report(
            &input.request_id,
            duration,
            spec.memory_mb,
            max_memory_used_mb,
            cold_start.then_some(init),
        ));
        match result {
            Ok(answer) => {
                pooled.last_used = Instant::now();
                self.put_back(spec, epoch, pooled);
                let (payload, function_error) = match answer {
                    Ok(body) => (body, None),
                    Err(e) => (e.payload.clone(), Some(e)),
                };
                Ok(InvokeOutput {
                    payload,
                    function_error,
                    logs: log,
                    cold_start,
                    init,
                    duration,
                    max_memory_used_mb,
                })
            }
            Err(e) => {
                drop(pooled);
                Err(InvokeFailure {
                    error: instance_error(spec, e),
                    logs: log,
                    cold_start,
                    init,
                    init_error: None,
                })
            }
        }
    }

    /// The keep-alive windows of `function`: (pre-warm after, then keep for).
    fn windows(&self, function: &str) -> (Duration, Duration) {
        match &self.inner.config.advisor {
            Some(a) => a.windows(function),
            None => (Duration::ZERO, self.inner.config.keep_alive),
        }
    }

    /// Freezes an instance that goes idle once it has idled for `after` (unless freezing is
    /// off, or a call takes it first).
    fn freeze_idle(&self, instance: &Instance, after: Duration) {
        if self.inner.freeze_idle {
            instance.freeze_after(after);
        }
    }

    fn put_back(&self, spec: &FunctionSpec, epoch: u64, mut pooled: Pooled) {
        // A call that takes it thaws it first, or cancels the freeze.
        self.freeze_idle(&pooled.instance, instance::FREEZE_AFTER_IDLE);
        let (prewarm, keep) = self.windows(&spec.function);
        let now = Instant::now();
        let mut pools = self.inner.pools.lock();
        pools.last_end.insert(spec.function.clone(), now);
        let current = pools.epoch(spec);
        if current != epoch || pooled.instance.is_dead() {
            drop(pools);
            drop(pooled);
            return;
        }
        let key = (spec.version.clone(), spec.revision.clone());
        if let Some(mark) = &pooled.provisioned
            && !Self::still_provisioned(&pools, spec, &mark.0, false)
        {
            // Its configuration was lowered or removed while it ran.
            pooled.provisioned = None;
        }
        if !prewarm.is_zero() && pooled.provisioned.is_none() {
            // The next call is not expected before `prewarm`: free the memory now and start
            // an instance again just before then.
            pools.prewarms.insert(
                (spec.function.clone(), key),
                Prewarm {
                    at: now + prewarm,
                    keep,
                    epoch,
                    spec: Arc::new(spec.clone()),
                },
            );
            drop(pools);
            drop(pooled);
            return;
        }
        if pooled.provisioned.is_none() {
            pooled.expires = now + keep;
        }
        pools
            .idle
            .entry(spec.function.clone())
            .or_default()
            .entry(key)
            .or_default()
            .push(pooled);
    }

    /// Starts an instance ahead of an expected call and keeps it warm for its window. A
    /// pre-warm never evicts another function's instance: it only uses free room.
    async fn prewarm(&self, p: Prewarm) {
        let Some(slot) = self.free_slot(&p.spec) else {
            return;
        };
        if self
            .start_kept(&p.spec, p.epoch, slot, Some(p.keep), None)
            .await
            == Ok(true)
        {
            self.inner.prewarmed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What starting a sandbox on this node needs.
    fn launch(&self) -> Launch<'_> {
        Launch {
            helper: &self.inner.config.helper,
            cgroups: &self.inner.cgroups,
            os: self.inner.os.clone(),
            runtime_dir: &self.inner.runtime_dir,
            root_dir: &self.inner.root_dir,
            python: &self.inner.python,
            node: self.inner.node.as_deref(),
            cgroups_alive: self.inner.cgroups_alive.clone(),
            identities: self.inner.identities.clone(),
            egress: self.inner.egress.clone(),
        }
    }

    /// A place for a new sandbox of `spec` if the node has room (a sandbox and its memory
    /// limit), without evicting anything.
    fn free_slot(&self, spec: &FunctionSpec) -> Option<Slot> {
        let live = &self.inner.live;
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.inner.config.max_sandboxes).then_some(n + 1)
        })
        .ok()?;
        let Some(memory) = self
            .inner
            .config
            .budget
            .try_reserve(u64::from(spec.memory_mb))
        else {
            live.fetch_sub(1, Ordering::AcqRel);
            return None;
        };
        let function = self
            .inner
            .pools
            .lock()
            .live
            .entry(spec.function.clone())
            .or_default()
            .clone();
        function.fetch_add(1, Ordering::AcqRel);
        Some(Slot {
            live: live.clone(),
            function,
            _memory: memory,
        })
    }

    /// Stops the least recently used idle instance that provisioned concurrency does not
    /// keep; false if there is none.
    fn evict_one(&self) -> bool {
        let victim = {
            let mut pools = self.inner.pools.lock();
            let oldest = pools
                .idle
                .iter()
                .flat_map(|(f, versions)| {
                    versions.iter().filter_map(move |(k, list)| {
                        list.iter()
                            .enumerate()
                            .filter(|(_, p)| p.provisioned.is_none())
                            .min_by_key(|(_, p)| p.last_used)
                            .map(|(i, p)| (p.last_used, f.clone(), k.clone(), i))
                    })
                })
                .min_by_key(|(t, _, _, _)| *t);
            oldest.and_then(|(_, f, k, i)| {
                let list = pools.idle.get_mut(&f)?.get_mut(&k)?;
                (i < list.len()).then(|| list.remove(i))
            })
        };
        match victim {
            Some(v) => {
                self.inner.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(idle_for = ?v.last_used.elapsed(), "evicting an idle sandbox to make room");
                // Dropping it stops the sandbox and frees its slot and memory.
                drop(v);
                true
            }
            None => false,
        }
    }

    /// Stops idle instances, least recently used first, until `mb` of the node's memory
    /// budget is free (for a wasm call); false if busy or provisioned instances hold too much.
    pub fn evict_idle_for(&self, mb: u64) -> bool {
        loop {
            if self.inner.config.budget.free_mb() >= mb {
                return true;
            }
            if !self.evict_one() {
                return false;
            }
        }
    }

    /// Live and idle sandboxes per function.
    pub fn instances_by_function(&self) -> Vec<(String, FunctionInstances)> {
        let pools = self.inner.pools.lock();
        let mut out: Vec<(String, FunctionInstances)> = pools
            .live
            .iter()
            .map(|(f, live)| {
                let idle = pools
                    .idle
                    .get(f)
                    .map_or(0, |v| v.values().map(Vec::len).sum::<usize>());
                (
                    f.clone(),
                    FunctionInstances {
                        live: live.load(Ordering::Acquire),
                        idle: u32::try_from(idle).unwrap_or(u32::MAX),
                    },
                )
            })
            .filter(|(_, n)| n.live > 0)
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Starts an instance of `spec` into the idle pool, kept for `keep` (or, provisioned,
    /// until its provisioned concurrency is lowered); false if its function was retired
    /// meanwhile, and why if it could not start.
    async fn start_kept(
        &self,
        spec: &FunctionSpec,
        epoch: u64,
        slot: Slot,
        keep: Option<Duration>,
        provisioned: Option<Arc<AtomicU32>>,
    ) -> Result<bool, String> {
        let current = self.inner.pools.lock().epoch(spec);
        if current != epoch {
            return Ok(false);
        }
        let _turn = self.inner.starting.acquire().await.ok();
        // Counted like a call's cold start: attempts, whether or not the runtime comes up.
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        match Instance::start(self.launch(), spec).await {
            Ok((instance, _init)) => {
                // Initialised and waiting for its first event: it idles frozen until then.
                self.freeze_idle(&instance, Duration::ZERO);
                let now = Instant::now();
                let mut pools = self.inner.pools.lock();
                if pools.epoch(spec) != epoch {
                    return Ok(false);
                }
                // A configuration lowered or removed while this instance started makes it an
                // ordinary idle instance.
                let provisioned = provisioned
                    .filter(|alive| Self::still_provisioned(&pools, spec, alive, true))
                    .map(|alive| {
                        alive.fetch_add(1, Ordering::AcqRel);
                        ProvisionedMark(alive)
                    });
                let expires = match (&provisioned, keep) {
                    (Some(_), _) => now + Duration::from_secs(365 * 24 * 3600),
                    (None, Some(k)) => now + k,
                    (None, None) => now + self.inner.config.keep_alive,
                };
                let pooled = Pooled {
                    instance,
                    last_used: now,
                    expires,
                    provisioned,
                    _slot: slot,
                };
                pools
                    .idle
                    .entry(spec.function.clone())
                    .or_default()
                    .entry((spec.version.clone(), spec.revision.clone()))
                    .or_default()
                    .push(pooled);
                Ok(true)
            }
            Err((e, output)) => {
                let failure = init_failure(spec, "ahead-of-calls", e, output);
                let reason = match failure.init_error {
                    Some(f) => format!("{}: {}", f.error_type, f.message),
                    None => failure.error.to_string(),
                };
                tracing::warn!(function = %spec.function, version = %spec.version, "cannot start an instance ahead of calls: {reason}");
                Err(reason)
            }
        }
    }

    /// Keeps `requested` instances of this version initialised ahead of calls (provisioned
    /// concurrency); 0 stops keeping them. Instances start in the background; see
    /// [`ProcessExecutor::provisioned_status`].
    pub fn set_provisioned(&self, spec: Arc<FunctionSpec>, requested: u32) {
        self.ensure_reaper();
        let key = (spec.function.clone(), spec.version.clone());
        {
            let mut pools = self.inner.pools.lock();
            if requested == 0 {
                pools.provisioned.remove(&key);
            } else {
                let entry = pools.provisioned.entry(key).or_insert_with(|| Provisioned {
                    spec: spec.clone(),
                    requested,
                    alive: Arc::default(),
                    starting: Arc::default(),
                    failures: 0,
                    last_error: None,
                    retry_at: None,
                });
                entry.requested = requested;
                if entry.spec.revision != spec.revision {
                    // New code or configuration: start afresh.
                    entry.failures = 0;
                    entry.last_error = None;
                    entry.retry_at = None;
                }
                entry.spec = spec.clone();
            }
            // Idle instances beyond the new number become ordinary ones, which the reaper lets
            // go at its next tick.
            let mut kept = 0;
            let now = Instant::now();
            if let Some(versions) = pools.idle.get_mut(&spec.function) {
                for ((version, _), list) in versions.iter_mut() {
                    if *version != spec.version {
                        continue;
                    }
                    for p in list.iter_mut().filter(|p| p.provisioned.is_some()) {
                        if kept < requested {
                            kept += 1;
                        } else {
                            p.provisioned = None;
                            p.expires = now;
                        }
                    }
                }
            }
        }
        self.fill_provisioned();
    }

    /// Stops keeping provisioned instances of any version of `function` (it was deleted).
    pub fn forget_provisioned(&self, function: &str) {
        let dropped: Vec<Pooled> = {
            let mut pools = self.inner.pools.lock();
            pools.provisioned.retain(|(f, _), _| f != function);
            let mut out = Vec::new();
            if let Some(versions) = pools.idle.get_mut(function) {
                for list in versions.values_mut() {
                    let (gone, keep): (Vec<_>, Vec<_>) =
                        list.drain(..).partition(|p| p.provisioned.is_some());
                    *list = keep;
                    out.extend(gone);
                }
            }
            out
        };
        drop(dropped);
    }

    /// How far a version's provisioned concurrency is.
    pub fn provisioned_status(&self, function: &str, version: &str) -> Option<ProvisionedStatus> {
        let pools = self.inner.pools.lock();
        pools
            .provisioned
            .get(&(function.to_owned(), version.to_owned()))
            .map(|p| {
                let allocated = p.alive.load(Ordering::Acquire).min(p.requested);
                ProvisionedStatus {
                    requested: p.requested,
                    allocated,
                    failure: (allocated < p.requested && p.failures >= PROVISIONED_FAILURES)
                        .then(|| p.last_error.clone())
                        .flatten(),
                }
            })
    }

    /// Starts the provisioned instances that are missing.
    fn fill_provisioned(&self) {
        type Missing = (Arc<FunctionSpec>, u64, Arc<AtomicU32>, Arc<AtomicU32>);
        let wanted: Vec<Missing> = {
            let pools = self.inner.pools.lock();
            let mut out = Vec::new();
            let now = Instant::now();
            for p in pools.provisioned.values() {
                if p.retry_at.is_some_and(|at| now < at) {
                    continue;
                }
                let have = p.alive.load(Ordering::Acquire) + p.starting.load(Ordering::Acquire);
                let epoch = pools.epoch(&p.spec);
                for _ in have..p.requested {
                    // Counted as starting under the lock, so two fills never both start it.
                    p.starting.fetch_add(1, Ordering::AcqRel);
                    out.push((p.spec.clone(), epoch, p.alive.clone(), p.starting.clone()));
                }
            }
            out
        };
        let mut wanted = wanted.into_iter();
        while let Some((spec, epoch, alive, starting)) = wanted.next() {
            // Provisioned instances may evict idle on-demand ones, like a call would.
            let Ok(slot) = self.reserve(&spec) else {
                starting.fetch_sub(1, Ordering::AcqRel);
                for (_, _, _, s) in wanted {
                    s.fetch_sub(1, Ordering::AcqRel);
                }
                return;
            };
            let executor = self.clone();
            tokio::spawn(async move {
                let outcome = executor
                    .start_kept(&spec, epoch, slot, None, Some(alive.clone()))
                    .await;
                starting.fetch_sub(1, Ordering::AcqRel);
                executor.provisioned_outcome(&spec, &alive, outcome.err());
            });
        }
    }

    /// Notes how a provisioned start went: a failure backs the next start off (1 s, doubling,
    /// up to a minute), a success clears the failures.
    fn provisioned_outcome(
        &self,
        spec: &FunctionSpec,
        alive: &Arc<AtomicU32>,
        error: Option<String>,
    ) {
        let mut pools = self.inner.pools.lock();
        let Some(p) = pools
            .provisioned
            .get_mut(&(spec.function.clone(), spec.version.clone()))
            .filter(|p| Arc::ptr_eq(&p.alive, alive))
        else {
            return;
        };
        match error {
            None => {
                p.failures = 0;
                p.last_error = None;
                p.retry_at = None;
            }
            Some(e) => {
                p.failures = p.failures.saturating_add(1);
                let backoff = Duration::from_secs(1)
                    .saturating_mul(1 << p.failures.min(7).saturating_sub(1))
                    .min(PROVISIONED_MAX_BACKOFF);
                p.retry_at = Some(Instant::now() + backoff);
                p.last_error = Some(e);
            }
        }
    }

    /// Whether `counter` is the live provisioned counter of this version and wants another
    /// instance (`adding`) or still wants this one.
    fn still_provisioned(
        pools: &Pools,
        spec: &FunctionSpec,
        counter: &Arc<AtomicU32>,
        adding: bool,
    ) -> bool {
        pools
            .provisioned
            .get(&(spec.function.clone(), spec.version.clone()))
            .is_some_and(|p| {
                let alive = counter.load(Ordering::Acquire);
                Arc::ptr_eq(&p.alive, counter)
                    && if adding {
                        alive < p.requested
                    } else {
                        alive <= p.requested
                    }
            })
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// A timestamp for log lines lambent adds, like Lambda's.
fn lambent_core_time() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// Lambda's REPORT line.
fn report(
    request_id: &str,
    duration: Duration,
    memory_mb: u32,
    max_used_mb: u64,
    init: Option<Duration>,
) -> String {
    let ms = duration.as_secs_f64() * 1e3;
    let billed = (ms.ceil() as u64).max(1);
    let mut line = format!(
        "END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {memory_mb} MB\tMax Memory Used: {max_used_mb} MB"
    );
    if let Some(init) = init {
        line.push_str(&format!(
            "\tInit Duration: {:.2} ms",
            init.as_secs_f64() * 1e3
        ));
    }
    line.push('\n');
    line
}

fn describe_failure(spec: &FunctionSpec, e: &InstanceError) -> String {
    match e {
        InstanceError::Timeout => format!(
            "Task timed out after {:.2} seconds",
            spec.timeout.as_secs_f64()
        ),
        InstanceError::Exited { oom: true, .. } => {
            "Runtime exited: out of memory (killed by the kernel's OOM killer)".into()
        }
        InstanceError::Exited { status, .. } => format!("Runtime exited with status {status}"),
        InstanceError::TooLarge => {
            "Response payload size exceeded maximum allowed payload size".into()
        }
        InstanceError::Abandoned(why) => why.clone(),
        InstanceError::Setup(why) => format!("Sandbox setup failed: {why}"),
        InstanceError::InitFailed(e) => format!("Init failed: {}: {}", e.error_type, e.message),
    }
}

fn instance_error(spec: &FunctionSpec, e: InstanceError) -> InvokeError {
    match e {
        InstanceError::Timeout => InvokeError::Timeout {
            timeout: spec.timeout,
        },
        InstanceError::Exited { oom: true, .. } => InvokeError::OutOfMemoryKilled {
            limit_mb: u64::from(spec.memory_mb),
        },
        InstanceError::Exited { status, .. } => InvokeError::RuntimeExited(match status {
            s if s > 128 => format!("was killed by signal {}", s - 128),
            helper::EXEC_FAILED => "could not be executed (see the log)".into(),
            s => format!("exited with status {s}"),
        }),
        InstanceError::TooLarge => InvokeError::ResponseTooLarge {
            limit: lambent_core::limits::MAX_SYNC_RESPONSE_BYTES,
        },
        InstanceError::Abandoned(why) => {
            InvokeError::RuntimeExited(format!("broke the Runtime API protocol: {why}"))
        }
        InstanceError::Setup(why) => InvokeError::Sandbox(why),
        InstanceError::InitFailed(e) => InvokeError::RuntimeExited(format!(
            "failed to initialise: {}: {}",
            e.error_type, e.message
        )),
    }
}

fn init_failure(
    spec: &FunctionSpec,
    request_id: &str,
    e: InstanceError,
    output: String,
) -> InvokeFailure {
    let mut logs = output;
    logs.push_str(&format!(
        "{} {request_id} {}\n",
        lambent_core_time(),
        describe_failure(spec, &e)
    ));
    let init_error = match &e {
        InstanceError::InitFailed(fe) => Some(fe.clone()),
        _ => None,
    };
    let error = match e {
        // A runtime that dies or hangs during init is reported like Lambda does.
        InstanceError::Timeout => InvokeError::Timeout {
            timeout: spec.init_timeout,
        },
        other => instance_error(spec, other),
    };
    InvokeFailure {
        error,
        logs,
        cold_start: true,
        init: Duration::ZERO,
        init_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_look_like_lambdas() {
        let r = report(
            "abc",
            Duration::from_micros(2_346),
            128,
            41,
            Some(Duration::from_millis(30)),
        );
        assert!(r.starts_with("END RequestId: abc\nREPORT RequestId: abc\tDuration: 2.35 ms\tBilled Duration: 3 ms\tMemory Size: 128 MB\tMax Memory Used: 41 MB\tInit Duration: 30.00 ms"), "{r}");
        let warm = report("abc", Duration::from_micros(10), 256, 0, None);
        assert!(warm.contains("Billed Duration: 1 ms"), "{warm}");
        assert!(!warm.contains("Init Duration"));
    }
}
