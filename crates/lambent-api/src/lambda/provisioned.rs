//! Lambda API operations on provisioned concurrency (`/2019-09-30/functions/{name}/
//! provisioned-concurrency`): Put, Get, Delete and List, in botocore's shapes.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use lambent_control::ProvisionedConfig;
use lambent_core::{FunctionArn, FunctionName, Selector};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{function_ref, reply};
use crate::AppState;
use crate::body::{MAX_JSON_BODY_BYTES, read_limited};
use crate::error::LambdaError;

type Result<T, E = LambdaError> = std::result::Result<T, E>;

#[derive(Deserialize)]
pub struct ProvisionedQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PutRequest {
    provisioned_concurrent_executions: u32,
}

/// The function, and the qualifier from the query or the name (`name:qualifier`).
fn target(raw: &str, query: Option<&str>) -> Result<(FunctionName, String)> {
    let (name, selector) = function_ref(raw, query)?;
    match selector {
        Some(s) => Ok((name, s.to_string())),
        None => Err(LambdaError::invalid(
            "give the version with ?Qualifier= (provisioned concurrency applies to a published version)",
        )),
    }
}

fn config_json(c: &ProvisionedConfig, region: &str) -> Value {
    let selector = c.qualifier.parse::<Selector>().ok().map(|s| s.to_string());
    let arn = FunctionArn::new(region, c.function.as_str(), selector.as_deref()).to_string();
    let mut v = json!({
        "FunctionArn": arn,
        "RequestedProvisionedConcurrentExecutions": c.requested,
        "AvailableProvisionedConcurrentExecutions": c.allocated,
        "AllocatedProvisionedConcurrentExecutions": c.allocated,
        "Status": c.status(),
        "LastModified": c.last_modified,
    });
    if let Some(reason) = &c.status_reason {
        v["StatusReason"] = json!(reason);
    }
    v
}

/// `PutProvisionedConcurrencyConfig`.
pub async fn put(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<ProvisionedQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let (name, qualifier) = target(&raw, q.qualifier.as_deref())?;
    let bytes = read_limited(&headers, body, MAX_JSON_BODY_BYTES).await?;
    let req: PutRequest = serde_json::from_slice(&bytes).map_err(|e| {
        LambdaError::invalid(format!(
            "the request body is not valid for this operation: {e}"
        ))
    })?;
    let c = p
        .put_provisioned(&name, &qualifier, req.provisioned_concurrent_executions)
        .await?;
    let mut v = config_json(&c, p.region());
    if let Some(o) = v.as_object_mut() {
        o.remove("FunctionArn");
    }
    Ok(reply(StatusCode::ACCEPTED, v))
}

/// `GetProvisionedConcurrencyConfig`, or with `?List=ALL` `ListProvisionedConcurrencyConfigs`.
pub async fn get(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response> {
    if q.contains_key("List") {
        let (name, _) = function_ref(&raw, None)?;
        let all: Vec<Value> = p
            .provisioned_configs(&name)?
            .iter()
            .map(|c| config_json(c, p.region()))
            .collect();
        return Ok(reply(
            StatusCode::OK,
            json!({ "ProvisionedConcurrencyConfigs": all }),
        ));
    }
    let (name, qualifier) = target(&raw, q.get("Qualifier").map(String::as_str))?;
    // A missing function is ResourceNotFoundException; only a missing configuration of an
    // existing one is ProvisionedConcurrencyConfigNotFoundException.
    p.get(&name, lambent_core::Qualifier::Latest)?;
    let c = p
        .provisioned_config(&name, &qualifier)
        .map_err(|e| match e {
            lambent_control::ControlError::NotFound(m) => LambdaError::new(
                StatusCode::NOT_FOUND,
                "ProvisionedConcurrencyConfigNotFoundException",
                m,
            ),
            other => other.into(),
        })?;
    let mut v = config_json(&c, p.region());
    if let Some(o) = v.as_object_mut() {
        o.remove("FunctionArn");
    }
    Ok(reply(StatusCode::OK, v))
}

/// `DeleteProvisionedConcurrencyConfig`.
pub async fn delete(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<ProvisionedQuery>,
) -> Result<Response> {
    let (name, qualifier) = target(&raw, q.qualifier.as_deref())?;
    p.delete_provisioned(&name, &qualifier).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
