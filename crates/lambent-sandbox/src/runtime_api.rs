//! The AWS Lambda Runtime API (version 2018-06-01), one server per sandbox on a socket that only
//! that sandbox can reach.
//!
//! The runtime asks for work with `GET /runtime/invocation/next` (the first such call also ends
//! the init phase), answers with `POST /runtime/invocation/{id}/response` or `.../error`, and
//! reports a failed init with `POST /runtime/init/error`. Answers for an invocation that is not the
//! current one get 403, responses over the payload limit 413, as on Lambda.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use lambent_core::limits::MAX_SYNC_RESPONSE_BYTES;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

const PREFIX: &str = "/2018-06-01/runtime";

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
}

/// The state of one sandbox's Runtime API.
pub struct RuntimeApi {
    current: Mutex<Option<Current>>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    readiness: watch::Sender<Readiness>,
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
            }),
            tx,
            ready_rx,
        )
    }

    /// Serves connections from `listener` until the task is aborted.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let api = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
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
        let invocation = self.queue.lock().await.recv().await;
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
        });
        response
    }

    fn is_current(&self, id: &str) -> bool {
        self.current
            .lock()
            .as_ref()
            .is_some_and(|c| c.request_id == id)
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
        if !self.is_current(&id) {
            return invalid_id(&id);
        }
        match read_body(req).await {
            Ok(body) => {
                if self.finish(&id, Reply::Response(body)) {
                    accepted()
                } else {
                    invalid_id(&id)
                }
            }
            Err(BodyRead::TooLarge) => {
                self.finish(&id, Reply::TooLarge);
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
        if !self.is_current(&id) {
            return invalid_id(&id);
        }
        let header_type = error_type_header(&req);
        match read_body(req).await {
            Ok(body) => {
                let e = FunctionError::from_body(header_type.as_deref(), &body);
                if self.finish(&id, Reply::Error(e)) {
                    accepted()
                } else {
                    invalid_id(&id)
                }
            }
            Err(BodyRead::TooLarge) => {
                self.finish(&id, Reply::TooLarge);
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "error document too large",
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
        let header_type = error_type_header(&req);
        let body = match read_body(req).await {
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

async fn read_body(req: Request<Incoming>) -> Result<Bytes, BodyRead> {
    match Limited::new(req.into_body(), MAX_SYNC_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyRead::TooLarge),
        Err(e) => Err(BodyRead::Failed(e.to_string())),
    }
}

fn accepted() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)));
    *r.status_mut() = StatusCode::ACCEPTED;
    r
}

fn invalid_id(id: &str) -> Response<Full<Bytes>> {
    error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        &format!("invocation {id} is not waiting for an answer (unknown id, or already answered)"),
    )
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
