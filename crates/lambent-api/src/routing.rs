//! `/v1/functions/{name}/aliases` and `/v1/functions/{name}/concurrency`: aliases with weighted
//! routing and reserved concurrency in the native API (the Lambda API has the same through
//! `CreateAlias` and `PutFunctionConcurrency`).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use lambent_control::AliasUpdate;
use lambent_core::{AliasName, Qualifier};
use serde::Deserialize;

use crate::contract::{
    Admission, AliasList, Concurrency, PutAdmission, PutAlias, PutConcurrency, PutProvisioned,
    PutProvisionedSchedule,
};
use crate::extract::{FunctionPath, JsonBody};
use crate::{ApiError, AppState};

fn alias_name(raw: &str) -> Result<AliasName, ApiError> {
    AliasName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string()))
}

/// `PUT /v1/functions/{name}/aliases/{alias}`: create the alias or point it elsewhere.
pub async fn put_alias(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
    JsonBody(req): JsonBody<PutAlias>,
) -> Result<Response, ApiError> {
    let alias = alias_name(&alias)?;
    let version: Qualifier = req.version.parse().map_err(|e: lambent_core::NameError| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidQualifier", e.to_string())
    })?;
    let weights = lambent_core::alias::parse_weights(&req.weights.unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let exists = p.aliases(&fname)?.iter().any(|a| a.name == alias);
    let (a, status) = if exists {
        let update = AliasUpdate {
            version: Some(version),
            description: req.description,
            additional_weights: Some(weights),
        };
        (
            p.update_alias(&fname, &alias, update, None).await?,
            StatusCode::OK,
        )
    } else {
        let description = req.description.unwrap_or_default();
        let a = p
            .create_alias(&fname, alias, version, description, weights)
            .await?;
        (a, StatusCode::CREATED)
    };
    Ok((status, Json(a)).into_response())
}

/// `GET /v1/functions/{name}/aliases`.
pub async fn list_aliases(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let aliases = p.aliases(&fname)?;
    Ok(Json(AliasList { aliases }).into_response())
}

/// `GET /v1/functions/{name}/aliases/{alias}`.
pub async fn get_alias(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(p.alias(&fname, &alias_name(&alias)?)?).into_response())
}

