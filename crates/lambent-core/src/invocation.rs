//! The record of one invocation: what ran, how long, how it ended, and what it logged.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an invocation ended, as a stable string for the API and storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationOutcome {
    /// The function returned a response.
    Success,
    /// The function ran past its timeout and was stopped.
    Timeout,
    /// The function needed more memory than its setting allows.
    OutOfMemory,
    /// The function trapped (a WebAssembly trap such as `unreachable`).
    Trap,
    /// The function exited or failed without a valid response.
    Crashed,
    /// The function raised an error and reported it (a handled error of a process runtime).
    FunctionError,
    /// The platform could not run the function (no capacity, storage failure).
    PlatformError,
    /// The caller went away before the function answered; its instance was stopped.
    Abandoned,
}

impl InvocationOutcome {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            InvocationOutcome::Success => "success",
            InvocationOutcome::Timeout => "timeout",
            InvocationOutcome::OutOfMemory => "out_of_memory",
            InvocationOutcome::Trap => "trap",
            InvocationOutcome::Crashed => "crashed",
            InvocationOutcome::FunctionError => "function_error",
            InvocationOutcome::PlatformError => "platform_error",
            InvocationOutcome::Abandoned => "abandoned",
        }
    }

    /// Parses the stable string form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            InvocationOutcome::Success,
            InvocationOutcome::Timeout,
            InvocationOutcome::OutOfMemory,
            InvocationOutcome::Trap,
            InvocationOutcome::Crashed,
            InvocationOutcome::FunctionError,
            InvocationOutcome::PlatformError,
            InvocationOutcome::Abandoned,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One finished invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// Unique id, also returned to the caller in `x-lambent-invocation-id`.
    pub id: String,
    /// The function's name.
    pub function: String,
    /// The version that ran (`$LATEST` or a number).
    pub version: String,
    /// Start, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Wall time from start to the end of the response, in milliseconds.
    pub duration_ms: f64,
    /// Time spent making the instance ready, in milliseconds.
    pub init_ms: f64,
    /// Whether the code had to be loaded for this call.
    pub cold_start: bool,
    /// How it ended.
    pub outcome: InvocationOutcome,
    /// The tenant billed for it.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The function's memory setting, in MB.
    #[serde(default)]
    pub memory_mb: u32,
    /// The duration billed: `duration_ms` rounded up to the next millisecond.
    #[serde(default)]
    pub billed_ms: u64,
    /// `memory_mb / 1024 * billed_ms / 1000`.
    #[serde(default)]
    pub gb_seconds: f64,
    /// The error message when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the function wrote to stdout and stderr (CGI: stderr only), cut at
    /// [`crate::limits::MAX_LOG_BYTES_PER_INVOCATION`].
    pub logs: String,
}

/// The tenant of calls made before tenants exist, and of the admin.
pub const DEFAULT_TENANT: &str = "default";

fn default_tenant() -> String {
    DEFAULT_TENANT.to_owned()
}

/// The billed duration of a call that took `duration_ms`: rounded up to the millisecond, at
/// least 1 ms (Lambda's rule since December 2020).
pub fn billed_ms(duration_ms: f64) -> u64 {
    if duration_ms.is_finite() && duration_ms > 0.0 {
        // A duration in milliseconds fits u64 by many orders of magnitude.
        (duration_ms.ceil() as u64).max(1)
    } else {
        1
    }
}

/// GB-seconds of a call of `billed_ms` with `memory_mb` of memory (1 GB = 1024 MB, as Lambda
/// bills).
pub fn gb_seconds(memory_mb: u32, billed_ms: u64) -> f64 {
    f64::from(memory_mb) / 1024.0 * billed_ms as f64 / 1000.0
}

/// Metered totals over some calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSums {
    /// Calls that ran.
    pub invocations: u64,
    /// Of those, calls that ended in an error.
    pub errors: u64,
    /// Calls refused by a concurrency limit (not billed).
    pub throttles: u64,
    /// Calls that started a new instance.
    pub cold_starts: u64,
    /// Wall time of the calls, in ms.
    pub duration_ms: f64,
    /// Billed time, in ms.
    pub billed_ms: u64,
    /// GB-seconds.
    pub gb_seconds: f64,
    /// Time spent starting instances, in ms.
    pub init_ms: f64,
}

impl UsageSums {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &UsageSums) {
        self.invocations += other.invocations;
        self.errors += other.errors;
        self.throttles += other.throttles;
        self.cold_starts += other.cold_starts;
        self.duration_ms += other.duration_ms;
        self.billed_ms += other.billed_ms;
        self.gb_seconds += other.gb_seconds;
        self.init_ms += other.init_ms;
    }
}

