//! The process tier behind the executor seam: [`ProcessExecutor`] (lambent-sandbox) starts,
//! runs and stops one sandbox; the pool keeps them.

use std::sync::Arc;
use std::time::Duration;

use lambent_core::{InvokeError, Runtime};
use lambent_sandbox::{
    FunctionSpec, InvokeFailure, InvokeInput, InvokeOutput, PackageError, ProcessExecutor,
    SandboxInstance,
};

use super::executor::{CallBody, Executor, ExecutorFailure, InstanceSpec, Started};

impl InstanceSpec for FunctionSpec {
    fn revision(&self) -> &str {
        &self.revision
    }

    fn memory_mb(&self) -> u32 {
        self.memory_mb
    }
}

impl ExecutorFailure for InvokeFailure {
    fn error(&self) -> &InvokeError {
        &self.error
    }

    fn reason(&self) -> String {
        self.to_string()
    }
}

impl Executor for ProcessExecutor {
    const KEEPS_INSTANCES: bool = true;
    type Code = std::path::PathBuf;
    type PrepareError = PackageError;
    type Spec = FunctionSpec;
    type Instance = SandboxInstance;
    /// The event, read from the request before an instance is taken.
    type Input<B: CallBody> = InvokeInput;
    type Output = InvokeOutput;
    type Failure = InvokeFailure;

    fn prepare(&self, _runtime: Runtime, code: &[u8]) -> Result<Self::Code, PackageError> {
        lambent_sandbox::package::inspect(code)?;
        let sha = lambent_store::code::sha256_hex(code);
        self.unpack(&sha, code)
    }

    async fn start(
        &self,
        spec: &Arc<FunctionSpec>,
        request_id: &str,
    ) -> Result<Started<SandboxInstance>, InvokeFailure> {
        let (instance, init) = ProcessExecutor::start(self, spec, request_id).await?;
        Ok(Started { instance, init })
    }

    async fn invoke<B: CallBody>(
        &self,
        instance: &mut SandboxInstance,
        input: InvokeInput,
        init: Option<Duration>,
    ) -> Result<InvokeOutput, InvokeFailure> {
        ProcessExecutor::invoke(self, instance, &input, init).await
    }

    fn is_dead(&self, instance: &SandboxInstance) -> bool {
        instance.is_dead()
    }

    fn idle(&self, instance: &SandboxInstance, just_started: bool) {
        ProcessExecutor::idle(self, instance, just_started);
    }
}
