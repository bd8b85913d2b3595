//! Invocation handlers: function URLs (`ANY /fn/{name}[:qualifier]/{*path}`), which pass the
//! whole HTTP request through, and `POST /v1/functions/{name}/invoke`, which sends an event body
//! and returns the function's output.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use lambent_control::{BodyError, InvokeFailure, InvokeOptions, Served};
use lambent_core::limits::MAX_SYNC_PAYLOAD_BYTES;
use lambent_core::{RuntimeFamily, Target};
use serde::Deserialize;

use crate::auth::UrlRoute;
use crate::body::{declared_length, discard, read_limited};
use crate::cors::Cors;
use crate::extract::FunctionPath;
use crate::url_event;
use crate::{
    ApiError, AppState, HEADER_COLD_START, HEADER_DURATION_MS, HEADER_FUNCTION_ERROR,
    HEADER_FUNCTION_STATUS, HEADER_INIT_MS, HEADER_INVOCATION_ID, HEADER_LOG_RESULT,
    HEADER_LOG_TYPE, HEADER_VERSION,
};

/// Whether the caller asked for the log tail.
fn wants_log_tail(headers: &http::HeaderMap) -> bool {
    headers
        .get(HEADER_LOG_TYPE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"tail"))
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn millis(d: std::time::Duration) -> HeaderValue {
    header(&format!("{:.3}", d.as_secs_f64() * 1e3))
}

fn served_response(served: Served, log_tail: bool) -> Response {
    let (mut parts, body) = served.response.into_parts();
    let h = &mut parts.headers;
    if let Some(error_type) = &served.function_error {
        h.insert(HEADER_FUNCTION_ERROR, header(error_type));
    }
    if log_tail && let Some(tail) = &served.log_tail {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
        h.insert(HEADER_LOG_RESULT, header(&encoded));
    }
    h.insert(HEADER_INVOCATION_ID, header(&served.invocation_id));
    h.insert(HEADER_DURATION_MS, millis(served.duration));
    h.insert(HEADER_INIT_MS, millis(served.init));
    h.insert(
        HEADER_COLD_START,
        HeaderValue::from_static(if served.cold_start { "true" } else { "false" }),
    );
    h.insert(HEADER_VERSION, header(&served.version.to_string()));
    Response::from_parts(parts, Body::new(body))
}

fn failure_response(f: InvokeFailure) -> Response {
    let mut response = ApiError::from(f.error).into_response();
    if let Some(id) = f.invocation_id {
        response
            .headers_mut()
            .insert(HEADER_INVOCATION_ID, header(&id));
    }
    response
        .headers_mut()
        .insert(HEADER_DURATION_MS, millis(f.duration));
    response
}

