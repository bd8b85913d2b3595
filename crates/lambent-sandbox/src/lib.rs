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
//! - [`ProcessExecutor`] starts one sandbox ([`ProcessExecutor::start`]), runs one invocation
//!   in it at a time ([`ProcessExecutor::invoke`], framing its log with Lambda's START, END and
//!   REPORT lines), freezes it while it idles ([`ProcessExecutor::idle`]) and stops it (dropping
//!   the [`SandboxInstance`]).
//!
//! Which instances to keep warm, for how long, how many to provision and which to evict is not
//! decided here: that is the control plane's instance pool (`lambent_control::assignment`), the
//! same for every tier.

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

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lambent_core::{InvokeError, RuntimeFamily};

pub use cgroup::CgroupDriver;
pub use helper::{HELPER_ARG, helper_main};
pub use identity::{DEFAULT_UID_BASE, IdentityError};
pub use package::{PackageError, PackageSummary};
pub use runtime_api::FunctionError;

use instance::{Instance, InstanceError, Launch};
use os::{HostOs, Os};

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
    /// Sandboxes that may exist at once (each needs its own uid from the range).
    pub max_sandboxes: usize,
    /// First uid (and gid) of the range sandboxes run as ([`identity::UID_RANGE`] ids); see
    /// [`DEFAULT_UID_BASE`].
    pub uid_base: u32,
    /// Freeze idle instances between calls (the cgroup freezer), as Lambda does; without a
    /// freezer on the host they keep running, with a warning.
    pub freeze_idle: bool,
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

impl std::fmt::Display for InvokeFailure {
    /// Why the instance did not come up or answer, in one line: the function's own init error
    /// when it raised one (`Runtime.ImportModuleError: ...`), else the typed error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.init_error {
            Some(e) => write!(f, "{}: {}", e.error_type, e.message),
            None => self.error.fmt(f),
        }
    }
}

/// A started sandbox: one instance of one version, serving one invocation at a time. Dropping
/// it stops the sandbox.
#[derive(Debug)]
pub struct SandboxInstance {
    instance: Instance,
    spec: Arc<FunctionSpec>,
}

impl SandboxInstance {
    /// Whether its runtime has exited (it cannot serve another call).
    pub fn is_dead(&self) -> bool {
        self.instance.is_dead()
    }

    /// The version it runs.
    pub fn spec(&self) -> &Arc<FunctionSpec> {
        &self.spec
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
    /// Sandboxes whose cgroup is not removed yet.
    cgroups_alive: Arc<AtomicUsize>,
    /// Each sandbox's own uid and gid.
    identities: Arc<identity::IdentityPool>,
    /// Whether idle instances are frozen.
    freeze_idle: bool,
    /// The host's side of network egress (its rules are installed before the first egress
    /// sandbox).
    egress: Arc<network::EgressNet>,
}

/// Starts, runs and stops process-tier instances in sandboxes.
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
                cgroups_alive: Arc::default(),
                identities,
                freeze_idle,
                egress: Arc::new(network::EgressNet::new()),
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

    /// Builds a sandbox for `spec` and waits until its runtime asks for its first event; returns
    /// the instance and how long that took. `request_id` is the call it starts for
    /// (`ahead-of-calls` for a pre-warm or provisioned instance), named in the failure's log.
    pub async fn start(
        &self,
        spec: &Arc<FunctionSpec>,
        request_id: &str,
    ) -> Result<(SandboxInstance, Duration), InvokeFailure> {
        match Instance::start(self.launch(), spec).await {
            Ok((instance, init)) => Ok((
                SandboxInstance {
                    instance,
                    spec: spec.clone(),
                },
                init,
            )),
            Err((e, output)) => Err(init_failure(spec, request_id, e, output)),
        }
    }

    /// Runs one invocation on `instance`. `init` is the time its start took when it was started
    /// for this call (a cold start), reported on the REPORT line. On a failure the instance is
    /// not fit for another call: the caller stops it.
    pub async fn invoke(
        &self,
        instance: &mut SandboxInstance,
        input: &InvokeInput,
        init: Option<Duration>,
    ) -> Result<InvokeOutput, InvokeFailure> {
        let spec = instance.spec.clone();
        let spec = spec.as_ref();
        let cold_start = init.is_some();
        let init = init.unwrap_or_default();
        let instance = &mut instance.instance;
        // What the runtime printed during init (a cold start), or between invocations (a
        // background thread): it belongs to this one.
        let mut log = instance.logs.take();
        log.push_str(&format!(
            "START RequestId: {} Version: {}\n",
            input.request_id, spec.version
        ));
        let started = Instant::now();
        let result = instance.invoke(spec, input).await;
        let duration = started.elapsed();
        log.push_str(&instance.logs.take());
        let max_memory_used_mb = instance.max_memory_used_mb();
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
            Err(e) => Err(InvokeFailure {
                error: instance_error(spec, e),
                logs: log,
                cold_start,
                init,
                init_error: None,
            }),
        }
    }

    /// `instance` goes idle: it is frozen (unless freezing is off, or a call takes it first)
    /// right away when it was just started and waits for its first event, else after a short
    /// idle time, so a call that follows at once finds it running.
    pub fn idle(&self, instance: &SandboxInstance, just_started: bool) {
        if self.inner.freeze_idle {
            instance.instance.freeze_after(if just_started {
                Duration::ZERO
            } else {
                instance::FREEZE_AFTER_IDLE
            });
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

    #[test]
    fn a_failure_reads_as_the_functions_init_error_when_it_raised_one() {
        let failure = |init_error| InvokeFailure {
            error: InvokeError::RuntimeExited("exited with status 1".into()),
            logs: String::new(),
            cold_start: true,
            init: Duration::ZERO,
            init_error,
        };
        assert_eq!(
            failure(None).to_string(),
            "the function's runtime exited with status 1"
        );
        let import = FunctionError {
            error_type: "Runtime.ImportModuleError".into(),
            message: "No module named 'nope'".into(),
            payload: Bytes::new(),
        };
        assert_eq!(
            failure(Some(import)).to_string(),
            "Runtime.ImportModuleError: No module named 'nope'"
        );
    }
}
