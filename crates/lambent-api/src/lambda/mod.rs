//! The AWS Lambda REST API (`/2015-03-31/...` and its siblings), so that boto3 and the AWS CLI
//! manage and invoke lambent functions with `--endpoint-url`. Paths, shapes and error types follow
//! botocore's `lambda` service model; every handler is a thin translation onto the same
//! [`lambent_control::Platform`] calls the native API makes.

mod event_config;
mod functions;
mod invoke;
mod provisioned;

use axum::Router;
use axum::routing::{get, post, put};
use base64::Engine as _;
use lambent_core::limits::ACCOUNT_ID;
use lambent_core::{
    Alias, FunctionArn, FunctionName, FunctionUrlConfig, FunctionVersion, Qualifier, Selector,
};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::LambdaError;

/// The Lambda API's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create).get(functions::list),
        )
        .route("/2015-03-31/functions/", get(functions::list))
        .route(
            "/2015-03-31/functions/{function}",
            get(functions::get).delete(functions::delete),
        )
        .route(
            "/2015-03-31/functions/{function}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route(
            "/2015-03-31/functions/{function}/code",
            put(functions::update_code),
        )
        .route(
            "/2015-03-31/functions/{function}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/2015-03-31/functions/{function}/versions",
            post(functions::publish).get(functions::versions),
        )
        .route(
            "/2015-03-31/functions/{function}/aliases",
            post(functions::create_alias).get(functions::list_aliases),
        )
        .route(
            "/2015-03-31/functions/{function}/aliases/{alias}",
            get(functions::get_alias)
                .put(functions::update_alias)
                .delete(functions::delete_alias),
        )
        .route(
            "/2017-10-31/functions/{function}/concurrency",
            put(functions::put_concurrency).delete(functions::delete_concurrency),
        )
        .route(
            "/2019-09-30/functions/{function}/concurrency",
            get(functions::get_concurrency),
        )
        .route(
            "/2019-09-30/functions/{function}/provisioned-concurrency",
            put(provisioned::put)
                .get(provisioned::get)
                .delete(provisioned::delete),
        )
        .route(
            "/2016-08-19/account-settings",
            get(functions::account_settings),
        )
        .route(
            "/2016-08-19/account-settings/",
            get(functions::account_settings),
        )
        .route(
            "/2021-10-31/functions/{function}/url",
            post(functions::create_url)
                .get(functions::get_url)
                .put(functions::update_url)
                .delete(functions::delete_url),
        )
        .route(
            "/2019-09-25/functions/{function}/event-invoke-config",
            put(event_config::put_config)
                .post(event_config::update_config)
                .get(event_config::get_config)
                .delete(event_config::delete_config),
        )
        .route(
            "/2019-09-25/functions/{function}/event-invoke-config/list",
            get(event_config::list_configs),
        )
}

/// Whether a path belongs to the Lambda API (its errors take Lambda's shape).
pub fn is_lambda_path(path: &str) -> bool {
    [
        "/2015-03-31/",
        "/2017-10-31/",
        "/2019-09-30/",
        "/2016-08-19/",
        "/2021-10-31/",
        "/2019-09-25/",
    ]
    .iter()
    .any(|p| path.starts_with(p))
        || path == "/2015-03-31/functions"
}

/// A `FunctionName` parameter: a name, `name:qualifier`, a partial ARN
/// (`000000000000:function:name[:qualifier]`) or a full ARN, checked against `?Qualifier=`.
pub(crate) fn function_ref(
    raw: &str,
    query_qualifier: Option<&str>,
) -> Result<(FunctionName, Option<Selector>), LambdaError> {
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, qualifier) = match (FunctionArn::parse(raw), parts.as_slice()) {
        (Some(arn), _) => (arn.name, arn.qualifier),
        (None, [_account, "function", name]) => (*name, None),
        (None, [_account, "function", name, q]) => (*name, Some(*q)),
        (None, [name]) => (*name, None),
        (None, [name, q]) => (*name, Some(*q)),
        (None, _) => {
            return Err(LambdaError::invalid(format!(
                "FunctionName {raw:?} is not a name, name:qualifier, or a function ARN (arn:aws:lambda:REGION:{ACCOUNT_ID}:function:NAME)"
            )));
        }
    };
    let name = FunctionName::new(name).map_err(|e| LambdaError::invalid(e.to_string()))?;
    let qualifier = match (qualifier, query_qualifier) {
        (Some(a), Some(b)) if a != b => {
            return Err(LambdaError::invalid(format!(
                "the qualifier in FunctionName ({a}) does not match the Qualifier parameter ({b})"
            )));
        }
        (Some(q), _) | (None, Some(q)) => Some(q),
        (None, None) => None,
    };
    let selector = qualifier
        .map(|q| q.parse::<Selector>())
        .transpose()
        .map_err(|e| LambdaError::invalid(e.to_string()))?;
    Ok((name, selector))
}

/// Reads a JSON body of at most `limit` bytes (an empty one is `{}`) and parses it into `T`; a
/// body that does not parse is a 400 saying it is not `what`, with serde's message.
pub(crate) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
    what: &str,
) -> Result<T, LambdaError> {
    let bytes = crate::body::read_limited(headers, body, limit).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    serde_json::from_slice(bytes)
        .map_err(|e| LambdaError::invalid(format!("the request body is not {what}: {e}")))
}

