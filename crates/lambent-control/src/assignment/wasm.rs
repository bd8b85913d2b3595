//! The wasm tier behind the executor seam. It keeps no instances: every call gets a fresh
//! store from the pooling allocator (microseconds), so its "instance" is the prepared code and
//! a call goes from the invocation path straight to [`WasmEngine::invoke`], with no pool, lock
//! or allocation in between.

use std::sync::Arc;
use std::time::Duration;

use lambent_core::{InvokeError, Runtime};
use lambent_wasm::{
    CodeError, Failure, Invocation, InvokeContext, OnComplete, PreparedCode, WasmEngine,
};

use super::executor::{CallBody, Executor, ExecutorFailure, Started};

/// The wasm executor: the node's [`WasmEngine`].
#[derive(Debug, Clone)]
pub(crate) struct WasmExecutor {
    engine: Arc<WasmEngine>,
}

impl WasmExecutor {
    pub(crate) fn new(engine: WasmEngine) -> Self {
        Self {
            engine: Arc::new(engine),
        }
    }

    /// The engine (its counters, runtime detection).
    pub(crate) fn engine(&self) -> &WasmEngine {
        &self.engine
    }
}

/// One wasm call: the request, what it may use, and what to run when the guest is done.
pub(crate) struct WasmCall<B> {
    pub(crate) request: http::Request<B>,
    pub(crate) ctx: InvokeContext,
    pub(crate) on_complete: OnComplete,
}

impl ExecutorFailure for Failure {
    fn error(&self) -> &InvokeError {
        &self.error
    }
}

impl Executor for WasmExecutor {
    const KEEPS_INSTANCES: bool = false;
    type Code = PreparedCode;
    type PrepareError = CodeError;
    type Spec = PreparedCode;
    type Instance = PreparedCode;
    type Input<B: CallBody> = WasmCall<B>;
    type Output = Invocation;
    type Failure = Failure;

    fn prepare(&self, runtime: Runtime, code: &[u8]) -> Result<PreparedCode, CodeError> {
        self.engine.prepare(runtime, code)
    }

    /// The prepared code is the instance: nothing starts.
    async fn start(
        &self,
        spec: &Arc<PreparedCode>,
        _request_id: &str,
    ) -> Result<Started<PreparedCode>, Failure> {
        Ok(Started {
            instance: (**spec).clone(),
            init: Duration::ZERO,
        })
    }

    fn invoke<B: CallBody>(
        &self,
        instance: &mut PreparedCode,
        input: WasmCall<B>,
        _init: Option<Duration>,
    ) -> impl Future<Output = Result<Invocation, Failure>> + Send {
        let WasmCall {
            request,
            ctx,
            on_complete,
        } = input;
        let engine = &self.engine;
        async move { engine.invoke(instance, request, &ctx, on_complete).await }
    }
}
