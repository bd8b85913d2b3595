//! The pool against a fake executor: instances are numbers, starts and stops are counted, and
//! starts fail on demand. The reaper is driven by hand with a clock the test moves.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lambent_core::{InvokeError, MemoryBudget, Runtime};
use parking_lot::Mutex;

use super::*;
use crate::keepalive::{KeepAlive, KeepAlivePolicy};

const MINUTE: Duration = Duration::from_secs(60);

/// A test double of a tier.
#[derive(Debug, Default)]
struct Fake {
    next_id: AtomicU64,
    started: AtomicU64,
    /// Starts still to fail.
    failing: AtomicU32,
    /// Ids of the stopped instances, in order.
    stopped: Arc<Mutex<Vec<u64>>>,
}

impl Fake {
    fn fail_next(&self, n: u32) {
        self.failing.store(n, Ordering::Release);
    }

    fn stopped(&self) -> Vec<u64> {
        self.stopped.lock().clone()
    }
}

/// One version's start description; `owner` says whose it is, so a call can check it got an
/// instance of its own key.
#[derive(Debug)]
struct FakeSpec {
    owner: String,
    revision: String,
    memory_mb: u32,
}

impl InstanceSpec for FakeSpec {
    fn revision(&self) -> &str {
        &self.revision
    }

    fn memory_mb(&self) -> u32 {
        self.memory_mb
    }
}

#[derive(Debug)]
struct FakeInstance {
    id: u64,
    owner: String,
    revision: String,
    dead: Arc<AtomicBool>,
    stopped: Arc<Mutex<Vec<u64>>>,
}

impl Drop for FakeInstance {
    fn drop(&mut self) {
        self.stopped.lock().push(self.id);
    }
}

#[derive(Debug)]
struct FakeFailure(InvokeError);

impl ExecutorFailure for FakeFailure {
    fn error(&self) -> &InvokeError {
        &self.0
    }
}

impl Executor for Fake {
    const KEEPS_INSTANCES: bool = true;
    type Code = ();
    type PrepareError = Infallible;
    type Spec = FakeSpec;
    type Instance = FakeInstance;
    /// Whether the call crashes the instance.
    type Input<B: CallBody> = bool;
    /// Who the instance that served the call belongs to: (id, owner, revision).
    type Output = (u64, String, String);
    type Failure = FakeFailure;

    fn prepare(&self, _runtime: Runtime, _code: &[u8]) -> Result<(), Infallible> {
        Ok(())
    }

    async fn start(
        &self,
        spec: &Arc<FakeSpec>,
        _request_id: &str,
    ) -> Result<Started<FakeInstance>, FakeFailure> {
        self.started.fetch_add(1, Ordering::AcqRel);
        let failing = self
            .failing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(FakeFailure(InvokeError::RuntimeExited(
                "failed to initialise: Runtime.ImportModuleError: no module".into(),
            )));
        }
        Ok(Started {
            instance: FakeInstance {
                id: self.next_id.fetch_add(1, Ordering::AcqRel) + 1,
                owner: spec.owner.clone(),
                revision: spec.revision.clone(),
                dead: Arc::default(),
                stopped: self.stopped.clone(),
            },
            init: Duration::from_millis(5),
        })
    }

    async fn invoke<B: CallBody>(
        &self,
        instance: &mut FakeInstance,
        crash: bool,
        _init: Option<Duration>,
    ) -> Result<(u64, String, String), FakeFailure> {
        if crash {
            instance.dead.store(true, Ordering::Release);
            return Err(FakeFailure(InvokeError::RuntimeExited(
                "exited with status 1".into(),
            )));
        }
        Ok((
            instance.id,
            instance.owner.clone(),
            instance.revision.clone(),
        ))
    }

    fn is_dead(&self, instance: &FakeInstance) -> bool {
        instance.dead.load(Ordering::Acquire)
    }
}

type Body = http_body_util::Empty<bytes::Bytes>;