/// Usage of one function version by one tenant in one minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Start of the minute, in ms since the Unix epoch.
    pub minute_ms: i64,
    /// The tenant.
    pub tenant: String,
    /// The function.
    pub function: String,
    /// The version.
    pub version: String,
    /// The totals.
    pub sums: UsageSums,
}

/// Why an invocation failed. The scheduler branches on these: a timeout or a trap is the
/// function's fault, `Capacity` is the platform's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InvokeError {
    /// the function ran past its timeout
    #[error("function timed out after {:.3} s", timeout.as_secs_f64())]
    Timeout {
        /// the timeout that was exceeded
        timeout: Duration,
    },
    /// the function tried to use more memory than its setting
    #[error(
        "function ran out of memory: it tried to grow to {wanted_mb} MB, over its {limit_mb} MB limit"
    )]
    OutOfMemory {
        /// the limit in MB
        limit_mb: u64,
        /// what it asked for in MB
        wanted_mb: u64,
    },
    /// a process-tier function was killed by the kernel at its memory limit
    #[error("function ran out of memory: the kernel stopped it at its {limit_mb} MB limit")]
    OutOfMemoryKilled {
        /// the limit in MB
        limit_mb: u64,
    },
    /// the guest trapped
    #[error("function trapped: {0}")]
    Trap(String),
    /// the CGI module exited with a non-zero status
    #[error("function exited with status {0}")]
    Exited(i32),
    /// the guest returned without sending a response
    #[error("function returned without sending a response")]
    NoResponse,
    /// the guest answered with a wasi:http error code instead of a response
    #[error("function answered with an error: {0}")]
    GuestError(String),
    /// the CGI module's output is not a CGI response
    #[error("function wrote an invalid CGI response: {0}")]
    BadCgiResponse(String),
    /// the response is over the size limit
    #[error("function response is larger than the {limit} byte limit")]
    ResponseTooLarge {
        /// the limit in bytes
        limit: usize,
    },
    /// the request could not be handed to the guest
    #[error("request cannot be passed to the function: {0}")]
    BadRequest(String),
    /// the request body was larger than the payload limit
    #[error("request body is larger than the {limit} byte limit")]
    PayloadTooLarge {
        /// the limit in bytes
        limit: usize,
    },
    /// no instance slot is free
    #[error("no capacity to start another instance: {0}")]
    Capacity(String),
    /// instantiation failed for another reason
    #[error("function could not be instantiated: {0}")]
    Instantiate(String),
    /// a process-tier function's runtime exited or broke the Runtime API's rules
    #[error("the function's runtime {0}")]
    RuntimeExited(String),
    /// the sandbox could not be built (the platform's fault, not the function's)
    #[error("the sandbox could not be started: {0}")]
    Sandbox(String),
    /// a concurrency limit is reached
    #[error("{0}")]
    Throttled(Throttle),
}

/// Which concurrency limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttle {
    /// the function's reserved concurrency
    #[error(
        "rate exceeded: the function's reserved concurrency of {limit} is in use; retry later or raise it"
    )]
    Reserved {
        /// the reservation
        limit: u32,
    },
    /// the concurrency left to functions without a reservation
    #[error(
        "rate exceeded: the {limit} concurrent executions left unreserved in this account are in use; retry later"
    )]
    Account {
        /// the unreserved pool's size
        limit: u32,
    },
}

impl Throttle {
    /// Lambda's `Reason` for the throttle.
    pub fn reason(self) -> &'static str {
        match self {
            Throttle::Reserved { .. } => "ReservedFunctionConcurrentInvocationLimitExceeded",
            Throttle::Account { .. } => "ConcurrentInvocationLimitExceeded",
        }
    }
}

impl InvokeError {
    /// The outcome recorded for this failure.
    pub fn outcome(&self) -> InvocationOutcome {
        match self {
            InvokeError::Timeout { .. } => InvocationOutcome::Timeout,
            InvokeError::OutOfMemory { .. } | InvokeError::OutOfMemoryKilled { .. } => {
                InvocationOutcome::OutOfMemory
            }
            InvokeError::Trap(_) => InvocationOutcome::Trap,
            InvokeError::Exited(_)
            | InvokeError::NoResponse
            | InvokeError::GuestError(_)
            | InvokeError::BadCgiResponse(_)
            | InvokeError::ResponseTooLarge { .. }
            | InvokeError::Instantiate(_)
            | InvokeError::RuntimeExited(_) => InvocationOutcome::Crashed,
            InvokeError::BadRequest(_) | InvokeError::PayloadTooLarge { .. } => {
                InvocationOutcome::PlatformError
            }
            InvokeError::Capacity(_) | InvokeError::Sandbox(_) | InvokeError::Throttled(_) => {
                InvocationOutcome::PlatformError
            }
        }
    }
}
