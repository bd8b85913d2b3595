//! The accept loop: hyper's connection builder (HTTP/1.1, and HTTP/2 with prior knowledge) with
//! what a server facing slow or numerous callers needs and `axum::serve` does not have: a header
//! read timeout, a keep-alive idle timeout, a cap on open connections, and accept errors (such as
//! `EMFILE`) backed off instead of retried in a busy loop.
//!
//! Each connection has a watchdog that sees the bytes moving on its socket and its requests in
//! flight, and closes the connection when
//! - a request head has not arrived whole within the header timeout of its first byte (for a new
//!   connection: of being accepted), so a half-sent header is not held open;
//! - no request is being handled and no byte has moved for the idle timeout: an idle keep-alive
//!   connection, or a caller that stopped reading its response.
//!
//! While a handler runs (a function executing, a request body being read), none of these apply:
//! the handler's own limits (payload sizes, function timeouts) do.
//!
//! Over the connection cap, a new connection gets a `503` with `Retry-After` written at once and
//! is closed, rather than left waiting in the kernel's backlog: the caller learns at once that the
//! server is full and can retry, while a waiting connection would hang behind whoever holds the
//! slots (for up to the timeouts above) and still hold a descriptor and a backlog entry.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};

use crate::FrontEnd;

/// How long a caller has to send a whole request head, from its first byte (for a new connection,
/// from being accepted). nginx's `client_header_timeout` is 60 s; 10 s is plenty for any real
/// client and bounds how long a slow-header caller holds a connection.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open with no request in flight and no byte moving (an idle
/// keep-alive connection, or a caller that stopped reading its response). nginx's
/// `keepalive_timeout` is 75 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections open at once, at most; more are answered 503 and closed.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Seconds a caller refused for the connection cap is told to wait (`Retry-After`).
pub const OVER_CAPACITY_RETRY_AFTER_S: u32 = 1;
/// The first pause after an accept error that is not about one connection (`EMFILE`, `ENFILE`,
/// `ENOBUFS`, `ENOMEM`); it doubles with each further error.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest pause after accept errors (hyper 0.14 and Go's net/http pause up to 1 s).
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How often, at most, a refusal for the connection cap is logged.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Limits of the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeConfig {
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets in-flight
/// requests finish, closes idle connections, and returns when every connection is closed.
pub(crate) async fn serve_front_end(
    listener: TcpListener,
    front: FrontEnd,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Dropping the receiver tells every connection to shut down gracefully.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Each connection holds a receiver; all dropped means all closed.
    let (close_tx, close_rx) = watch::channel(());
    let slots = Arc::new(Semaphore::new(
        config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut last_refusal_log: Option<Instant> = None;
    let mut refused_since_log = 0u64;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = signal_tx.closed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(c) => {
                backoff = ACCEPT_BACKOFF_MIN;
                c
            }
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!(error = %e, pause_ms = backoff.as_millis(), "accept failed; pausing before the next accept");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = signal_tx.closed() => break,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused_since_log += 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_INTERVAL) {
                tracing::warn!(
                    max_connections = config.max_connections,
                    refused = refused_since_log,
                    "connection cap reached; refusing new connections with 503"
                );
                last_refusal_log = Some(Instant::now());
                refused_since_log = 0;
            }
            refuse(&stream, config.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let front = front.clone();
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            serve_connection(stream, remote, front, config, &signal_tx).await;
            drop(slot);
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

/// Errors that concern one connection (it went away before it was accepted): accept again at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Answers a connection over the cap with a 503, as far as the socket takes it without waiting,
/// and closes it (by dropping it).
fn refuse(stream: &TcpStream, max_connections: usize) {
    let body = format!(
        "{{\"error\":{{\"code\":\"TooManyConnections\",\"message\":\"the server has {max_connections} connections open, its limit (--max-connections); try again shortly\"}}}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {OVER_CAPACITY_RETRY_AFTER_S}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    front: FrontEnd,
    config: ServeConfig,
    signal_tx: &watch::Sender<()>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(remote));
            let running = activity.request_started();
            let activity = activity.clone();
            let response = front.clone().respond(req.map(Body::new));
            async move {
                let response = Ok::<_, Infallible>(response.await);
                // Counted as responding before it stops counting as running, so that the
                // watchdog never sees a moment with neither.
                let responding = activity.response_started();
                drop(running);
                response.map(|r| {
                    r.map(|body| TrackedBody {
                        body,
                        _responding: responding,
                    })
                })
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The watchdog keeps the header timeout, so that it counts from the head's first byte and an
    // idle keep-alive connection gets the idle timeout instead (hyper's own header timer starts
    // as soon as the connection is idle).
    builder.http1().header_read_timeout(None::<Duration>);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut shutdown = pin!(signal_tx.closed());
    let mut watchdog = pin!(watchdog(&activity, config));
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(error = %e, %remote, "connection ended with an error");
                }
                break;
            }
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            why = &mut watchdog => {
                tracing::debug!(%remote, reason = why, "closing the connection");
                break;
            }
        }
    }
}

/// No time set, in [`Activity`]'s millisecond fields.
const UNSET: u64 = u64::MAX;

/// What the watchdog of one connection knows of it. Times are milliseconds since `opened`.
struct Activity {
    opened: Instant,
    /// Requests whose head has been read and whose handler has not produced a response yet.
    running: AtomicUsize,
    /// Responses produced whose body has not been sent (or dropped) yet.
    responding: AtomicUsize,
    /// When a byte last moved either way, or a request or response ended.
    last_io: AtomicU64,
    /// When the first byte of a request head arrived with nothing in flight; [`UNSET`] when no
    /// head is being read.
    head_started: AtomicU64,
    /// Rung when the watchdog's deadline may have come earlier or appeared.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            running: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            last_io: AtomicU64::new(0),
            // A new connection owes its first request head within the header timeout.
            head_started: AtomicU64::new(0),
            changed: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(UNSET - 1)
    }

    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.running.load(Ordering::Relaxed) == 0
            && self.responding.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == UNSET
        {
            self.head_started.store(now, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    fn request_started(self: &Arc<Self>) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(UNSET, Ordering::Relaxed);
        Running(self.clone())
    }

    fn response_started(self: &Arc<Self>) -> Responding {
        self.responding.fetch_add(1, Ordering::Relaxed);
        Responding(self.clone())
    }

    /// When the connection is to be closed if nothing changes, and why; `None` while a handler
    /// runs.
    fn deadline(&self, config: ServeConfig) -> Option<(u64, &'static str)> {
        if self.running.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(UNSET / 4);
        let idle = (
            self.last_io
                .load(Ordering::Relaxed)
                .saturating_add(ms(config.idle_timeout)),
            "idle timeout",
        );
        let head = self.head_started.load(Ordering::Relaxed);
        if head == UNSET {
            return Some(idle);
        }
        let header = (
            head.saturating_add(ms(config.header_timeout)),
            "header timeout",
        );
        Some(if header.0 < idle.0 { header } else { idle })
    }
}

/// A request being handled; dropped when its handler has produced a response (or was dropped).
struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_io.store(a.now_ms(), Ordering::Relaxed);
        if a.running.fetch_sub(1, Ordering::Relaxed) == 1 {
            a.changed.notify_one();
        }
    }
}

