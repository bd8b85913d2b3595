//! Lambda API operations on event invoke configurations (`/2019-09-25/...`): how asynchronous
//! invocations of a function, version or alias are retried, how old their events may grow, and
//! where records of their runs go. Shapes follow botocore's `FunctionEventInvokeConfig`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use lambent_control::ControlError;
use lambent_core::event::{EventConfigError, EventInvokeConfig};
use lambent_core::limits::ACCOUNT_ID;
use lambent_core::{Destination, FunctionName, Selector};
use serde::Deserialize;
use serde_json::{Value, json};

use super::functions::QualifierQuery;
use super::{function_arn, function_ref, json_body, reply};
use crate::AppState;
use crate::body::MAX_JSON_BODY_BYTES;
use crate::error::LambdaError;

type Result<T, E = LambdaError> = std::result::Result<T, E>;

/// Most configurations on one page of `ListFunctionEventInvokeConfigs` (botocore's maximum).
const MAX_LIST_ITEMS: u32 = 50;

/// One destination: `{"Destination": "arn:..."}` (an absent or empty ARN means none).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DestinationInput {
    destination: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DestinationConfigInput {
    on_success: Option<DestinationInput>,
    on_failure: Option<DestinationInput>,
}

/// The body of `PutFunctionEventInvokeConfig` and `UpdateFunctionEventInvokeConfig`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct EventInvokeConfigRequest {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<DestinationConfigInput>,
}

/// The destination a `DestinationConfig` member names, if any.
fn destination(field: &str, input: DestinationInput) -> Result<Option<Destination>> {
    match input.destination.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(arn) => Destination::parse(arn).map(Some).map_err(|_| {
            LambdaError::invalid(format!(
                "DestinationConfig.{field}.Destination {arn:?} is not a function or an SQS queue; \
                 use arn:aws:lambda:REGION:{ACCOUNT_ID}:function:NAME[:QUALIFIER] or \
                 arn:aws:sqs:REGION:{ACCOUNT_ID}:QUEUE (SNS topics, EventBridge buses and S3 \
                 buckets are not supported)"
            ))
        }),
    }
}

impl EventInvokeConfigRequest {
    /// The configuration this request makes of `base`: fields it gives replace those of `base`,
    /// the rest stay.
    fn apply(self, base: EventInvokeConfig) -> Result<EventInvokeConfig> {
        let invalid = |e: EventConfigError| LambdaError::invalid(e.to_string());
        let mut config = base;
        if let Some(n) = self.maximum_retry_attempts {
            config.max_retry_attempts = EventInvokeConfig::retry_attempts(n).map_err(invalid)?;
        }
        if let Some(n) = self.maximum_event_age_in_seconds {
            config.max_event_age_s = EventInvokeConfig::event_age(n).map_err(invalid)?;
        }
        if let Some(d) = self.destination_config {
            if let Some(s) = d.on_success {
                config.on_success = destination("OnSuccess", s)?;
            }
            if let Some(f) = d.on_failure {
                config.on_failure = destination("OnFailure", f)?;
            }
        }
        Ok(config)
    }
}

/// Lambda's `FunctionEventInvokeConfig`.
fn config_json(
    region: &str,
    name: &FunctionName,
    qualifier: &str,
    c: &EventInvokeConfig,
    updated_ms: i64,
) -> Value {
    let dest = |d: &Option<Destination>| match d {
        Some(d) => json!({ "Destination": d.arn(region, ACCOUNT_ID) }),
        None => json!({}),
    };
    json!({
        // A timestamp: botocore reads a JSON number as epoch seconds.
        "LastModified": updated_ms as f64 / 1000.0,
        "FunctionArn": function_arn(region, name, Some(qualifier)),
        "MaximumRetryAttempts": c.max_retry_attempts,
        "MaximumEventAgeInSeconds": c.max_event_age_s,
        "DestinationConfig": {
            "OnSuccess": dest(&c.on_success),
            "OnFailure": dest(&c.on_failure),
        },
    })
}

/// The function and qualifier an operation names (`$LATEST` when unqualified).
fn target(raw: &str, q: &QualifierQuery) -> Result<(FunctionName, Selector)> {
    let (name, selector) = function_ref(raw, q.qualifier())?;
    Ok((name, selector.unwrap_or_default()))
}

/// `PutFunctionEventInvokeConfig` (`merge` false: fields not given take Lambda's defaults) and
/// `UpdateFunctionEventInvokeConfig` (true: fields not given keep their current values).
async fn put(
    p: &AppState,
    raw: &str,
    q: &QualifierQuery,
    headers: &HeaderMap,
    body: Body,
    merge: bool,
) -> Result<Response> {
    let (name, selector) = target(raw, q)?;
    let req: EventInvokeConfigRequest = json_body(
        headers,
        body,
        MAX_JSON_BODY_BYTES,
        "a valid event invoke configuration",
    )
    .await?;
    let base = if merge {
        match p.event_config(&name, &selector) {
            Ok((c, _)) => c,
            // No configuration yet: Lambda creates one from the defaults.
            Err(ControlError::NotFound(_)) => EventInvokeConfig::default(),
            Err(e) => return Err(e.into()),
        }
    } else {
        EventInvokeConfig::default()
    };
    let config = req.apply(base)?;
    let (c, at) = p.put_event_config(&name, &selector, config).await?;
    Ok(reply(
        StatusCode::OK,
        config_json(p.region(), &name, &selector.to_string(), &c, at),
    ))
}

