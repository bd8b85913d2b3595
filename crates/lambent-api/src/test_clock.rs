//! `/v1/debug/clock`: the test clock of events, schedules and queues. Compiled in only with the
//! `test-clock` feature, so release builds have neither the route nor the code behind it.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use lambent_store::metadata::rfc3339_ms;

use crate::contract::{AdvanceClock, ClockReading};
use crate::extract::JsonBody;
use crate::{ApiError, AppState};

/// `POST /v1/debug/clock` with `{"advanceMs": N}`: move the test clock (`--test-clock` only).
pub async fn advance_clock(
    State(p): State<AppState>,
    JsonBody(b): JsonBody<AdvanceClock>,
) -> Result<Response, ApiError> {
    let now = p.advance_clock(b.advance_ms).await?;
    Ok(Json(reading(now)).into_response())
}

/// `GET /v1/debug/clock`: the time events and schedules run on.
pub async fn clock(State(p): State<AppState>) -> Response {
    let now = p.clock().now_ms();
    Json(reading(now)).into_response()
}

fn reading(now_ms: i64) -> ClockReading {
    ClockReading {
        now: rfc3339_ms(now_ms),
        now_ms,
    }
}
