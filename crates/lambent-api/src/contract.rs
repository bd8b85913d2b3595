//! The native API's contract: the request and response bodies of `/v1`, as serde types that the
//! handlers here, the `lambent` CLI and the coming web console all use, instead of each shaping
//! JSON by hand.
//!
//! It lives in lambent-api, not lambent-core: the only clients of these types are the front ends,
//! and the CLI is the same binary as the server (it already depends on this crate). The types are
//! plain serde structs over lambent-core's domain values, with no axum in them, so moving them
//! to a crate of their own when a client outside the binary appears is a move, not a rewrite.
//!
//! Request types carry `deny_unknown_fields` exactly where the API rejected unknown fields
//! before (all of these), with their fields in the order they had (serde's "expected one of"
//! message lists them so); `Option` fields serialize as `null` where the CLI always sent the
//! key. Response types that replaced `json!` objects list their fields alphabetically, the order
//! `json!` wrote them in, so that answers stay byte for byte what they were. The Lambda API keeps its own
//! wire shapes (botocore's model) in [`crate::lambda`], built from the same domain values.

use std::collections::BTreeMap;

use lambent_core::{Alias, FunctionVersion, Qualifier};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ----- functions and versions -------------------------------------------------------------------

/// A function version as the API shows it: the version's fields and where it answers HTTP.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionView {
    #[serde(flatten)]
    pub version: FunctionVersion,
    /// Where the function answers HTTP (`/fn/NAME` or `/fn/NAME:N`).
    pub url: String,
}

impl From<FunctionVersion> for FunctionView {
    fn from(version: FunctionVersion) -> Self {
        let url = match version.version {
            Qualifier::Latest => format!("/fn/{}", version.name),
            Qualifier::Version(n) => format!("/fn/{}:{n}", version.name),
        };
        Self { version, url }
    }
}

/// `GET /v1/functions`: one page of functions.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionList {
    pub functions: Vec<FunctionView>,
    /// The marker of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
}

/// `GET /v1/functions/{name}/versions`.
#[derive(Debug, Clone, Serialize)]
pub struct VersionList {
    pub versions: Vec<FunctionView>,
}

/// `POST /v1/functions/{name}/versions`: publish `$LATEST` (an empty body is allowed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishVersion {
    pub description: Option<String>,
}

/// `PUT /v1/functions/{name}/url[?qualifier=ALIAS]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUrl {
    /// `NONE` (public) or `AWS_IAM` (a key is needed).
    pub auth_type: String,
    /// Lambda's `Cors` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Value>,
}

// ----- aliases ----------------------------------------------------------------------------------

/// `PUT /v1/functions/{name}/aliases/{alias}`: create the alias or point it elsewhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAlias {
    /// The main version: a number or `$LATEST`.
    pub version: String,
    pub description: Option<String>,
    /// Published versions that take a share of the calls: `{"2": 0.1}`.
    pub weights: Option<BTreeMap<String, f64>>,
}

/// `GET /v1/functions/{name}/aliases`.
#[derive(Debug, Clone, Serialize)]
pub struct AliasList {
    pub aliases: Vec<Alias>,
}

// ----- concurrency and admission ----------------------------------------------------------------

/// `PUT /v1/functions/{name}/concurrency`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutConcurrency {
    pub reserved: u32,
}

/// The answer of `/v1/functions/{name}/concurrency`: the reserved concurrency, or `null`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Concurrency {
    pub reserved: Option<u32>,
}

/// `PUT /v1/functions/{name}/admission`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutAdmission {
    pub max_wait_ms: u32,
}

/// The answer of `/v1/functions/{name}/admission`: the function's own wait (or `null`) and the
/// one that applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Admission {
    pub effective_max_wait_ms: u128,
    pub max_wait_ms: Option<u128>,
}

/// `PUT /v1/functions/{name}/scaling`: instance concurrency and keep-alive (absent fields are
/// not sent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutScaling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_concurrency: Option<u32>,
    /// `fixed` or `adaptive`; absent: the platform's policy (or `fixed` with keepAliveSeconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive_seconds: Option<u64>,
}

// ----- provisioned concurrency ------------------------------------------------------------------

/// `PUT /v1/functions/{name}/provisioned?qualifier=Q`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutProvisioned {
    pub provisioned: u32,
}