fn pool_with(max: usize, budget_mb: u64, policy: KeepAlivePolicy) -> InstancePool<Fake> {
    InstancePool::new(
        Fake::default(),
        PoolConfig {
            keep_alive: 10 * MINUTE,
            max_instances: max,
            budget: MemoryBudget::new(budget_mb),
            concurrent_starts: 4,
        },
        Arc::new(KeepAlive::new(policy)),
    )
    .without_reaper()
}

fn pool(max: usize) -> InstancePool<Fake> {
    pool_with(max, 1 << 20, KeepAlivePolicy::Fixed(10 * MINUTE))
}

/// A pool whose function `f` has been called every 30 minutes, under the adaptive policy: it
/// is unloaded after a call and loaded again at 27 minutes.
fn adaptive_pool(max: usize) -> InstancePool<Fake> {
    let pool = pool_with(
        max,
        1 << 20,
        KeepAlivePolicy::Adaptive {
            fallback: 10 * MINUTE,
        },
    );
    for _ in 0..20 {
        pool.inner_keep_alive().observe_idle("f", 30 * MINUTE);
    }
    pool
}

fn key(tenant: &str, function: &str, version: &str) -> PoolKey {
    PoolKey::new(tenant, function, version)
}

fn spec(key: &PoolKey, revision: &str) -> Arc<FakeSpec> {
    Arc::new(FakeSpec {
        owner: format!("{}/{}:{}", key.tenant, key.function, key.version),
        revision: revision.into(),
        memory_mb: 128,
    })
}

/// One call of `key` at `spec`: whether it was a cold start, and the instance that served it.
async fn call(pool: &InstancePool<Fake>, key: &PoolKey, spec: &Arc<FakeSpec>) -> (bool, u64) {
    let mut lease = match pool.lease(key, spec, "req").await {
        Ok(l) => l,
        Err(LeaseError::NoRoom(why)) => panic!("no room: {why}"),
        Err(LeaseError::Start(f)) => panic!("start failed: {}", f.reason()),
    };
    let cold = lease.init().is_some();
    let (id, owner, revision) =
        match Executor::invoke::<Body>(pool.executor(), lease.instance(), false, None).await {
            Ok(out) => out,
            Err(f) => panic!("call failed: {}", f.reason()),
        };
    assert_eq!(
        owner, spec.owner,
        "an instance of another key served the call"
    );
    assert_eq!(revision, spec.revision, "an instance of another revision");
    lease.release();
    (cold, id)
}

async fn lease(pool: &InstancePool<Fake>, key: &PoolKey, spec: &Arc<FakeSpec>) -> Lease<Fake> {
    match pool.lease(key, spec, "req").await {
        Ok(l) => l,
        Err(_) => panic!("no instance for {key:?}"),
    }
}

async fn settle(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        t.await.expect("start task");
    }
}

#[tokio::test]
async fn a_warm_instance_serves_again_until_its_keep_alive_expires() {
    let pool = pool(8);
    let k = key("t", "f", "$LATEST");
    let s = spec(&k, "r1");
    let now = Instant::now();
    assert_eq!(call(&pool, &k, &s).await, (true, 1));
    assert_eq!(call(&pool, &k, &s).await, (false, 1), "warm");
    assert_eq!(pool.stats().idle, 1);
    settle(pool.tick(now + 5 * MINUTE)).await;
    assert_eq!(pool.stats().reaped, 0, "within its keep-alive");
    settle(pool.tick(now + 11 * MINUTE)).await;
    let stats = pool.stats();
    assert_eq!((stats.reaped, stats.idle, stats.live), (1, 0, 0));
    assert_eq!(pool.executor().stopped(), vec![1]);
    assert_eq!(call(&pool, &k, &s).await, (true, 2), "cold again");
    assert_eq!(pool.stats().started, 2);
}