/// `DELETE /v1/functions/{name}/aliases/{alias}`.
pub async fn delete_alias(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Path((_, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    p.delete_alias(&fname, &alias_name(&alias)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /v1/functions/{name}/concurrency` `{"reserved": N}`: reserve (and cap) concurrency.
pub async fn put_concurrency(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    JsonBody(req): JsonBody<PutConcurrency>,
) -> Result<Response, ApiError> {
    let n = p.put_reserved_concurrency(&fname, req.reserved).await?;
    Ok(Json(Concurrency { reserved: Some(n) }).into_response())
}

/// `GET /v1/functions/{name}/concurrency`: `{"reserved": N}` or `{"reserved": null}`.
pub async fn get_concurrency(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let n = p.reserved_concurrency(&fname)?;
    Ok(Json(Concurrency { reserved: n }).into_response())
}

/// `DELETE /v1/functions/{name}/concurrency`: back to the shared pool.
pub async fn delete_concurrency(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    p.delete_reserved_concurrency(&fname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn admission_json(own: Option<std::time::Duration>, effective: std::time::Duration) -> Response {
    Json(Admission {
        max_wait_ms: own.map(|d| d.as_millis()),
        effective_max_wait_ms: effective.as_millis(),
    })
    .into_response()
}

/// `PUT /v1/functions/{name}/admission` `{"maxWaitMs": N}`: a call refused by a concurrency
/// limit waits up to N ms for a slot, first come first served, before its 429.
pub async fn put_admission(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    JsonBody(req): JsonBody<PutAdmission>,
) -> Result<Response, ApiError> {
    p.put_admission_wait(
        &fname,
        std::time::Duration::from_millis(u64::from(req.max_wait_ms)),
    )
    .await?;
    let (own, effective) = p.admission_wait(&fname)?;
    Ok(admission_json(own, effective))
}

/// `GET /v1/functions/{name}/admission`: the function's own wait (or null) and the one that
/// applies.
pub async fn get_admission(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let (own, effective) = p.admission_wait(&fname)?;
    Ok(admission_json(own, effective))
}

/// `DELETE /v1/functions/{name}/admission`: back to the server's default wait.
pub async fn delete_admission(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    p.delete_admission_wait(&fname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionedParams {
    qualifier: Option<String>,
}

fn provisioned_json(c: &lambent_control::ProvisionedConfig) -> serde_json::Value {
    serde_json::json!({
        "qualifier": c.qualifier,
        "requested": c.requested,
        "allocated": c.allocated,
        "status": c.status(),
        "statusReason": c.status_reason,
        "lastModified": c.last_modified,
    })
}

fn provisioned_qualifier(q: Option<String>) -> Result<String, ApiError> {
    q.ok_or_else(|| {
        ApiError::from(lambent_control::ControlError::Invalid(
            "give ?qualifier=VERSION: provisioned concurrency applies to a published version"
                .into(),
        ))
    })
}

/// `PUT /v1/functions/{name}/provisioned?qualifier=Q` `{"provisioned": N}`: keep N instances
/// of a published version initialised ahead of calls.
pub async fn put_provisioned(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    axum::extract::Query(q): axum::extract::Query<ProvisionedParams>,
    JsonBody(req): JsonBody<PutProvisioned>,
) -> Result<Response, ApiError> {
    let qualifier = provisioned_qualifier(q.qualifier)?;
    let c = p
        .put_provisioned(&fname, &qualifier, req.provisioned)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(provisioned_json(&c))).into_response())
}

/// `GET /v1/functions/{name}/provisioned[?qualifier=Q]`: one configuration with its progress
/// (`allocated`, `status` READY or IN_PROGRESS), or all of the function's.
pub async fn get_provisioned(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    axum::extract::Query(q): axum::extract::Query<ProvisionedParams>,
) -> Result<Response, ApiError> {
    match q.qualifier {
        Some(qualifier) => {
            let c = p.provisioned_config(&fname, &qualifier)?;
            Ok(Json(provisioned_json(&c)).into_response())
        }
        None => {
            let all: Vec<_> = p
                .provisioned_configs(&fname)?
                .iter()
                .map(provisioned_json)
                .collect();
            Ok(Json(serde_json::json!({ "provisioned": all })).into_response())
        }
    }
}

/// `DELETE /v1/functions/{name}/provisioned?qualifier=Q`: stop keeping instances ahead.
pub async fn delete_provisioned(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    axum::extract::Query(q): axum::extract::Query<ProvisionedParams>,
) -> Result<Response, ApiError> {
    let qualifier = provisioned_qualifier(q.qualifier)?;
    p.delete_provisioned(&fname, &qualifier).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn provisioned_schedule_json(s: &lambent_control::ProvisionedSchedule) -> serde_json::Value {
    serde_json::json!({
        "name": s.row.name,
        "qualifier": s.row.qualifier,
        "schedule": s.row.expression,
        "provisioned": s.row.provisioned,
        "nextFire": s.next_ms.map(lambent_store::metadata::rfc3339_ms),
    })
}

/// `PUT /v1/functions/{name}/provisioned-schedules/{schedule}`
/// `{"qualifier": Q, "schedule": "cron(...)", "provisioned": N}`: at each firing, `Q` gets N
/// provisioned instances (0 removes its configuration).
pub async fn put_provisioned_schedule(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Path((_, schedule)): Path<(String, String)>,
    JsonBody(req): JsonBody<PutProvisionedSchedule>,
) -> Result<Response, ApiError> {
    let s = p
        .put_provisioned_schedule(
            &fname,
            &schedule,
            &req.qualifier,
            &req.schedule,
            req.provisioned,
        )
        .await?;
    Ok(Json(provisioned_schedule_json(&s)).into_response())
}

/// `GET /v1/functions/{name}/provisioned-schedules`: the function's scheduled changes.
pub async fn list_provisioned_schedules(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let all: Vec<_> = p
        .provisioned_schedules(&fname)?
        .iter()
        .map(provisioned_schedule_json)
        .collect();
    Ok(Json(serde_json::json!({ "schedules": all })).into_response())
}

/// `DELETE /v1/functions/{name}/provisioned-schedules/{schedule}`.
pub async fn delete_provisioned_schedule(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Path((_, schedule)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    p.delete_provisioned_schedule(&fname, &schedule).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