fn remote_addr(req: &Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// Splits `/fn/{target}/{rest}` into the target and the path the function sees (`/{rest}`).
fn split_function_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/fn/")?;
    Some(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// Whether a path is one the router sends to [`function_url`]: `/fn/` and a target that is not
/// empty.
pub(crate) fn is_function_url(path: &str) -> bool {
    path.strip_prefix("/fn/")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
}

/// A function URL call that came in by the front end's direct door: authenticated as the
/// router's middleware would (role `invoke`), then handled by [`function_url`].
pub(crate) async fn function_url_direct(p: AppState, req: Request) -> Response {
    match crate::auth::admit(&p, req, lambent_core::Action::Invoke).await {
        Ok(req) => function_url(State(p), req).await,
        Err(refused) => refused,
    }
}

/// `ANY /fn/{name}[:qualifier][/{*path}]`: for a wasm function the request goes to the function
/// as it came, with the path relative to the function's URL, and its response comes back as it
/// made it; for a process-tier function the request becomes Lambda's function URL event (payload
/// format 2.0) and the handler's result is mapped back to a response. The function URL's CORS
/// configuration, if any, answers preflights and decorates responses.
pub async fn function_url(State(p): State<AppState>, req: Request) -> Response {
    let remote = remote_addr(&req);
    let (mut parts, body) = req.into_parts();
    let Some((raw_target, rest)) = split_function_path(parts.uri.path()) else {
        return ApiError::bad_request("function URLs have the form /fn/NAME[:VERSION]/PATH")
            .into_response();
    };
    let raw_target = raw_target.replace("%24", "$");
    let rest = rest.to_owned();
    // The authentication layer has parsed the target and found its URL configuration already.
    let route = match parts.extensions.remove::<UrlRoute>() {
        Some(r) => r,
        None => match raw_target.parse::<Target>() {
            Ok(target) => UrlRoute {
                config: p.url_config(&target.name, &target.qualifier),
                target,
            },
            Err(e) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", format!("{e}"))
                    .into_response();
            }
        },
    };
    let target = route.target;
    let cors = route
        .config
        .and_then(|c| c.cors.as_ref().and_then(|c| Cors::parse(c).ok()));
    if let Some(headers) = cors
        .as_ref()
        .and_then(|c| c.preflight(&parts.method, &parts.headers))
    {
        discard(body).await;
        let mut r = StatusCode::OK.into_response();
        r.headers_mut().extend(headers);
        return r;
    }
    if declared_length(&parts.headers).is_some_and(|n| n > MAX_SYNC_PAYLOAD_BYTES as u64) {
        discard(body).await;
        return ApiError::too_large(MAX_SYNC_PAYLOAD_BYTES).into_response();
    }
    let origin = parts.headers.get(http::header::ORIGIN).cloned();
    let log_tail = wants_log_tail(&parts.headers);
    let family = match p.runtime_family(&target.name, &target.qualifier) {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let result = if family == RuntimeFamily::Wasm {
        url_wasm(&p, &target, &raw_target, &rest, parts, body, remote).await
    } else {
        // Boxed so that its large state does not grow every wasm call's future.
        Box::pin(url_event_call(&p, &target, &rest, parts, body, remote)).await
    };
    let mut response = match result {
        Ok(served) => served_response(served, log_tail),
        Err(r) => *r,
    };
    if let Some(c) = &cors {
        c.apply(origin.as_ref(), response.headers_mut());
    }
    response
}

/// A served call, or the response that says why not.
type UrlResult = Result<Served, Box<Response>>;

/// A function URL call of a wasm function: the HTTP request itself goes in.
async fn url_wasm(
    p: &AppState,
    target: &Target,
    raw_target: &str,
    rest: &str,
    parts: http::request::Parts,
    body: Body,
    remote: Option<SocketAddr>,
) -> UrlResult {
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let script_name = format!("/fn/{raw_target}");
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(path_and_query)
        .version(parts.version);
    if let Some(h) = builder.headers_mut() {
        *h = parts.headers.clone();
        h.remove(http::header::AUTHORIZATION);
        h.insert(
            "x-forwarded-prefix",
            HeaderValue::from_str(&script_name).unwrap_or_else(|_| HeaderValue::from_static("/fn")),
        );
    }
    let body = Limited::new(body, MAX_SYNC_PAYLOAD_BYTES).map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge {
                limit: MAX_SYNC_PAYLOAD_BYTES,
            }
        } else {
            BodyError::Stream(e.to_string())
        }
    });
    let guest_req = builder.body(BodyExt::boxed_unsync(body)).map_err(|e| {
        Box::new(ApiError::bad_request(format!("cannot forward the request: {e}")).into_response())
    })?;
    let options = InvokeOptions {
        script_name,
        remote_addr: remote,
        request_id: None,
    };
    p.invoke(&target.name, &target.qualifier, guest_req, options)
        .await
        .map_err(|f| Box::new(failure_response(f)))
}

