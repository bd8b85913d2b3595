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

    /// 413 with code `PayloadTooLarge`, naming the limit in bytes and in MB.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!(
                "the request body is larger than the {limit} byte limit ({}) of this operation",
                megabytes(limit)
            ),
        )
    }
}

/// An error in the shape of the API `path` belongs to: Lambda's (`x-amzn-ErrorType`) under the
/// Lambda API's prefixes, the native one elsewhere.
pub(crate) fn error_for_path(
    path: &str,
    status: StatusCode,
    lambda: &'static str,
    native: &'static str,
    message: String,
) -> Response {
    if crate::lambda::is_lambda_path(path) {
        LambdaError::new(status, lambda, message).into_response()
    } else {
        ApiError::new(status, native, message).into_response()
    }
}

/// `bytes` in MB (MiB, as Lambda counts them), with one decimal when it is not whole.
pub(crate) fn megabytes(bytes: usize) -> String {
    const MB: usize = 1024 * 1024;
    if bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{:.1} MB", bytes as f64 / MB as f64)
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
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(lambent_core::limits::THROTTLE_RETRY_AFTER_S),
            );
        }
        response
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
        InvokeError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
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
            ControlError::Conflict(_) => (StatusCode::CONFLICT, "ResourceConflict"),
            ControlError::RevisionMismatch { .. } => {
                (StatusCode::PRECONDITION_FAILED, "PreconditionFailed")
            }
            ControlError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValue"),
            ControlError::Keys(lambent_control::auth::KeyError::NoSuchKey(_)) => {
                (StatusCode::NOT_FOUND, "ResourceNotFound")
            }
            ControlError::Keys(lambent_control::auth::KeyError::LastKey(_)) => {
                (StatusCode::CONFLICT, "ResourceConflict")
            }
            ControlError::Metadata(_)
            | ControlError::Events(_)
            | ControlError::Keys(_)
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

/// An error answer of the Lambda-compatible API: the status, Lambda's error type (in the
/// `x-amzn-ErrorType` header and the body, which is what botocore reads to pick the exception
/// class), and a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error_type}: {message}")]
pub struct LambdaError {
    /// HTTP status.
    pub status: StatusCode,
    /// Lambda's error type, e.g. `ResourceNotFoundException`.
    pub error_type: &'static str,
    /// What went wrong.
    pub message: String,
    /// Lambda's `Reason` (throttles).
    pub reason: Option<&'static str>,
}

impl LambdaError {
    /// An error with this status, type and message.
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            reason: None,
        }
    }

    /// 400 `InvalidParameterValueException`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            message,
        )
    }

    /// 404 `ResourceNotFoundException`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
    }
}

impl IntoResponse for LambdaError {
    fn into_response(self) -> Response {
        let kind = if self.status.is_server_error() {
            "Service"
        } else {
            "User"
        };
        let mut body = serde_json::json!({
            "Type": kind,
            "message": self.message,
        });
        let mut response = if let Some(reason) = self.reason {
            body["Reason"] = reason.into();
            body["retryAfterSeconds"] = lambent_core::limits::THROTTLE_RETRY_AFTER_S
                .to_string()
                .into();
            let mut r = (self.status, Json(body)).into_response();
            r.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(lambent_core::limits::THROTTLE_RETRY_AFTER_S),
            );
            r
        } else {
            (self.status, Json(body)).into_response()
        };
        response.headers_mut().insert(
            "x-amzn-errortype",
            http::HeaderValue::from_static(self.error_type),
        );
        response
    }
}

impl From<ApiError> for LambdaError {
    fn from(e: ApiError) -> Self {
        let error_type = match e.status {
            StatusCode::NOT_FOUND => "ResourceNotFoundException",
            StatusCode::CONFLICT => "ResourceConflictException",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestTooLargeException",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaTypeException",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequestsException",
            StatusCode::FORBIDDEN => "AccessDeniedException",
            s if s.is_server_error() => "ServiceException",
            _ => "InvalidParameterValueException",
        };
        LambdaError::new(e.status, error_type, e.message)
    }
}

/// Lambda's status and error type for a control-plane error.
fn lambda_status(e: &ControlError) -> (StatusCode, &'static str) {
    match e {
        ControlError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
        ControlError::AlreadyExists(_) | ControlError::Conflict(_) => {
            (StatusCode::CONFLICT, "ResourceConflictException")
        }
        ControlError::Name(_)
        | ControlError::Config(_)
        | ControlError::Code(_)
        | ControlError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValueException"),
        ControlError::Package(lambent_control::PackageError::Io { .. }) => {
            tracing::error!(error = %e, "cannot unpack code");
            (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException")
        }
        ControlError::CodeTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
        ),
        ControlError::RuntimeUnavailable { .. } => {
            (StatusCode::BAD_GATEWAY, "InvalidRuntimeException")
        }
        ControlError::Invoke(InvokeError::PayloadTooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "RequestTooLargeException")
        }
        ControlError::Invoke(InvokeError::Throttled(_) | InvokeError::Capacity(_)) => {
            (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException")
        }
        ControlError::Invoke(InvokeError::BadRequest(_)) => {
            (StatusCode::BAD_REQUEST, "InvalidRequestContentException")
        }
        ControlError::Invoke(_) => (StatusCode::BAD_GATEWAY, "ServiceException"),
        ControlError::Keys(lambent_control::auth::KeyError::NoSuchKey(_)) => {
            (StatusCode::NOT_FOUND, "ResourceNotFoundException")
        }
        ControlError::Keys(lambent_control::auth::KeyError::LastKey(_)) => {
            (StatusCode::CONFLICT, "ResourceConflictException")
        }
        ControlError::Package(_) => (StatusCode::BAD_REQUEST, "InvalidParameterValueException"),
        ControlError::RevisionMismatch { .. } => (
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailedException",
        ),
        ControlError::Keys(_)
        | ControlError::Events(_)
        | ControlError::Metadata(_)
        | ControlError::CodeStore(_)
        | ControlError::Engine(_)
        | ControlError::Task(_) => {
            tracing::error!(error = %e, "internal error");
            (StatusCode::INTERNAL_SERVER_ERROR, "ServiceException")
        }
    }
}

impl From<ControlError> for LambdaError {
    fn from(e: ControlError) -> Self {
        let (status, error_type) = lambda_status(&e);
        let reason = match &e {
            ControlError::Invoke(InvokeError::Throttled(t)) => Some(t.reason()),
            // The node has no room for another instance now: the closest of Lambda's reasons
            // is its scaling-rate limit, and a retry shortly after may succeed.
            ControlError::Invoke(InvokeError::Capacity(_)) => {
                Some("FunctionInvocationRateLimitExceeded")
            }
            _ => None,
        };
        LambdaError {
            status,
            error_type,
            message: e.to_string(),
            reason,
        }
    }
}
