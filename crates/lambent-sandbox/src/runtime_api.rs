//! The AWS Lambda Runtime API (version 2018-06-01), one server per sandbox on a socket that only
//! that sandbox can reach.
//!
//! The runtime asks for work with `GET /runtime/invocation/next` (the first such call also ends
//! the init phase), answers with `POST /runtime/invocation/{id}/response` or `.../error`, and
//! reports a failed init with `POST /runtime/init/error`. Answers for an invocation that is not the
//! current one get 403, responses over the payload limit 413, as on Lambda.
//!
//! The function on the other side is not trusted, so what lambent holds on its behalf is bounded
//! whatever it sends: at most [`MAX_CONNECTIONS_PER_SANDBOX`] connections (the rest are closed as
//! soon as they are accepted), a request head must arrive within [`HEADER_READ_TIMEOUT`] and fit in
//! [`READ_BUFFER_BYTES`], and an answer's body is read only once its request id has been *claimed*
//! as the current, unanswered invocation, by one request at a time, up to the payload limit while
//! it streams (a larger `Content-Length` gets 413 before any of the body is read). So per sandbox
//! lambent holds at most one event plus one body per connection:
//! `(1 + MAX_CONNECTIONS_PER_SANDBOX) x 6 MB` plus `MAX_CONNECTIONS_PER_SANDBOX x READ_BUFFER_BYTES`
//! of buffers, about 31 MB. Connections end with the server (an instance's kill aborts it).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use lambent_core::limits::MAX_SYNC_RESPONSE_BYTES;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

const PREFIX: &str = "/2018-06-01/runtime";

/// Connections one sandbox may have open to its Runtime API at once. Runtimes use one or two (a
/// long-polling `GET /invocation/next`, and for some a second one for answers); a connection past
/// this is closed as soon as it is accepted, before any work is spawned for it.
pub const MAX_CONNECTIONS_PER_SANDBOX: usize = 4;

/// How long a Runtime API connection may take to deliver a complete request head. hyper runs this
/// timer whenever a connection waits for a request (a new connection, or a kept-alive one after
/// its last answer), so it is also the keep-alive idle timeout: a connection that stays quiet this
/// long is closed, and runtimes reconnect (ours and the AWS clients do). A long-polling
/// `GET /invocation/next` is a request being answered, not an idle connection, and is not cut.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most one connection buffers of what it reads before it is handled (hyper's read buffer,
/// 400 KB by default): a request head must fit in it.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

/// The largest init error document (`POST /runtime/init/error`) that is read; a larger one ends
/// init as failed with a short message instead.
pub const MAX_INIT_ERROR_BYTES: usize = 1024 * 1024;

/// The first pause after a failed `accept` (e.g. `EMFILE`), doubled on each failure in a row.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// The longest pause between two failing `accept`s.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The bounds one Runtime API server enforces; [`Default`] is the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections open at once ([`MAX_CONNECTIONS_PER_SANDBOX`]).
    pub max_connections: usize,
    /// Request head (and keep-alive idle) timeout ([`HEADER_READ_TIMEOUT`]).
    pub header_read_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS_PER_SANDBOX,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// A function error reported by the runtime: its type and Lambda's error document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType`, e.g. `ValueError` or `Runtime.ImportModuleError`.
    pub error_type: String,
    /// `errorMessage`.
    pub message: String,
    /// The error document as the caller gets it (`errorMessage`, `errorType`, `stackTrace`...).
    pub payload: Bytes,
}

#[derive(Debug, Deserialize, Serialize)]
struct ErrorDocument {
    #[serde(rename = "errorMessage", default)]
    error_message: String,
    #[serde(rename = "errorType", default)]
    error_type: String,
    #[serde(
        rename = "stackTrace",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    stack_trace: Option<serde_json::Value>,
}

