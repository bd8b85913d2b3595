//! Authentication of every request but `/healthz` and public function URLs: a SigV4 signature
//! (service `lambda`, the server's region) or `Authorization: Bearer ACCESS_KEY_ID:SECRET`.
//! Signed requests have their body read here (the signature covers its hash) and handed on.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use lambent_control::auth::AuthError;
use lambent_core::sigv4::{self, RequestParts};
use lambent_core::{FunctionUrlConfig, Target, UrlAuthType};

use crate::body::{MAX_UPLOAD_BODY_BYTES, read_limited};
use crate::error::LambdaError;
use crate::{ApiError, AppState};

/// The key that made a request, for handlers that want to know.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The function URL target of a `/fn/...` path.
pub(crate) fn url_target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/fn/")?;
    let target = rest.split('/').next()?;
    target.replace("%24", "$").parse().ok()
}

fn denied(path: &str, message: String) -> Response {
    if crate::lambda::is_lambda_path(path) {
        LambdaError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message).into_response()
    } else {
        ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", message).into_response()
    }
}

/// A function URL's target and configuration, looked up once here and reused by the handler.
#[derive(Debug, Clone)]
pub(crate) struct UrlRoute {
    /// The function and version or alias.
    pub target: Target,
    /// Its URL configuration, if it has one.
    pub config: Option<Arc<FunctionUrlConfig>>,
}

/// The middleware.
pub async fn authenticate(State(p): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" {
        return next.run(req).await;
    }
    if let Some(target) = url_target(path) {
        let config = p.url_config(&target.name, &target.qualifier);
        // A public URL needs no key; nor does a CORS preflight (browsers send it without
        // credentials), which the handler answers from the URL's CORS settings.
        let open = config.as_ref().is_some_and(|c| {
            let preflight = req.method() == http::Method::OPTIONS
                && c.cors.is_some()
                && req.headers().contains_key("access-control-request-method");
            c.auth_type == UrlAuthType::None || preflight
        });
        req.extensions_mut().insert(UrlRoute { target, config });
        if open {
            return next.run(req).await;
        }
    }
    let path = req.uri().path();
    let path = path.to_owned();
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = match authorization.as_deref() {
        None => Err(AuthError::Missing),
        Some(a) if a.starts_with("Bearer ") => {
            let token = a["Bearer ".len()..].trim();
            p.keys().verify_bearer(token).map(|id| (id, req))
        }
        Some(a) if a.starts_with(sigv4::ALGORITHM) => {
            let amz_date = req
                .headers()
                .get("x-amz-date")
                .and_then(|v| v.to_str().ok());
            if let Err(e) = p.keys().precheck_signature(a, amz_date, now_unix()) {
                tracing::debug!(path = %path, error = %e, "request refused");
                return denied(&path, e.to_string());
            }
            let (parts, body) = req.into_parts();
            let bytes = match read_limited(&parts.headers, body, MAX_UPLOAD_BODY_BYTES).await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            let hash = sigv4::sha256_hex(&bytes);
            let headers: Vec<(&str, &str)> = parts
                .headers
                .iter()
                .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
                .collect();
            let request = RequestParts {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query: parts.uri.query(),
                headers: &headers,
                payload_sha256_hex: &hash,
            };
            let verified = p.keys().verify_signature(&request, now_unix());
            drop(headers);
            verified.map(|id| (id, Request::from_parts(parts, Body::from(bytes))))
        }
        Some(other) => Err(AuthError::UnsupportedScheme(
            other.split_whitespace().next().unwrap_or("").to_owned(),
        )),
    };
    match result {
        Ok((id, mut req)) => {
            req.extensions_mut().insert(Caller(id));
            next.run(req).await
        }
        Err(e) => {
            tracing::debug!(path = %path, error = %e, "request refused");
            denied(&path, e.to_string())
        }
    }
}