/// A response being sent; dropped with its body.
struct Responding(Arc<Activity>);

impl Drop for Responding {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_io.store(a.now_ms(), Ordering::Relaxed);
        a.responding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves, with the reason, when the connection is to be closed.
async fn watchdog(activity: &Activity, config: ServeConfig) -> &'static str {
    loop {
        match activity.deadline(config) {
            None => activity.changed.notified().await,
            Some((at, why)) => {
                let now = activity.now_ms();
                if now >= at {
                    return why;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                    () = activity.changed.notified() => {}
                }
            }
        }
    }
}

/// A response body that counts as responding until it is dropped.
struct TrackedBody {
    body: Body,
    _responding: Responding,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, noting in [`Activity`] every byte that moves.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServeConfig {
        ServeConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4,
        }
    }

    #[test]
    fn a_new_connection_owes_its_head_within_the_header_timeout() {
        let a = Arc::new(Activity::new());
        assert_eq!(a.deadline(config()), Some((10_000, "header timeout")));
    }

    #[test]
    fn a_running_request_has_no_deadline_and_its_end_starts_the_idle_clock() {
        let a = Arc::new(Activity::new());
        let running = a.request_started();
        assert_eq!(a.deadline(config()), None);
        let responding = a.response_started();
        drop(running);
        let (at, why) = a.deadline(config()).expect("deadline");
        assert_eq!(why, "idle timeout");
        assert!(at >= 60_000);
        drop(responding);
        assert_eq!(a.deadline(config()).map(|d| d.1), Some("idle timeout"));
        // The next head's first byte starts the header clock.
        a.on_read();
        assert_eq!(a.deadline(config()).map(|d| d.1), Some("header timeout"));
    }

    #[test]
    fn bytes_of_a_body_do_not_start_the_header_clock() {
        let a = Arc::new(Activity::new());
        let running = a.request_started();
        a.on_read();
        assert_eq!(a.head_started.load(Ordering::Relaxed), UNSET);
        drop(running);
        assert_eq!(a.deadline(config()).map(|d| d.1), Some("idle timeout"));
    }
}
