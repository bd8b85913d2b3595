//! `/v1/functions/{name}/scaling`: a function's own scaling settings (calls per instance and its
//! keep-alive policy), and `/v1/instances`: the node's instances and memory budget right now.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use lambent_control::keepalive::KeepAlivePolicy;
use lambent_core::{KeepAliveSetting, ScalingConfig};
use serde_json::{Value, json};

use crate::contract::PutScaling;
use crate::extract::{FunctionPath, JsonBody};
use crate::{ApiError, AppState};

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
}

impl PutScaling {
    fn into_config(self) -> Result<ScalingConfig, ApiError> {
        let keep_alive = match (self.keep_alive_policy.as_deref(), self.keep_alive_seconds) {
            (None, None) => None,
            (Some("fixed") | None, Some(s)) => {
                Some(KeepAliveSetting::Fixed(Duration::from_secs(s)))
            }
            (Some("fixed"), None) => {
                return Err(invalid(
                    "keepAlivePolicy fixed needs keepAliveSeconds: how long an idle instance is kept".into(),
                ));
            }
            (Some("adaptive"), None) => Some(KeepAliveSetting::Adaptive),
            (Some("adaptive"), Some(_)) => {
                return Err(invalid(
                    "keepAliveSeconds is for the fixed policy; the adaptive one learns its windows (its fallback is the server's --keep-alive)".into(),
                ));
            }
            (Some(other), _) => {
                return Err(invalid(format!(
                    "keepAlivePolicy must be fixed or adaptive, not {other:?}"
                )));
            }
        };
        Ok(ScalingConfig {
            instance_concurrency: self.instance_concurrency.unwrap_or(1),
            keep_alive,
        })
    }
}

fn policy_json(policy: KeepAlivePolicy) -> Value {
    match policy {
        KeepAlivePolicy::Fixed(d) => json!({ "policy": "fixed", "seconds": d.as_secs_f64() }),
        KeepAlivePolicy::Adaptive { fallback } => {
            json!({ "policy": "adaptive", "fallbackSeconds": fallback.as_secs_f64() })
        }
    }
}

fn scaling_json(p: &AppState, own: Option<ScalingConfig>, effective: ScalingConfig) -> Response {
    let own_json = own.map(|c| {
        let mut v = json!({ "instanceConcurrency": c.instance_concurrency });
        match c.keep_alive {
            Some(KeepAliveSetting::Fixed(d)) => {
                v["keepAlivePolicy"] = json!("fixed");
                v["keepAliveSeconds"] = json!(d.as_secs());
            }
            Some(KeepAliveSetting::Adaptive) => v["keepAlivePolicy"] = json!("adaptive"),
            None => {}
        }
        v
    });
    let default = p.default_keep_alive_policy();
    let keep_alive = match effective.keep_alive {
        None => default,
        Some(KeepAliveSetting::Fixed(d)) => KeepAlivePolicy::Fixed(d),
        Some(KeepAliveSetting::Adaptive) => KeepAlivePolicy::Adaptive {
            fallback: match default {
                KeepAlivePolicy::Fixed(d) | KeepAlivePolicy::Adaptive { fallback: d } => d,
            },
        },
    };
    Json(json!({
        "own": own_json,
        "instanceConcurrency": effective.instance_concurrency,
        "keepAlive": policy_json(keep_alive),
    }))
    .into_response()
}

/// `PUT /v1/functions/{name}/scaling`
/// `{"instanceConcurrency": N, "keepAlivePolicy": "fixed"|"adaptive", "keepAliveSeconds": S}`:
/// replaces the function's own settings (absent fields take the platform's).
pub async fn put_scaling(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    JsonBody(req): JsonBody<PutScaling>,
) -> Result<Response, ApiError> {
    p.put_scaling(&fname, req.into_config()?).await?;
    let (own, effective) = p.scaling(&fname)?;
    Ok(scaling_json(&p, own, effective))
}

/// `GET /v1/functions/{name}/scaling`: the function's own settings (or null) and the ones that
/// apply.
pub async fn get_scaling(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let (own, effective) = p.scaling(&fname)?;
    Ok(scaling_json(&p, own, effective))
}

/// `DELETE /v1/functions/{name}/scaling`: back to the platform's settings.
pub async fn delete_scaling(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    p.delete_scaling(&fname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/instances`: per function, its instances (busy and idle), calls in flight and lifetime
/// counters with the duration histogram, and the node's memory budget; what `lambent top` polls.
pub async fn instances(State(p): State<AppState>) -> Response {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering::Relaxed;

    let mut functions: BTreeMap<String, Value> = BTreeMap::new();
    for (f, m) in p.function_metrics() {
        let (cumulative, count, sum_ms) = m.duration.snapshot();
        functions.insert(
            f,
            json!({
                "busy": 0, "idle": 0, "inFlight": 0,
                "invocations": m.invocations.load(Relaxed),
                "errors": m.errors.load(Relaxed),
                "throttles": m.throttles.load(Relaxed),
                "coldStarts": m.cold_starts.load(Relaxed),
                "duration": { "cumulative": cumulative, "count": count, "sumMs": sum_ms },
            }),
        );
    }
    let blank = || json!({ "busy": 0, "idle": 0, "inFlight": 0 });
    for (f, busy, idle) in p.instances_by_function() {
        let entry = functions.entry(f).or_insert_with(blank);
        entry["busy"] = json!(busy);
        entry["idle"] = json!(idle);
    }
    let shared = p.shared_instances();
    for (f, permits) in p.in_flight_by_function() {
        // A shared instance holds one permit for all its calls.
        let calls = shared.get(&f).map_or(permits, |(units, calls)| {
            permits - units.min(&permits) + calls
        });
        if calls > 0 {
            functions.entry(f.to_string()).or_insert_with(blank)["inFlight"] = json!(calls);
        }
    }
    let (budget_mb, reserved_mb) = p.memory_budget();
    Json(json!({
        "memoryBudgetMb": budget_mb,
        "memoryReservedMb": reserved_mb,
        "durationBoundsMs": lambent_control::meter::HISTOGRAM_BOUNDS_MS,
        "functions": functions,
    }))
    .into_response()
}