#[tokio::test]
async fn a_function_with_a_learnt_idle_time_is_unloaded_and_prewarmed() {
    let pool = adaptive_pool(8);
    let k = key("t", "f", "1");
    let s = spec(&k, "r1");
    let now = Instant::now();
    assert_eq!(call(&pool, &k, &s).await, (true, 1));
    assert_eq!(
        pool.executor().stopped(),
        vec![1],
        "unloaded after its call"
    );
    assert_eq!(pool.stats().live, 0);
    settle(pool.tick(now + 20 * MINUTE)).await;
    assert_eq!(pool.stats().prewarmed, 0, "not due yet");
    settle(pool.tick(now + 28 * MINUTE)).await;
    let stats = pool.stats();
    assert_eq!((stats.prewarmed, stats.started, stats.idle), (1, 2, 1));
    let (cold, id) = call(&pool, &k, &s).await;
    assert!(!cold, "the pre-warmed instance serves the call");
    assert_eq!(id, 2);
}

#[tokio::test]
async fn a_prewarm_never_evicts() {
    let pool = adaptive_pool(1);
    let (kf, kg) = (key("t", "f", "1"), key("t", "g", "1"));
    pool.inner_keep_alive()
        .set_policy("g", Some(KeepAlivePolicy::Fixed(60 * MINUTE)));
    let now = Instant::now();
    call(&pool, &kf, &spec(&kf, "r")).await;
    // g's idle instance takes the only place.
    call(&pool, &kg, &spec(&kg, "r")).await;
    settle(pool.tick(now + 28 * MINUTE)).await;
    let stats = pool.stats();
    assert_eq!((stats.prewarmed, stats.evicted, stats.idle), (0, 0, 1));
}

#[tokio::test]
async fn provisioned_instances_fill_refill_and_report_failure_after_three_in_a_row() {
    let pool = pool(8);
    let k = key("t", "f", "3");
    let s = spec(&k, "r1");
    let now = Instant::now();
    pool.executor().fail_next(u32::MAX);
    pool.configure_provisioned(&k, s.clone(), 2);
    settle(pool.fill_provisioned(now)).await;
    let status = pool.provisioned_status(&k).expect("configured");
    assert_eq!((status.requested, status.allocated), (2, 0));
    assert_eq!(
        status.failure, None,
        "two failures are not yet a failed configuration"
    );
    // Backing off: no start before the retry time.
    settle(pool.fill_provisioned(now)).await;
    assert_eq!(pool.executor().started.load(Ordering::Acquire), 2);
    settle(pool.fill_provisioned(now + 2 * MINUTE)).await;
    let status = pool.provisioned_status(&k).expect("configured");
    // Four failures in a row, PROVISIONED_FAILURES of them or more.
    assert_eq!(
        status.failure.as_deref(),
        Some("the function's runtime failed to initialise: Runtime.ImportModuleError: no module")
    );
    // It keeps retrying; once starts succeed the configuration is complete.
    pool.executor().fail_next(0);
    settle(pool.fill_provisioned(now + 10 * MINUTE)).await;
    let status = pool.provisioned_status(&k).expect("configured");
    assert_eq!((status.allocated, status.failure), (2, None));
    // Never reaped, however long they idle.
    settle(pool.tick(now + 24 * 60 * MINUTE)).await;
    assert_eq!(pool.stats().idle, 2);
    // A call takes a provisioned instance (no cold start); one that crashes is replaced.
    let mut lease = lease(&pool, &k, &s).await;
    assert!(lease.init().is_none(), "provisioned instances serve first");
    let crashed = Executor::invoke::<Body>(pool.executor(), lease.instance(), true, None).await;
    assert!(crashed.is_err());
    drop(lease);
    assert_eq!(pool.provisioned_status(&k).map(|s| s.allocated), Some(1));
    settle(pool.fill_provisioned(now + 10 * MINUTE)).await;
    assert_eq!(pool.provisioned_status(&k).map(|s| s.allocated), Some(2));
    // Lowered to 1: the extra one becomes ordinary and goes at the next tick.
    pool.configure_provisioned(&k, s.clone(), 1);
    settle(pool.tick(Instant::now())).await;
    assert_eq!(pool.stats().idle, 1);
    assert_eq!(pool.provisioned_status(&k).map(|s| s.allocated), Some(1));
    pool.forget_provisioned("t", "f");
    assert_eq!(pool.provisioned_status(&k), None);
    assert_eq!(pool.stats().live, 0);
}

