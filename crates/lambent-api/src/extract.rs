//! Extractors for the parts every handler of the native API repeats: the function named in the
//! path, and a JSON body read with a limit. Their rejections are the same [`ApiError`]s the
//! handlers built by hand before (400 `InvalidName`, 413 `PayloadTooLarge`, 400 `InvalidJson`).

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use lambent_core::{FunctionName, QueueName, ScheduleName, Selector, Target};
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::body::{MAX_JSON_BODY_BYTES, parse_json, read_limited};

/// The function of a route's `{name}` segment, validated.
#[derive(Debug, Clone)]
pub struct FunctionPath(pub FunctionName);

/// The raw value of the path parameter `key` (percent-decoded).
async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    key: &str,
) -> Result<String, Response> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)?;
    params
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                format!("the route has no {{{key}}} segment"),
            )
            .into_response()
        })
}

/// The `{name}` segment read by `parse`; a name it refuses is a 400 `InvalidName` with its
/// message.
async fn named<S: Send + Sync, T, E: std::fmt::Display>(
    parts: &mut Parts,
    state: &S,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Response> {
    let raw = path_param(parts, state, "name").await?;
    parse(&raw).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string()).into_response()
    })
}

impl<S: Send + Sync> FromRequestParts<S> for FunctionPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        named(parts, state, FunctionName::new).await.map(Self)
    }
}

/// The queue of a route's `{name}` segment, validated.
#[derive(Debug, Clone)]
pub struct QueuePath(pub QueueName);

impl<S: Send + Sync> FromRequestParts<S> for QueuePath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        named(parts, state, QueueName::new).await.map(Self)
    }
}

/// The schedule of a route's `{name}` segment, validated.
#[derive(Debug, Clone)]
pub struct SchedulePath(pub ScheduleName);

impl<S: Send + Sync> FromRequestParts<S> for SchedulePath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        named(parts, state, ScheduleName::new).await.map(Self)
    }
}

/// The function and version or alias of a route's `{name}` segment written `NAME[:QUALIFIER]`
/// (no qualifier: `$LATEST`), validated.
#[derive(Debug, Clone)]
pub struct FunctionTarget(pub FunctionName, pub Selector);

impl<S: Send + Sync> FromRequestParts<S> for FunctionTarget {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let target: Target = named(parts, state, str::parse::<Target>).await?;
        Ok(Self(target.name, target.qualifier))
    }
}

/// A JSON body of at most `LIMIT` bytes: 413 past it, 400 when it is empty or not a `T`.
#[derive(Debug)]
pub struct JsonBody<T, const LIMIT: usize = MAX_JSON_BODY_BYTES>(pub T);

impl<T: DeserializeOwned, S: Send + Sync, const LIMIT: usize> FromRequest<S>
    for JsonBody<T, LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = read_limited(&parts.headers, body, LIMIT).await?;
        parse_json(&bytes).map(Self)
    }
}

/// Like [`JsonBody`], but an empty body (or one of only whitespace) is `T::default()`.
#[derive(Debug)]
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let bytes = read_limited(&parts.headers, body, MAX_JSON_BODY_BYTES).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse_json(&bytes).map(Self)
    }
}
