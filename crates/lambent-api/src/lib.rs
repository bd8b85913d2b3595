//! lambent's HTTP front end: the native REST API under `/v1`, function URLs under `/fn`,
//! `/healthz` and `/metrics`.
//!
//! Handlers only parse requests into calls on [`lambent_control::Platform`] and render what comes
//! back; every error becomes a JSON body with a stable code through [`ApiError`]. Request bodies
//! are read here with explicit limits, so an oversized upload gets a JSON 413, not a dropped
//! connection.

#![forbid(unsafe_code)]

pub mod auth;
mod body;
pub mod contract;
mod cors;
mod error;
mod events;
mod extract;
mod functions;
mod invoke;
mod keys;
pub mod lambda;
mod routing;
mod scaling;
pub mod server;
#[cfg(feature = "test-clock")]
mod test_clock;
pub mod url_event;
mod usage;

#[cfg(test)]
mod router_tests;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use axum::routing::{any, get, post, put};
use lambent_control::Platform;

pub use error::{ApiError, LambdaError};
pub use server::ServeConfig;

/// Header with the invocation's id.
pub const HEADER_INVOCATION_ID: &str = "x-lambent-invocation-id";
/// Header with the time to the response head, in milliseconds.
pub const HEADER_DURATION_MS: &str = "x-lambent-duration-ms";
/// Header saying whether the invocation was the version's first in this process.
pub const HEADER_COLD_START: &str = "x-lambent-cold-start";
/// Header with the time spent making the instance ready, in milliseconds.
pub const HEADER_INIT_MS: &str = "x-lambent-init-ms";
/// Header with the version that ran.
pub const HEADER_VERSION: &str = "x-lambent-version";
/// Header with the status the function answered with (on `/v1/functions/{name}/invoke`).
pub const HEADER_FUNCTION_STATUS: &str = "x-lambent-function-status";
/// Header with the error type when a process-tier function raised an error; the body is then the
/// error document (`errorMessage`, `errorType`, `stackTrace`), like Lambda's `X-Amz-Function-Error`.
pub const HEADER_FUNCTION_ERROR: &str = "x-lambent-function-error";
/// Request header: `Tail` asks for the end of the invocation's log (like `X-Amz-Log-Type`).
pub const HEADER_LOG_TYPE: &str = "x-lambent-log-type";
/// Response header with the last 4 KB of the invocation's log, base64 (like `X-Amz-Log-Result`).
pub const HEADER_LOG_RESULT: &str = "x-lambent-log-result";

/// Shared state of the handlers.
pub type AppState = Arc<Platform>;

/// The whole HTTP API.
pub fn router(platform: Arc<Platform>) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/v1/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/v1/functions/{name}",
            get(functions::get)
                .put(functions::deploy)
                .delete(functions::delete),
        )
        .route(
            "/v1/functions/{name}/code",
            put(functions::update_code).get(functions::code),
        )
        .route(
            "/v1/functions/{name}/url",
            put(functions::put_url)
                .get(functions::get_url)
                .delete(functions::delete_url),
        )
        .route("/v1/functions/{name}/aliases", get(routing::list_aliases))
        .route(
            "/v1/functions/{name}/aliases/{alias}",
            put(routing::put_alias)
                .get(routing::get_alias)
                .delete(routing::delete_alias),
        )
        .route(
            "/v1/functions/{name}/concurrency",
            put(routing::put_concurrency)
                .get(routing::get_concurrency)
                .delete(routing::delete_concurrency),
        )
        .route(
            "/v1/functions/{name}/provisioned",
            put(routing::put_provisioned)
                .get(routing::get_provisioned)
                .delete(routing::delete_provisioned),
        )
        .route(
            "/v1/functions/{name}/provisioned-schedules",
            get(routing::list_provisioned_schedules),
        )
        .route(
            "/v1/functions/{name}/provisioned-schedules/{schedule}",
            put(routing::put_provisioned_schedule).delete(routing::delete_provisioned_schedule),
        )
        .route(
            "/v1/functions/{name}/scaling",
            put(scaling::put_scaling)
                .get(scaling::get_scaling)
                .delete(scaling::delete_scaling),
        )
        .route("/v1/instances", get(scaling::instances))
        .route(
            "/v1/functions/{name}/admission",
            put(routing::put_admission)
                .get(routing::get_admission)
                .delete(routing::delete_admission),
        )
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route(
            "/v1/functions/{name}/config",
            axum::routing::patch(functions::update_config).put(functions::update_config),
        )
        .route(
            "/v1/functions/{name}/versions",
            post(functions::publish).get(functions::versions),
        )
        .route("/v1/functions/{name}/invoke", post(invoke::invoke))
        .route("/v1/functions/{name}/events", post(events::accept))
        .route(
            "/v1/functions/{name}/event-config",
            put(events::put_config)
                .get(events::get_config)
                .delete(events::delete_config),
        )
        .route("/v1/events", get(events::list))
        .route("/v1/events/{id}", get(events::get))
        .route(
            "/v1/schedules",
            post(events::create_schedule).get(events::list_schedules),
        )
        .route(
            "/v1/schedules/{name}",
            put(events::put_schedule)
                .get(events::get_schedule)
                .patch(events::patch_schedule)
                .delete(events::delete_schedule),
        )
        .route(
            "/v1/queues",
            post(events::create_queue).get(events::list_queues),
        )
        .route(
            "/v1/queues/{name}",
            get(events::get_queue).delete(events::delete_queue),
        )
        .route(
            "/v1/queues/{name}/messages",
            post(events::send)
                .get(events::list_messages)
                .delete(events::purge),
        )
        .route(
            "/v1/queues/{name}/messages/{id}",
            get(events::get_message).delete(events::delete_message),
        )
        .route("/v1/queues/{name}/redrive", post(events::redrive))
        .route(
            "/v1/queues/{name}/trigger",
            put(events::put_trigger)
                .get(events::get_trigger)
                .delete(events::delete_trigger),
        )
        .route("/v1/functions/{name}/logs", get(functions::logs))
        .route("/v1/invocations/{id}", get(functions::invocation))
        .route("/v1/invocations", get(usage::invocations))
        .route("/v1/usage", get(usage::usage))
        .route("/fn/{target}", any(invoke::function_url))
        .route("/fn/{target}/", any(invoke::function_url))
        .route("/fn/{target}/{*path}", any(invoke::function_url));
    // The test clock exists only in builds with the `test-clock` feature.
    #[cfg(feature = "test-clock")]
    let router = router.route(
        "/v1/debug/clock",
        post(test_clock::advance_clock).get(test_clock::clock),
    );
    router
        .merge(lambda::router())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            platform.clone(),
            auth::authenticate,
        ))
        // Bodies are read with explicit limits in `body`, which answer in JSON.
        .layer(DefaultBodyLimit::disable())
        .with_state(platform)
}

