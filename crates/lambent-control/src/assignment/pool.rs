//! [`InstancePool`]: the warm instances of every version of one tier, and the policies that
//! keep, start and stop them (see the module doc of [`super`] for the policies).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use lambent_core::{MemoryBudget, MemoryReservation};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::executor::{Executor, ExecutorFailure, InstanceSpec, Started};
use crate::keepalive::KeepAlive;

/// Idle time after which a warm instance is stopped (AWS keeps instances about this long).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(600);
/// Failed provisioned starts in a row after which the configuration reports FAILED (it keeps
/// retrying, backing off).
pub const PROVISIONED_FAILURES: u32 = 3;
/// Longest wait between retries of a failing provisioned start.
const PROVISIONED_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a provisioned instance is kept: until its configuration is lowered.
const PROVISIONED_KEEP: Duration = Duration::from_secs(365 * 24 * 3600);
/// Instances started at once per core: enough to cover the waits in a start (a sandbox's
/// helper exec, its handshake, the runtime's first request) without every start of a burst
/// sharing the CPU.
const STARTS_PER_CORE: usize = 4;
/// The `request_id` of starts that no call waits for.
const AHEAD_OF_CALLS: &str = "ahead-of-calls";

/// Instances started at once on this host (4 per core, 4 to 256).
pub fn concurrent_starts() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * STARTS_PER_CORE).clamp(4, 256)
}

/// Whose instances: one version of one tenant's function. An instance of one key is never
/// handed to a call of another (nor of another revision of the same key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The tenant.
    pub tenant: String,
    /// The function's name.
    pub function: String,
    /// `$LATEST` or the version number.
    pub version: String,
}

impl PoolKey {
    /// The key of `tenant`'s `function:version`.
    pub fn new(tenant: &str, function: &str, version: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            function: function.to_owned(),
            version: version.to_owned(),
        }
    }

    fn function_key(&self) -> FunctionKey {
        (self.tenant.clone(), self.function.clone())
    }
}

/// A tenant's function.
type FunctionKey = (String, String);

/// Settings of a pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Idle time before a warm instance is stopped, for functions whose keep-alive policy
    /// leaves it to the platform; also sets how often the reaper looks.
    pub keep_alive: Duration,
    /// Instances that may exist at once, busy or idle.
    pub max_instances: usize,
    /// The node's memory budget, shared with the other tiers: each instance reserves its
    /// memory limit for as long as it lives.
    pub budget: Arc<MemoryBudget>,
    /// Instances started at once. A burst of cold starts shares the CPU: starting a few at a
    /// time finishes each one sooner (and the burst no later) than starting all at once, where
    /// every start is slow and late ones pass the init timeout.
    pub concurrent_starts: usize,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    /// Instances started (attempts, whether or not the runtime came up).
    pub started: u64,
    /// Instances stopped after their keep-alive.
    pub reaped: u64,
    /// Instances started ahead of an expected call by the keep-alive policy.
    pub prewarmed: u64,
    /// Idle instances stopped early to make room for another.
    pub evicted: u64,
    /// Instances alive now.
    pub live: u64,
    /// Of those, idle and warm.
    pub idle: u64,
}

/// A function's instances now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FunctionInstances {
    /// Alive, idle or busy.
    pub live: u32,
    /// Of those, idle and warm.
    pub idle: u32,
}

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

/// Why a call got no instance.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError<F: ExecutorFailure> {
    /// The node has no room for another instance (by count or memory), and no idle instance
    /// could be stopped to make some; the message says which.
    #[error("no capacity to start another instance: {0}")]
    NoRoom(String),
    /// The instance started for the call failed to come up.
    #[error("the instance did not start: {}", .0.reason())]
    Start(F),
}