#[tokio::test]
async fn a_new_instance_evicts_the_least_recently_used_idle_one_never_a_provisioned_one() {
    let pool = pool(3);
    let keys: Vec<PoolKey> = ["a", "b", "c", "d"]
        .iter()
        .map(|f| key("t", f, "1"))
        .collect();
    let specs: Vec<_> = keys.iter().map(|k| spec(k, "r")).collect();
    let now = Instant::now();
    // c is provisioned; a and b idle on demand, a the least recently used.
    pool.configure_provisioned(&keys[2], specs[2].clone(), 1);
    settle(pool.fill_provisioned(now)).await;
    let (_, a) = call(&pool, &keys[0], &specs[0]).await;
    let (_, b) = call(&pool, &keys[1], &specs[1]).await;
    assert_eq!(pool.stats().live, 3);
    // d needs a place: a goes.
    call(&pool, &keys[3], &specs[3]).await;
    assert_eq!(pool.executor().stopped(), vec![a]);
    assert_eq!(pool.stats().evicted, 1);
    assert_eq!(
        call(&pool, &keys[1], &specs[1]).await,
        (false, b),
        "b stayed"
    );
    // a again: d is now the least recently used (b was just used).
    call(&pool, &keys[0], &specs[0]).await;
    assert_eq!(pool.executor().stopped().len(), 2);
    assert_eq!(
        pool.provisioned_status(&keys[2]).map(|s| s.allocated),
        Some(1)
    );
    // Every idle instance busy or provisioned: no room.
    let _busy_a = lease(&pool, &keys[0], &specs[0]).await;
    let _busy_b = lease(&pool, &keys[1], &specs[1]).await;
    match pool.lease(&keys[3], &specs[3], "x").await {
        Err(LeaseError::NoRoom(why)) => assert!(why.contains("all 3 sandboxes"), "{why}"),
        _ => panic!("a provisioned instance was evicted"),
    }
}

#[tokio::test]
async fn the_memory_budget_evicts_too_and_another_tier_can_ask_for_room() {
    let pool = pool_with(16, 256, KeepAlivePolicy::Fixed(10 * MINUTE));
    let (ka, kb, kc) = (key("t", "a", "1"), key("t", "b", "1"), key("t", "c", "1"));
    call(&pool, &ka, &spec(&ka, "r")).await;
    call(&pool, &kb, &spec(&kb, "r")).await;
    // 256 MB hold two 128 MB instances: c evicts a.
    call(&pool, &kc, &spec(&kc, "r")).await;
    assert_eq!(pool.executor().stopped(), vec![1]);
    // A wasm call needs 200 MB: both idle instances go, oldest first.
    assert!(pool.evict_idle_for(200));
    assert_eq!(pool.executor().stopped(), vec![1, 2, 3]);
    assert!(
        !pool.evict_idle_for(300),
        "over the budget whatever is evicted"
    );
}

#[tokio::test]
async fn retiring_a_version_stops_its_idle_instances_and_its_busy_ones_when_they_finish() {
    let pool = pool(8);
    let k = key("t", "f", "$LATEST");
    let other = key("t", "f", "1");
    let s1 = spec(&k, "r1");
    call(&pool, &k, &s1).await;
    call(&pool, &other, &spec(&other, "r")).await;
    let mut busy = lease(&pool, &k, &s1).await;
    assert!(busy.init().is_none(), "the idle instance");
    call(&pool, &k, &s1).await; // a second instance, idle
    // The code of $LATEST changes.
    pool.retire("t", "f", Some("$LATEST"));
    assert_eq!(pool.executor().stopped(), vec![3], "the idle one stops now");
    let _ = Executor::invoke::<Body>(pool.executor(), busy.instance(), false, None).await;
    busy.release();
    assert_eq!(
        pool.executor().stopped(),
        vec![3, 1],
        "the busy one when it finishes"
    );
    // The new revision starts afresh; version 1 is untouched.
    let s2 = spec(&k, "r2");
    assert_eq!(call(&pool, &k, &s2).await, (true, 4));
    assert_eq!(call(&pool, &other, &spec(&other, "r")).await, (false, 2));
    // Deleting the function retires every version.
    pool.retire("t", "f", None);
    assert_eq!(pool.stats().live, 0);
}

