//! The record of one invocation: what ran, how long, how it ended, and what it logged.

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
    /// The platform could not run the function (no capacity, storage failure).
    PlatformError,
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
            InvocationOutcome::PlatformError => "platform_error",
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
            InvocationOutcome::PlatformError,
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
    /// The error message when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the function wrote to stdout and stderr (CGI: stderr only), cut at
    /// [`crate::limits::MAX_LOG_BYTES_PER_INVOCATION`].
    pub logs: String,
}