/// A place among the node's instances and its memory, given back when dropped.
struct Slot {
    live: Arc<AtomicUsize>,
    /// The function's count of live instances.
    function: Arc<AtomicU32>,
    _memory: MemoryReservation,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.function.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts a provisioned instance while it exists.
struct ProvisionedMark(Arc<AtomicU32>);

impl Drop for ProvisionedMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An instance with what the pool knows of it. Fields drop in order: the instance stops
/// before its slot and memory are given back.
struct Pooled<I> {
    instance: I,
    last_used: Instant,
    /// When the keep-alive policy lets it go (never, for a provisioned instance).
    expires: Instant,
    /// Set on instances that provisioned concurrency keeps.
    provisioned: Option<ProvisionedMark>,
    _slot: Slot,
}

/// An instance to start again ahead of an expected call (a pre-warm).
struct Prewarm<S> {
    at: Instant,
    keep: Duration,
    epoch: u64,
    key: PoolKey,
    spec: Arc<S>,
}

/// Provisioned concurrency of one version: how many instances to keep, and how many exist.
struct Provisioned<S> {
    spec: Arc<S>,
    requested: u32,
    alive: Arc<AtomicU32>,
    starting: Arc<AtomicU32>,
    /// Instance starts that failed in a row, and why the last one did.
    failures: u32,
    last_error: Option<String>,
    /// No new start before this, after a failure (backing off).
    retry_at: Option<Instant>,
}

struct State<S, I> {
    /// Idle instances per key, per revision; the newest is last.
    idle: HashMap<PoolKey, HashMap<String, Vec<Pooled<I>>>>,
    /// Bumped when a function's instances are retired, so busy ones are not put back.
    epochs: HashMap<FunctionKey, u64>,
    /// Bumped when one version's instances are retired.
    version_epochs: HashMap<PoolKey, u64>,
    /// When each function's last call ended (for its idle-time history).
    last_end: HashMap<FunctionKey, Instant>,
    /// Pre-warms due, at most one per version and revision.
    prewarms: HashMap<(PoolKey, String), Prewarm<S>>,
    /// Provisioned concurrency per version.
    provisioned: HashMap<PoolKey, Provisioned<S>>,
    /// Live instances per function (counted by their slots).
    live: HashMap<FunctionKey, Arc<AtomicU32>>,
}

impl<S, I> Default for State<S, I> {
    fn default() -> Self {
        Self {
            idle: HashMap::new(),
            epochs: HashMap::new(),
            version_epochs: HashMap::new(),
            last_end: HashMap::new(),
            prewarms: HashMap::new(),
            provisioned: HashMap::new(),
            live: HashMap::new(),
        }
    }
}

impl<S, I> State<S, I> {
    /// Changes whenever this version's instances are retired, alone (the low half counts) or
    /// with the whole function (the high half counts; the version counters start again): a busy
    /// instance whose epoch changed is stopped, not put back.
    fn epoch(&self, key: &PoolKey) -> u64 {
        let function = self.epochs.get(&key.function_key()).copied().unwrap_or(0);
        let version = self.version_epochs.get(key).copied().unwrap_or(0);
        function.wrapping_mul(1 << 32).wrapping_add(version)
    }

