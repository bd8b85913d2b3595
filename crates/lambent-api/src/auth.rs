//! Authentication and authorization of every request but `/healthz` and public function URLs, in
//! this one place for both APIs and function URLs.
//!
//! A request is authenticated from its headers before any of its body is read: a bearer token
//! (`Authorization: Bearer ACCESS_KEY_ID:SECRET`) or a SigV4 signature (service `lambda`, the
//! server's region) over the `X-Amz-Content-SHA256` it declares; its body is then checked against
//! that hash as the handler reads it. Only a signed request without that header (boto3 sends none
//! for Lambda), whose signature covers a hash of a body not yet seen, has its body read here
//! first, within the server-wide budget of bytes held before authentication
//! ([`lambent_control::auth::PreauthBudget`]); past the budget it gets a quick 503. A refused
//! request's body is never read: the answer goes out and the connection is closed.
//!
//! Then the key's role must allow the request's [`Action`], which [`classify`] finds from the
//! route the request matched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use lambent_control::auth::{AuthError, Authenticated};
use lambent_core::sigv4::{self, PayloadHasher, RequestParts, SigError};
use lambent_core::{Action, FunctionUrlConfig, Target, UrlAuthType};

use crate::AppState;
use crate::body::{MAX_UPLOAD_BODY_BYTES, declared_length};
use crate::error::error_for_path;

/// Seconds a request refused for want of pre-authentication buffer room is told to wait
/// (`Retry-After`).
pub const PREAUTH_RETRY_AFTER_SECS: u32 = 1;

/// The key that made a request, for handlers that want to know.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

fn now_unix() -> i64 {
    lambent_core::now_ms() / 1000
}

/// The function URL target of a `/fn/...` path.
pub(crate) fn url_target(path: &str) -> Option<Target> {
    let rest = path.strip_prefix("/fn/")?;
    let target = rest.split('/').next()?;
    target.replace("%24", "$").parse().ok()
}

fn denied(path: &str, message: String) -> Response {
    error_for_path(
        path,
        StatusCode::FORBIDDEN,
        "AccessDeniedException",
        "AccessDenied",
        message,
    )
}

/// Whether the request comes with a body (declared, or chunked).
fn has_body(headers: &http::HeaderMap) -> bool {
    declared_length(headers).is_some_and(|n| n > 0)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// Marks a response to a request whose body was not read: the connection is closed after it,
/// instead of the rest of the body being read and thrown away.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// The class of a request, from its method and the route pattern it matched (`None`: no route,
/// a 404 follows). Every route of [`crate::router`] is in the table of the tests.
pub fn classify(method: &Method, route: Option<&str>) -> Action {
    let Some(route) = route else {
        return Action::Read;
    };
    let invoke_routes = [
        "/v1/functions/{name}/invoke",
        "/v1/functions/{name}/events",
        "/2015-03-31/functions/{function}/invocations",
    ];
    let keys = route == "/v1/keys" || route.starts_with("/v1/keys/");
    let debug_write = route.starts_with("/v1/debug/") && method != Method::GET;
    let url = route.starts_with("/fn/");
    let invoke = method == Method::POST && invoke_routes.contains(&route);
    if keys || debug_write {
        Action::Admin
    } else if url || invoke {
        Action::Invoke
    } else if method == Method::GET || method == Method::HEAD {
        Action::Read
    } else {
        Action::Deploy
    }
}

/// The 403 of a key whose role does not allow the request.
fn forbidden_role(path: &str, who: &Authenticated, action: Action) -> Response {
    let needed = action.least_role();
    let also = match needed {
        lambent_core::KeyRole::Admin => "",
        lambent_core::KeyRole::Deploy => " or admin",
        lambent_core::KeyRole::Invoke => ", deploy or admin",
    };
    denied(
        path,
        format!(
            "access key {} has role {}; this request needs role {needed}{also}",
            who.key_id, who.role
        ),
    )
}

/// A function URL's target and configuration, looked up once here and reused by the handler.
#[derive(Debug, Clone)]
pub(crate) struct UrlRoute {
    /// The function and version or alias.
    pub target: Target,
    /// Its URL configuration, if it has one.
    pub config: Option<Arc<FunctionUrlConfig>>,
}

/// The middleware of the router.
pub async fn authenticate(State(p): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let action = classify(
        req.method(),
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    );
    match admit(&p, req, action).await {
        Ok(req) => next.run(req).await,
        Err(refused) => refused,
    }
}

/// Lets a request through, authenticated (with its [`Caller`]) or on a public function URL
/// (with its [`UrlRoute`]), or answers why not. `action` is what the request would do.
pub(crate) async fn admit(
    p: &AppState,
    mut req: Request,
    action: Action,
) -> Result<Request, Response> {
    if let Some(target) = url_target(req.uri().path()) {
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
            return Ok(req);
        }
    }
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let with_body = has_body(req.headers());
    let refuse = |e: AuthError| {
        tracing::debug!(path = %path, error = %e, "request refused");
        let response = denied(&path, e.to_string());
        if with_body {
            closing(response)
        } else {
            response
        }
    };
    let (who, mut req) = match authorization.as_deref() {
        None => return Err(refuse(AuthError::Missing)),
        Some(a) if a.starts_with("Bearer ") => {
            let token = a["Bearer ".len()..].trim();
            match p.keys().verify_bearer(token) {
                Ok(who) => (who, req),
                Err(e) => return Err(refuse(e)),
            }
        }
        Some(a) if a.starts_with(sigv4::ALGORITHM) => match signed(p, &path, req).await {
            Ok(ok) => ok,
            Err(Refused::Auth(e)) => return Err(refuse(e)),
            Err(Refused::Response(r)) => return Err(closing(r)),
        },
        Some(other) => {
            return Err(refuse(AuthError::UnsupportedScheme(
                other.split_whitespace().next().unwrap_or("").to_owned(),
            )));
        }
    };
    if !who.role.allows(action) {
        tracing::debug!(path = %path, key = %who.key_id, role = %who.role, "request refused by role");
        let response = forbidden_role(&path, &who, action);
        return Err(if with_body {
            closing(response)
        } else {
            response
        });
    }
    req.extensions_mut().insert(Caller(who.key_id));
    Ok(req)
}

