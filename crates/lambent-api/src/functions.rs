//! Handlers of `/v1/functions` and `/v1/invocations`: deploy, configure, version, list, delete,
//! and read logs.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use lambent_core::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use lambent_core::{FunctionName, FunctionUpdate, FunctionVersion, InvocationRecord, Qualifier};
use serde::{Deserialize, Serialize};

use crate::body::{read_code, read_deploy};
use crate::contract::{FunctionList, FunctionView, PublishVersion, PutUrl, VersionList};
use crate::extract::{FunctionPath, JsonBody, JsonOrEmpty};
use crate::{ApiError, AppState};

/// Validates a function name from a path.
pub(crate) fn name(raw: &str) -> Result<FunctionName, ApiError> {
    FunctionName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string()))
}

/// Parses an optional `?qualifier=`; absent means `$LATEST`.
pub(crate) fn qualifier(raw: Option<&str>) -> Result<Qualifier, ApiError> {
    raw.map_or(Ok(Qualifier::Latest), |q| {
        q.parse().map_err(|e: lambent_core::NameError| {
            ApiError::new(StatusCode::BAD_REQUEST, "InvalidQualifier", e.to_string())
        })
    })
}

/// Parses an optional `?qualifier=` that may name an alias; absent means `$LATEST`.
pub(crate) fn selector(raw: Option<&str>) -> Result<lambent_core::Selector, ApiError> {
    raw.map_or(Ok(lambent_core::Selector::default()), |q| {
        q.parse().map_err(|e: lambent_core::NameError| {
            ApiError::new(StatusCode::BAD_REQUEST, "InvalidQualifier", e.to_string())
        })
    })
}

/// 201 with the version when `created`, else 200.
fn created_or_ok(created: bool, v: FunctionVersion) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(FunctionView::from(v))).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualifierQuery {
    qualifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    marker: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    limit: Option<u32>,
}

#[derive(Serialize)]
struct InvocationList {
    invocations: Vec<InvocationRecord>,
}

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit {n} is out of range; use 1 to {MAX_PAGE_SIZE}"
        ))),
    }
}

/// `POST /v1/functions`: create; 409 if the name is taken.
pub async fn create(
    State(p): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (config, code) = read_deploy(&headers, body).await?;
    let fname = config.name.clone().ok_or_else(|| {
        ApiError::bad_request(
            "missing 'name'; give the function a name (1-64 letters, digits, '-', '_')",
        )
    })?;
    let v = p.create(fname, config, code).await?;
    Ok((StatusCode::CREATED, Json(FunctionView::from(v))).into_response())
}

/// `PUT /v1/functions/{name}`: create or replace code and configuration (what `lambent deploy`
/// uses). 201 when created, 200 when updated.
pub async fn deploy(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (config, code) = read_deploy(&headers, body).await?;
    if config.name.as_ref().is_some_and(|n| *n != fname) {
        return Err(ApiError::bad_request(format!(
            "the body names a different function than the path ({fname}); drop 'name' or make them match"
        )));
    }
    let (v, created) = p.deploy(fname, config, code).await?;
    Ok(created_or_ok(created, v))
}