/// `PutFunctionEventInvokeConfig`: replace the configuration.
pub async fn put_config(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    put(&p, &raw, &q, &headers, body, false).await
}

/// `UpdateFunctionEventInvokeConfig`: change the fields given.
pub async fn update_config(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    put(&p, &raw, &q, &headers, body, true).await
}

/// `GetFunctionEventInvokeConfig`.
pub async fn get_config(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (name, selector) = target(&raw, &q)?;
    let (c, at) = p.event_config(&name, &selector)?;
    Ok(reply(
        StatusCode::OK,
        config_json(p.region(), &name, &selector.to_string(), &c, at),
    ))
}

/// `DeleteFunctionEventInvokeConfig`.
pub async fn delete_config(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let (name, selector) = target(&raw, &q)?;
    p.delete_event_config(&name, &selector).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?Marker=&MaxItems=`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct ListQuery {
    marker: Option<String>,
    max_items: Option<u32>,
}

/// `ListFunctionEventInvokeConfigs`: the configurations of every version and alias.
pub async fn list_configs(
    State(p): State<AppState>,
    Path(raw): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let (name, selector) = function_ref(&raw, None)?;
    if let Some(s) = selector {
        return Err(LambdaError::invalid(format!(
            "ListFunctionEventInvokeConfigs lists the configurations of every version and alias; \
             give the function without a qualifier (not :{s})"
        )));
    }
    let size = match q.max_items {
        None => MAX_LIST_ITEMS as usize,
        Some(n) if (1..=MAX_LIST_ITEMS).contains(&n) => n as usize,
        Some(n) => {
            return Err(LambdaError::invalid(format!(
                "MaxItems {n} is out of range; use 1 to {MAX_LIST_ITEMS}"
            )));
        }
    };
    let all = p.event_configs(&name)?;
    // The marker is the qualifier of the last configuration of the previous page.
    let start = q.marker.as_deref().map_or(0, |m| {
        all.iter()
            .position(|(qualifier, _, _)| qualifier == m)
            .map_or(all.len(), |i| i + 1)
    });
    let rest = all.get(start..).unwrap_or_default();
    let page = &rest[..rest.len().min(size)];
    let next = (rest.len() > size)
        .then(|| page.last().map(|(qualifier, _, _)| qualifier.clone()))
        .flatten();
    let configs: Vec<Value> = page
        .iter()
        .map(|(qualifier, c, at)| config_json(p.region(), &name, qualifier, c, *at))
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({ "FunctionEventInvokeConfigs": configs, "NextMarker": next }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &str) -> EventInvokeConfigRequest {
        serde_json::from_str(body).expect("request")
    }

    #[test]
    fn put_takes_defaults_and_update_merges() {
        let put = request(
            r#"{"MaximumRetryAttempts": 1,
                "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:us-east-1:000000000000:dlq"}}}"#,
        )
        .apply(EventInvokeConfig::default())
        .expect("put");
        assert_eq!(put.max_retry_attempts, 1);
        assert_eq!(put.max_event_age_s, 21600);
        assert_eq!(put.on_success, None);
        assert!(matches!(put.on_failure, Some(Destination::Queue(_))));
        let updated = request(r#"{"MaximumEventAgeInSeconds": 120}"#)
            .apply(put.clone())
            .expect("update");
        assert_eq!(updated.max_retry_attempts, 1, "kept");
        assert_eq!(updated.max_event_age_s, 120);
        assert_eq!(updated.on_failure, put.on_failure, "kept");
        let cleared = request(r#"{"DestinationConfig": {"OnFailure": {}}}"#)
            .apply(updated)
            .expect("clear");
        assert_eq!(cleared.on_failure, None);
    }

    #[test]
    fn bad_values_are_refused_with_what_to_fix() {
        let e = request(r#"{"MaximumRetryAttempts": 3}"#)
            .apply(EventInvokeConfig::default())
            .expect_err("retries");
        assert_eq!(e.error_type, "InvalidParameterValueException");
        assert!(e.message.contains("MaximumRetryAttempts"), "{}", e.message);
        assert!(
            request(r#"{"MaximumEventAgeInSeconds": 59}"#)
                .apply(EventInvokeConfig::default())
                .is_err()
        );
        let e = request(
            r#"{"DestinationConfig": {"OnSuccess": {"Destination": "arn:aws:sns:us-east-1:000000000000:topic"}}}"#,
        )
        .apply(EventInvokeConfig::default())
        .expect_err("sns");
        assert!(e.message.contains("OnSuccess"), "{}", e.message);
        assert!(serde_json::from_str::<EventInvokeConfigRequest>(r#"{"Retries": 1}"#).is_err());
        assert!(
            serde_json::from_str::<EventInvokeConfigRequest>(
                r#"{"DestinationConfig": {"OnFailure": {"Arn": "x"}}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn the_answer_has_lambdas_shape() {
        let name = FunctionName::new("f").expect("name");
        let c = EventInvokeConfig::default();
        let v = config_json("us-east-1", &name, "$LATEST", &c, 1_700_000_000_500);
        assert_eq!(
            v["FunctionArn"],
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
        );
        assert_eq!(v["LastModified"], 1_700_000_000.5);
        assert_eq!(v["MaximumRetryAttempts"], 2);
        assert_eq!(
            v["DestinationConfig"],
            json!({"OnSuccess": {}, "OnFailure": {}})
        );
    }
}