/// Why a signed request was not let through.
enum Refused {
    /// Not authenticated: the 403 every such failure gets.
    Auth(AuthError),
    /// Another answer (413, 503), its body unread.
    Response(Response),
}

impl From<AuthError> for Refused {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<SigError> for Refused {
    fn from(e: SigError) -> Self {
        Self::Auth(e.into())
    }
}

/// Checks a SigV4 request: from its headers alone when it declares its body's hash (the body is
/// then checked as it is read), else by reading its body first within the pre-authentication
/// budget, once every check that needs no body passed and its key exists.
async fn signed(
    p: &AppState,
    path: &str,
    req: Request,
) -> Result<(Authenticated, Request), Refused> {
    let (parts, body) = req.into_parts();
    let declared = {
        let headers = header_pairs(&parts.headers);
        let request = request_parts(&parts, &headers, sigv4::EMPTY_SHA256);
        p.keys().precheck_signature(&request, now_unix())?;
        sigv4::declared_payload_hash(&headers)?
    };
    let Some(declared) = declared else {
        let bytes = read_before_auth(p, path, &parts.headers, body).await?;
        let who = verify(p, &parts, &sigv4::sha256_hex(&bytes))?;
        return Ok((who, Request::from_parts(parts, Body::from(bytes))));
    };
    let who = verify(p, &parts, &declared)?;
    let body = Body::new(HashChecked {
        inner: body,
        hasher: Some(PayloadHasher::default()),
        declared,
    });
    Ok((who, Request::from_parts(parts, body)))
}

fn request_parts<'a>(
    parts: &'a http::request::Parts,
    headers: &'a [(&'a str, &'a str)],
    payload_sha256_hex: &'a str,
) -> RequestParts<'a> {
    RequestParts {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers,
        payload_sha256_hex,
    }
}

fn header_pairs(headers: &http::HeaderMap) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect()
}

/// Checks the signature of a request whose body hashes to `payload_sha256_hex`.
fn verify(
    p: &AppState,
    parts: &http::request::Parts,
    payload_sha256_hex: &str,
) -> Result<Authenticated, AuthError> {
    let headers = header_pairs(&parts.headers);
    let request = request_parts(parts, &headers, payload_sha256_hex);
    p.keys().verify_signature(&request, now_unix())
}

