//! `/v1/keys`: the access keys that sign requests (SigV4) or serve as bearer tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use lambent_control::ControlError;
use lambent_core::KeyRole;
use lambent_store::AccessKeyRow;
use serde::Serialize;

use crate::contract::CreateKey;
use crate::extract::JsonOrEmpty;
use crate::{ApiError, AppState};

/// Longest key description, in characters.
const MAX_KEY_DESCRIPTION_CHARS: usize = 256;
/// The role of a key created without one: what keys had before roles, short of key management.
pub const DEFAULT_KEY_ROLE: KeyRole = KeyRole::Deploy;

#[derive(Serialize)]
struct KeyView {
    access_key_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    secret_access_key: String,
    description: String,
    created: String,
    role: &'static str,
    /// Whether the role is `admin` (the field of lambent from before roles).
    admin: bool,
}

impl From<AccessKeyRow> for KeyView {
    fn from(k: AccessKeyRow) -> Self {
        Self {
            access_key_id: k.id,
            secret_access_key: k.secret,
            description: k.description,
            created: k.created,
            role: k.role.as_str(),
            admin: k.role == KeyRole::Admin,
        }
    }
}

/// `POST /v1/keys`: a new key (`{"description": ..., "role": "admin"|"deploy"|"invoke"}`); its
/// secret is shown this once.
pub async fn create(
    State(p): State<AppState>,
    JsonOrEmpty(req): JsonOrEmpty<CreateKey>,
) -> Result<Response, ApiError> {
    let description = req.description.unwrap_or_default();
    if description.chars().count() > MAX_KEY_DESCRIPTION_CHARS {
        return Err(ApiError::bad_request(format!(
            "the description is longer than {MAX_KEY_DESCRIPTION_CHARS} characters"
        )));
    }
    let role = match req.role.as_deref() {
        None => DEFAULT_KEY_ROLE,
        Some(r) => r
            .parse::<KeyRole>()
            .map_err(|e| ApiError::bad_request(e.to_string()))?,
    };
    let key = p
        .keys()
        .create(&description, role)
        .map_err(ControlError::from)?;
    Ok((StatusCode::CREATED, Json(KeyView::from(key))).into_response())
}

/// `GET /v1/keys`: every key, without secrets.
pub async fn list(State(p): State<AppState>) -> Result<Response, ApiError> {
    let keys: Vec<KeyView> = p
        .keys()
        .list()
        .map_err(ControlError::from)?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(Json(serde_json::json!({ "keys": keys })).into_response())
}

/// `DELETE /v1/keys/{id}`: revoke a key at once (not the last one).
pub async fn revoke(
    State(p): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    p.keys().revoke(&id).map_err(ControlError::from)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
