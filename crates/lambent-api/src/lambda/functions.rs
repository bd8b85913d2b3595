//! Lambda API operations on functions, versions, aliases, concurrency, function URLs and the
//! account.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use lambent_control::{AliasUpdate, ControlError};
use lambent_core::limits::{DEFAULT_PAGE_SIZE, MAX_CODE_BYTES, MAX_PAGE_SIZE};
use lambent_core::{
    AliasName, FunctionCreate, FunctionName, FunctionUpdate, FunctionVersion, Qualifier, Selector,
    UrlAuthType,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    alias_configuration, configuration, function_ref, json_body, reply, url_configuration,
};
use crate::AppState;
use crate::body::{MAX_JSON_BODY_BYTES, MAX_UPLOAD_BODY_BYTES};
use crate::error::LambdaError;

type Result<T, E = LambdaError> = std::result::Result<T, E>;

/// What a body that does not parse is not.
const OPERATION_BODY: &str = "valid for this operation";

/// The JSON body of a code upload (`CreateFunction`, `UpdateFunctionCode`). Over
/// [`MAX_UPLOAD_BODY_BYTES`] it is Lambda's `RequestEntityTooLargeException`, worded as Lambda
/// words it, with the limit on the zip added.
async fn code_upload_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    operation: &str,
) -> Result<T> {
    match json_body(headers, body, MAX_UPLOAD_BODY_BYTES, OPERATION_BODY).await {
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => Err(LambdaError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!(
                "Request must be smaller than {MAX_UPLOAD_BODY_BYTES} bytes for the {operation} operation (a ZipFile of at most {MAX_CODE_BYTES} bytes, {}, base64-encoded)",
                crate::error::megabytes(MAX_CODE_BYTES)
            ),
        )),
        other => other,
    }
}

fn page_size(max_items: Option<u32>) -> Result<usize> {
    match max_items {
        None => Ok(DEFAULT_PAGE_SIZE as usize),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n as usize),
        Some(n) => Err(LambdaError::invalid(format!(
            "MaxItems {n} is out of range; use 1 to {MAX_PAGE_SIZE}"
        ))),
    }
}

/// `http://host` of the request, for URLs lambent hands out.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

fn check_architectures(archs: Option<&Vec<String>>) -> Result<()> {
    let host = super::host_architecture();
    match archs.map(Vec::as_slice) {
        None | Some([]) => Ok(()),
        Some([a]) if a == host => Ok(()),
        Some(other) => Err(LambdaError::invalid(format!(
            "Architectures {other:?} cannot run here; this host runs [{host:?}]"
        ))),
    }
}