/// Reads the body of a request that is not authenticated yet, taking its bytes from the
/// server-wide pre-authentication budget as they arrive; 413 past the largest body any request
/// may have, 503 when the budget has no room. Neither reads the rest.
async fn read_before_auth(
    p: &AppState,
    path: &str,
    headers: &http::HeaderMap,
    mut body: Body,
) -> Result<Bytes, Refused> {
    let too_large = || {
        Refused::Response(error_for_path(
            path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            "PayloadTooLarge",
            format!("the request body is larger than the {MAX_UPLOAD_BODY_BYTES} byte limit"),
        ))
    };
    let budget = p.keys().preauth_budget();
    let busy = || {
        let mut r = error_for_path(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceException",
            "ServiceUnavailable",
            format!(
                "too many bytes of unauthenticated request bodies are held now (at most {} MB); \
                 retry in {PREAUTH_RETRY_AFTER_SECS} s, or send X-Amz-Content-SHA256 so that the \
                 signature is checked before the body is read",
                budget.limit() >> 20
            ),
        );
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, PREAUTH_RETRY_AFTER_SECS.into());
        Refused::Response(r)
    };
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > MAX_UPLOAD_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut reservation = budget.reserve();
    // A declared length is taken at once, so that a body the budget cannot hold is refused
    // before any of it is read.
    if let Some(n) = declared.and_then(|n| usize::try_from(n).ok())
        && !reservation.grow(n)
    {
        return Err(busy());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Refused::Response(error_for_path(
                path,
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                "InvalidRequest",
                format!("cannot read the request body: {e}"),
            ))
        })?;
        if let Some(data) = frame.data_ref() {
            let total = buf.len() + data.len();
            if total > MAX_UPLOAD_BODY_BYTES {
                return Err(too_large());
            }
            if total > reservation.held() && !reservation.grow(total - reservation.held()) {
                return Err(busy());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// A body checked against the hash its signed request declared: the end of a body that does not
/// hash to it is an error, which the handler reading it answers with a 400.
struct HashChecked {
    inner: Body,
    /// `None` once the end was seen.
    hasher: Option<PayloadHasher>,
    declared: String,
}

impl http_body::Body for HashChecked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(hasher) = this.hasher.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                let actual = this.hasher.take().map(PayloadHasher::finish_hex);
                match actual {
                    Some(actual) if actual != this.declared => {
                        Poll::Ready(Some(Err(axum::Error::new(SigError::BodyHashMismatch {
                            declared: this.declared.clone(),
                            actual,
                        }))))
                    }
                    _ => Poll::Ready(None),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // Not before the end was polled, so that the hash is always checked.
        self.hasher.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::{Admin, Deploy, Invoke, Read};

    /// Every route of both routers and the class it must have. A route added to the routers but
    /// not here fails [`every_route_is_classified`], so none can be forgotten.
    const ROUTES: &[(&str, &str, Action)] = &[
        ("GET", "/healthz", Read),
        ("GET", "/metrics", Read),
        ("POST", "/v1/functions", Deploy),
        ("GET", "/v1/functions", Read),
        ("GET", "/v1/functions/{name}", Read),
        ("PUT", "/v1/functions/{name}", Deploy),
        ("DELETE", "/v1/functions/{name}", Deploy),
        ("PUT", "/v1/functions/{name}/code", Deploy),
        ("GET", "/v1/functions/{name}/code", Read),
        ("PUT", "/v1/functions/{name}/url", Deploy),
        ("GET", "/v1/functions/{name}/url", Read),
        ("DELETE", "/v1/functions/{name}/url", Deploy),
        ("GET", "/v1/functions/{name}/aliases", Read),
        ("PUT", "/v1/functions/{name}/aliases/{alias}", Deploy),
        ("GET", "/v1/functions/{name}/aliases/{alias}", Read),
        ("DELETE", "/v1/functions/{name}/aliases/{alias}", Deploy),
        ("PUT", "/v1/functions/{name}/concurrency", Deploy),
        ("GET", "/v1/functions/{name}/concurrency", Read),
        ("DELETE", "/v1/functions/{name}/concurrency", Deploy),
        ("PUT", "/v1/functions/{name}/provisioned", Deploy),
        ("GET", "/v1/functions/{name}/provisioned", Read),
        ("DELETE", "/v1/functions/{name}/provisioned", Deploy),
        ("GET", "/v1/functions/{name}/provisioned-schedules", Read),
        (
            "PUT",
            "/v1/functions/{name}/provisioned-schedules/{schedule}",
            Deploy,
        ),
        (
            "DELETE",
            "/v1/functions/{name}/provisioned-schedules/{schedule}",
            Deploy,
        ),
        ("PUT", "/v1/functions/{name}/scaling", Deploy),
        ("GET", "/v1/functions/{name}/scaling", Read),
        ("DELETE", "/v1/functions/{name}/scaling", Deploy),
        ("GET", "/v1/instances", Read),
        ("PUT", "/v1/functions/{name}/admission", Deploy),
        ("GET", "/v1/functions/{name}/admission", Read),
        ("DELETE", "/v1/functions/{name}/admission", Deploy),
        ("POST", "/v1/keys", Admin),
        ("GET", "/v1/keys", Admin),
        ("DELETE", "/v1/keys/{id}", Admin),
        ("PATCH", "/v1/functions/{name}/config", Deploy),
        ("PUT", "/v1/functions/{name}/config", Deploy),
        ("POST", "/v1/functions/{name}/versions", Deploy),
        ("GET", "/v1/functions/{name}/versions", Read),
        ("POST", "/v1/functions/{name}/invoke", Invoke),
        ("POST", "/v1/functions/{name}/events", Invoke),
        ("PUT", "/v1/functions/{name}/event-config", Deploy),
        ("GET", "/v1/functions/{name}/event-config", Read),
        ("DELETE", "/v1/functions/{name}/event-config", Deploy),
        ("GET", "/v1/events", Read),
        ("GET", "/v1/events/{id}", Read),
        ("POST", "/v1/schedules", Deploy),
        ("GET", "/v1/schedules", Read),
        ("PUT", "/v1/schedules/{name}", Deploy),
        ("GET", "/v1/schedules/{name}", Read),
        ("PATCH", "/v1/schedules/{name}", Deploy),
        ("DELETE", "/v1/schedules/{name}", Deploy),
        ("POST", "/v1/queues", Deploy),
        ("GET", "/v1/queues", Read),
        ("GET", "/v1/queues/{name}", Read),
        ("DELETE", "/v1/queues/{name}", Deploy),
        ("POST", "/v1/queues/{name}/messages", Deploy),
        ("GET", "/v1/queues/{name}/messages", Read),
        ("DELETE", "/v1/queues/{name}/messages", Deploy),
        ("GET", "/v1/queues/{name}/messages/{id}", Read),
        ("DELETE", "/v1/queues/{name}/messages/{id}", Deploy),
        ("POST", "/v1/queues/{name}/redrive", Deploy),
        ("PUT", "/v1/queues/{name}/trigger", Deploy),
        ("GET", "/v1/queues/{name}/trigger", Read),
        ("DELETE", "/v1/queues/{name}/trigger", Deploy),
        ("POST", "/v1/debug/clock", Admin),
        ("GET", "/v1/debug/clock", Read),
        ("GET", "/v1/functions/{name}/logs", Read),
        ("GET", "/v1/invocations/{id}", Read),
        ("GET", "/v1/invocations", Read),
        ("GET", "/v1/usage", Read),
        ("ANY", "/fn/{target}", Invoke),
        ("ANY", "/fn/{target}/", Invoke),
        ("ANY", "/fn/{target}/{*path}", Invoke),
        ("POST", "/2015-03-31/functions", Deploy),
        ("GET", "/2015-03-31/functions", Read),
        ("GET", "/2015-03-31/functions/", Read),
        ("GET", "/2015-03-31/functions/{function}", Read),
        ("DELETE", "/2015-03-31/functions/{function}", Deploy),
        (
            "GET",
            "/2015-03-31/functions/{function}/configuration",
            Read,
        ),
        (
            "PUT",
            "/2015-03-31/functions/{function}/configuration",
            Deploy,
        ),
        ("PUT", "/2015-03-31/functions/{function}/code", Deploy),
        (
            "POST",
            "/2015-03-31/functions/{function}/invocations",
            Invoke,
        ),
        ("POST", "/2015-03-31/functions/{function}/versions", Deploy),
        ("GET", "/2015-03-31/functions/{function}/versions", Read),
        ("POST", "/2015-03-31/functions/{function}/aliases", Deploy),
        ("GET", "/2015-03-31/functions/{function}/aliases", Read),
        (
            "GET",
            "/2015-03-31/functions/{function}/aliases/{alias}",
            Read,
        ),
        (
            "PUT",
            "/2015-03-31/functions/{function}/aliases/{alias}",
            Deploy,
        ),
        (
            "DELETE",
            "/2015-03-31/functions/{function}/aliases/{alias}",
            Deploy,
        ),
        (
            "PUT",
            "/2017-10-31/functions/{function}/concurrency",
            Deploy,
        ),
        (
            "DELETE",
            "/2017-10-31/functions/{function}/concurrency",
            Deploy,
        ),
        ("GET", "/2019-09-30/functions/{function}/concurrency", Read),
        (
            "PUT",
            "/2019-09-30/functions/{function}/provisioned-concurrency",
            Deploy,
        ),
        (
            "GET",
            "/2019-09-30/functions/{function}/provisioned-concurrency",
            Read,
        ),
        (
            "DELETE",
            "/2019-09-30/functions/{function}/provisioned-concurrency",
            Deploy,
        ),
        ("GET", "/2016-08-19/account-settings", Read),
        ("GET", "/2016-08-19/account-settings/", Read),
        ("POST", "/2021-10-31/functions/{function}/url", Deploy),
        ("GET", "/2021-10-31/functions/{function}/url", Read),
        ("PUT", "/2021-10-31/functions/{function}/url", Deploy),
        ("DELETE", "/2021-10-31/functions/{function}/url", Deploy),
        (
            "PUT",
            "/2019-09-25/functions/{function}/event-invoke-config",
            Deploy,
        ),
        (
            "POST",
            "/2019-09-25/functions/{function}/event-invoke-config",
            Deploy,
        ),
        (
            "GET",
            "/2019-09-25/functions/{function}/event-invoke-config",
            Read,
        ),
        (
            "DELETE",
            "/2019-09-25/functions/{function}/event-invoke-config",
            Deploy,
        ),
        (
            "GET",
            "/2019-09-25/functions/{function}/event-invoke-config/list",
            Read,
        ),
    ];

    /// The `(METHOD, pattern)` pairs of every `.route(...)` call in a router's source.
    fn routes_in(source: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find(".route(") {
            rest = &rest[start + ".route(".len()..];
            // The call's arguments, up to its closing parenthesis.
            let mut depth = 1usize;
            let end = rest
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("balanced .route(...)");
            let args = &rest[..end];
            let pattern = args.split('"').nth(1).expect("a quoted pattern");
            let handlers = args.splitn(3, '"').nth(2).expect("handlers");
            for (i, _) in handlers.match_indices('(') {
                let word: String = handlers[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                if ["get", "post", "put", "delete", "patch", "any"].contains(&word.as_str()) {
                    out.push((word.to_ascii_uppercase(), pattern.to_owned()));
                }
            }
            rest = &rest[end..];
        }
        out
    }

    #[test]
    fn every_route_is_classified() {
        let mut found = routes_in(include_str!("lib.rs"));
        found.extend(routes_in(include_str!("lambda/mod.rs")));
        assert!(found.len() > 100, "the route walk found only {found:?}");
        for (method, pattern) in &found {
            let Some((_, _, want)) = ROUTES.iter().find(|(m, p, _)| m == method && p == pattern)
            else {
                panic!("{method} {pattern} is not in ROUTES: decide its class there");
            };
            let methods: &[&str] = if method == "ANY" {
                &["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
            } else {
                &[method.as_str()]
            };
            for m in methods {
                let m = Method::from_bytes(m.as_bytes()).expect("method");
                assert_eq!(classify(&m, Some(pattern)), *want, "{m} {pattern}");
            }
        }
        for (m, p, _) in ROUTES {
            assert!(
                found.iter().any(|(fm, fp)| fm == m && fp == p),
                "{m} {p} is in ROUTES but no longer a route"
            );
        }
    }

    #[test]
    fn keys_and_controls_need_admin_and_unrouted_paths_only_read() {
        for (m, route) in [
            (Method::GET, "/v1/keys"),
            (Method::POST, "/v1/keys"),
            (Method::DELETE, "/v1/keys/{id}"),
            (Method::PUT, "/v1/keys/{id}"),
        ] {
            assert_eq!(classify(&m, Some(route)), Admin, "{m} {route}");
        }
        assert_eq!(classify(&Method::POST, None), Read);
        assert_eq!(classify(&Method::HEAD, Some("/v1/functions")), Read);
    }

    #[test]
    fn the_route_walk_reads_chained_handlers() {
        let src = r#".route("/a/{x}", get(h::a).put(h::b).delete(h::c))
            .route("/b", axum::routing::patch(f).put(g))"#;
        assert_eq!(
            routes_in(src),
            [
                ("GET".to_owned(), "/a/{x}".to_owned()),
                ("PUT".to_owned(), "/a/{x}".to_owned()),
                ("DELETE".to_owned(), "/a/{x}".to_owned()),
                ("PATCH".to_owned(), "/b".to_owned()),
                ("PUT".to_owned(), "/b".to_owned()),
            ]
        );
    }
}
