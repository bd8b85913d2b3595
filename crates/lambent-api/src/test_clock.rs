//! `/v1/debug/clock`: the test clock of events, schedules and queues. Compiled in only with the
//! `test-clock` feature, so release builds have neither the route nor the code behind it.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use lambent_store::metadata::rfc3339_ms;
use serde::Deserialize;
use serde_json::json;

use crate::body::{MAX_JSON_BODY_BYTES, parse_json, read_limited};
use crate::{ApiError, AppState};

/// The body of `POST /v1/debug/clock`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClockBody {
    advance_ms: i64,
}

/// `POST /v1/debug/clock` with `{"advanceMs": N}`: move the test clock (`--test-clock` only).
pub async fn advance_clock(
    State(p): State<AppState>,
    JsonBody(b): JsonBody<ClockBody>,
) -> Result<Response, ApiError> {
    let now = p.advance_clock(b.advance_ms).await?;
    Ok(Json(json!({ "now": rfc3339_ms(now), "nowMs": now })).into_response())
}

/// `GET /v1/debug/clock`: the time events and schedules run on.
pub async fn clock(State(p): State<AppState>) -> Response {
    let now = p.clock().now_ms();
    Json(json!({ "now": rfc3339_ms(now), "nowMs": now })).into_response()
}