async fn not_found(uri: http::Uri) -> axum::response::Response {
    let path = uri.path();
    let message = if lambda::is_lambda_path(path) {
        format!("lambent does not implement this Lambda operation ({path})")
    } else {
        format!("no route for {path}; the API lives under /v1 and function URLs under /fn/NAME")
    };
    error::error_for_path(
        path,
        http::StatusCode::NOT_FOUND,
        "UnknownOperationException",
        "RouteNotFound",
        message,
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn metrics(State(platform): State<AppState>) -> impl IntoResponse {
    let s = platform.stats();
    let waiting = platform
        .event_depth()
        .await
        .map_or(0, |(waiting, _)| waiting);
    let waiting_by_function = platform.event_depth_by_function().await.unwrap_or_default();
    let (budget_mb, reserved_mb) = platform.memory_budget();
    let text = format!(
        "# HELP lambent_invocations_total Invocations started.\n\
         # TYPE lambent_invocations_total counter\n\
         lambent_invocations_total {}\n\
         # HELP lambent_invocation_errors_total Invocations that failed.\n\
         # TYPE lambent_invocation_errors_total counter\n\
         lambent_invocation_errors_total {}\n\
         # HELP lambent_cold_starts_total First invocations of a version in this process.\n\
         # TYPE lambent_cold_starts_total counter\n\
         lambent_cold_starts_total {}\n\
         # HELP lambent_wasm_compilations_total WebAssembly compilations (artifact cache misses).\n\
         # TYPE lambent_wasm_compilations_total counter\n\
         lambent_wasm_compilations_total {}\n\
         # HELP lambent_wasm_artifact_cache_hits_total Compiled artifacts loaded from the cache.\n\
         # TYPE lambent_wasm_artifact_cache_hits_total counter\n\
         lambent_wasm_artifact_cache_hits_total {}\n\
         # HELP lambent_invocation_records_dropped_total Invocation records dropped under load.\n\
         # TYPE lambent_invocation_records_dropped_total counter\n\
         lambent_invocation_records_dropped_total {}\n\
         # HELP lambent_wasm_pooling_allocator Whether the pooling allocator is in use.\n\
         # TYPE lambent_wasm_pooling_allocator gauge\n\
         lambent_wasm_pooling_allocator {}\n\
         # HELP lambent_sandboxes_started_total Process sandboxes started (cold starts of the process tier).\n\
         # TYPE lambent_sandboxes_started_total counter\n\
         lambent_sandboxes_started_total {}\n\
         # HELP lambent_sandboxes_reaped_total Idle sandboxes stopped after their keep-alive.\n\
         # TYPE lambent_sandboxes_reaped_total counter\n\
         lambent_sandboxes_reaped_total {}\n\
         # HELP lambent_sandboxes_prewarmed_total Sandboxes started ahead of an expected call (adaptive keep-alive).\n\
         # TYPE lambent_sandboxes_prewarmed_total counter\n\
         lambent_sandboxes_prewarmed_total {}\n\
         # HELP lambent_sandboxes_evicted_total Idle sandboxes stopped early, least recently used first, to make room.\n\
         # TYPE lambent_sandboxes_evicted_total counter\n\
         lambent_sandboxes_evicted_total {}\n\
         # HELP lambent_node_memory_budget_bytes Memory the instances of this node may reserve together.\n\
         # TYPE lambent_node_memory_budget_bytes gauge\n\
         lambent_node_memory_budget_bytes {}\n\
         # HELP lambent_node_memory_reserved_bytes Memory limits of the instances alive now.\n\
         # TYPE lambent_node_memory_reserved_bytes gauge\n\
         lambent_node_memory_reserved_bytes {}\n\
         # HELP lambent_sandboxes Process sandboxes alive now.\n\
         # TYPE lambent_sandboxes gauge\n\
         lambent_sandboxes {}\n\
         # HELP lambent_sandboxes_idle Warm sandboxes waiting for a call.\n\
         # TYPE lambent_sandboxes_idle gauge\n\
         lambent_sandboxes_idle {}\n\
         # HELP lambent_throttles_total Calls refused by a concurrency limit (429).\n\
         # TYPE lambent_throttles_total counter\n\
         lambent_throttles_total {}\n\
         # HELP lambent_concurrent_executions Calls in flight now.\n\
         # TYPE lambent_concurrent_executions gauge\n\
         lambent_concurrent_executions {}\n\
         # HELP lambent_async_events_accepted_total Asynchronous events accepted (durably stored).\n\
         # TYPE lambent_async_events_accepted_total counter\n\
         lambent_async_events_accepted_total {}\n\
         # HELP lambent_async_events_duplicates_total Repeated idempotency keys answered with the first event.\n\
         # TYPE lambent_async_events_duplicates_total counter\n\
         lambent_async_events_duplicates_total {}\n\
         # HELP lambent_async_events_succeeded_total Asynchronous events that succeeded.\n\
         # TYPE lambent_async_events_succeeded_total counter\n\
         lambent_async_events_succeeded_total {}\n\
         # HELP lambent_async_events_retried_total Failed runs of asynchronous events scheduled again.\n\
         # TYPE lambent_async_events_retried_total counter\n\
         lambent_async_events_retried_total {}\n\
         # HELP lambent_async_events_failed_total Asynchronous events given up (retries exhausted or too old).\n\
         # TYPE lambent_async_events_failed_total counter\n\
         lambent_async_events_failed_total {}\n\
         # HELP lambent_async_events_running Asynchronous events running now.\n\
         # TYPE lambent_async_events_running gauge\n\
         lambent_async_events_running {}\n\
         # HELP lambent_async_events_recovered_total Events a crash left running, run again at start.\n\
         # TYPE lambent_async_events_recovered_total counter\n\
         lambent_async_events_recovered_total {}\n\
         # HELP lambent_async_events_waiting Asynchronous events queued or waiting for a retry.\n\
         # TYPE lambent_async_events_waiting gauge\n\
         lambent_async_events_waiting {}\n",
        s.invocations,
        s.invocation_errors,
        s.cold_starts,
        s.compilations,
        s.artifact_cache_hits,
        s.records_dropped,
        u8::from(s.pooling),
        s.sandboxes.started,
        s.sandboxes.reaped,
        s.sandboxes.prewarmed,
        s.sandboxes.evicted,
        budget_mb << 20,
        reserved_mb << 20,
        s.sandboxes.live,
        s.sandboxes.idle,
        s.throttles,
        s.concurrent_executions,
        s.events.accepted,
        s.events.duplicates,
        s.events.succeeded,
        s.events.retried,
        s.events.failed,
        s.events.running,
        s.events.recovered,
        waiting,
    );
    let text = text + &function_metrics(&platform, &waiting_by_function);
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
}

/// The per-function families of `/metrics` (labelled `function`; names are `[A-Za-z0-9_-]`, so
/// they need no escaping).
fn function_metrics(platform: &Platform, waiting_by_function: &[(String, u64)]) -> String {
    use lambent_control::meter::{FunctionMetrics, Histogram};
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;

    let functions = platform.function_metrics();
    let mut out = String::new();
    type Counter = fn(&FunctionMetrics) -> u64;
    let counters: [(&str, &str, Counter); 4] = [
        (
            "lambent_function_invocations_total",
            "Calls of a function that ran.",
            |m| m.invocations.load(Relaxed),
        ),
        (
            "lambent_function_errors_total",
            "Calls of a function that ended in an error.",
            |m| m.errors.load(Relaxed),
        ),
        (
            "lambent_function_throttles_total",
            "Calls of a function refused by a concurrency limit.",
            |m| m.throttles.load(Relaxed),
        ),
        (
            "lambent_function_cold_starts_total",
            "Calls of a function that started an instance.",
            |m| m.cold_starts.load(Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (f, m) in &functions {
            let _ = writeln!(out, "{name}{{function=\"{f}\"}} {}", get(m));
        }
    }
    let _ = writeln!(
        out,
        "# HELP lambent_function_gb_seconds_total Billed GB-seconds of a function.\n\
         # TYPE lambent_function_gb_seconds_total counter"
    );
    for (f, m) in &functions {
        let _ = writeln!(
            out,
            "lambent_function_gb_seconds_total{{function=\"{f}\"}} {}",
            m.micro_gb_seconds.load(Relaxed) as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "# HELP lambent_function_concurrent_executions Calls of a function in flight now.\n\
         # TYPE lambent_function_concurrent_executions gauge"
    );
    let mut in_flight = platform.in_flight_by_function();
    in_flight.sort();
    for (f, n) in in_flight {
        let _ = writeln!(
            out,
            "lambent_function_concurrent_executions{{function=\"{f}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP lambent_function_async_events_waiting A function's asynchronous events queued or waiting for a retry.\n\
         # TYPE lambent_function_async_events_waiting gauge"
    );
    for (f, n) in waiting_by_function {
        let _ = writeln!(
            out,
            "lambent_function_async_events_waiting{{function=\"{f}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP lambent_function_instances Instances of a function now, busy or idle (warm).\n\
         # TYPE lambent_function_instances gauge"
    );
    for (f, busy, idle) in platform.instances_by_function() {
        let _ = writeln!(
            out,
            "lambent_function_instances{{function=\"{f}\",state=\"busy\"}} {busy}\n\
             lambent_function_instances{{function=\"{f}\",state=\"idle\"}} {idle}"
        );
    }
    for (name, help, pick) in [
        (
            "lambent_function_duration_seconds",
            "Wall time of a function's calls.",
            (|m| &m.duration) as fn(&FunctionMetrics) -> &Histogram,
        ),
        (
            "lambent_function_init_seconds",
            "Instance start time of a function's cold calls.",
            |m| &m.init,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (f, m) in &functions {
            let (buckets, count, sum_ms) = pick(m).snapshot();
            for (bound, n) in lambent_control::meter::HISTOGRAM_BOUNDS_MS
                .iter()
                .zip(&buckets)
            {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{function=\"{f}\",le=\"{}\"}} {n}",
                    bound / 1000.0
                );
            }
            let _ = writeln!(out, "{name}_bucket{{function=\"{f}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(out, "{name}_sum{{function=\"{f}\"}} {}", sum_ms / 1000.0);
            let _ = writeln!(out, "{name}_count{{function=\"{f}\"}} {count}");
        }
    }
    out
}

/// Serves the API on `listener` with the limits of `config` until `shutdown` resolves; in-flight
/// requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    platform: Arc<Platform>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let front = FrontEnd {
        router: router(platform.clone()),
        platform,
    };
    server::serve_front_end(listener, front, config, shutdown).await
}

/// A response to `HEAD` as axum's router makes it: the length its body would have had (when
/// known), and no body. Over HTTP/1 hyper drops the body of a HEAD response itself; over HTTP/2
/// it would send it, so the direct door must do what the router did.
fn without_body(response: axum::response::Response) -> axum::response::Response {
    use http_body::Body as _;
    let (mut parts, body) = response.into_parts();
    if !parts.headers.contains_key(http::header::CONTENT_LENGTH)
        && let Some(n) = body.size_hint().exact()
    {
        parts
            .headers
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(n));
    }
    axum::response::Response::from_parts(parts, axum::body::Body::empty())
}

/// What answers each request of a connection. Function URL calls, the hot path, go straight to
/// their handler through the same authentication as the router's middleware; everything else
/// (and the same function URLs, for tests that drive the router alone) goes through
/// [`router`]. The direct door saves the router's matching and its middleware's boxing of the
/// inner service and its future on every call.
#[derive(Clone)]
pub(crate) struct FrontEnd {
    router: Router,
    platform: AppState,
}

impl FrontEnd {
    pub(crate) async fn respond(self, req: axum::extract::Request) -> axum::response::Response {
        if invoke::is_function_url(req.uri().path()) {
            let head = req.method() == http::Method::HEAD;
            let response = invoke::function_url_direct(self.platform, req).await;
            if head {
                without_body(response)
            } else {
                response
            }
        } else {
            use tower::ServiceExt as _;
            match self.router.oneshot(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    }
}
