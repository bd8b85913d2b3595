//! The executor seam: what the instance pool and the invocation path need of a tier, and
//! nothing more (prepare, start, invoke, stop).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use lambent_core::{InvokeError, Runtime};
use lambent_wasm::BodyError;

/// A request body a call may carry (wasi:http streams it to the guest; the process tier reads
/// it as the event before it takes an instance).
pub trait CallBody:
    http_body::Body<Data = Bytes, Error: Into<BodyError>> + Send + Unpin + 'static
{
}

impl<B> CallBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BodyError>> + Send + Unpin + 'static
{
}

/// A typed failure of an executor: why an instance did not start or a call did not answer,
/// as one of the [`InvokeError`]s the scheduler branches on (`Timeout`, `OutOfMemory`,
/// `OutOfMemoryKilled`, `RuntimeExited` for a crash, `Trap`, ...).
pub trait ExecutorFailure: Send + 'static {
    /// The typed error.
    fn error(&self) -> &InvokeError;
    /// One line for an operator (a provisioned configuration's status reason): the function's
    /// own init error when it raised one, else the typed error.
    fn reason(&self) -> String {
        self.error().to_string()
    }
}

/// What the pool needs to know of a version to hold its instances: which code and
/// configuration they run (instances of another revision are never reused), and the memory
/// each one reserves from the node's budget.
pub trait InstanceSpec: Send + Sync + 'static {
    /// Changes whenever the version's code or configuration changes.
    fn revision(&self) -> &str;
    /// The memory limit of one instance, in MB.
    fn memory_mb(&self) -> u32;
}

/// A started instance, and how long its start took (its `init`).
#[derive(Debug)]
pub struct Started<I> {
    /// The instance, ready for its first call.
    pub instance: I,
    /// Time from asking for it to its runtime being ready.
    pub init: Duration,
}

/// One isolation tier (wasm, process; later gVisor or a microVM): the four operations the
/// platform needs of it. Everything else (which instances to keep warm and for how long,
/// pre-warming, provisioned concurrency, eviction, retiring, draining) is the tier-independent
/// [`super::InstancePool`]'s.
///
/// The trait is used with static dispatch only (`InstancePool<E>` and direct calls), so a call
/// through it costs what a call of the tier's own method costs: no box, no lock, no task.
pub trait Executor: Send + Sync + 'static {
    /// Whether an instance outlives a call and is worth keeping warm. A tier that instantiates
    /// per call from its prepared code (wasm: microseconds, from a pooling allocator) says
    /// `false`: it gets no pool, its "instance" is the prepared code, and provisioned
    /// concurrency on it is ready at once.
    const KEEPS_INSTANCES: bool;
    /// Code checked and made ready at deploy (compiled wasm, an unpacked package).
    type Code: Clone + Send + Sync + 'static;
    /// Why code was refused at deploy.
    type PrepareError;
    /// What one instance of a version is started from.
    type Spec: Send + Sync + 'static;
    /// A started instance.
    type Instance: Send + 'static;
    /// One call's input; `B` is the body type of a call that carries an HTTP request.
    type Input<B: CallBody>: Send;
    /// What a call that ran gives back.
    type Output: Send;
    /// Why a start or a call failed.
    type Failure: ExecutorFailure;

    /// Checks and prepares uploaded code for `runtime` (blocking: run it off the async
    /// threads).
    fn prepare(&self, runtime: Runtime, code: &[u8]) -> Result<Self::Code, Self::PrepareError>;

    /// Starts an instance of `spec` and waits until it is ready for its first call.
    /// `request_id` names the call it starts for (`ahead-of-calls` when none) in its log.
    fn start(
        &self,
        spec: &Arc<Self::Spec>,
        request_id: &str,
    ) -> impl Future<Output = Result<Started<Self::Instance>, Self::Failure>> + Send;

    /// Runs one call on `instance`. `init` is set when the instance was started for this call
    /// (a cold start) and says how long that took. After a failure the instance is stopped,
    /// not reused.
    fn invoke<B: CallBody>(
        &self,
        instance: &mut Self::Instance,
        input: Self::Input<B>,
        init: Option<Duration>,
    ) -> impl Future<Output = Result<Self::Output, Self::Failure>> + Send;

    /// Stops an instance (dropping it must stop it too; this is where a tier that needs more
    /// says so).
    fn stop(&self, instance: Self::Instance) {
        drop(instance);
    }

    /// Whether an idle instance died on its own (it is never handed to a call).
    fn is_dead(&self, _instance: &Self::Instance) -> bool {
        false
    }

    /// An instance goes idle (into the pool): right after its start when `just_started`, else
    /// after a call. The process tier freezes it.
    fn idle(&self, _instance: &Self::Instance, _just_started: bool) {}
}