/// `PUT /v1/functions/{name}/provisioned-schedules/{schedule}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutProvisionedSchedule {
    pub qualifier: String,
    pub schedule: String,
    pub provisioned: u32,
}

// ----- keys -------------------------------------------------------------------------------------

/// `POST /v1/keys` (an empty body is allowed).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

// ----- asynchronous invocation ------------------------------------------------------------------

/// The 202 of `POST /v1/functions/{name}/events`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventAccepted {
    /// Whether the idempotency key was seen before (the id is then the first event's).
    pub duplicate: bool,
    pub event_id: String,
}

// ----- asynchronous invocation: configuration, schedules, queues --------------------------------

/// The body of `PUT /v1/functions/{name}/event-config`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutEventConfig {
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_event_age_in_seconds: Option<i64>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
}

/// The body of `POST /v1/schedules` and `PUT /v1/schedules/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutSchedule {
    pub name: Option<String>,
    /// `name` or `name:qualifier`.
    pub function: String,
    pub expression: String,
    pub input: Option<Value>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// The body of `PATCH /v1/schedules/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSchedule {
    pub enabled: bool,
}

/// The body of `POST /v1/queues`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateQueue {
    pub name: String,
    pub visibility_timeout: Option<u32>,
    pub dead_letter_queue: Option<String>,
    pub max_receive_count: Option<u32>,
}

/// One message of a JSON send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendItem {
    pub body: Value,
    pub attributes: Option<Value>,
}

/// The JSON form of a send: `{"messages": [{"body": ..., "attributes": {...}}]}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    pub messages: Vec<SendItem>,
}

/// The body of a redrive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Redrive {
    pub message_ids: Option<Vec<String>>,
}

/// The body of `PUT /v1/queues/{name}/trigger`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutTrigger {
    /// `name` or `name:qualifier`.
    pub function: String,
    pub batch_size: Option<u32>,
    pub maximum_batching_window_in_seconds: Option<f64>,
    pub enabled: Option<bool>,
}

// ----- the test clock ---------------------------------------------------------------------------

/// `POST /v1/debug/clock` (builds with the `test-clock` feature).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdvanceClock {
    pub advance_ms: i64,
}

/// The answer of `/v1/debug/clock`: the time events and schedules run on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockReading {
    pub now: String,
    pub now_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_read_what_the_api_accepted_and_refuse_unknown_fields() {
        let a: PutAlias =
            serde_json::from_value(json!({"version": "1", "description": null, "weights": {}}))
                .expect("alias");
        assert_eq!(a.version, "1");
        assert!(serde_json::from_value::<PutAlias>(json!({"version": "1", "x": 1})).is_err());
        assert!(serde_json::from_value::<PutConcurrency>(json!({"reserved": 2, "y": 1})).is_err());
        let w: PutAdmission = serde_json::from_value(json!({"maxWaitMs": 5})).expect("admission");
        assert_eq!(w.max_wait_ms, 5);
    }

    #[test]
    fn answers_keep_the_bytes_json_gave_them() {
        let a = Admission {
            effective_max_wait_ms: 5,
            max_wait_ms: None,
        };
        assert_eq!(
            serde_json::to_string(&a).expect("json"),
            r#"{"effectiveMaxWaitMs":5,"maxWaitMs":null}"#
        );
        let e = EventAccepted {
            duplicate: false,
            event_id: "e".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).expect("json"),
            serde_json::json!({"eventId": "e", "duplicate": false}).to_string()
        );
    }

    #[test]
    fn what_the_cli_sends_is_what_it_sent_before() {
        let body = PutAlias {
            version: "2".into(),
            description: None,
            weights: Some(BTreeMap::from([("3".to_owned(), 0.25)])),
        };
        assert_eq!(
            serde_json::to_value(&body).expect("json"),
            json!({"version": "2", "description": null, "weights": {"3": 0.25}})
        );
        assert_eq!(
            serde_json::to_value(PublishVersion { description: None }).expect("json"),
            json!({"description": null})
        );
        assert_eq!(
            serde_json::to_value(CreateKey {
                description: Some(String::new()),
                role: None
            })
            .expect("json"),
            json!({"description": ""})
        );
        assert_eq!(
            serde_json::to_value(Concurrency { reserved: None }).expect("json"),
            json!({"reserved": null})
        );
    }
}
