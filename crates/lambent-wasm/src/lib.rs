//! The WebAssembly executor: the only crate that touches wasmtime.
//!
//! It validates and compiles code at deploy ([`WasmEngine::prepare`]), keeps compiled artifacts in
//! wasmtime's on-disk cache (keyed by the code's hash and the engine's settings, so a restart does
//! not recompile), and runs each invocation in a fresh instance from the pooling allocator, with
//! the function's memory limit, its timeout (epoch interruption plus a wall-clock bound on host
//! waits) and its stdout/stderr captured as logs.
//!
//! Two kinds of code run here: components of the `wasi:http/proxy` world ([`http`]) and WASI
//! preview1 command modules speaking CGI ([`cgi`]). It knows nothing of storage or HTTP routing:
//! callers hand it bytes to prepare and `http::Request`s to serve.

#![forbid(unsafe_code)]

pub mod cgi;
mod engine;
pub mod http;
mod limits;
pub mod pipe;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
pub use lambent_core::InvokeError;
pub use limits::SharedMemory;

pub use engine::{
    CodeError, DEFAULT_MAX_INSTANCES, EPOCH_TICK, EngineError, EngineStats, PreparedCode,
    WasmEngine, WasmEngineConfig,
};

/// An error in a body stream passed between lambent and a guest.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// the body is larger than the payload limit
    #[error("the body is larger than the {limit} byte limit")]
    TooLarge {
        /// the limit in bytes
        limit: usize,
    },
    /// the stream failed
    #[error("{0}")]
    Stream(String),
}

impl From<std::convert::Infallible> for BodyError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// The body of a guest's response, streamed for components, buffered for CGI modules.
pub type ResponseBody = UnsyncBoxBody<Bytes, BodyError>;

/// What one invocation is allowed and given.
#[derive(Debug, Clone)]
pub struct InvokeContext {
    /// Memory limit for all the instance's linear memories together, in bytes.
    pub memory_bytes: usize,
    /// The memory of the instance this call shares with others (per-instance concurrency):
    /// their linear memories together stay within its limit.
    pub shared_memory: Option<Arc<SharedMemory>>,
    /// Wall-clock limit for the whole invocation.
    pub timeout: Duration,
    /// Environment variables for the guest.
    pub environment: Vec<(String, String)>,
    /// The URL prefix the function is served under (CGI's `SCRIPT_NAME`), e.g. `/fn/hello`.
    pub script_name: String,
    /// The caller's address, when known (CGI's `REMOTE_ADDR`).
    pub remote_addr: Option<std::net::SocketAddr>,
}

/// How a finished invocation went: its result and its logs. Delivered when the guest is done,
/// which for a streamed response can be after the response head was sent.
#[derive(Debug)]
pub struct Completion {
    /// Success, or why it failed.
    pub result: Result<(), InvokeError>,
    /// stdout and stderr (CGI: stderr only), cut at the log limit.
    pub logs: String,
    /// Time spent creating the instance.
    pub init: Duration,
}

/// Called once with how an invocation went, when the guest has finished. It runs on the
/// invocation's task: keep it short.
pub type OnComplete = Box<dyn FnOnce(Completion) + Send + 'static>;

/// A started invocation: the response head and body.
#[derive(Debug)]
pub struct Invocation {
    /// The guest's response.
    pub response: ::http::Response<ResponseBody>,
    /// Time to create the instance.
    pub init: Duration,
}

/// An invocation that failed before its response began.
#[derive(Debug)]
pub struct Failure {
    /// Why.
    pub error: InvokeError,
    /// What the guest logged before it failed.
    pub logs: String,
    /// Time spent creating the instance (zero if that failed).
    pub init: Duration,
}

impl WasmEngine {
    /// Serves `req` with a fresh instance of `code`. For a component the response streams while the
    /// guest runs and `on_complete` is called when it is done; a CGI module runs to completion
    /// first. `on_complete` is called only when this returns `Ok`.
    pub async fn invoke<B>(
        &self,
        code: &PreparedCode,
        req: ::http::Request<B>,
        ctx: &InvokeContext,
        on_complete: OnComplete,
    ) -> Result<Invocation, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        match code {
            PreparedCode::Http(pre) => self.invoke_http(pre, req, ctx, on_complete).await,
            PreparedCode::Cgi(pre) => self.invoke_cgi(pre, req, ctx, on_complete).await,
        }
    }
}
