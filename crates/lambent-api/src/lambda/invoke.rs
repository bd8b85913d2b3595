//! `Invoke`: `RequestResponse` (run and answer), `Event` (accept, answer 202, run in the
//! background) and `DryRun` (check only). Failures the function caused (a timeout, running out of
//! memory, a crashed runtime) answer 200 with `X-Amz-Function-Error: Unhandled` and an error
//! document, as Lambda does; failures of the call itself use Lambda's error types.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use lambent_control::{ControlError, InvokeError, InvokeOptions};
use lambent_core::limits::{MAX_ASYNC_PAYLOAD_BYTES, MAX_SYNC_PAYLOAD_BYTES};
use serde_json::json;

use super::function_ref;
use super::functions::QualifierQuery;
use crate::AppState;
use crate::body::read_limited;
use crate::error::LambdaError;

const HEADER_INVOCATION_TYPE: &str = "x-amz-invocation-type";
const HEADER_LOG_TYPE: &str = "x-amz-log-type";
const HEADER_LOG_RESULT: &str = "x-amz-log-result";
const HEADER_FUNCTION_ERROR: &str = "x-amz-function-error";
const HEADER_EXECUTED_VERSION: &str = "x-amz-executed-version";
const HEADER_CLIENT_CONTEXT: &str = "x-amz-client-context";
const HEADER_REQUEST_ID: &str = "x-amzn-requestid";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Lambda's `errorType` for a failure the function caused, or `None` for a failure of the call.
fn function_fault(e: &InvokeError) -> Option<&'static str> {
    Some(match e {
        InvokeError::Timeout { .. } => "Sandbox.Timedout",
        InvokeError::OutOfMemory { .. } | InvokeError::OutOfMemoryKilled { .. } => {
            "Runtime.OutOfMemory"
        }
        InvokeError::RuntimeExited(_) | InvokeError::Exited(_) => "Runtime.ExitError",
        InvokeError::Trap(_) => "Runtime.Trap",
        InvokeError::NoResponse | InvokeError::GuestError(_) | InvokeError::BadCgiResponse(_) => {
            "Runtime.InvalidResponse"
        }
        InvokeError::ResponseTooLarge { .. } => "Function.ResponseSizeTooLarge",
        InvokeError::Instantiate(_) => "Runtime.InitError",
        InvokeError::BadRequest(_)
        | InvokeError::PayloadTooLarge { .. }
        | InvokeError::Capacity(_)
        | InvokeError::Sandbox(_)
        | InvokeError::Throttled(_) => return None,
    })
}

/// `POST /2015-03-31/functions/{function}/invocations`.
pub async fn invoke(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    req: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match run(&p, &raw, q, req, &request_id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .entry(HEADER_REQUEST_ID)
        .or_insert_with(|| value(&request_id));
    response
}

async fn run(
    p: &AppState,
    raw: &str,
    q: QualifierQuery,
    req: Request,
    request_id: &str,
) -> Result<Response, LambdaError> {
    let remote = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let (name, selector) = function_ref(raw, q.qualifier())?;
    let selector = selector.unwrap_or_default();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let mut passed: Vec<(http::HeaderName, HeaderValue)> = Vec::new();
    if let Some(cc) = header(headers, HEADER_CLIENT_CONTEXT) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cc.trim())
            .ok()
            .filter(|d| serde_json::from_slice::<serde_json::Value>(d).is_ok_and(|v| v.is_object()))
            .ok_or_else(|| {
                LambdaError::invalid("X-Amz-Client-Context must be a base64-encoded JSON object")
            })?;
        let decoded = HeaderValue::from_bytes(&decoded).map_err(|_| {
            LambdaError::invalid("X-Amz-Client-Context must be a JSON object without line breaks")
        })?;
        passed.push((
            http::HeaderName::from_static(HEADER_CLIENT_CONTEXT),
            decoded,
        ));
    }
    if let Some(t) = headers.get("x-amzn-trace-id") {
        passed.push((http::HeaderName::from_static("x-amzn-trace-id"), t.clone()));
    }
    match header(headers, HEADER_INVOCATION_TYPE).unwrap_or("RequestResponse") {
        "RequestResponse" => {}
        "Event" => {
            let payload = read_limited(headers, body, MAX_ASYNC_PAYLOAD_BYTES).await?;
            // The function sees a JSON event, as on the synchronous path.
            let kept = passed
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                .collect();
            let request = lambent_control::EventRequest {
                payload,
                headers: kept,
                idempotency_key: crate::events::idempotency_key(headers)
                    .map_err(LambdaError::from)?,
                source: "lambda".into(),
                id: None,
            };
            let enqueued = p.accept_event(&name, &selector, request).await?;
            let mut r = StatusCode::ACCEPTED.into_response();
            r.headers_mut()
                .insert(HEADER_REQUEST_ID, value(&enqueued.id));
            return Ok(r);
        }
        "DryRun" => {
            p.check_invoke(&name, &selector)?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        other => {
            return Err(LambdaError::invalid(format!(
                "X-Amz-Invocation-Type {other:?} is invalid; use RequestResponse, Event or DryRun"
            )));
        }
    }
    let tail = header(headers, HEADER_LOG_TYPE).is_some_and(|t| t.eq_ignore_ascii_case("tail"));
    let payload = read_limited(headers, body, MAX_SYNC_PAYLOAD_BYTES).await?;
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri("/")
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, payload.len());
    for (k, v) in passed {
        builder = builder.header(k, v);
    }
    let guest_req = builder
        .body(Full::new(payload))
        .map_err(|e| LambdaError::invalid(format!("cannot build the event request: {e}")))?;
    let options = InvokeOptions {
        script_name: format!("/2015-03-31/functions/{name}/invocations"),
        remote_addr: remote,
        request_id: Some(request_id.to_owned()),
    };
    match p.invoke(&name, &selector, guest_req, options).await {
        Ok(served) => {
            let (mut parts, body) = served.response.into_parts();
            parts.status = StatusCode::OK;
            let h = &mut parts.headers;
            h.insert(HEADER_EXECUTED_VERSION, value(&served.version.to_string()));
            h.insert(HEADER_REQUEST_ID, value(&served.invocation_id));
            if served.function_error.is_some() {
                h.insert(HEADER_FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
            }
            if tail && let Some(logs) = &served.log_tail {
                let encoded = base64::engine::general_purpose::STANDARD.encode(logs);
                h.insert(HEADER_LOG_RESULT, value(&encoded));
            }
            Ok(Response::from_parts(parts, Body::new(body)))
        }
        Err(f) => {
            let fault = match &f.error {
                ControlError::Invoke(e) => function_fault(e),
                _ => None,
            };
            let Some(error_type) = fault else {
                return Err(f.error.into());
            };
            let id = f.invocation_id.unwrap_or_else(|| request_id.to_owned());
            let document = json!({
                "errorType": error_type,
                "errorMessage": format!("RequestId: {id} Error: {}", f.error),
            });
            let mut r = (StatusCode::OK, axum::Json(document)).into_response();
            let h = r.headers_mut();
            h.insert(HEADER_FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
            h.insert(HEADER_REQUEST_ID, value(&id));
            Ok(r)
        }
    }
}