    /// Whether `counter` is the live provisioned counter of this version and wants another
    /// instance (`adding`) or still wants this one.
    fn still_provisioned(&self, key: &PoolKey, counter: &Arc<AtomicU32>, adding: bool) -> bool {
        self.provisioned.get(key).is_some_and(|p| {
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

struct PoolInner<E: Executor> {
    executor: E,
    config: PoolConfig,
    keep_alive: Arc<KeepAlive>,
    state: Mutex<State<E::Spec, E::Instance>>,
    live: Arc<AtomicUsize>,
    started: AtomicU64,
    reaped: AtomicU64,
    prewarmed: AtomicU64,
    evicted: AtomicU64,
    starting: tokio::sync::Semaphore,
    reaper_running: AtomicBool,
    /// Set at shutdown: the reaper stops.
    stopped: AtomicBool,
}

/// The warm instances of one tier on this node, per (tenant, function, version): leases them
/// to calls (one call at a time per instance, as on Lambda), starts new ones when none is idle,
/// and keeps, pre-warms, provisions, evicts, retires and drains them.
pub struct InstancePool<E: Executor> {
    inner: Arc<PoolInner<E>>,
}

impl<E: Executor> Clone for InstancePool<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Executor + std::fmt::Debug> std::fmt::Debug for InstancePool<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePool")
            .field("executor", &self.inner.executor)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// An instance leased to one call. [`Lease::release`] puts it back after a call that ran;
/// dropping the lease (the call failed, or its caller went away) stops the instance.
pub struct Lease<E: Executor>
where
    E::Spec: InstanceSpec,
{
    pool: InstancePool<E>,
    key: PoolKey,
    spec: Arc<E::Spec>,
    epoch: u64,
    pooled: Option<Pooled<E::Instance>>,
    init: Option<Duration>,
}

impl<E: Executor> Lease<E>
where
    E::Spec: InstanceSpec,
{
    /// The instance.
    pub fn instance(&mut self) -> &mut E::Instance {
        match &mut self.pooled {
            Some(p) => &mut p.instance,
            None => unreachable!("a lease holds its instance until it is released or dropped"),
        }
    }

    /// How long the instance's start took, when it was started for this call.
    pub fn init(&self) -> Option<Duration> {
        self.init
    }

    /// Puts the instance back after a call that ran (it may have answered with the function's
    /// own error): it idles warm per the keep-alive policy.
    pub fn release(mut self) {
        if let Some(mut pooled) = self.pooled.take() {
            pooled.last_used = Instant::now();
            self.pool
                .put_back(&self.key, &self.spec, self.epoch, pooled);
        }
    }
}

impl<E: Executor> Drop for Lease<E>
where
    E::Spec: InstanceSpec,
{
    fn drop(&mut self) {
        if let Some(p) = self.pooled.take() {
            self.pool.stop(p);
        }
    }
}

impl<E: Executor> InstancePool<E>
where
    E::Spec: InstanceSpec,
{
    /// A pool over `executor`, keeping instances per `keep_alive`'s policies.
    pub fn new(executor: E, config: PoolConfig, keep_alive: Arc<KeepAlive>) -> Self {
        let starting = tokio::sync::Semaphore::new(config.concurrent_starts.max(1));
        Self {
            inner: Arc::new(PoolInner {
                executor,
                config,
                keep_alive,
                state: Mutex::new(State::default()),
                live: Arc::new(AtomicUsize::new(0)),
                started: AtomicU64::new(0),
                reaped: AtomicU64::new(0),
                prewarmed: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                starting,
                reaper_running: AtomicBool::new(false),
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The same pool, without the reaper task: tests drive [`InstancePool::tick`] with their
    /// own clock.
    #[cfg(test)]
    pub(super) fn without_reaper(self) -> Self {
        self.inner.reaper_running.store(true, Ordering::Release);
        self
    }

    /// The keep-alive policies the pool follows.
    #[cfg(test)]
    pub(super) fn inner_keep_alive(&self) -> &KeepAlive {
        &self.inner.keep_alive
    }

    /// The executor the pool starts instances with.
    pub fn executor(&self) -> &E {
        &self.inner.executor
    }

    /// Counters.
    pub fn stats(&self) -> PoolStats {
        let idle = self
            .inner
            .state
            .lock()
            .idle
            .values()
            .flat_map(HashMap::values)
            .map(Vec::len)
            .sum::<usize>();
        PoolStats {
            started: self.inner.started.load(Ordering::Relaxed),
            reaped: self.inner.reaped.load(Ordering::Relaxed),
            prewarmed: self.inner.prewarmed.load(Ordering::Relaxed),
            evicted: self.inner.evicted.load(Ordering::Relaxed),
            live: self.inner.live.load(Ordering::Relaxed) as u64,
            idle: idle as u64,
        }
    }

    /// Leases an instance of `key` at `spec`'s revision to one call: a warm idle one
    /// (provisioned ones first, then the most recently used), else a new one, for which
    /// idle instances of any key are evicted, least recently used first, while the node is
    /// full. `request_id` names the call in a failed start's log.
    pub async fn lease(
        &self,
        key: &PoolKey,
        spec: &Arc<E::Spec>,
        request_id: &str,
    ) -> Result<Lease<E>, LeaseError<E::Failure>> {
        self.ensure_reaper();
        let revision = spec.revision();
        let (epoch, idle) = {
            let mut state = self.inner.state.lock();
            // A call makes any pre-warm of its version moot (no key is built when none is due).
            if !state.prewarms.is_empty() {
                state.prewarms.remove(&(key.clone(), revision.to_owned()));
            }
            let idle = state
                .last_end
                .get(&key.function_key())
                .map(Instant::elapsed);
            (state.epoch(key), idle)
        };
        if let Some(idle) = idle {
            self.inner.keep_alive.observe_idle(&key.function, idle);
        }
        let lease = |pooled, init| Lease {
            pool: self.clone(),
            key: key.clone(),
            spec: spec.clone(),
            epoch,
            pooled: Some(pooled),
            init,
        };
        if let Some(pooled) = self.take_idle(key, revision) {
            return Ok(lease(pooled, None));
        }
        let slot = self
            .reserve(key, spec.memory_mb())
            .map_err(LeaseError::NoRoom)?;
        // Waiting for a turn is not part of the instance's init time or timeout.
        let _turn = self.inner.starting.acquire().await.ok();
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        let Started { instance, init } = self
            .inner
            .executor
            .start(spec, request_id)
            .await
            .map_err(LeaseError::Start)?;
        let now = Instant::now();
        let pooled = Pooled {
            instance,
            last_used: now,
            expires: now + self.inner.config.keep_alive,
            provisioned: None,
            _slot: slot,
        };
        Ok(lease(pooled, Some(init)))
    }

    /// Stops the idle instances of a function (of one version, or all), and makes busy ones stop
    /// when they finish. Call it when a version's code or configuration changes or the function
    /// is deleted.
    pub fn retire(&self, tenant: &str, function: &str, version: Option<&str>) {
        let dropped: Vec<Pooled<E::Instance>> = {
            let mut state = self.inner.state.lock();
            let of_function = |k: &PoolKey| k.tenant == tenant && k.function == function;
            match version {
                Some(v) => {
                    *state
                        .version_epochs
                        .entry(PoolKey::new(tenant, function, v))
                        .or_default() += 1;
                }
                None => {
                    *state
                        .epochs
                        .entry((tenant.to_owned(), function.to_owned()))
                        .or_default() += 1;
                    state.version_epochs.retain(|k, _| !of_function(k));
                }
            }
            let retired = |k: &PoolKey| of_function(k) && version.is_none_or(|v| k.version == v);
            // Pre-warms made before the bump would be refused anyway.
            state.prewarms.retain(|(k, _), _| !retired(k));
            if version.is_some() {
                state.provisioned.retain(|k, _| !retired(k));
            } else {
                state
                    .last_end
                    .remove(&(tenant.to_owned(), function.to_owned()));
            }
            let keys: Vec<PoolKey> = state.idle.keys().filter(|k| retired(k)).cloned().collect();
            keys.iter()
                .filter_map(|k| state.idle.remove(k))
                .flat_map(HashMap::into_values)
                .flatten()
                .collect()
        };
        self.stop_all(dropped);
    }

    /// Stops every idle instance and keeps no more (at shutdown); busy ones stop when their
    /// call ends.
    pub fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        let all = {
            let mut state = self.inner.state.lock();
            state.provisioned.clear();
            state.prewarms.clear();
            std::mem::take(&mut state.idle)
        };
        self.stop_all(all.into_values().flat_map(HashMap::into_values).flatten());
    }

    /// Stops idle instances, least recently used first, until `mb` of the node's memory
    /// budget is free (for another tier's call); false if busy or provisioned instances hold
    /// too much.
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

    /// Live and idle instances per function (of the default tenant's view: by name).
    pub fn instances_by_function(&self) -> Vec<(String, FunctionInstances)> {
        let state = self.inner.state.lock();
        let mut idle: HashMap<&FunctionKey, usize> = HashMap::new();
        for (k, versions) in &state.idle {
            let n = versions.values().map(Vec::len).sum::<usize>();
            if let Some((fk, _)) = state.live.get_key_value(&k.function_key()) {
                *idle.entry(fk).or_default() += n;
            }
        }
        let mut out: Vec<(String, FunctionInstances)> = state
            .live
            .iter()
            .map(|(fk, live)| {
                let idle = idle.get(fk).copied().unwrap_or(0);
                (
                    fk.1.clone(),
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

    /// Keeps `requested` instances of this version initialised ahead of calls (provisioned
    /// concurrency); 0 stops keeping them. Instances start in the background; see
    /// [`InstancePool::provisioned_status`].
    pub fn set_provisioned(&self, key: &PoolKey, spec: Arc<E::Spec>, requested: u32) {
        self.ensure_reaper();
        self.configure_provisioned(key, spec, requested);
        self.fill_provisioned(Instant::now());
    }

    pub(super) fn configure_provisioned(&self, key: &PoolKey, spec: Arc<E::Spec>, requested: u32) {
        let mut state = self.inner.state.lock();
        if requested == 0 {
            state.provisioned.remove(key);
        } else {
            let entry = state
                .provisioned
                .entry(key.clone())
                .or_insert_with(|| Provisioned {
                    spec: spec.clone(),
                    requested,
                    alive: Arc::default(),
                    starting: Arc::default(),
                    failures: 0,
                    last_error: None,
                    retry_at: None,
                });
            entry.requested = requested;
            if entry.spec.revision() != spec.revision() {
                // New code or configuration: start afresh.
                entry.failures = 0;
                entry.last_error = None;
                entry.retry_at = None;
            }
            entry.spec = spec;
        }
        // Idle instances beyond the new number become ordinary ones, which the reaper lets
        // go at its next tick.
        let mut kept = 0;
        let now = Instant::now();
        if let Some(revisions) = state.idle.get_mut(key) {
            for list in revisions.values_mut() {
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

    /// Stops keeping provisioned instances of any version of `function` (it was deleted).
    pub fn forget_provisioned(&self, tenant: &str, function: &str) {
        let dropped: Vec<Pooled<E::Instance>> = {
            let mut state = self.inner.state.lock();
            let of_function = |k: &PoolKey| k.tenant == tenant && k.function == function;
            state.provisioned.retain(|k, _| !of_function(k));
            let mut out = Vec::new();
            for (_, revisions) in state.idle.iter_mut().filter(|(k, _)| of_function(k)) {
                for list in revisions.values_mut() {
                    let (gone, keep): (Vec<_>, Vec<_>) =
                        list.drain(..).partition(|p| p.provisioned.is_some());
                    *list = keep;
                    out.extend(gone);
                }
            }
            out
        };
        self.stop_all(dropped);
    }

    /// How far a version's provisioned concurrency is.
    pub fn provisioned_status(&self, key: &PoolKey) -> Option<ProvisionedStatus> {
        let state = self.inner.state.lock();
        state.provisioned.get(key).map(|p| {
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

    // ----- the reaper ---------------------------------------------------------------------

    fn ensure_reaper(&self) {
        if self.inner.reaper_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<PoolInner<E>> = Arc::downgrade(&self.inner);
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
                let pool = InstancePool { inner };
                // The starts run on their own tasks.
                drop(pool.tick(Instant::now()));
            }
        });
    }

    /// One look of the reaper at `now`: starts the pre-warms due and the provisioned
    /// instances missing, and stops idle instances past their keep-alive (or dead). Returns the
    /// tasks of the starts.
    pub(super) fn tick(&self, now: Instant) -> Vec<JoinHandle<()>> {
        let due: Vec<Prewarm<E::Spec>> = {
            let mut state = self.inner.state.lock();
            let keys: Vec<_> = state
                .prewarms
                .iter()
                .filter(|(_, p)| p.at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            keys.iter()
                .filter_map(|k| state.prewarms.remove(k))
                .collect()
        };
        let mut tasks: Vec<JoinHandle<()>> = due
            .into_iter()
            .map(|p| {
                let pool = self.clone();
                tokio::spawn(async move { pool.prewarm(p).await })
            })
            .collect();
        tasks.extend(self.fill_provisioned(now));
        let executor = &self.inner.executor;
        let expired: Vec<Pooled<E::Instance>> = {
            let mut state = self.inner.state.lock();
            let mut out = Vec::new();
            for revisions in state.idle.values_mut() {
                for list in revisions.values_mut() {
                    let (old, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|p| {
                        (p.provisioned.is_none() && now >= p.expires)
                            || executor.is_dead(&p.instance)
                    });
                    *list = keep;
                    out.extend(old);
                }
                revisions.retain(|_, l| !l.is_empty());
            }
            state.idle.retain(|_, v| !v.is_empty());
            out
        };
        if !expired.is_empty() {
            self.inner
                .reaped
                .fetch_add(expired.len() as u64, Ordering::Relaxed);
            tracing::debug!(count = expired.len(), "stopping idle instances");
        }
        self.stop_all(expired);
        tasks
    }

    // ----- keeping and starting -----------------------------------------------------------

    fn stop(&self, pooled: Pooled<E::Instance>) {
        let Pooled {
            instance,
            provisioned,
            _slot,
            ..
        } = pooled;
        self.inner.executor.stop(instance);
        drop(provisioned);
        drop(_slot);
    }

    fn stop_all(&self, pooled: impl IntoIterator<Item = Pooled<E::Instance>>) {
        for p in pooled {
            self.stop(p);
        }
    }

    /// Takes an idle instance of this key and revision, if one is warm.
    fn take_idle(&self, key: &PoolKey, revision: &str) -> Option<Pooled<E::Instance>> {
        let executor = &self.inner.executor;
        let mut dead = Vec::new();
        let taken = {
            let mut state = self.inner.state.lock();
            let list = state.idle.get_mut(key)?.get_mut(revision)?;
            let mut taken = None;
            // Provisioned instances serve first; then the most recently used.
            while let Some(i) = list
                .iter()
                .rposition(|p| p.provisioned.is_some())
                .or_else(|| list.len().checked_sub(1))
            {
                let p = list.remove(i);
                if executor.is_dead(&p.instance) {
                    dead.push(p);
                } else {
                    taken = Some(p);
                    break;
                }
            }
            taken
        };
        self.stop_all(dead);
        taken
    }

    /// Puts an instance back after a call, unless its version was retired meanwhile or it died.
    fn put_back(
        &self,
        key: &PoolKey,
        spec: &Arc<E::Spec>,
        epoch: u64,
        mut pooled: Pooled<E::Instance>,
    ) {
        let executor = &self.inner.executor;
        // A call that takes it thaws it first, or cancels the freeze.
        executor.idle(&pooled.instance, false);
        let windows = self.inner.keep_alive.windows(&key.function);
        let now = Instant::now();
        let mut state = self.inner.state.lock();
        state.last_end.insert(key.function_key(), now);
        // After shutdown nothing is kept: the instance of a call that outlasted it stops.
        if state.epoch(key) != epoch
            || executor.is_dead(&pooled.instance)
            || self.inner.stopped.load(Ordering::Acquire)
        {
            drop(state);
            self.stop(pooled);
            return;
        }
        if let Some(mark) = &pooled.provisioned
            && !state.still_provisioned(key, &mark.0, false)
        {
            // Its configuration was lowered or removed while it ran.
            pooled.provisioned = None;
        }
        let revision = spec.revision().to_owned();
        if !windows.prewarm.is_zero() && pooled.provisioned.is_none() {
            // The next call is not expected before `prewarm`: free the memory now and start
            // an instance again just before then.
            state.prewarms.insert(
                (key.clone(), revision),
                Prewarm {
                    at: now + windows.prewarm,
                    keep: windows.keep_alive,
                    epoch,
                    key: key.clone(),
                    spec: spec.clone(),
                },
            );
            drop(state);
            self.stop(pooled);
            return;
        }
        if pooled.provisioned.is_none() {
            pooled.expires = now + windows.keep_alive;
        }
        state
            .idle
            .entry(key.clone())
            .or_default()
            .entry(revision)
            .or_default()
            .push(pooled);
    }

    /// Starts an instance ahead of an expected call and keeps it warm for its window. A
    /// pre-warm never evicts another function's instance: it only uses free room.
    async fn prewarm(&self, p: Prewarm<E::Spec>) {
        let Some(slot) = self.free_slot(&p.key, p.spec.memory_mb()) else {
            return;
        };
        if self
            .start_kept(&p.key, &p.spec, p.epoch, slot, Some(p.keep), None)
            .await
            .is_ok_and(|kept| kept)
        {
            self.inner.prewarmed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Starts an instance of `spec` into the idle pool, kept for `keep` (or, provisioned,
    /// until its provisioned concurrency is lowered); false if its version was retired
    /// meanwhile, and why if it could not start.
    async fn start_kept(
        &self,
        key: &PoolKey,
        spec: &Arc<E::Spec>,
        epoch: u64,
        slot: Slot,
        keep: Option<Duration>,
        provisioned: Option<Arc<AtomicU32>>,
    ) -> Result<bool, String> {
        if self.inner.state.lock().epoch(key) != epoch {
            return Ok(false);
        }
        let _turn = self.inner.starting.acquire().await.ok();
        // Counted like a call's cold start: attempts, whether or not the runtime comes up.
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        match self.inner.executor.start(spec, AHEAD_OF_CALLS).await {
            Ok(Started { instance, .. }) => {
                // Initialised and waiting for its first event: it idles (frozen) until then.
                self.inner.executor.idle(&instance, true);
                let now = Instant::now();
                let mut state = self.inner.state.lock();
                if state.epoch(key) != epoch {
                    drop(state);
                    self.inner.executor.stop(instance);
                    drop(slot);
                    return Ok(false);
                }
                // A configuration lowered or removed while this instance started makes it an
                // ordinary idle instance.
                let provisioned = provisioned
                    .filter(|alive| state.still_provisioned(key, alive, true))
                    .map(|alive| {
                        alive.fetch_add(1, Ordering::AcqRel);
                        ProvisionedMark(alive)
                    });
                let expires = match (&provisioned, keep) {
                    (Some(_), _) => now + PROVISIONED_KEEP,
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
                state
                    .idle
                    .entry(key.clone())
                    .or_default()
                    .entry(spec.revision().to_owned())
                    .or_default()
                    .push(pooled);
                Ok(true)
            }
            Err(failure) => {
                let reason = failure.reason();
                tracing::warn!(tenant = %key.tenant, function = %key.function, version = %key.version, "cannot start an instance ahead of calls: {reason}");
                Err(reason)
            }
        }
    }

    /// Starts the provisioned instances that are missing (those not backing off at `now`);
    /// returns the tasks of the starts.
    pub(super) fn fill_provisioned(&self, now: Instant) -> Vec<JoinHandle<()>> {
        type Missing<S> = (PoolKey, Arc<S>, u64, Arc<AtomicU32>, Arc<AtomicU32>);
        let wanted: Vec<Missing<E::Spec>> = {
            let state = self.inner.state.lock();
            let mut out = Vec::new();
            for (key, p) in &state.provisioned {
                if p.retry_at.is_some_and(|at| now < at) {
                    continue;
                }
                let have = p.alive.load(Ordering::Acquire) + p.starting.load(Ordering::Acquire);
                let epoch = state.epoch(key);
                for _ in have..p.requested {
                    // Counted as starting under the lock, so two fills never both start it.
                    p.starting.fetch_add(1, Ordering::AcqRel);
                    out.push((
                        key.clone(),
                        p.spec.clone(),
                        epoch,
                        p.alive.clone(),
                        p.starting.clone(),
                    ));
                }
            }
            out
        };
        let mut tasks = Vec::new();
        let mut wanted = wanted.into_iter();
        while let Some((key, spec, epoch, alive, starting)) = wanted.next() {
            // Provisioned instances may evict idle on-demand ones, like a call would.
            let Ok(slot) = self.reserve(&key, spec.memory_mb()) else {
                starting.fetch_sub(1, Ordering::AcqRel);
                for (_, _, _, _, s) in wanted {
                    s.fetch_sub(1, Ordering::AcqRel);
                }
                break;
            };
            let pool = self.clone();
            tasks.push(tokio::spawn(async move {
                let outcome = pool
                    .start_kept(&key, &spec, epoch, slot, None, Some(alive.clone()))
                    .await;
                starting.fetch_sub(1, Ordering::AcqRel);
                pool.provisioned_outcome(&key, &alive, outcome.err());
            }));
        }
        tasks
    }

    /// Notes how a provisioned start went: a failure backs the next start off (1 s, doubling,
    /// up to a minute), a success clears the failures.
    fn provisioned_outcome(&self, key: &PoolKey, alive: &Arc<AtomicU32>, error: Option<String>) {
        let mut state = self.inner.state.lock();
        let Some(p) = state
            .provisioned
            .get_mut(key)
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

    // ----- room on the node ---------------------------------------------------------------

    /// Reserves a place for a new instance of `key`, stopping idle instances of any key, least
    /// recently used first, while the node is full (by count or by memory).
    fn reserve(&self, key: &PoolKey, memory_mb: u32) -> Result<Slot, String> {
        loop {
            if let Some(slot) = self.free_slot(key, memory_mb) {
                return Ok(slot);
            }
            if !self.evict_one() {
                let max = self.inner.config.max_instances;
                let budget = &self.inner.config.budget;
                let live = self.inner.live.load(Ordering::Acquire);
                return Err(if live >= max {
                    format!("all {max} sandboxes of this node are busy")
                } else {
                    format!(
                        "the node's memory budget is taken: {} of {} MB are reserved by busy or provisioned instances, and this function needs {memory_mb} MB",
                        budget.reserved_mb(),
                        budget.limit_mb(),
                    )
                });
            }
        }
    }

    /// A place for a new instance of `key` if the node has room (an instance and its memory
    /// limit), without evicting anything.
    fn free_slot(&self, key: &PoolKey, memory_mb: u32) -> Option<Slot> {
        let live = &self.inner.live;
        live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < self.inner.config.max_instances).then_some(n + 1)
        })
        .ok()?;
        let Some(memory) = self.inner.config.budget.try_reserve(u64::from(memory_mb)) else {
            live.fetch_sub(1, Ordering::AcqRel);
            return None;
        };
        let function = self
            .inner
            .state
            .lock()
            .live
            .entry(key.function_key())
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
            let mut state = self.inner.state.lock();
            let oldest = state
                .idle
                .iter()
                .flat_map(|(k, revisions)| {
                    revisions.iter().flat_map(move |(r, list)| {
                        list.iter()
                            .enumerate()
                            .filter(|(_, p)| p.provisioned.is_none())
                            .map(move |(i, p)| (p.last_used, k, r, i))
                    })
                })
                .min_by_key(|(t, _, _, _)| *t)
                .map(|(_, k, r, i)| (k.clone(), r.clone(), i));
            oldest.and_then(|(k, r, i)| {
                let list = state.idle.get_mut(&k)?.get_mut(&r)?;
                (i < list.len()).then(|| list.remove(i))
            })
        };
        match victim {
            Some(v) => {
                self.inner.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(idle_for = ?v.last_used.elapsed(), "evicting an idle instance to make room");
                // Stopping it frees its slot and memory.
                self.stop(v);
                true
            }
            None => false,
        }
    }
}