/// A function URL call of a process-tier function: the request becomes Lambda's event (payload
/// format 2.0), and the handler's answer becomes the response. A handler error, or an answer that
/// is not a valid response, is a 502, as on Lambda.
async fn url_event_call(
    p: &AppState,
    target: &Target,
    rest: &str,
    parts: http::request::Parts,
    body: Body,
    remote: Option<SocketAddr>,
) -> UrlResult {
    let request_id = uuid::Uuid::new_v4().to_string();
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let source_ip = remote.map(|a| a.ip().to_string()).unwrap_or_default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let url_id = target.name.to_string();
    let path = rest.to_owned();
    let event_request_id = request_id.clone();
    // The event is made when the invocation reads its body, which is after the call has its
    // concurrency seat: a caller refused a seat gets its 429 without its upload being read, so
    // what is buffered for one function is at most its concurrency times the payload limit.
    let event = futures::stream::once(async move {
        let body = read_limited(&parts.headers, body, MAX_SYNC_PAYLOAD_BYTES)
            .await
            .map_err(|e| {
                if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                    BodyError::TooLarge {
                        limit: MAX_SYNC_PAYLOAD_BYTES,
                    }
                } else {
                    BodyError::Stream(e.message)
                }
            })?;
        let mut headers = parts.headers;
        headers.remove(http::header::AUTHORIZATION);
        let ctx = url_event::EventContext {
            request_id: &event_request_id,
            account_id: lambent_core::limits::ACCOUNT_ID,
            url_id: &url_id,
            domain_name: &host,
            source_ip: &source_ip,
            time_epoch_ms: now_ms,
        };
        let event = url_event::request_event(
            &parts.method,
            &path,
            parts.uri.query(),
            &headers,
            &body,
            &ctx,
        );
        Ok::<_, BodyError>(http_body::Frame::data(Bytes::from(event.to_string())))
    });
    let guest_req = http::Request::builder()
        .method(http::Method::POST)
        .uri("/")
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::StreamBody::new(event).boxed_unsync())
        .map_err(|e| {
            Box::new(ApiError::bad_request(format!("cannot build the event: {e}")).into_response())
        })?;
    let options = InvokeOptions {
        script_name: format!("/fn/{}", target.name),
        remote_addr: remote,
        request_id: Some(request_id),
    };
    let served = p
        .invoke(&target.name, &target.qualifier, guest_req, options)
        .await
        .map_err(|f| Box::new(failure_response(f)))?;
    let Served {
        invocation_id,
        version,
        response,
        cold_start,
        init,
        duration,
        function_error,
        log_tail,
    } = served;
    let (head, body) = response.into_parts();
    let payload = body
        .collect()
        .await
        .map_err(|e| {
            Box::new(
                ApiError::new(StatusCode::BAD_GATEWAY, "FunctionError", e.to_string())
                    .into_response(),
            )
        })?
        .to_bytes();
    let mapped = if function_error.is_some() {
        // A function URL answers an unhandled error with 502, as Lambda's do.
        let mut r = http::Response::new(payload);
        *r.status_mut() = StatusCode::BAD_GATEWAY;
        let mut headers = head.headers;
        url_event::drop_server_owned_headers(&mut headers);
        r.headers_mut().extend(headers);
        r
    } else {
        match url_event::response_from_payload(&payload) {
            Ok(r) => r,
            Err(e) => {
                let mut r = ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "FunctionInvalidResponse",
                    e.to_string(),
                )
                .into_response();
                r.headers_mut()
                    .insert(HEADER_INVOCATION_ID, header(&invocation_id));
                return Err(Box::new(r));
            }
        }
    };
    let response = mapped.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync());
    Ok(Served {
        invocation_id,
        version,
        response,
        cold_start,
        init,
        duration,
        function_error,
        log_tail,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeQuery {
    qualifier: Option<String>,
}

/// `POST /v1/functions/{name}/invoke[?qualifier=N]`: the body is the event; the answer is the
/// function's output with status 200, the function's own status in `x-lambent-function-status`.
pub async fn invoke(
    State(p): State<AppState>,
    Query(q): Query<InvokeQuery>,
    FunctionPath(name): FunctionPath,
    req: Request,
) -> Response {
    let remote = remote_addr(&req);
    let result = async {
        let qualifier = crate::functions::selector(q.qualifier.as_deref())?;
        let (parts, body) = req.into_parts();
        let log_tail = wants_log_tail(&parts.headers);
        let event = read_limited(&parts.headers, body, MAX_SYNC_PAYLOAD_BYTES).await?;
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        let mut builder = http::Request::builder()
            .method(http::Method::POST)
            .uri("/")
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, event.len());
        for passed in ["x-amz-client-context", "x-amzn-trace-id"] {
            if let Some(v) = parts.headers.get(passed) {
                builder = builder.header(passed, v.clone());
            }
        }
        let guest_req = builder
            .body(Full::new(event))
            .map_err(|e| ApiError::bad_request(format!("cannot build the event request: {e}")))?;
        Ok::<_, ApiError>((name, qualifier, guest_req, log_tail))
    }
    .await;
    let (name, qualifier, guest_req, log_tail) = match result {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let options = InvokeOptions {
        script_name: format!("/v1/functions/{name}/invoke"),
        remote_addr: remote,
        request_id: None,
    };
    match p.invoke(&name, &qualifier, guest_req, options).await {
        Ok(mut served) => {
            let status = served.response.status();
            *served.response.status_mut() = StatusCode::OK;
            served
                .response
                .headers_mut()
                .insert(HEADER_FUNCTION_STATUS, header(status.as_str()));
            served_response(served, log_tail)
        }
        Err(f) => failure_response(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_paths_split() {
        assert_eq!(split_function_path("/fn/hello"), Some(("hello", "/")));
        assert_eq!(split_function_path("/fn/hello/"), Some(("hello", "/")));
        assert_eq!(
            split_function_path("/fn/hello:2/a/b"),
            Some(("hello:2", "/a/b"))
        );
        assert_eq!(split_function_path("/v1/x"), None);
    }
}
