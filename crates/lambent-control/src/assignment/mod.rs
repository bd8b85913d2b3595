//! Assignment: which instance serves a call, and the life of instances around calls.
//!
//! Two parts:
//!
//! - [`Executor`] is the seam to an isolation tier: `prepare` (check and ready code at
//!   deploy), `start` (one instance of a version, ready for its first call), `invoke` (one call
//!   on it) and `stop`, with typed failures ([`ExecutorFailure`]: the [`lambent_core::InvokeError`]s
//!   `Timeout`, `OutOfMemory`/`OutOfMemoryKilled`, `RuntimeExited` (crashed), `Trap`, and init
//!   failures carried with the function's own error). lambent-sandbox's `ProcessExecutor` and
//!   the wasm engine ([`wasm`]) implement it; a gVisor or microVM tier is one more
//!   implementation, not another pool.
//! - [`InstancePool`] is one generic pool for every tier that keeps instances warm, keyed per
//!   (tenant, function, version) ([`PoolKey`]; the tenant is `DEFAULT_TENANT` until tenants
//!   come, but it is part of the key) and, inside a key, per revision: an instance of one key
//!   or revision is never handed to a call of another.
//!
//! # Where the trait lives, and why
//!
//! Here, in lambent-control, with the two implementations as thin adapters ([`process`],
//! [`wasm`]) over each executor crate's own API. The pool is the trait's only consumer, and the
//! trait's types (the spec a tier starts from, its instance, its input) are the tier's own, so
//! the executor crates stay free of pool concepts and of each other (lambent-sandbox does not
//! learn of wasm's `PreparedCode`, nor lambent-wasm of sandboxes); lambent-core stays without
//! futures. A new tier is a new crate plus one adapter file here.
//!
//! # The policies (as they were, and as the pool keeps them)
//!
//! Before this module the process tier's policies lived in lambent-sandbox's `ProcessExecutor`
//! (its `Pools`, `Pooled`, `Slot`, `Provisioned`, `take_idle`, `reserve`, `put_back`,
//! `prewarm`, `free_slot`, `evict_one`, `evict_idle_for`, `set_provisioned`,
//! `fill_provisioned`, `KeepAliveAdvisor`, `instances_by_function`, the reaper), and the wasm
//! tier's equivalents in lambent-control (`instances.rs`, now [`shared`]; `provisioned.rs`;
//! `keepalive.rs`; the invoke path in `platform.rs`). The pool keeps each one unchanged:
//!
//! - **Leasing** (process tier): a call takes an idle instance of its exact version and
//!   revision, provisioned instances first, then the most recently used; dead ones found on the
//!   way are stopped. None idle: a new one is started for the call (a cold start, its `init`
//!   reported). One call at a time per instance, as on Lambda. After a call that ran (the
//!   function may have answered with its own error) the instance goes back; after a failure
//!   (timeout, crash, out of memory) or when the caller went away it is stopped.
//! - **Keep-alive, fixed**: an instance idles for the function's keep-alive (the platform's
//!   `--keep-alive`, 600 s by default, or the function's own `fixed:SECONDS`) after its last
//!   call, then the reaper stops it (`reaped`). The reaper ticks every quarter of the platform's
//!   keep-alive, between 100 ms and 1 s.
//! - **Keep-alive, adaptive** ([`crate::keepalive`], Azure's hybrid histogram): each call
//!   reports the function's idle time since its last call ended; once the histogram is
//!   representative, the windows say "unload now, start again after `prewarm`, keep for
//!   `keep_alive`". With a non-zero pre-warm window the instance is stopped when its call ends
//!   (its memory freed) and a **pre-warm** is scheduled (at most one per version and revision;
//!   a call of that version cancels it). When due, the reaper starts it only into free room
//!   (a pre-warm never evicts), keeps it for the keep-alive window, counted in `prewarmed`.
//! - **Provisioned concurrency**: `set_provisioned(key, spec, n)` keeps `n` instances started
//!   ahead of calls, never reaped; missing ones are started at once and at every reaper tick,
//!   and may evict idle on-demand instances as a call would. A start that fails backs off
//!   (1 s, doubling, up to 60 s); after [`PROVISIONED_FAILURES`] failures in a row the status
//!   reports the last reason (Lambda's `FAILED`), and it keeps retrying. A new revision starts
//!   the count afresh. Lowering the number turns the extra idle instances into ordinary ones
//!   that expire at the next tick; a configuration lowered while an instance starts or runs
//!   turns that instance into an ordinary one. The wasm tier keeps no instances
//!   ([`Executor::KEEPS_INSTANCES`] is false): its configuration is ready at once.
//! - **Eviction**: the node has a limit of instances (`--max-sandboxes`) and a memory budget
//!   shared by every tier (`--memory-budget-mb`; each instance reserves its memory limit for its
//!   life, each wasm call or shared wasm instance while it runs). A new instance that finds no
//!   room stops idle instances of any key, least recently used first, never provisioned ones,
//!   until it fits (`evicted`); a wasm call short of memory asks the same of the pool
//!   ([`InstancePool::evict_idle_for`]). No room even so: the call is refused as `Capacity`
//!   (a throttle, not billed).
//! - **Retire**: when a version's code or configuration changes (or the function is deleted),
//!   its idle instances are stopped and its epoch bumped: busy ones stop when their call ends
//!   instead of going back, and starts under way are not kept. The epoch is per function (high
//!   half) and per version (low half). Retiring one version also drops its provisioned
//!   configuration in the pool (only `$LATEST` is retired alone, on every change of its code or
//!   configuration, and `$LATEST` takes no provisioned concurrency); deleting a function forgets
//!   its provisioned instances and idle history.
//! - **Drain**: at shutdown the pool stops every idle instance and keeps nothing more (the
//!   reaper ends). A call that outlasts the shutdown stops its instance when it ends (before
//!   the pool, the process executor put it back into an idle list that nothing read any more,
//!   so that sandbox lived until the process exited). The process executor then waits for the
//!   sandboxes' cgroups to go (`ProcessExecutor::drained`).
//! - **Stats**: `started` (every start, a call's or ahead of calls, counted when it gets its
//!   turn among the [`PoolConfig::concurrent_starts`]), `reaped`, `prewarmed`, `evicted`, and
//!   the instances `live` and `idle`, in total and per function.
//!
//! # Wasm: why its cheap path has no pool
//!
//! A wasm call instantiates a fresh store from code compiled at deploy, with the pooling
//! allocator, in microseconds; there is no instance worth keeping between calls, so the wasm
//! tier declares `KEEPS_INSTANCES = false` and its "instance" is the prepared code. Its call
//! goes from the invocation path straight to [`Executor::invoke`] on [`wasm::WasmExecutor`]
//! (static dispatch, no box, no lock, no task, no allocation beyond what the engine did before).
//! What wasm does share with the pool is the node's memory budget (and its eviction of idle
//! sandboxes) and, for functions with per-instance concurrency above 1, the [`shared`] instances
//! that several calls use at once: those are admission units (a permit and a memory
//! reservation that the last call out gives back), not warm instances, and stay on the call's
//! path as they were.

pub(crate) mod executor;
mod pool;
pub(crate) mod process;
pub(crate) mod shared;
pub(crate) mod wasm;

pub use executor::{CallBody, Executor, ExecutorFailure, InstanceSpec, Started};
pub use pool::{
    DEFAULT_KEEP_ALIVE, FunctionInstances, InstancePool, Lease, LeaseError, PROVISIONED_FAILURES,
    PoolConfig, PoolKey, PoolStats, ProvisionedStatus, concurrent_starts,
};

#[cfg(test)]
mod tests;
