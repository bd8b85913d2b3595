//! The one place where lambent's errors become HTTP statuses and stable error codes.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use lambent_control::ControlError;
use lambent_control::InvokeError;
use lambent_core::ConfigError;
use serde::Serialize;

/// An error answer: a status, a stable machine-readable code and a message for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code, e.g. `ResourceNotFound`.
    pub code: &'static str,
    /// What went wrong and what to do about it.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with code `InvalidRequest`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }

    /// 413 with code `PayloadTooLarge`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("the request body is larger than the {limit} byte limit"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

fn invoke_status(e: &InvokeError) -> (StatusCode, &'static str) {
    match e {
        InvokeError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "FunctionTimeout"),
        InvokeError::OutOfMemory { .. } | InvokeError::OutOfMemoryKilled { .. } => {
            (StatusCode::BAD_GATEWAY, "FunctionOutOfMemory")
        }
        InvokeError::Trap(_) => (StatusCode::BAD_GATEWAY, "FunctionTrap"),
        InvokeError::Exited(_) => (StatusCode::BAD_GATEWAY, "FunctionExited"),
        InvokeError::NoResponse => (StatusCode::BAD_GATEWAY, "FunctionNoResponse"),
        InvokeError::GuestError(_) => (StatusCode::BAD_GATEWAY, "FunctionError"),
        InvokeError::BadCgiResponse(_) => (StatusCode::BAD_GATEWAY, "FunctionInvalidResponse"),
        InvokeError::ResponseTooLarge { .. } => {
            (StatusCode::BAD_GATEWAY, "FunctionResponseTooLarge")
        }
        InvokeError::Instantiate(_) => (StatusCode::BAD_GATEWAY, "FunctionInitFailed"),
        InvokeError::BadRequest(_) => (StatusCode::BAD_REQUEST, "InvalidRequest"),
        InvokeError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge"),
        InvokeError::Capacity(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        InvokeError::RuntimeExited(_) => (StatusCode::BAD_GATEWAY, "FunctionRuntimeExited"),
        InvokeError::Sandbox(_) => (StatusCode::INTERNAL_SERVER_ERROR, "SandboxError"),
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (status, code) = match &e {
            ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFound"),
            ControlError::AlreadyExists(_) => (StatusCode::CONFLICT, "ResourceConflict"),
            ControlError::Name(_) => (StatusCode::BAD_REQUEST, "InvalidName"),
            ControlError::Config(ConfigError::UnknownRuntime(_) | ConfigError::RuntimeRequired) => {
                (StatusCode::BAD_REQUEST, "InvalidRuntime")
            }
            ControlError::Package(lambent_control::PackageError::Io { .. }) => {
                tracing::error!(error = %e, "cannot unpack code");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
            ControlError::Package(_) => (StatusCode::BAD_REQUEST, "InvalidCode"),
            ControlError::RuntimeUnavailable { .. } => {
                (StatusCode::NOT_IMPLEMENTED, "RuntimeUnavailable")
            }
            ControlError::Config(_) => (StatusCode::BAD_REQUEST, "InvalidConfiguration"),
            ControlError::Code(_) => (StatusCode::BAD_REQUEST, "InvalidCode"),
            ControlError::CodeTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "CodeTooLarge"),
            ControlError::Invoke(i) => invoke_status(i),
            ControlError::Metadata(_)
            | ControlError::CodeStore(_)
            | ControlError::Engine(_)
            | ControlError::Task(_) => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}