impl FunctionError {
    /// Reads an error document as runtimes post it; a body that is not one is kept as the message.
    pub fn from_body(header_type: Option<&str>, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .filter(serde_json::Value::is_object);
        let doc: Option<ErrorDocument> = parsed
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let error_type = doc
            .as_ref()
            .map(|d| d.error_type.clone())
            .filter(|t| !t.is_empty())
            .or_else(|| header_type.map(str::to_owned))
            .unwrap_or_else(|| "Unhandled".into());
        match (parsed, doc) {
            (Some(mut value), Some(doc)) => {
                if let Some(obj) = value.as_object_mut() {
                    obj.entry("errorType")
                        .or_insert_with(|| error_type.clone().into());
                }
                Self {
                    payload: Bytes::from(serde_json::to_vec(&value).unwrap_or_default()),
                    error_type,
                    message: doc.error_message,
                }
            }
            _ => Self::new(error_type, String::from_utf8_lossy(body).into_owned()),
        }
    }

    /// An error made by lambent on the function's behalf (e.g. `Runtime.ExitError`).
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        let error_type = error_type.into();
        let message = message.into();
        let doc = ErrorDocument {
            error_message: message.clone(),
            error_type: error_type.clone(),
            stack_trace: None,
        };
        Self {
            payload: Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
            error_type,
            message,
        }
    }
}

/// How the runtime answered one invocation.
#[derive(Debug)]
pub enum Reply {
    /// `POST .../response`.
    Response(Bytes),
    /// `POST .../error`.
    Error(FunctionError),
    /// A response over the payload limit.
    TooLarge,
    /// The runtime moved on without answering.
    Abandoned(String),
}

