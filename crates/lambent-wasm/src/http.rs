//! Running `wasi:http/proxy` components: a fresh instance per request, the response streamed back
//! while the guest writes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use lambent_core::limits::MAX_LOG_BYTES_PER_INVOCATION;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use crate::limits::{MemoryLimiter, arm_deadline, classify};
use crate::pipe::CapturePipe;
use crate::{
    BodyError, Completion, Failure, Invocation, InvokeContext, InvokeError, OnComplete, WasmEngine,
};

/// Store state of a component instance.
pub struct HttpState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: DenyOutbound,
    limiter: MemoryLimiter,
}

impl WasiView for HttpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HttpState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Functions may not make outgoing HTTP requests: egress is an explicit, per-function grant that
/// lambent does not offer for wasm yet, and the default must not let guest code reach services on
/// the host's network (lambent's own API included).
struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Drops the headers a function may not set ([`lambent_core::framing`]). wasmtime-wasi-http
/// already refuses most of them from the guest; `Content-Length` it lets through (and holds the
/// guest to), so it goes here, and the server frames the body.
pub fn drop_server_owned_headers(headers: &mut http::HeaderMap) {
    let owned: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| lambent_core::framing::is_server_owned(k.as_str()))
        .cloned()
        .collect();
    for name in owned {
        headers.remove(name);
    }
}

pub(crate) fn logs_text(pipe: &CapturePipe) -> String {
    let (bytes, overflowed) = pipe.contents();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if overflowed {
        text.push_str("\n[lambent: log output cut at the per-invocation limit]\n");
    }
    text
}

fn with_authority<B>(mut req: http::Request<B>) -> http::Request<B> {
    if req.uri().authority().is_some() {
        return req;
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    if let Ok(uri) = http::Uri::builder()
        .scheme("http")
        .authority(host.as_str())
        .path_and_query(path.as_str())
        .build()
    {
        *req.uri_mut() = uri;
    }
    req
}

impl WasmEngine {
    pub(crate) async fn invoke_http<B>(
        &self,
        pre: &ProxyPre<HttpState>,
        req: http::Request<B>,
        ctx: &InvokeContext,
        on_complete: OnComplete,
    ) -> Result<Invocation, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        let logs = CapturePipe::new(MAX_LOG_BYTES_PER_INVOCATION);
        let mut wasi = WasiCtx::builder();
        wasi.stdout(logs.clone())
            .stderr(logs.clone())
            .envs(&ctx.environment);
        let state = HttpState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: DenyOutbound,
            limiter: MemoryLimiter::new(ctx.memory_bytes, ctx.shared_memory.clone()),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        arm_deadline(&mut store, ctx.timeout);

        let early = |error| Failure {
            error,
            logs: String::new(),
            init: Duration::ZERO,
        };
        let req = with_authority(req).map(|body| {
            body.map_err(|e| match e.into() {
                BodyError::TooLarge { limit } => {
                    wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit as u64))
                }
                BodyError::Stream(m) => wasmtime_wasi_http::Error::InternalError(Some(m)),
            })
        });
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| early(InvokeError::BadRequest(format!("{e:#}"))))?;
        // Once the guest has sent a response head, its completion goes to `on_complete`;
        // until then a failure comes back to this function through `done`.
        let responded = Arc::new(AtomicBool::new(false));
        let (response_tx, response_rx) = oneshot::channel();
        let flag = responded.clone();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam_from_callback(move |value| {
                flag.store(value.is_ok(), Ordering::Release);
                let _ = response_tx.send(value);
            })
            .map_err(|e| early(InvokeError::BadRequest(format!("{e:#}"))))?;

        let (init_tx, mut init_rx) = oneshot::channel::<Duration>();
        let (done_tx, done_rx) = oneshot::channel();
        let pre = pre.clone();
        let timeout = ctx.timeout;
        let task_logs = logs.clone();
        tokio::spawn(async move {
            let mut init = Duration::ZERO;
            let run = async {
                let started = Instant::now();
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| classify(&e, timeout))?;
                init = started.elapsed();
                let _ = init_tx.send(init);
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, req, out)
                    .await
                    .map_err(|e| classify(&e, timeout))
            };
            let result = tokio::time::timeout(timeout, run)
                .await
                .unwrap_or(Err(InvokeError::Timeout { timeout }));
            let completion = Completion {
                result,
                logs: logs_text(&task_logs),
                init,
            };
            if responded.load(Ordering::Acquire) {
                on_complete(completion);
            } else {
                let _ = done_tx.send(completion);
            }
        });

        let response = response_rx.await;
        let init = init_rx.try_recv().unwrap_or_default();
        let failure = |error, logs| Failure { error, logs, init };
        match response {
            Ok(Ok(mut resp)) => Ok(Invocation {
                response: {
                    drop_server_owned_headers(resp.headers_mut());
                    resp
                }
                .map(|b| {
                    b.map_err(|e| BodyError::Stream(e.to_string()))
                        .boxed_unsync()
                }),
                init,
            }),
            Ok(Err(code)) => {
                let logs = done_rx.await.map(|c| c.logs).unwrap_or_default();
                Err(failure(InvokeError::GuestError(format!("{code:?}")), logs))
            }
            Err(_) => match done_rx.await {
                Ok(Completion {
                    result: Err(error),
                    logs,
                    ..
                }) => Err(failure(error, logs)),
                Ok(Completion {
                    result: Ok(()),
                    logs,
                    ..
                }) => Err(failure(InvokeError::NoResponse, logs)),
                Err(_) => Err(failure(
                    InvokeError::Instantiate("the instance's task ended unexpectedly".into()),
                    logs_text(&logs),
                )),
            },
        }
    }
}
