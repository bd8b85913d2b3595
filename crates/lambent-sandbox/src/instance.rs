//! One sandbox instance: the helper process, its cgroup, its Runtime API server and its log pipe.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lambent_core::limits::MAX_LOG_BYTES_PER_INVOCATION;
use parking_lot::Mutex;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::cgroup::{CgroupDriver, CgroupError, CgroupLimits, SandboxCgroup};
use crate::helper::{
    HELPER_ARG, HELPER_ARGV0, SETUP_FAILED, go_message, receive_netns_request, receive_ready,
};
use crate::identity::{IdentityPool, SandboxIdentity};
use crate::network::{EgressNet, LinkLease};
use crate::os::Os;
use crate::plan::{EgressPlan, HostFs, PlanInput, SandboxPlan};
use crate::runtime_api::{FunctionError, Invocation, Readiness, Reply, RuntimeApi};
use crate::{FunctionSpec, InvokeInput};

/// How long the helper may take to build a sandbox before it is given up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an instance idles after its reply before it is frozen. Calls that follow closely
/// skip the freeze and the thaw (and the runtime is back asking for its next event by then);
/// background work gets at most this long after a call.
pub(crate) const FREEZE_AFTER_IDLE: Duration = Duration::from_millis(2);
/// How long an idle instance's freeze waits for its runtime to ask for the next event.
const PARK_WAIT: Duration = Duration::from_secs(1);

/// Where an idle instance's freezing stands, shared with the task that freezes it.
#[derive(Debug, Default)]
struct FreezeState {
    /// Whether the sandbox's cgroup is frozen now.
    frozen: bool,
    /// Bumped whenever the instance is taken for a call or stopped: a freeze asked for before
    /// then is dropped.
    generation: u64,
}

/// Set once a freeze failed and was logged.
static FREEZE_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What went wrong with an instance (rather than with the function's own code).
#[derive(Debug)]
pub(crate) enum InstanceError {
    /// The sandbox could not be built.
    Setup(String),
    /// The runtime process exited; `oom` says whether the OOM killer did it.
    Exited { status: i32, oom: bool },
    /// Init or the invocation ran past its deadline.
    Timeout,
    /// The runtime reported an init error.
    InitFailed(FunctionError),
    /// The response was over the payload limit.
    TooLarge,
    /// The runtime moved on without answering.
    Abandoned(String),
}

/// How a sandbox ended: the helper's exit status and whether the OOM killer struck.
#[derive(Debug, Clone, Copy)]
struct Exit {
    status: i32,
    oom: bool,
}

/// The function's stdout and stderr, read from one pipe as it arrives.
pub(crate) struct LogCapture {
    rx: pipe::Receiver,
    buf: Mutex<LogBuffer>,
}

#[derive(Default)]
struct LogBuffer {
    data: Vec<u8>,
    dropped: usize,
}

impl LogCapture {
    /// Reads what is in the pipe now; true at end of file.
    fn drain(&self) -> bool {
        let mut buf = self.buf.lock();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.rx.try_read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    let room = MAX_LOG_BYTES_PER_INVOCATION.saturating_sub(buf.data.len());
                    let keep = n.min(room);
                    buf.data.extend_from_slice(&chunk[..keep]);
                    buf.dropped += n - keep;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    async fn run(self: Arc<Self>) {
        loop {
            if self.rx.readable().await.is_err() || self.drain() {
                return;
            }
        }
    }

    /// Everything captured since the last call, with a marker if some was cut.
    pub(crate) fn take(&self) -> String {
        self.drain();
        let mut buf = self.buf.lock();
        let mut text = String::from_utf8_lossy(&buf.data).into_owned();
        if buf.dropped > 0 {
            text.push_str(&format!(
                "\n[lambent: {} more bytes of output were dropped]\n",
                buf.dropped
            ));
        }
        *buf = LogBuffer::default();
        text
    }
}

/// A running sandbox.
pub(crate) struct Instance {
    pub(crate) id: String,
    helper_pid: i32,
    /// Closing it tells the helper to kill the sandbox.
    control: Option<UnixStream>,
    cgroup: SandboxCgroup,
    /// Whether the sandbox is frozen (it idles between calls), or about to be.
    freeze: Arc<Mutex<FreezeState>>,
    /// The sandbox's uid and gid.
    uid: u32,
    os: Arc<dyn Os>,
    queue: mpsc::Sender<Invocation>,
    readiness: watch::Receiver<Readiness>,
    /// Whether the runtime waits in `GET /invocation/next`.
    parked: watch::Receiver<bool>,
    exit: watch::Receiver<Option<Exit>>,
    pub(crate) logs: Arc<LogCapture>,
    server: JoinHandle<()>,
    log_reader: JoinHandle<()>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("helper_pid", &self.helper_pid)
            .field("uid", &self.uid)
            .field("frozen", &self.freeze.lock().frozen)
            .finish_non_exhaustive()
    }
}

/// What the executor passes to build an instance.
pub(crate) struct Launch<'a> {
    pub(crate) helper: &'a Path,
    pub(crate) cgroups: &'a CgroupDriver,
    pub(crate) os: Arc<dyn Os>,
    pub(crate) runtime_dir: &'a Path,
    pub(crate) root_dir: &'a Path,
    pub(crate) python: &'a Path,
    pub(crate) node: Option<&'a Path>,
    /// Sandboxes whose cgroup is not removed yet.
    pub(crate) cgroups_alive: Arc<AtomicUsize>,
    /// The host's side of network egress.
    pub(crate) egress: Arc<EgressNet>,
    /// Where each sandbox's uid and gid come from.
    pub(crate) identities: Arc<IdentityPool>,
}