/// `PUT /v1/functions/{name}/code`: replace the code of `$LATEST`.
pub async fn update_code(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FunctionView>, ApiError> {
    let code = read_code(&headers, body).await?;
    Ok(Json(p.update_code(&fname, code, None).await?.into()))
}

/// `GET /v1/functions/{name}/code[?qualifier=N]`: the code as it was uploaded (what Lambda's
/// `GetFunction` points `Code.Location` at).
pub async fn code(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let qualifier = qualifier(q.qualifier.as_deref())?;
    let bytes = p.code_of(&fname, qualifier).await?;
    let kind = if bytes.starts_with(b"PK") {
        "application/zip"
    } else {
        "application/wasm"
    };
    Ok(([(http::header::CONTENT_TYPE, kind)], bytes).into_response())
}

/// `PATCH /v1/functions/{name}/config`: change settings of `$LATEST`.
pub async fn update_config(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    JsonBody(update): JsonBody<FunctionUpdate>,
) -> Result<Json<FunctionView>, ApiError> {
    Ok(Json(p.update_config(&fname, &update, None).await?.into()))
}

/// `GET /v1/functions/{name}[?qualifier=N]`.
pub async fn get(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Json<FunctionView>, ApiError> {
    let q = qualifier(q.qualifier.as_deref())?;
    Ok(Json(p.get(&fname, q)?.into()))
}

/// `GET /v1/functions?limit=&marker=`.
pub async fn list(
    State(p): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit)?;
    let (page, next_marker) = p.list(limit, q.marker.as_deref())?;
    Ok(Json(FunctionList {
        functions: page.into_iter().map(Into::into).collect(),
        next_marker,
    })
    .into_response())
}

/// `DELETE /v1/functions/{name}`.
pub async fn delete(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<StatusCode, ApiError> {
    p.delete(&fname).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/functions/{name}/versions`: publish `$LATEST`. 201 when a version was created, 200
/// when `$LATEST` was unchanged and the newest version is returned.
pub async fn publish(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    JsonOrEmpty(req): JsonOrEmpty<PublishVersion>,
) -> Result<Response, ApiError> {
    let (v, created) = p.publish(&fname, req.description.as_deref(), None).await?;
    Ok(created_or_ok(created, v))
}

/// `GET /v1/functions/{name}/versions`.
pub async fn versions(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
) -> Result<Response, ApiError> {
    let versions = p.versions(&fname)?;
    Ok(Json(VersionList {
        versions: versions.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// `GET /v1/functions/{name}/logs?limit=N`: the newest invocations with their logs.
pub async fn logs(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let limit = page_limit(q.limit)?;
    // A deleted or never-created function has no logs to show: say so instead of an empty list.
    p.get(&fname, Qualifier::Latest)?;
    let invocations = p.recent_invocations(&fname, limit)?;
    Ok(Json(InvocationList { invocations }).into_response())
}

/// `GET /v1/invocations/{id}`: one invocation with its logs.
pub async fn invocation(
    State(p): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<InvocationRecord>, ApiError> {
    Ok(Json(p.invocation(&id)?))
}

/// The function and alias a `?qualifier=` names for a function URL configuration.
fn url_alias(raw: Option<&str>) -> Result<Option<lambent_core::AliasName>, ApiError> {
    match selector(raw)? {
        lambent_core::Selector::Version(Qualifier::Latest) => Ok(None),
        lambent_core::Selector::Alias(a) => Ok(Some(a)),
        lambent_core::Selector::Version(Qualifier::Version(n)) => Err(ApiError::bad_request(
            lambent_core::AliasError::UrlOnVersion(n).to_string(),
        )),
    }
}

/// `PUT /v1/functions/{name}/url[?qualifier=ALIAS]`: create or change who may call the function's
/// URL (`/fn/NAME[:ALIAS]`).
pub async fn put_url(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
    JsonBody(req): JsonBody<PutUrl>,
) -> Result<Response, ApiError> {
    let alias = url_alias(q.qualifier.as_deref())?;
    let auth: lambent_core::UrlAuthType = req
        .auth_type
        .parse()
        .map_err(|e: lambent_core::AliasError| ApiError::bad_request(e.to_string()))?;
    if let Some(c) = &req.cors {
        crate::cors::Cors::parse(c).map_err(ApiError::bad_request)?;
    }
    let selector = alias.clone().map_or_else(
        lambent_core::Selector::default,
        lambent_core::Selector::Alias,
    );
    let exists = p.url_config(&fname, &selector).is_some();
    let u = p
        .put_url(&fname, alias, Some(auth), req.cors, exists)
        .await?;
    Ok(Json(u).into_response())
}

/// `GET /v1/functions/{name}/url[?qualifier=ALIAS]`.
pub async fn get_url(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let alias = url_alias(q.qualifier.as_deref())?;
    Ok(Json(p.url(&fname, alias.as_ref())?).into_response())
}

/// `DELETE /v1/functions/{name}/url[?qualifier=ALIAS]`: the URL needs a key again.
pub async fn delete_url(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let alias = url_alias(q.qualifier.as_deref())?;
    p.delete_url(&fname, alias.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