/// Lambda's `LastModified` format: `2026-11-28T17:05:59.123+0000`.
pub(crate) fn lambda_time(rfc3339: &str) -> String {
    let Some(seconds) = rfc3339.get(..19) else {
        return rfc3339.to_owned();
    };
    let rest = &rfc3339[19..];
    let fraction: String = rest
        .strip_prefix('.')
        .map(|f| f.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    let millis = format!("{fraction:0<3}");
    format!("{seconds}.{}+0000", &millis[..3])
}

/// The function's ARN, with `:qualifier` when given.
pub(crate) fn function_arn(region: &str, name: &FunctionName, qualifier: Option<&str>) -> String {
    FunctionArn::new(region, name.as_str(), qualifier).to_string()
}

/// Lambda's `CodeSha256`: the base64 of the digest (lambent keeps it in hex).
pub(crate) fn code_sha256_base64(hex_digest: &str) -> String {
    hex_to_bytes(hex_digest)
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        .unwrap_or_default()
}

fn hex_to_bytes(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The architecture this host runs, in Lambda's spelling.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

/// Lambda's `FunctionConfiguration`. `qualified_latest` writes `$LATEST` into the ARN, as
/// `ListVersionsByFunction` does.
pub(crate) fn configuration(region: &str, v: &FunctionVersion, qualified_latest: bool) -> Value {
    let c = &v.config;
    let arn_qualifier = match v.version {
        Qualifier::Latest if !qualified_latest => None,
        q => Some(q.to_string()),
    };
    let mut out = json!({
        "FunctionName": v.name.as_str(),
        "FunctionArn": function_arn(region, &v.name, arn_qualifier.as_deref()),
        "Runtime": c.runtime.as_str(),
        "Role": c.role,
        "Handler": c.handler,
        "CodeSize": v.code_size,
        "Description": c.description,
        "Timeout": c.timeout_s,
        "MemorySize": c.memory_mb,
        "LastModified": lambda_time(&v.last_modified),
        "CodeSha256": code_sha256_base64(&v.code_sha256),
        "Version": v.version.to_string(),
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": v.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [host_architecture()],
        "EphemeralStorage": {"Size": c.ephemeral_storage_mb},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", v.name)},
    });
    if !c.environment.is_empty() {
        out["Environment"] = json!({ "Variables": c.environment });
    }
    out
}

/// Lambda's `AliasConfiguration`.
pub(crate) fn alias_configuration(region: &str, a: &Alias) -> Value {
    let mut out = json!({
        "AliasArn": function_arn(region, &a.function, Some(a.name.as_str())),
        "Name": a.name.as_str(),
        "FunctionVersion": a.version.to_string(),
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if !a.additional_weights.is_empty() {
        let weights: serde_json::Map<String, Value> = a
            .additional_weights
            .iter()
            .map(|(v, w)| (v.to_string(), json!(w)))
            .collect();
        out["RoutingConfig"] = json!({ "AdditionalVersionWeights": weights });
    }
    out
}

/// Lambda's function URL configuration; `base` is `http://host`.
pub(crate) fn url_configuration(region: &str, base: &str, u: &FunctionUrlConfig) -> Value {
    let target = match &u.alias {
        Some(a) => format!("{}:{a}", u.function),
        None => u.function.to_string(),
    };
    let mut out = json!({
        "FunctionUrl": format!("{base}/fn/{target}/"),
        "FunctionArn": function_arn(region, &u.function, u.alias.as_ref().map(|a| a.as_str())),
        "AuthType": u.auth_type.as_str(),
        "CreationTime": lambda_time(&u.created),
        "LastModifiedTime": lambda_time(&u.last_modified),
        "InvokeMode": "BUFFERED",
    });
    if let Some(cors) = &u.cors {
        out["Cors"] = cors.clone();
    }
    out
}

/// A JSON answer with a status.
pub(crate) fn reply(status: http::StatusCode, body: impl Serialize) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_take_every_form() {
        let (n, q) = function_ref("hello", None).expect("name");
        assert_eq!((n.as_str(), q), ("hello", None));
        let (n, q) = function_ref("hello:live", None).expect("name:alias");
        assert_eq!(n.as_str(), "hello");
        assert_eq!(q, Some("live".parse().expect("selector")));
        let (n, q) = function_ref(
            "arn:aws:lambda:us-east-1:000000000000:function:hello:3",
            None,
        )
        .expect("arn");
        assert_eq!(n.as_str(), "hello");
        assert_eq!(q, Some("3".parse().expect("selector")));
        let (n, _) = function_ref("000000000000:function:hello", Some("$LATEST")).expect("partial");
        assert_eq!(n.as_str(), "hello");
        assert!(function_ref("hello:1", Some("2")).is_err());
        assert!(function_ref("a:b:c", None).is_err());
        assert!(function_ref("bad name", None).is_err());
    }

    #[test]
    fn times_and_digests_take_lambdas_form() {
        assert_eq!(
            lambda_time("2026-11-28T17:05:59.123456789Z"),
            "2026-11-28T17:05:59.123+0000"
        );
        assert_eq!(
            lambda_time("2026-11-28T17:05:59Z"),
            "2026-11-28T17:05:59.000+0000"
        );
        assert_eq!(
            code_sha256_base64("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