/// Gives a sandbox's identity back once its cgroup is gone, or keeps it taken for good when
/// some of its processes could not be shown dead (so no other sandbox ever gets their uid).
fn release(identity: SandboxIdentity, cgroup_removed: bool) {
    if cgroup_removed {
        drop(identity);
    } else {
        identity.leak();
    }
}

fn now_ms() -> u64 {
    u64::try_from(lambent_core::now_ms()).unwrap_or(0)
}

impl Instance {
    /// Builds a sandbox for `spec` and waits until its runtime asks for the first event (or
    /// fails). Returns the instance and how long init took.
    pub(crate) async fn start(
        launch: Launch<'_>,
        spec: &FunctionSpec,
    ) -> Result<(Instance, Duration), (InstanceError, String)> {
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let identity = launch.identities.take().ok_or_else(|| {
            (
                InstanceError::Setup(format!(
                    "all {} sandbox uids from {} are taken",
                    crate::identity::UID_RANGE,
                    launch.identities.base()
                )),
                String::new(),
            )
        })?;
        let uid = identity.uid();
        let egress = if spec.egress {
            let net = launch.egress.clone();
            let ip = tokio::task::spawn_blocking(move || net.prepare())
                .await
                .map_err(|e| (InstanceError::Setup(e.to_string()), String::new()))?
                .map_err(|e| (InstanceError::Setup(e.to_string()), String::new()))?;
            Some(EgressPlan { ip })
        } else {
            None
        };
        let cgroup = {
            let os = launch.os.clone();
            let driver = launch.cgroups.clone();
            let name = format!("{}{id}", crate::cgroup::instance_prefix(std::process::id()));
            let limits = CgroupLimits::for_memory(spec.memory_mb);
            tokio::task::spawn_blocking(move || driver.create(os.as_ref(), &name, &limits))
                .await
                .map_err(|e| (InstanceError::Setup(e.to_string()), String::new()))?
                .map_err(|e| (InstanceError::Setup(e.to_string()), String::new()))?
        };
        let plan = SandboxPlan::build(
            &PlanInput {
                family: spec.family,
                code_dir: &spec.code_dir,
                runtime_dir: launch.runtime_dir,
                root_dir: launch.root_dir,
                ephemeral_storage_mb: spec.ephemeral_storage_mb,
                egress,
                cgroup_procs: cgroup.procs_files(),
                env: spec.environment.clone(),
                python: launch.python,
                node: launch.node,
                uid,
            },
            &HostFs,
        );
        let link_net = plan.egress.is_some().then(|| launch.egress.clone());
        let spawned = spawn_helper(launch.helper, &plan, link_net).await;
        let (mut child, control, listener, log_rx, link) = match spawned {
            Ok(s) => s,
            Err(e) => {
                release(identity, cgroup.remove(launch.os.as_ref()));
                return Err((InstanceError::Setup(e), String::new()));
            }
        };
        let helper_pid = child.id().map_or(0, |p| p as i32);
        let logs = Arc::new(LogCapture {
            rx: log_rx,
            buf: Mutex::new(LogBuffer::default()),
        });
        let (api, queue, readiness) = RuntimeApi::new();
        let parked = api.parked();
        let server = tokio::spawn(api.serve(listener));
        let log_reader = tokio::spawn(logs.clone().run());
        let (exit_tx, exit) = watch::channel(None);
        {
            let os = launch.os.clone();
            let cgroup = cgroup.clone();
            let alive = launch.cgroups_alive.clone();
            alive.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                let status = match child.wait().await {
                    Ok(s) => s.code().unwrap_or(128 + 9),
                    Err(_) => SETUP_FAILED,
                };
                // Read the OOM counter before the cgroup goes.
                let oom = cgroup.oom_kills(os.as_ref()) > 0;
                let _ = exit_tx.send(Some(Exit { status, oom }));
                // The kernel removes the link with the sandbox's network namespace.
                drop(link);
                // Everything in the sandbox dies with init; the cgroup goes once it is empty,
                // and only then may another sandbox have its uid.
                let _ = tokio::task::spawn_blocking(move || {
                    cgroup.kill_all(os.as_ref());
                    release(identity, cgroup.remove(os.as_ref()));
                })
                .await;
                alive.fetch_sub(1, Ordering::AcqRel);
            });
        }
        let mut instance = Instance {
            id,
            helper_pid,
            control: Some(control),
            cgroup,
            freeze: Arc::default(),
            uid,
            os: launch.os,
            queue,
            readiness,
            parked,
            exit,
            logs,
            server,
            log_reader,
        };
        let init_deadline = tokio::time::Instant::now() + spec.init_timeout;
        let outcome = instance.wait_ready(init_deadline).await;
        let init = started.elapsed();
        match outcome {
            Ok(()) => Ok((instance, init)),
            Err(e) => {
                instance.kill();
                // Give the log reader what the runtime printed before it failed.
                let logs = instance.wait_logs().await;
                Err((e, logs))
            }
        }
    }

    async fn wait_ready(&mut self, deadline: tokio::time::Instant) -> Result<(), InstanceError> {
        loop {
            if let Some(exit) = *self.exit.borrow() {
                return Err(exited(exit));
            }
            match self.readiness.borrow().clone() {
                Readiness::Ready => return Ok(()),
                Readiness::InitFailed(e) => return Err(InstanceError::InitFailed(e)),
                Readiness::Initializing => {}
            }
            tokio::select! {
                _ = self.readiness.changed() => {}
                _ = self.exit.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return Err(InstanceError::Timeout),
            }
        }
    }

    /// Freezes the sandbox once it has idled for `after`, unless it is taken for a call or
    /// stopped first: its processes and threads then make no progress until
    /// [`Instance::invoke`] thaws it. The freeze runs off the caller's path.
    pub(crate) fn freeze_after(&self, after: Duration) {
        if !self.cgroup.can_freeze() {
            return;
        }
        let state = self.freeze.clone();
        let generation = state.lock().generation;
        let cgroup = self.cgroup.clone();
        let os = self.os.clone();
        let mut parked = self.parked.clone();
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            // As Lambda does, freeze once the runtime waits for its next event: frozen between
            // its answer and that request, its keep-alive connection could idle past the Runtime
            // API's timeout. A runtime that never asks is frozen anyway after a while, so that
            // skipping the request buys no unbilled time.
            let _ = tokio::time::timeout(PARK_WAIT, parked.wait_for(|p| *p)).await;
            if state.lock().generation != generation {
                return;
            }
            let _ = tokio::task::spawn_blocking(move || {
                // Held across the write, so a thaw waits for a freeze under way.
                let mut st = state.lock();
                if st.generation != generation || st.frozen {
                    return;
                }
                match cgroup.freeze(os.as_ref()) {
                    Ok(()) => st.frozen = true,
                    Err(e) => {
                        if !FREEZE_FAILED.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "cannot freeze an idle sandbox; it idles running");
                        }
                    }
                }
            })
            .await;
        });
    }

    /// Lets a frozen sandbox run again, and drops a freeze not done yet.
    fn thaw(&mut self) -> Result<(), CgroupError> {
        let mut st = self.freeze.lock();
        st.generation += 1;
        if st.frozen {
            self.cgroup.thaw(self.os.as_ref())?;
            st.frozen = false;
        }
        Ok(())
    }

    /// Whether the runtime process has exited.
    pub(crate) fn is_dead(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Runs one invocation to its end.
    pub(crate) async fn invoke(
        &mut self,
        spec: &FunctionSpec,
        input: &InvokeInput,
    ) -> Result<Result<Bytes, FunctionError>, InstanceError> {
        // Thawed before the event is handed over, so the runtime is running when it arrives.
        self.thaw()
            .map_err(|e| InstanceError::Setup(format!("cannot thaw the sandbox: {e}")))?;
        let deadline = tokio::time::Instant::now() + spec.timeout;
        let (reply_tx, reply_rx) = oneshot::channel();
        let invocation = Invocation {
            request_id: input.request_id.clone(),
            payload: input.payload.clone(),
            deadline_ms: now_ms() + spec.timeout.as_millis() as u64,
            function_arn: spec.function_arn.clone(),
            trace_id: input.trace_id.clone(),
            client_context: input.client_context.clone(),
            cognito_identity: input.cognito_identity.clone(),
            reply: reply_tx,
        };
        if self.queue.send(invocation).await.is_err() {
            return Err(InstanceError::Exited {
                status: SETUP_FAILED,
                oom: false,
            });
        }
        tokio::select! {
            reply = reply_rx => match reply {
                Ok(Reply::Response(body)) => Ok(Ok(body)),
                Ok(Reply::Error(e)) => Ok(Err(e)),
                Ok(Reply::TooLarge) => Err(InstanceError::TooLarge),
                Ok(Reply::Abandoned(why)) => Err(InstanceError::Abandoned(why)),
                Err(_) => Err(InstanceError::Abandoned("the Runtime API dropped the invocation".into())),
            },
            exit = wait_exit(self.exit.clone()) => Err(exited(exit)),
            _ = tokio::time::sleep_until(deadline) => Err(InstanceError::Timeout),
        }
    }

    /// The most memory the sandbox has used, in MB (0 when the host cannot tell).
    pub(crate) fn max_memory_used_mb(&self) -> u64 {
        self.cgroup
            .peak_memory(self.os.as_ref())
            .map_or(0, |b| b.div_ceil(1024 * 1024))
    }

    /// Kills the sandbox: the helper kills init, and the kernel everything in its pid namespace.
    pub(crate) fn kill(&mut self) {
        // The helper and init are frozen with the sandbox; the v1 freezer even holds SIGKILL.
        if let Err(e) = self.thaw() {
            tracing::warn!(error = %e, "cannot thaw a sandbox to stop it; its cgroup's removal kills it");
        }
        self.control.take();
        if self.helper_pid > 0 && !self.is_dead() {
            self.os.kill(self.helper_pid);
        }
        self.server.abort();
    }

    /// Waits (briefly) for the log pipe to close after a kill, then returns what was captured.
    async fn wait_logs(&mut self) -> String {
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.log_reader).await;
        self.logs.take()
    }
}