/// Settings lambent does not have, refused with a message rather than silently ignored.
fn refuse_unsupported(
    layers: Option<&Vec<String>>,
    dlq: Option<&Value>,
    vpc: Option<&Value>,
) -> Result<()> {
    if layers.is_some_and(|l| !l.is_empty()) {
        return Err(LambdaError::invalid(
            "Layers are not supported; put the layer's files into the function's zip (under /opt paths use the package root)",
        ));
    }
    if dlq.is_some_and(|d| d.get("TargetArn").is_some_and(|t| !t.is_null())) {
        return Err(LambdaError::invalid(
            "DeadLetterConfig is not supported yet; asynchronous failures are logged and counted in /metrics",
        ));
    }
    if vpc.is_some_and(|v| {
        ["SubnetIds", "SecurityGroupIds"].iter().any(|k| {
            v.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
    }) {
        return Err(LambdaError::invalid(
            "VpcConfig is not supported; lambent functions have no network unless deployed with egress",
        ));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CodeInput {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    s3_object_version: Option<String>,
    image_uri: Option<String>,
    source_kms_key_arn: Option<String>,
}

impl CodeInput {
    fn bytes(self) -> Result<Bytes> {
        if self.s3_bucket.is_some() || self.s3_key.is_some() || self.s3_object_version.is_some() {
            return Err(LambdaError::invalid(
                "code from S3 is not supported; send the zip itself in Code.ZipFile (fileb://function.zip with the AWS CLI)",
            ));
        }
        if self.image_uri.is_some() {
            return Err(LambdaError::invalid(
                "container images are not supported; send a zip (or a .wasm file) in Code.ZipFile",
            ));
        }
        let _ = self.source_kms_key_arn;
        let zip = self.zip_file.ok_or_else(|| {
            LambdaError::invalid(
                "Code.ZipFile is required: the zip (or .wasm) of the function, base64-encoded",
            )
        })?;
        base64::engine::general_purpose::STANDARD
            .decode(zip.trim())
            .map(Bytes::from)
            .map_err(|e| LambdaError::invalid(format!("Code.ZipFile is not valid base64: {e}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EnvironmentInput {
    variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct StorageInput {
    size: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CreateFunctionRequest {
    function_name: String,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    code: CodeInput,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    publish: Option<bool>,
    environment: Option<EnvironmentInput>,
    ephemeral_storage: Option<StorageInput>,
    package_type: Option<String>,
    architectures: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
    tracing_config: Option<Value>,
    layers: Option<Vec<String>>,
    vpc_config: Option<Value>,
    dead_letter_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    kms_key_arn: Option<String>,
    logging_config: Option<Value>,
    code_signing_config_arn: Option<String>,
    snap_start: Option<Value>,
    file_system_configs: Option<Vec<Value>>,
    image_config: Option<Value>,
}

fn check_package_type(p: Option<&str>) -> Result<()> {
    match p {
        None | Some("Zip") => Ok(()),
        Some(other) => Err(LambdaError::invalid(format!(
            "PackageType {other:?} is not supported; use Zip"
        ))),
    }
}

/// `?Qualifier=`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct QualifierQuery {
    qualifier: Option<String>,
}

impl QualifierQuery {
    /// The qualifier, if given.
    pub fn qualifier(&self) -> Option<&str> {
        self.qualifier.as_deref()
    }
}

fn version_response(p: &AppState, v: &FunctionVersion, status: StatusCode) -> Response {
    reply(status, configuration(p.region(), v, false))
}

/// The version a selector names for reading (an alias reads as its main version).
fn read_target(p: &AppState, raw: &str, q: Option<&str>) -> Result<(FunctionName, Qualifier)> {
    let (name, selector) = function_ref(raw, q)?;
    let qualifier = p.main_version(&name, &selector.unwrap_or_default())?;
    Ok((name, qualifier))
}

/// `CreateFunction`.
pub async fn create(State(p): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response> {
    let req: CreateFunctionRequest = code_upload_body(&headers, body, "CreateFunction").await?;
    check_package_type(req.package_type.as_deref())?;
    check_architectures(req.architectures.as_ref())?;
    refuse_unsupported(
        req.layers.as_ref(),
        req.dead_letter_config.as_ref(),
        req.vpc_config.as_ref(),
    )?;
    if req.image_config.is_some()
        || req
            .file_system_configs
            .as_ref()
            .is_some_and(|f| !f.is_empty())
    {
        return Err(LambdaError::invalid(
            "ImageConfig and FileSystemConfigs are not supported; send a zip with everything the function needs",
        ));
    }
    let _ignored = (
        &req.tags,
        &req.tracing_config,
        &req.kms_key_arn,
        &req.logging_config,
        &req.code_signing_config_arn,
        &req.snap_start,
    );
    let name =
        FunctionName::new(&req.function_name).map_err(|e| LambdaError::invalid(e.to_string()))?;
    let code = req.code.bytes()?;
    let create = FunctionCreate {
        name: None,
        runtime: req.runtime,
        memory_mb: req.memory_size,
        timeout_s: req.timeout,
        environment: req.environment.and_then(|e| e.variables),
        description: req.description,
        handler: req.handler,
        ephemeral_storage_mb: req.ephemeral_storage.map(|s| s.size),
        egress: None,
        role: req.role,
        code: None,
    };
    let mut v = p.create(name.clone(), create, code).await?;
    if req.publish == Some(true) {
        v = p.publish(&name, None, None).await?.0;
    }
    Ok(version_response(&p, &v, StatusCode::CREATED))
}

/// `GetFunction`.
pub async fn get(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, qualifier) = read_target(&p, &raw, q.qualifier.as_deref())?;
    let v = p.get(&name, qualifier)?;
    let mut out = json!({
        "Configuration": configuration(p.region(), &v, false),
        "Code": {
            "RepositoryType": "S3",
            "Location": format!("{}/v1/functions/{name}/code?qualifier={}", base_url(&headers), qualifier.to_string().replace('$', "%24")),
        },
        "Tags": {},
    });
    if let Some(r) = p.reserved_concurrency(&name)? {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": r });
    }
    Ok(reply(StatusCode::OK, out))
}

/// `GetFunctionConfiguration`.
pub async fn get_configuration(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (name, qualifier) = read_target(&p, &raw, q.qualifier.as_deref())?;
    let v = p.get(&name, qualifier)?;
    Ok(version_response(&p, &v, StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListQuery {
    marker: Option<String>,
    max_items: Option<u32>,
    function_version: Option<String>,
    master_region: Option<String>,
}

/// `ListFunctions`.
pub async fn list(State(p): State<AppState>, Query(q): Query<ListQuery>) -> Result<Response> {
    let size = page_size(q.max_items)?;
    let _ = q.master_region;
    let all_versions = match q.function_version.as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(LambdaError::invalid(format!(
                "FunctionVersion {other:?} is invalid; the only value is ALL"
            )));
        }
    };
    let (page, next) = p.list(size as u32, q.marker.as_deref())?;
    let mut functions = Vec::new();
    for v in page {
        if all_versions {
            for version in p.versions(&v.name)? {
                functions.push(configuration(p.region(), &version, true));
            }
        } else {
            functions.push(configuration(p.region(), &v, false));
        }
    }
    let mut out = json!({ "Functions": functions });
    if let Some(m) = next {
        out["NextMarker"] = m.into();
    }
    Ok(reply(StatusCode::OK, out))
}

/// `DeleteFunction`: the whole function, or one published version with `Qualifier`.
pub async fn delete(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (name, selector) = function_ref(&raw, q.qualifier.as_deref())?;
    match selector {
        None => p.delete(&name).await?,
        Some(Selector::Version(Qualifier::Version(n))) => p.delete_version(&name, n).await?,
        Some(Selector::Version(Qualifier::Latest)) => {
            return Err(LambdaError::invalid(
                "$LATEST cannot be deleted on its own; delete the function without a qualifier",
            ));
        }
        Some(Selector::Alias(a)) => {
            return Err(LambdaError::invalid(format!(
                "{a} is an alias; delete it with DeleteAlias, or give a version number"
            )));
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Refuses a dry run when the caller's `RevisionId` is not the current one (a real change
/// passes the revision on, and the store compares it as it writes).
fn check_revision(given: Option<&str>, current: &str) -> Result<()> {
    match given {
        Some(r) if r != current => Err(ControlError::RevisionMismatch {
            given: r.to_owned(),
            current: current.to_owned(),
        }
        .into()),
        _ => Ok(()),
    }
}

fn unqualified(raw: &str) -> Result<FunctionName> {
    let (name, selector) = function_ref(raw, None)?;
    match selector {
        None | Some(Selector::Version(Qualifier::Latest)) => Ok(name),
        Some(other) => Err(LambdaError::invalid(format!(
            "only $LATEST can be changed; {other} is not (publish a new version instead)"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UpdateCodeRequest {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    s3_key: Option<String>,
    #[serde(rename = "S3ObjectVersion")]
    s3_object_version: Option<String>,
    image_uri: Option<String>,
    publish: Option<bool>,
    dry_run: Option<bool>,
    revision_id: Option<String>,
    architectures: Option<Vec<String>>,
    source_kms_key_arn: Option<String>,
}

/// `UpdateFunctionCode`.
pub async fn update_code(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let req: UpdateCodeRequest = code_upload_body(&headers, body, "UpdateFunctionCode").await?;
    check_architectures(req.architectures.as_ref())?;
    let code = CodeInput {
        zip_file: req.zip_file,
        s3_bucket: req.s3_bucket,
        s3_key: req.s3_key,
        s3_object_version: req.s3_object_version,
        image_uri: req.image_uri,
        source_kms_key_arn: req.source_kms_key_arn,
    }
    .bytes()?;
    if req.dry_run == Some(true) {
        let current = p.get(&name, Qualifier::Latest)?;
        check_revision(req.revision_id.as_deref(), &current.revision_id)?;
        return Ok(version_response(&p, &current, StatusCode::OK));
    }
    let mut v = p
        .update_code(&name, code, req.revision_id.as_deref())
        .await?;
    if req.publish == Some(true) {
        v = p.publish(&name, None, None).await?.0;
    }
    Ok(version_response(&p, &v, StatusCode::OK))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UpdateConfigurationRequest {
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    environment: Option<EnvironmentInput>,
    runtime: Option<String>,
    ephemeral_storage: Option<StorageInput>,
    revision_id: Option<String>,
    tracing_config: Option<Value>,
    layers: Option<Vec<String>>,
    vpc_config: Option<Value>,
    dead_letter_config: Option<Value>,
    #[serde(rename = "KMSKeyArn")]
    kms_key_arn: Option<String>,
    logging_config: Option<Value>,
    snap_start: Option<Value>,
    file_system_configs: Option<Vec<Value>>,
    image_config: Option<Value>,
}

/// `UpdateFunctionConfiguration`.
pub async fn update_configuration(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let req: UpdateConfigurationRequest =
        json_body(&headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    refuse_unsupported(
        req.layers.as_ref(),
        req.dead_letter_config.as_ref(),
        req.vpc_config.as_ref(),
    )?;
    let _ignored = (
        &req.tracing_config,
        &req.kms_key_arn,
        &req.logging_config,
        &req.snap_start,
        &req.file_system_configs,
        &req.image_config,
    );
    let current = p.get(&name, Qualifier::Latest)?;
    if let Some(r) = &req.runtime {
        let wanted: lambent_core::Runtime = r
            .parse()
            .map_err(|e: lambent_core::ConfigError| LambdaError::invalid(e.to_string()))?;
        if wanted != current.config.runtime {
            return Err(LambdaError::invalid(format!(
                "changing the runtime from {} to {wanted} is not supported; create a new function, or redeploy with UpdateFunctionCode under the same runtime",
                current.config.runtime
            )));
        }
    }
    let update = FunctionUpdate {
        memory_mb: req.memory_size,
        timeout_s: req.timeout,
        environment: req.environment.map(|e| e.variables.unwrap_or_default()),
        description: req.description,
        handler: req.handler,
        ephemeral_storage_mb: req.ephemeral_storage.map(|s| s.size),
        egress: None,
        role: req.role,
    };
    let v = p
        .update_config(&name, &update, req.revision_id.as_deref())
        .await?;
    Ok(version_response(&p, &v, StatusCode::OK))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct PublishRequest {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

/// `PublishVersion`.
pub async fn publish(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let req: PublishRequest =
        json_body(&headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    let latest = p.get(&name, Qualifier::Latest)?;
    if let Some(sha) = &req.code_sha256 {
        let current = super::code_sha256_base64(&latest.code_sha256);
        if *sha != current {
            return Err(LambdaError::invalid(format!(
                "CodeSha256 {sha} does not match the code of $LATEST ({current}); it changed since you read it"
            )));
        }
    }
    let (v, _) = p
        .publish(
            &name,
            req.description.as_deref(),
            req.revision_id.as_deref(),
        )
        .await?;
    Ok(version_response(&p, &v, StatusCode::CREATED))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct PageQuery {
    marker: Option<String>,
    max_items: Option<u32>,
    function_version: Option<String>,
}

/// The page of `items` after `marker` (the key of the last item seen), and the next marker.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    size: usize,
) -> (Vec<T>, Option<String>) {
    let start = marker.map_or(0, |m| {
        items
            .iter()
            .position(|i| key(i) == m)
            .map_or(items.len(), |i| i + 1)
    });
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = (rest.len() > size).then(|| key(&rest[size - 1]));
    rest.truncate(size);
    (rest, next)
}

/// `ListVersionsByFunction`.
pub async fn versions(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let size = page_size(q.max_items)?;
    let all = p.versions(&name)?;
    let (items, next) = page(all, |v| v.version.to_string(), q.marker.as_deref(), size);
    let versions: Vec<Value> = items
        .iter()
        .map(|v| configuration(p.region(), v, true))
        .collect();
    let mut out = json!({ "Versions": versions });
    if let Some(m) = next {
        out["NextMarker"] = m.into();
    }
    Ok(reply(StatusCode::OK, out))
}

// ----- aliases ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RoutingInput {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

impl RoutingInput {
    fn weights(self) -> Result<BTreeMap<u32, f64>> {
        lambent_core::alias::parse_weights(&self.additional_version_weights.unwrap_or_default())
            .map_err(|e| LambdaError::invalid(e.to_string()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct CreateAliasRequest {
    name: String,
    function_version: String,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
}

fn alias_name(raw: &str) -> Result<AliasName> {
    AliasName::new(raw).map_err(|e| LambdaError::invalid(e.to_string()))
}

fn version_param(raw: &str) -> Result<Qualifier> {
    raw.parse()
        .map_err(|e: lambent_core::NameError| LambdaError::invalid(format!("FunctionVersion: {e}")))
}

/// `CreateAlias`.
pub async fn create_alias(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let req: CreateAliasRequest =
        json_body(&headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    let alias = alias_name(&req.name)?;
    let version = version_param(&req.function_version)?;
    let weights = req
        .routing_config
        .map(RoutingInput::weights)
        .transpose()?
        .unwrap_or_default();
    let a = p
        .create_alias(
            &name,
            alias,
            version,
            req.description.unwrap_or_default(),
            weights,
        )
        .await?;
    Ok(reply(
        StatusCode::CREATED,
        alias_configuration(p.region(), &a),
    ))
}

/// `GetAlias`.
pub async fn get_alias(
    State(p): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let a = p.alias(&name, &alias_name(&alias)?)?;
    Ok(reply(StatusCode::OK, alias_configuration(p.region(), &a)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UpdateAliasRequest {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
    revision_id: Option<String>,
}

/// `UpdateAlias`.
pub async fn update_alias(
    State(p): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let alias = alias_name(&alias)?;
    let req: UpdateAliasRequest =
        json_body(&headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    let update = AliasUpdate {
        version: req
            .function_version
            .as_deref()
            .map(version_param)
            .transpose()?,
        description: req.description,
        additional_weights: req.routing_config.map(RoutingInput::weights).transpose()?,
    };
    let a = p
        .update_alias(&name, &alias, update, req.revision_id.as_deref())
        .await?;
    Ok(reply(StatusCode::OK, alias_configuration(p.region(), &a)))
}

/// `DeleteAlias`.
pub async fn delete_alias(
    State(p): State<AppState>,
    Path((raw, alias)): Path<(String, String)>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    p.delete_alias(&name, &alias_name(&alias)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `ListAliases`.
pub async fn list_aliases(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let size = page_size(q.max_items)?;
    let mut all = p.aliases(&name)?;
    if let Some(v) = q.function_version.as_deref() {
        let v = version_param(v)?;
        all.retain(|a| a.version == v);
    }
    let (items, next) = page(all, |a| a.name.to_string(), q.marker.as_deref(), size);
    let aliases: Vec<Value> = items
        .iter()
        .map(|a| alias_configuration(p.region(), a))
        .collect();
    let mut out = json!({ "Aliases": aliases });
    if let Some(m) = next {
        out["NextMarker"] = m.into();
    }
    Ok(reply(StatusCode::OK, out))
}

// ----- concurrency and account --------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct ConcurrencyRequest {
    reserved_concurrent_executions: u32,
}

/// `PutFunctionConcurrency`.
pub async fn put_concurrency(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    let req: ConcurrencyRequest =
        json_body(&headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    let n = p
        .put_reserved_concurrency(&name, req.reserved_concurrent_executions)
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!({ "ReservedConcurrentExecutions": n }),
    ))
}

/// `GetFunctionConcurrency`.
pub async fn get_concurrency(
    State(p): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    Ok(reply(
        StatusCode::OK,
        match p.reserved_concurrency(&name)? {
            Some(n) => json!({ "ReservedConcurrentExecutions": n }),
            None => json!({}),
        },
    ))
}

/// `DeleteFunctionConcurrency`.
pub async fn delete_concurrency(
    State(p): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let name = unqualified(&raw)?;
    p.delete_reserved_concurrency(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GetAccountSettings`: this install's real limits and usage.
pub async fn account_settings(State(p): State<AppState>) -> Result<Response> {
    let s = p.account_settings()?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "AccountLimit": {
                "TotalCodeSize": s.usage.total_code_size.saturating_add(s.code_storage_free),
                "CodeSizeUnzipped": s.code_size_unzipped,
                "CodeSizeZipped": s.code_size_zipped,
                "ConcurrentExecutions": s.concurrent_executions,
                "UnreservedConcurrentExecutions": s.unreserved_concurrent_executions,
            },
            "AccountUsage": {
                "TotalCodeSize": s.usage.total_code_size,
                "FunctionCount": s.usage.function_count,
            },
        }),
    ))
}

// ----- function URLs ------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct UrlRequest {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

impl UrlRequest {
    fn parse(self) -> Result<(Option<UrlAuthType>, Option<Value>)> {
        match self.invoke_mode.as_deref() {
            None | Some("BUFFERED") => {}
            Some(other) => {
                return Err(LambdaError::invalid(format!(
                    "InvokeMode {other:?} is not supported; use BUFFERED"
                )));
            }
        }
        let auth = self
            .auth_type
            .as_deref()
            .map(str::parse::<UrlAuthType>)
            .transpose()
            .map_err(|e| LambdaError::invalid(e.to_string()))?;
        if let Some(c) = &self.cors {
            crate::cors::Cors::parse(c).map_err(LambdaError::invalid)?;
        }
        Ok((auth, self.cors))
    }
}

/// The function and alias a function URL operation names.
fn url_target(raw: &str, q: Option<&str>) -> Result<(FunctionName, Option<AliasName>)> {
    let (name, selector) = function_ref(raw, q)?;
    match selector {
        None | Some(Selector::Version(Qualifier::Latest)) => Ok((name, None)),
        Some(Selector::Alias(a)) => Ok((name, Some(a))),
        Some(Selector::Version(Qualifier::Version(n))) => Err(LambdaError::invalid(
            lambent_core::AliasError::UrlOnVersion(n).to_string(),
        )),
    }
}

/// `CreateFunctionUrlConfig` (`replace` false, 201) and `UpdateFunctionUrlConfig` (true, 200).
async fn put_url(
    p: &AppState,
    raw: &str,
    q: &QualifierQuery,
    headers: &HeaderMap,
    body: Body,
    replace: bool,
) -> Result<Response> {
    let (name, alias) = url_target(raw, q.qualifier.as_deref())?;
    let req: UrlRequest = json_body(headers, body, MAX_JSON_BODY_BYTES, OPERATION_BODY).await?;
    let (auth, cors) = req.parse()?;
    let u = p.put_url(&name, alias, auth, cors, replace).await?;
    let status = if replace {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(reply(
        status,
        url_configuration(p.region(), &base_url(headers), &u),
    ))
}

/// `CreateFunctionUrlConfig`.
pub async fn create_url(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    put_url(&p, &raw, &q, &headers, body, false).await
}

/// `GetFunctionUrlConfig`.
pub async fn get_url(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, alias) = url_target(&raw, q.qualifier.as_deref())?;
    let u = p.url(&name, alias.as_ref())?;
    Ok(reply(
        StatusCode::OK,
        url_configuration(p.region(), &base_url(&headers), &u),
    ))
}

/// `UpdateFunctionUrlConfig`.
pub async fn update_url(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    put_url(&p, &raw, &q, &headers, body, true).await
}

/// `DeleteFunctionUrlConfig`.
pub async fn delete_url(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (name, alias) = url_target(&raw, q.qualifier.as_deref())?;
    p.delete_url(&name, alias.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
