//! Reading request bodies with limits, and the shapes code arrives in (JSON with base64 code,
//! multipart with a `config` and a `code` part, or raw bytes).

use axum::body::Body;
use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use lambent_core::FunctionCreate;
use lambent_core::limits::{MAX_CODE_BYTES, MAX_CODE_UPLOAD_REQUEST_BYTES};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest body of a code upload: [`MAX_CODE_UPLOAD_REQUEST_BYTES`] (the code limit,
/// base64-inflated, plus room for the rest).
pub const MAX_UPLOAD_BODY_BYTES: usize = MAX_CODE_UPLOAD_REQUEST_BYTES;
/// Largest body of a JSON request without code.
pub const MAX_JSON_BODY_BYTES: usize = 1024 * 1024;

/// Most bytes of an oversized body read and thrown away before answering 413. Reading them lets
/// a client that does not wait for `100 Continue` finish sending and see the answer, instead of a
/// connection reset; past this the connection is closed.
const MAX_DISCARD_BYTES: usize = 64 * 1024 * 1024;

/// Longest time spent reading and dropping an oversized body before answering 413, so that a
/// caller that declares a large body and sends it slowly (or not at all) is answered anyway.
const MAX_DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// The declared `Content-Length`, if any.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads and drops what is left of `body`, up to [`MAX_DISCARD_BYTES`] and for at most
/// [`MAX_DISCARD_TIME`].
pub async fn discard<B>(mut body: B)
where
    B: http_body::Body + Unpin,
{
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += bytes::Buf::remaining(data);
            }
            if seen > MAX_DISCARD_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(MAX_DISCARD_TIME, drain).await;
}

/// Reads the whole body, refusing with a JSON 413 past `limit`.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(declared) = declared_length(headers).filter(|n| *n > limit as u64) {
        // A body too large to drop is not waited for: the answer comes at once and the
        // connection is closed after it.
        if declared <= MAX_DISCARD_BYTES as u64 {
            discard(body).await;
        }
        return Err(ApiError::too_large(limit));
    }
    let mut body = body;
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                discard(body).await;
                return Err(ApiError::too_large(limit));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}

/// Parses JSON, with serde's message (which names the unknown field or the bad position).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "InvalidJson",
            format!("invalid JSON: {e}"),
        )
    })
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A create/deploy request: the configuration and the code.
pub async fn read_deploy(
    headers: &HeaderMap,
    body: Body,
) -> Result<(FunctionCreate, Bytes), ApiError> {
    let ct = content_type(headers).to_ascii_lowercase();
    let bytes = read_limited(headers, body, MAX_UPLOAD_BODY_BYTES).await?;
    if ct.starts_with("multipart/form-data") {
        let (config, code) = read_multipart(headers, bytes).await?;
        let config: FunctionCreate = match config {
            Some(c) => parse_json(&c)?,
            None => FunctionCreate::default(),
        };
        if config.code.is_some() {
            return Err(ApiError::bad_request(
                "send the code either in the 'code' part or base64 in the config's 'code' field, not both",
            ));
        }
        let code = code.ok_or_else(|| {
            ApiError::bad_request(
                "the multipart body has no 'code' part; add the .wasm file as a part named 'code'",
            )
        })?;
        Ok((config, code))
    } else if ct.starts_with("application/json") || ct.is_empty() {
        let mut config: FunctionCreate = parse_json(&bytes)?;
        let code = config.code.take().ok_or_else(|| {
            ApiError::bad_request(
                "missing 'code': give the .wasm file base64-encoded, or upload it as multipart",
            )
        })?;
        let code = base64::engine::general_purpose::STANDARD
            .decode(code.trim())
            .map_err(|e| ApiError::bad_request(format!("'code' is not valid base64: {e}")))?;
        Ok((config, Bytes::from(code)))
    } else {
        Err(ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "content type {ct:?} is not accepted here; send application/json or multipart/form-data"
            ),
        ))
    }
}

/// Code for a code update: raw bytes, or the `code` part of a multipart body.
pub async fn read_code(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let ct = content_type(headers).to_ascii_lowercase();
    let multipart = ct.starts_with("multipart/form-data");
    // Raw code is not base64-inflated: its limit is the code limit itself.
    let limit = if multipart {
        MAX_UPLOAD_BODY_BYTES
    } else {
        MAX_CODE_BYTES
    };
    let bytes = read_limited(headers, body, limit).await?;
    if multipart {
        let (config, code) = read_multipart(headers, bytes).await?;
        if config.is_some() {
            return Err(ApiError::bad_request(
                "a code update takes only a 'code' part; change configuration with PATCH /v1/functions/NAME/config",
            ));
        }
        code.ok_or_else(|| ApiError::bad_request("the multipart body has no 'code' part"))
    } else {
        Ok(bytes)
    }
}

async fn read_multipart(
    headers: &HeaderMap,
    bytes: Bytes,
) -> Result<(Option<Bytes>, Option<Bytes>), ApiError> {
    let boundary = multer::parse_boundary(content_type(headers))
        .map_err(|e| ApiError::bad_request(format!("bad multipart content type: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let (mut config, mut code) = (None, None);
    let bad = |e: multer::Error| ApiError::bad_request(format!("bad multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        let data = field.bytes().await.map_err(bad)?;
        match name.as_str() {
            "config" => config = Some(data),
            "code" => code = Some(data),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown multipart part {other:?}; send 'config' (JSON) and 'code' (the .wasm file)"
                )));
            }
        }
    }
    Ok((config, code))
}