#[tokio::test]
async fn an_instance_serves_only_its_own_tenant_function_version_and_revision() {
    let pool = pool(16);
    let keys = [
        key("t1", "f", "1"),
        key("t2", "f", "1"),
        key("t1", "g", "1"),
        key("t1", "f", "2"),
    ];
    let mut ids = Vec::new();
    for k in &keys {
        let (cold, id) = call(&pool, k, &spec(k, "r")).await;
        assert!(cold, "{k:?} found another key's instance");
        ids.push(id);
    }
    // Another revision of the same key does not reuse it either.
    assert!(call(&pool, &keys[0], &spec(&keys[0], "r-new")).await.0);
    for (k, id) in keys.iter().zip(ids) {
        assert_eq!(call(&pool, k, &spec(k, "r")).await, (false, id));
    }
    let mut by_function: Vec<(String, u32, u32)> = pool
        .instances_by_function()
        .into_iter()
        .map(|(f, n)| (f, n.live, n.idle))
        .collect();
    by_function.sort();
    let expected = [("f", 1, 1), ("f", 3, 3), ("g", 1, 1)].map(|(f, l, i)| (f.to_owned(), l, i));
    assert_eq!(by_function, expected, "per tenant's function");
}

#[tokio::test]
async fn a_failed_call_stops_its_instance_and_a_failed_start_is_typed() {
    let pool = pool(8);
    let k = key("t", "f", "1");
    let s = spec(&k, "r");
    let mut lease = lease(&pool, &k, &s).await;
    let crashed = Executor::invoke::<Body>(pool.executor(), lease.instance(), true, None).await;
    assert!(matches!(
        crashed.map_err(|f| f.0),
        Err(InvokeError::RuntimeExited(_))
    ));
    drop(lease);
    assert_eq!(pool.executor().stopped(), vec![1]);
    assert_eq!(pool.stats().live, 0);
    pool.executor().fail_next(1);
    match pool.lease(&k, &s, "req").await {
        Err(LeaseError::Start(f)) => {
            assert!(matches!(f.error(), InvokeError::RuntimeExited(_)));
        }
        _ => panic!("the start should have failed"),
    }
    assert_eq!(pool.stats().live, 0, "a failed start gives its place back");
}

#[tokio::test]
async fn shutdown_stops_idle_instances_and_keeps_nothing_more() {
    let pool = pool(8);
    let (ka, kb) = (key("t", "a", "1"), key("t", "b", "1"));
    let (sa, sb) = (spec(&ka, "r"), spec(&kb, "r"));
    call(&pool, &ka, &sa).await;
    pool.configure_provisioned(&kb, sb.clone(), 1);
    settle(pool.fill_provisioned(Instant::now())).await;
    let mut busy = lease(&pool, &ka, &sa).await;
    call(&pool, &ka, &sa).await;
    assert_eq!(pool.stats().live, 3);
    pool.shutdown();
    assert_eq!(pool.stats().idle, 0);
    assert_eq!(pool.stats().live, 1, "the busy one runs on");
    let _ = Executor::invoke::<Body>(pool.executor(), busy.instance(), false, None).await;
    busy.release();
    assert_eq!(pool.stats().live, 0, "and stops when its call ends");
    assert_eq!(pool.provisioned_status(&kb), None);
    settle(pool.fill_provisioned(Instant::now())).await;
    assert_eq!(pool.stats().live, 0, "nothing is provisioned any more");
}
