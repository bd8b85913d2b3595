//! Metering over HTTP: `GET /v1/usage` (summed GB-seconds, calls, errors, throttles and cold
//! starts by tenant, function, version or time) and `GET /v1/invocations` (the stored records of
//! single calls in a time range).

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use lambent_core::{FunctionName, UsageSums, now_ms};
use lambent_store::metadata::{parse_rfc3339_ms, rfc3339_ms};
use lambent_store::{UsageGroup, UsageQuery};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// The default window: the last day.
const DEFAULT_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Records one `GET /v1/invocations` returns by default and at most.
const DEFAULT_RECORDS: u32 = 100;
const MAX_RECORDS: u32 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UsageParams {
    from: Option<String>,
    to: Option<String>,
    function: Option<String>,
    tenant: Option<String>,
    group_by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordParams {
    from: Option<String>,
    to: Option<String>,
    function: Option<String>,
    limit: Option<u32>,
}

fn invalid(message: String) -> ApiError {
    ApiError::from(lambent_control::ControlError::Invalid(message))
}

/// A time given as ms since the epoch or RFC 3339.
fn parse_time(what: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339_ms(text))
        .ok_or_else(|| {
            invalid(format!(
                "{what} {text:?} is not a time; give RFC 3339 (2026-11-29T10:00:00Z) or milliseconds since 1970"
            ))
        })
}

/// The `[from, to)` window: `to` defaults to now, `from` to a day before `to`.
fn window(from: Option<&str>, to: Option<&str>, now: i64) -> Result<(i64, i64), ApiError> {
    let to = to.map(|t| parse_time("to", t)).transpose()?.unwrap_or(now);
    let from = from
        .map(|f| parse_time("from", f))
        .transpose()?
        .unwrap_or(to.saturating_sub(DEFAULT_WINDOW_MS));
    if from >= to {
        return Err(invalid(format!(
            "from ({}) must be before to ({})",
            rfc3339_ms(from),
            rfc3339_ms(to)
        )));
    }
    Ok((from, to))
}

fn function_filter(raw: Option<String>) -> Result<Option<FunctionName>, ApiError> {
    raw.map(|f| {
        FunctionName::new(&f).map_err(|e| invalid(format!("function {f:?} is not a name: {e}")))
    })
    .transpose()
}

fn group_of(raw: Option<&str>) -> Result<UsageGroup, ApiError> {
    Ok(match raw.unwrap_or("function") {
        "total" => UsageGroup::Total,
        "tenant" => UsageGroup::Tenant,
        "function" => UsageGroup::Function,
        "version" => UsageGroup::Version,
        "minute" => UsageGroup::Minute,
        "hour" => UsageGroup::Hour,
        "day" => UsageGroup::Day,
        other => {
            return Err(invalid(format!(
                "groupBy {other:?} is not known; use total, tenant, function, version, minute, hour or day"
            )));
        }
    })
}

fn sums_json(s: &UsageSums) -> Value {
    json!({
        "invocations": s.invocations,
        "errors": s.errors,
        "throttles": s.throttles,
        "coldStarts": s.cold_starts,
        "durationMs": (s.duration_ms * 1000.0).round() / 1000.0,
        "billedMs": s.billed_ms,
        "gbSeconds": (s.gb_seconds * 1e6).round() / 1e6,
        "initMs": (s.init_ms * 1000.0).round() / 1000.0,
    })
}

/// `GET /v1/usage?from=&to=&function=&tenant=&groupBy=`: metered usage in whole minutes.
pub async fn usage(
    State(p): State<AppState>,
    Query(q): Query<UsageParams>,
) -> Result<Response, ApiError> {
    let (from, to) = window(q.from.as_deref(), q.to.as_deref(), now_ms())?;
    let function = function_filter(q.function)?;
    let group = group_of(q.group_by.as_deref())?;
    let query = UsageQuery {
        // Whole minutes: the minute `from` falls in is included.
        from_ms: from - from.rem_euclid(60_000),
        to_ms: to,
        function: function.map(|f| f.to_string()),
        tenant: q.tenant.clone(),
        group,
    };
    let p2 = p.clone();
    let groups = tokio::task::spawn_blocking(move || p2.usage(&query))
        .await
        .map_err(|e| ApiError::from(lambent_control::ControlError::Task(e.to_string())))??;
    let mut total = UsageSums::default();
    let timed = matches!(
        group,
        UsageGroup::Minute | UsageGroup::Hour | UsageGroup::Day
    );
    let rows: Vec<Value> = groups
        .iter()
        .map(|g| {
            total.add(&g.sums);
            let mut v = sums_json(&g.sums);
            let key = match g.key.parse::<i64>() {
                Ok(ms) if timed => Value::String(rfc3339_ms(ms)),
                _ => Value::String(g.key.clone()),
            };
            v["key"] = key;
            v
        })
        .collect();
    Ok(Json(json!({
        "from": rfc3339_ms(from),
        "to": rfc3339_ms(to),
        "groupBy": q.group_by.as_deref().unwrap_or("function"),
        "groups": rows,
        "total": sums_json(&total),
    }))
    .into_response())
}

/// `GET /v1/invocations?from=&to=&function=&limit=`: stored invocation records in a window,
/// oldest first (silent successes of wasm functions are metered but not stored one by one).
pub async fn invocations(
    State(p): State<AppState>,
    Query(q): Query<RecordParams>,
) -> Result<Response, ApiError> {
    let (from, to) = window(q.from.as_deref(), q.to.as_deref(), now_ms())?;
    let function = function_filter(q.function)?;
    let limit = match q.limit {
        None => DEFAULT_RECORDS,
        Some(n) if (1..=MAX_RECORDS).contains(&n) => n,
        Some(n) => {
            return Err(invalid(format!(
                "limit {n} is out of range; use 1 to {MAX_RECORDS}"
            )));
        }
    };
    let records = p.invocations_between(function.as_ref(), from, to, limit)?;
    Ok(Json(json!({ "invocations": records })).into_response())
}