/// One event handed to the runtime.
#[derive(Debug)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// The event.
    pub payload: Bytes,
    /// `Lambda-Runtime-Deadline-Ms`: the deadline in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: String,
    /// `Lambda-Runtime-Client-Context`, when the caller sent one.
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity`, when the caller sent one.
    pub cognito_identity: Option<String>,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Reply>,
}

/// Where the init phase stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The runtime has not asked for work yet.
    Initializing,
    /// The runtime asked for its first event.
    Ready,
    /// The runtime reported that init failed.
    InitFailed(FunctionError),
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<Reply>,
    /// An answer's body is being read: no other request may claim this invocation meanwhile.
    receiving: bool,
}

/// Why an answer was refused before its body was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The id is not the current, unanswered invocation.
    NotCurrent,
    /// Another request is already delivering an answer for it.
    Busy,
}

/// The right to deliver the answer of the current invocation, held while its body is read.
/// Dropped without [`Claim::finish`] (the body failed, the connection went), it is given back.
struct Claim<'a> {
    api: &'a RuntimeApi,
    id: Option<String>,
}

impl Claim<'_> {
    /// Hands `reply` to the caller; false when the invocation was abandoned meanwhile.
    fn finish(mut self, reply: Reply) -> bool {
        match self.id.take() {
            Some(id) => self.api.finish(&id, reply),
            None => false,
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Some(c) = self.api.current.lock().as_mut()
            && c.request_id == id
        {
            c.receiving = false;
        }
    }
}

/// Holds `flag` set while an init error is read; clears it when dropped.
struct InitClaim<'a>(&'a AtomicBool);

impl Drop for InitClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The state of one sandbox's Runtime API.
pub struct RuntimeApi {
    current: Mutex<Option<Current>>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    readiness: watch::Sender<Readiness>,
    /// Whether the runtime is parked in `GET /invocation/next`, waiting for an event: the one
    /// moment a sandbox may be frozen without a connection idling (and timing out) meanwhile.
    parked: watch::Sender<bool>,
    /// An init error's body is being read.
    init_error_receiving: AtomicBool,
}

/// Clears [`RuntimeApi::parked`] when a `GET /invocation/next` ends, answered or dropped.
struct Unpark<'a>(&'a watch::Sender<bool>);

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").finish_non_exhaustive()
    }
}

impl RuntimeApi {
    /// A new API, the sender that hands it invocations, and a watch on the init phase.
    pub fn new() -> (
        Arc<Self>,
        mpsc::Sender<Invocation>,
        watch::Receiver<Readiness>,
    ) {
        let (tx, rx) = mpsc::channel(1);
        let (readiness, ready_rx) = watch::channel(Readiness::Initializing);
        (
            Arc::new(Self {
                current: Mutex::new(None),
                queue: tokio::sync::Mutex::new(rx),
                readiness,
                parked: watch::channel(false).0,
                init_error_receiving: AtomicBool::new(false),
            }),
            tx,
            ready_rx,
        )
    }

    /// A watch on whether the runtime is parked in `GET /invocation/next`.
    pub fn parked(&self) -> watch::Receiver<bool> {
        self.parked.subscribe()
    }

    /// Serves connections from `listener` with the default [`ServeLimits`] until the task is
    /// aborted.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        self.serve_with(listener, ServeLimits::default()).await;
    }

    /// Serves connections from `listener` within `limits` until the task is aborted; aborting it
    /// ends every connection it serves.
    pub async fn serve_with(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        limits: ServeLimits,
    ) {
        let mut connections = JoinSet::new();
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            while connections.try_join_next().is_some() {}
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            match accepted {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    if connections.len() >= limits.max_connections {
                        // Refused: closed at once, nothing spawned, nothing read.
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    connections.spawn(self.clone().connection(stream, limits));
                }
                Err(e) if is_peer_error(&e) => {}
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS...: the connection stays queued, so retrying at
                    // once would spin. Wait, longer each time, for descriptors or memory to free.
                    tracing::warn!(error = %e, retry_in = ?backoff, "the Runtime API cannot accept a connection");
                    tokio::time::sleep(backoff).await;
                    backoff = next_backoff(backoff);
                }
            }
        }
    }

    async fn connection(self: Arc<Self>, stream: tokio::net::TcpStream, limits: ServeLimits) {
        let service = hyper::service::service_fn(move |req| {
            let api = self.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(READ_BUFFER_BYTES)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
        };
        let method = req.method().clone();
        match (method, rest) {
            (Method::GET, "/invocation/next") => self.next().await,
            (Method::POST, "/init/error") => self.init_error(req).await,
            (Method::POST, rest) => {
                let Some(rest) = rest.strip_prefix("/invocation/") else {
                    return error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
                };
                match rest.rsplit_once('/') {
                    Some((id, "response")) => self.response(id.to_owned(), req).await,
                    Some((id, "error")) => self.error(id.to_owned(), req).await,
                    _ => error(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
                }
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "InvalidRequest",
                "method not allowed",
            ),
        }
    }

    async fn next(&self) -> Response<Full<Bytes>> {
        self.readiness.send_if_modified(|r| {
            if *r == Readiness::Initializing {
                *r = Readiness::Ready;
                true
            } else {
                false
            }
        });
        if let Some(abandoned) = self.current.lock().take() {
            let _ = abandoned.reply.send(Reply::Abandoned(format!(
                "the runtime asked for the next invocation without answering {}",
                abandoned.request_id
            )));
        }
        let invocation = {
            let _unpark = Unpark(&self.parked);
            self.parked.send_replace(true);
            self.queue.lock().await.recv().await
        };
        let Some(inv) = invocation else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "the sandbox is shutting down",
            );
        };
        let mut response = Response::new(Full::new(inv.payload));
        let h = response.headers_mut();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        set("lambda-runtime-aws-request-id", &inv.request_id);
        set("lambda-runtime-deadline-ms", &inv.deadline_ms.to_string());
        set("lambda-runtime-invoked-function-arn", &inv.function_arn);
        set("lambda-runtime-trace-id", &inv.trace_id);
        if let Some(c) = &inv.client_context {
            set("lambda-runtime-client-context", c);
        }
        if let Some(c) = &inv.cognito_identity {
            set("lambda-runtime-cognito-identity", c);
        }
        set("content-type", "application/json");
        *self.current.lock() = Some(Current {
            request_id: inv.request_id,
            reply: inv.reply,
            receiving: false,
        });
        response
    }

    /// Claims invocation `id` for one answer, before any of that answer's body is read.
    fn claim(&self, id: &str) -> Result<Claim<'_>, Refusal> {
        let mut current = self.current.lock();
        match current.as_mut() {
            Some(c) if c.request_id == id && !c.receiving => {
                c.receiving = true;
                Ok(Claim {
                    api: self,
                    id: Some(id.to_owned()),
                })
            }
            Some(c) if c.request_id == id => Err(Refusal::Busy),
            _ => Err(Refusal::NotCurrent),
        }
    }

    fn finish(&self, id: &str, reply: Reply) -> bool {
        let mut current = self.current.lock();
        match current.take() {
            Some(c) if c.request_id == id => {
                let _ = c.reply.send(reply);
                true
            }
            other => {
                *current = other;
                false
            }
        }
    }

    async fn response(&self, id: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let claim = match self.claim(&id) {
            Ok(c) => c,
            Err(why) => return refused(&id, why),
        };
        match read_body(req, MAX_SYNC_RESPONSE_BYTES).await {
            Ok(body) => {
                if claim.finish(Reply::Response(body)) {
                    accepted()
                } else {
                    refused(&id, Refusal::NotCurrent)
                }
            }
            Err(BodyRead::TooLarge) => {
                claim.finish(Reply::TooLarge);
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &format!(
                        "Exceeded maximum allowed payload size ({MAX_SYNC_RESPONSE_BYTES} bytes)."
                    ),
                )
            }
            Err(BodyRead::Failed(e)) => error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
        }
    }

    async fn error(&self, id: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let claim = match self.claim(&id) {
            Ok(c) => c,
            Err(why) => return refused(&id, why),
        };
        let header_type = error_type_header(&req);
        match read_body(req, MAX_SYNC_RESPONSE_BYTES).await {
            Ok(body) => {
                let e = FunctionError::from_body(header_type.as_deref(), &body);
                if claim.finish(Reply::Error(e)) {
                    accepted()
                } else {
                    refused(&id, Refusal::NotCurrent)
                }
            }
            Err(BodyRead::TooLarge) => {
                claim.finish(Reply::TooLarge);
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &format!(
                        "Exceeded maximum allowed error document size ({MAX_SYNC_RESPONSE_BYTES} bytes)."
                    ),
                )
            }
            Err(BodyRead::Failed(e)) => error(StatusCode::BAD_REQUEST, "InvalidRequest", &e),
        }
    }

    async fn init_error(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if *self.readiness.borrow() != Readiness::Initializing {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "init errors can only be reported before the first /invocation/next",
            );
        }
        if self
            .init_error_receiving
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "an init error is already being reported",
            );
        }
        let _claim = InitClaim(&self.init_error_receiving);
        let header_type = error_type_header(&req);
        let body = match read_body(req, MAX_INIT_ERROR_BYTES).await {
            Ok(b) => b,
            Err(BodyRead::TooLarge) => Bytes::from_static(b"init error document too large"),
            Err(BodyRead::Failed(e)) => {
                return error(StatusCode::BAD_REQUEST, "InvalidRequest", &e);
            }
        };
        let e = FunctionError::from_body(header_type.as_deref(), &body);
        self.readiness.send_replace(Readiness::InitFailed(e));
        accepted()
    }
}

/// Errors of one connection attempt that say nothing about the listener: accept the next one.
fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    )
}

/// The pause after `current` when `accept` fails again.
fn next_backoff(current: Duration) -> Duration {
    current.saturating_mul(2).min(ACCEPT_BACKOFF_MAX)
}

fn error_type_header(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

enum BodyRead {
    TooLarge,
    Failed(String),
}

/// Reads a body of at most `limit` bytes: a larger `Content-Length` is refused before anything
/// is read, and a body without one is cut as soon as it passes the limit.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, BodyRead> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let capacity = match declared {
        Some(n) if n > limit as u64 => return Err(BodyRead::TooLarge),
        Some(n) => usize::try_from(n).unwrap_or(limit),
        None => 0,
    };
    let mut body = req.into_body();
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRead::Failed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyRead::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn accepted() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)));
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

fn refused(id: &str, why: Refusal) -> Response<Full<Bytes>> {
    let message = match why {
        Refusal::NotCurrent => format!(
            "invocation {id} is not waiting for an answer (unknown id, or already answered)"
        ),
        Refusal::Busy => format!("an answer for invocation {id} is already being received"),
    };
    error(StatusCode::FORBIDDEN, "InvalidStateTransition", &message)
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let doc = serde_json::json!({ "errorMessage": message, "errorType": error_type });
    let mut r = Response::new(Full::new(Bytes::from(doc.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> (
        String,
        mpsc::Sender<Invocation>,
        watch::Receiver<Readiness>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}{PREFIX}", listener.local_addr().expect("addr"));
        let (api, tx, ready) = RuntimeApi::new();
        let task = tokio::spawn(api.serve(listener));
        (base, tx, ready, task)
    }

    fn invocation(id: &str, reply: oneshot::Sender<Reply>) -> Invocation {
        Invocation {
            request_id: id.into(),
            payload: Bytes::from_static(br#"{"k":1}"#),
            deadline_ms: 1_700_000_000_000,
            function_arn: "arn:aws:lambda:local:000000000000:function:f".into(),
            trace_id: "Root=1-abc".into(),
            client_context: None,
            cognito_identity: Some("{\"cognitoIdentityId\":\"x\"}".into()),
            reply,
        }
    }

    #[tokio::test]
    async fn next_response_and_the_403_and_413_cases() {
        let (base, tx, mut ready, task) = start().await;
        let client = reqwest::Client::new();
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(invocation("req-1", reply_tx))
            .await
            .expect("queued");
        let next = client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .expect("next");
        assert_eq!(*ready.borrow_and_update(), Readiness::Ready);
        let h = next.headers();
        assert_eq!(h["lambda-runtime-aws-request-id"], "req-1");
        assert_eq!(h["lambda-runtime-deadline-ms"], "1700000000000");
        assert_eq!(h["lambda-runtime-trace-id"], "Root=1-abc");
        assert!(h.contains_key("lambda-runtime-cognito-identity"));
        assert!(!h.contains_key("lambda-runtime-client-context"));
        assert_eq!(next.text().await.expect("body"), r#"{"k":1}"#);

        let wrong = client
            .post(format!("{base}/invocation/other/response"))
            .body("x")
            .send()
            .await
            .expect("post");
        assert_eq!(wrong.status(), 403);
        let ok = client
            .post(format!("{base}/invocation/req-1/response"))
            .body("\"done\"")
            .send()
            .await
            .expect("post");
        assert_eq!(ok.status(), 202);
        assert!(matches!(reply_rx.await, Ok(Reply::Response(b)) if b == "\"done\""));
        let again = client
            .post(format!("{base}/invocation/req-1/response"))
            .body("x")
            .send()
            .await
            .expect("post");
        assert_eq!(again.status(), 403, "answering twice is refused");
        let late_init = client
            .post(format!("{base}/init/error"))
            .body("{}")
            .send()
            .await
            .expect("post");
        assert_eq!(late_init.status(), 403);

        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(invocation("req-2", reply_tx))
            .await
            .expect("queued");
        client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .expect("next");
        let big = client
            .post(format!("{base}/invocation/req-2/response"))
            .body(vec![b'x'; MAX_SYNC_RESPONSE_BYTES + 1])
            .send()
            .await
            .expect("post");
        assert_eq!(big.status(), 413);
        assert!(matches!(reply_rx.await, Ok(Reply::TooLarge)));
        task.abort();
    }

    #[tokio::test]
    async fn errors_keep_their_type_and_init_errors_end_init() {
        let (base, tx, mut ready, task) = start().await;
        let client = reqwest::Client::new();
        let init = client
            .post(format!("{base}/init/error"))
            .header(
                "Lambda-Runtime-Function-Error-Type",
                "Runtime.ImportModuleError",
            )
            .body(r#"{"errorMessage":"No module named 'app'"}"#)
            .send()
            .await
            .expect("post");
        assert_eq!(init.status(), 202);
        let Readiness::InitFailed(e) = ready.borrow_and_update().clone() else {
            panic!("init should have failed");
        };
        assert_eq!(e.error_type, "Runtime.ImportModuleError");
        assert_eq!(e.message, "No module named 'app'");

        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(invocation("r", reply_tx)).await.expect("queued");
        client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .expect("next");
        client
            .post(format!("{base}/invocation/r/error"))
            .body(r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":["a"]}"#)
            .send()
            .await
            .expect("post");
        let Ok(Reply::Error(e)) = reply_rx.await else {
            panic!("expected an error reply");
        };
        assert_eq!(
            (e.error_type.as_str(), e.message.as_str()),
            ("ValueError", "boom")
        );
        let doc: serde_json::Value = serde_json::from_slice(&e.payload).expect("json");
        assert_eq!(doc["stackTrace"][0], "a");
        task.abort();
    }

    async fn start_limited(
        limits: ServeLimits,
    ) -> (
        Arc<RuntimeApi>,
        std::net::SocketAddr,
        mpsc::Sender<Invocation>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (api, tx, _ready) = RuntimeApi::new();
        let task = tokio::spawn(api.clone().serve_with(listener, limits));
        (api, addr, tx, task)
    }

    /// Reads one answer (head and `Content-Length` body), or what came before the connection
    /// closed; panics if the server neither answers nor closes.
    async fn read_answer(s: &mut tokio::net::TcpStream) -> String {
        use tokio::io::AsyncReadExt;
        let read = async {
            let mut got = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let text = String::from_utf8_lossy(&got).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        return text;
                    }
                }
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return text,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .expect("the server neither answered nor closed the connection")
    }

    async fn send(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let _ = s.write_all(bytes).await;
        s
    }

    fn post_head(id: &str, content_length: usize) -> Vec<u8> {
        format!(
            "POST {PREFIX}/invocation/{id}/response HTTP/1.1\r\nHost: x\r\nContent-Length: {content_length}\r\n\r\n"
        )
        .into_bytes()
    }

    async fn take_next(
        addr: std::net::SocketAddr,
        tx: &mpsc::Sender<Invocation>,
        id: &str,
    ) -> oneshot::Receiver<Reply> {
        let (reply_tx, reply_rx) = oneshot::channel();
        tx.send(invocation(id, reply_tx)).await.expect("queued");
        let next = reqwest::get(format!("http://{addr}{PREFIX}/invocation/next"))
            .await
            .expect("next");
        assert_eq!(next.headers()["lambda-runtime-aws-request-id"], id);
        reply_rx
    }

    async fn wait_receiving(api: &RuntimeApi, receiving: bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while api.current.lock().as_ref().map(|c| c.receiving) != Some(receiving) {
            assert!(
                std::time::Instant::now() < deadline,
                "the claim never changed to {receiving}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_at_once_and_end_with_the_server() {
        let limits = ServeLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(120),
        };
        let (_api, addr, _tx, task) = start_limited(limits).await;
        let probe = post_head("nobody", 0);
        let mut a = send(addr, &probe).await;
        assert!(read_answer(&mut a).await.starts_with("HTTP/1.1 403"));
        let mut b = send(addr, &probe).await;
        assert!(read_answer(&mut b).await.starts_with("HTTP/1.1 403"));
        // Both are kept alive: a third connection is closed without an answer.
        let mut c = send(addr, &probe).await;
        assert_eq!(
            read_answer(&mut c).await,
            "",
            "a connection past the cap is refused"
        );
        // Once one goes, new connections are served again (the server notices the close soon).
        drop(a);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut d = send(addr, &probe).await;
            if read_answer(&mut d).await.starts_with("HTTP/1.1 403") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no room came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Stopping the server (an instance's kill) closes the connections it served.
        task.abort();
        let _ = task.await;
        assert_eq!(read_answer(&mut b).await, "");
    }

    #[tokio::test]
    async fn stalled_and_silent_connections_are_cut() {
        let limits = ServeLimits {
            max_connections: 4,
            header_read_timeout: Duration::from_millis(200),
        };
        let (_api, addr, _tx, task) = start_limited(limits).await;
        let mut half = send(
            addr,
            format!("POST {PREFIX}/init/error HTTP/1.1\r\nHost: x\r\n").as_bytes(),
        )
        .await;
        let mut silent = send(addr, b"").await;
        // Both end (hyper closes them) instead of being held forever.
        let _ = read_answer(&mut half).await;
        let _ = read_answer(&mut silent).await;
        task.abort();
    }

    #[tokio::test]
    async fn one_answer_is_read_at_a_time_and_only_for_the_current_invocation() {
        let (api, addr, tx, task) = start_limited(ServeLimits::default()).await;
        let reply = take_next(addr, &tx, "req-1").await;
        // The first upload claims req-1 and stalls halfway through its body.
        let mut first = post_head("req-1", 10);
        first.extend_from_slice(b"\"abc");
        let mut a = send(addr, &first).await;
        wait_receiving(&api, true).await;
        // A second answer for the same id is refused without waiting for its body.
        let mut b = send(addr, &post_head("req-1", 10)).await;
        let answer = read_answer(&mut b).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("already being received"), "{answer}");
        // So is an answer for an id that is not the current one.
        let mut c = send(addr, &post_head("req-0", 1_000)).await;
        let answer = read_answer(&mut c).await;
        assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        assert!(answer.contains("not waiting for an answer"), "{answer}");
        // The claimed upload completes and is the answer.
        {
            use tokio::io::AsyncWriteExt;
            a.write_all(b"defgh\"").await.expect("rest of the body");
        }
        assert!(read_answer(&mut a).await.starts_with("HTTP/1.1 202"));
        assert!(matches!(reply.await, Ok(Reply::Response(b)) if b == "\"abcdefgh\""));
        task.abort();
    }

    #[tokio::test]
    async fn an_upload_that_breaks_off_gives_its_claim_back() {
        let (api, addr, tx, task) = start_limited(ServeLimits::default()).await;
        let reply = take_next(addr, &tx, "req-1").await;
        let mut first = post_head("req-1", 10);
        first.extend_from_slice(b"\"ab");
        let a = send(addr, &first).await;
        wait_receiving(&api, true).await;
        drop(a);
        wait_receiving(&api, false).await;
        let ok = reqwest::Client::new()
            .post(format!("http://{addr}{PREFIX}/invocation/req-1/response"))
            .body("\"again\"")
            .send()
            .await
            .expect("post");
        assert_eq!(ok.status(), 202);
        assert!(matches!(reply.await, Ok(Reply::Response(b)) if b == "\"again\""));
        task.abort();
    }

    #[tokio::test]
    async fn a_declared_oversized_answer_gets_413_before_its_body_is_read() {
        let (_api, addr, tx, task) = start_limited(ServeLimits::default()).await;
        let reply = take_next(addr, &tx, "req-1").await;
        // Only the head is sent: the answer must come from Content-Length alone.
        let mut a = send(addr, &post_head("req-1", MAX_SYNC_RESPONSE_BYTES + 1)).await;
        let answer = read_answer(&mut a).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(matches!(reply.await, Ok(Reply::TooLarge)));
        task.abort();
    }

    #[test]
    fn accept_backoff_doubles_up_to_its_cap() {
        assert_eq!(next_backoff(ACCEPT_BACKOFF_MIN), ACCEPT_BACKOFF_MIN * 2);
        let mut b = ACCEPT_BACKOFF_MIN;
        for _ in 0..64 {
            b = next_backoff(b);
        }
        assert_eq!(b, ACCEPT_BACKOFF_MAX);
    }

    #[test]
    fn error_bodies_that_are_not_documents_become_messages() {
        let e = FunctionError::from_body(Some("Custom"), b"plain text");
        assert_eq!(
            (e.error_type.as_str(), e.message.as_str()),
            ("Custom", "plain text")
        );
        let e = FunctionError::from_body(None, b"");
        assert_eq!(e.error_type, "Unhandled");
    }
}