/// A failed setup or exec (SETUP_FAILED, EXEC_FAILED) left its message in the log.
fn exited(exit: Exit) -> InstanceError {
    InstanceError::Exited {
        status: exit.status,
        oom: exit.oom,
    }
}

async fn wait_exit(mut exit: watch::Receiver<Option<Exit>>) -> Exit {
    loop {
        if let Some(e) = *exit.borrow_and_update() {
            return e;
        }
        if exit.changed().await.is_err() {
            return Exit {
                status: SETUP_FAILED,
                oom: false,
            };
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
        self.log_reader.abort();
    }
}

type Spawned = (
    tokio::process::Child,
    UnixStream,
    tokio::net::TcpListener,
    pipe::Receiver,
    Option<LinkLease>,
);

/// Starts the helper with `plan`, links an egress sandbox's network to the host through `egress`
/// when the helper asks, and waits for the Runtime API socket.
async fn spawn_helper(
    helper: &Path,
    plan: &SandboxPlan,
    egress: Option<Arc<EgressNet>>,
) -> Result<Spawned, String> {
    let plan_json = serde_json::to_vec(plan).map_err(|e| format!("cannot encode the plan: {e}"))?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| format!("cannot create the control socket: {e}"))?;
    let (log_r, log_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create the log pipe: {e}"))?;
    let log_w2: OwnedFd = log_w
        .try_clone()
        .map_err(|e| format!("cannot duplicate the log pipe: {e}"))?;
    let mut command = tokio::process::Command::new(helper);
    command
        .arg0(HELPER_ARGV0)
        .arg(HELPER_ARG)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(log_w))
        .stderr(Stdio::from(log_w2))
        .kill_on_drop(false);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start the sandbox helper {}: {e}", helper.display()))?;
    // Whatever happens next, the command (and its copies of the pipe's write end) is gone.
    drop(command);
    let log_rx = pipe::Receiver::from_owned_fd(log_r)
        .map_err(|e| format!("cannot watch the log pipe: {e}"))?;
    let helper_pid = child.id();
    let handshake = tokio::task::spawn_blocking(move || {
        let mut ours = ours;
        ours.set_read_timeout(Some(SETUP_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let len = u32::try_from(plan_json.len()).map_err(|e| e.to_string())?;
        ours.write_all(&len.to_le_bytes())
            .and_then(|()| ours.write_all(&plan_json))
            .map_err(|e| format!("cannot send the plan to the sandbox helper: {e}"))?;
        let link = match (egress, helper_pid) {
            (Some(net), Some(pid)) => {
                receive_netns_request(&ours)?;
                let link = net.attach(pid).map_err(|e| e.to_string())?;
                ours.write_all(&go_message(link.addrs)).map_err(|e| {
                    format!("cannot send the network link to the sandbox helper: {e}")
                })?;
                Some(link)
            }
            (Some(_), None) => {
                return Err("the sandbox helper exited before the sandbox was ready".to_owned());
            }
            (None, _) => None,
        };
        let (fd, port) = receive_ready(ours.as_fd())?;
        Ok::<_, String>((ours, fd, port, link))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let (ours, listener, port, link) = match handshake {
        Ok(h) => h,
        Err(e) => {
            // The helper reported an error and exits, or it hangs: make sure it is gone.
            let _ = child.start_kill();
            return Err(e);
        }
    };
    let std_listener = std::net::TcpListener::from(listener);
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the Runtime API socket: {e}"))?;
    let listener = tokio::net::TcpListener::from_std(std_listener)
        .map_err(|e| format!("cannot use the Runtime API socket: {e}"))?;
    tracing::trace!(port, "sandbox ready for its runtime");
    Ok((child, ours, listener, log_rx, link))
}
