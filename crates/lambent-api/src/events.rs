//! The native API of asynchronous invocation: `POST /v1/functions/{name}/events` (accept),
//! `/v1/events` (status), `/v1/functions/{name}/event-config` (retries, age, destinations),
//! `/v1/schedules` and `/v1/queues` (messages, dead letters, redrive, triggers); the test clock
//! is in `test_clock`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use lambent_control::{
    Event, EventRequest, EventState, Message, QueueCounts, QueueRow, QueueSpec, ScheduleRow,
    ScheduleSpec, TriggerRow, TriggerSpec,
};
use lambent_core::event::{DEFAULT_BATCH_SIZE, EventInvokeConfig};
use lambent_core::limits::{ACCOUNT_ID, MAX_ASYNC_PAYLOAD_BYTES};
use lambent_core::{Destination, FunctionName, QueueName, ScheduleName, Selector, Target};
use lambent_store::metadata::rfc3339_ms;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::body::{parse_json, read_limited};
use crate::contract::{
    CreateQueue, EventAccepted, PatchSchedule, PutEventConfig, PutSchedule, PutTrigger, Redrive,
    SendMessages,
};
use crate::extract::{
    FunctionPath, FunctionTarget, JsonBody, JsonOrEmpty, QueuePath, SchedulePath,
};
use crate::functions::{name, selector};
use crate::{ApiError, AppState};

/// Request header carrying an idempotency key for an asynchronous invocation.
pub const HEADER_IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Response header with the request (event) id, as Lambda names it.
pub const HEADER_REQUEST_ID: &str = "x-amzn-requestid";

/// Largest message body plus some room for a JSON envelope.
const MAX_SEND_BODY_BYTES: usize = 2 * 1024 * 1024;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameterValue", message)
}

fn target(raw: &str) -> Result<(FunctionName, Selector), ApiError> {
    let t: Target = raw.parse().map_err(|e: lambent_core::NameError| {
        ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string())
    })?;
    Ok((t.name, t.qualifier))
}

fn queue_name(raw: &str) -> Result<QueueName, ApiError> {
    QueueName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string()))
}

fn schedule_name(raw: &str) -> Result<ScheduleName, ApiError> {
    ScheduleName::new(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidName", e.to_string()))
}

/// The headers an event keeps for its function.
pub(crate) fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    ["content-type", "x-amz-client-context", "x-amzn-trace-id"]
        .iter()
        .filter_map(|h| {
            let v = headers.get(*h)?.to_str().ok()?;
            Some(((*h).to_owned(), v.to_owned()))
        })
        .collect()
}

/// The idempotency key of a request, if any.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get(HEADER_IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| bad("the Idempotency-Key header must be visible ASCII"))
        })
        .transpose()
}

/// `POST /v1/functions/{name}[:qualifier]/events`: accept an asynchronous invocation. Answers
/// 202 with the event id once the event is on disk.
pub async fn accept(
    State(p): State<AppState>,
    FunctionTarget(fname, sel): FunctionTarget,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let payload = read_limited(&headers, body, MAX_ASYNC_PAYLOAD_BYTES).await?;
    let request = EventRequest {
        payload,
        headers: kept_headers(&headers),
        idempotency_key: idempotency_key(&headers)?,
        source: "api".into(),
        id: None,
    };
    let enqueued = p.accept_event(&fname, &sel, request).await?;
    let mut r = (
        StatusCode::ACCEPTED,
        Json(EventAccepted {
            duplicate: enqueued.duplicate,
            event_id: enqueued.id.clone(),
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&enqueued.id) {
        r.headers_mut().insert(HEADER_REQUEST_ID, v);
    }
    Ok(r)
}

fn body_json(bytes: Option<&[u8]>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

/// An event as the API shows it.
pub(crate) fn event_json(e: &Event) -> Value {
    let waiting = matches!(e.state, EventState::Queued | EventState::Retrying);
    json!({
        "id": e.id,
        "function": e.function,
        "qualifier": e.qualifier,
        "state": e.state.as_str(),
        "attempts": e.attempts,
        "throttles": e.throttles,
        "source": e.source,
        "idempotencyKey": e.idempotency_key,
        "acceptedAt": rfc3339_ms(e.accepted_ms),
        "updatedAt": rfc3339_ms(e.updated_ms),
        "nextAttemptAt": waiting.then(|| rfc3339_ms(e.next_ms)),
        "condition": e.condition,
        "error": e.error,
        "result": body_json(e.result.as_deref()),
        "payloadBytes": e.payload.len(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    function: Option<String>,
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/events?function=&state=&limit=`: recent events, newest first.
pub async fn list(
    State(p): State<AppState>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let function = q.function.as_deref().map(name).transpose()?;
    let state = q
        .state
        .as_deref()
        .map(str::parse::<EventState>)
        .transpose()
        .map_err(bad)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let events = p.events(function.as_ref(), state, limit).await?;
    let (waiting, running) = p.event_depth().await?;
    Ok(Json(json!({
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
        "waiting": waiting,
        "running": running,
    }))
    .into_response())
}

/// `GET /v1/events/{id}`: one event's state, result or error.
pub async fn get(State(p): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(event_json(&p.event(&id).await?)).into_response())
}

// ----- event invoke configuration ---------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualifierQuery {
    qualifier: Option<String>,
}

pub(crate) fn destination(raw: Option<&str>) -> Result<Option<Destination>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| Destination::parse(s).map_err(|e| bad(e.to_string())))
        .transpose()
}

fn config_json(
    p: &AppState,
    fname: &FunctionName,
    q: &str,
    c: &EventInvokeConfig,
    at: i64,
) -> Value {
    let arn = |d: &Option<Destination>| d.as_ref().map(|d| d.arn(p.region(), ACCOUNT_ID));
    json!({
        "function": fname.as_str(),
        "qualifier": q,
        "maximumRetryAttempts": c.max_retry_attempts,
        "maximumEventAgeInSeconds": c.max_event_age_s,
        "onSuccess": arn(&c.on_success),
        "onFailure": arn(&c.on_failure),
        "lastModified": rfc3339_ms(at),
    })
}

/// `PUT /v1/functions/{name}/event-config[?qualifier=]`: set retries, maximum age and
/// destinations (absent fields take Lambda's defaults).
pub async fn put_config(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
    JsonBody(b): JsonBody<PutEventConfig>,
) -> Result<Response, ApiError> {
    let sel = selector(q.qualifier.as_deref())?;
    let defaults = EventInvokeConfig::default();
    let config = EventInvokeConfig {
        max_retry_attempts: b
            .maximum_retry_attempts
            .map(EventInvokeConfig::retry_attempts)
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or(defaults.max_retry_attempts),
        max_event_age_s: b
            .maximum_event_age_in_seconds
            .map(EventInvokeConfig::event_age)
            .transpose()
            .map_err(|e| bad(e.to_string()))?
            .unwrap_or(defaults.max_event_age_s),
        on_success: destination(b.on_success.as_deref())?,
        on_failure: destination(b.on_failure.as_deref())?,
    };
    let (c, at) = p.put_event_config(&fname, &sel, config).await?;
    Ok(Json(config_json(&p, &fname, &sel.to_string(), &c, at)).into_response())
}

/// `GET /v1/functions/{name}/event-config[?qualifier=]`.
pub async fn get_config(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let sel = selector(q.qualifier.as_deref())?;
    let (c, at) = p.event_config(&fname, &sel)?;
    Ok(Json(config_json(&p, &fname, &sel.to_string(), &c, at)).into_response())
}

/// `DELETE /v1/functions/{name}/event-config[?qualifier=]`.
pub async fn delete_config(
    State(p): State<AppState>,
    FunctionPath(fname): FunctionPath,
    Query(q): Query<QualifierQuery>,
) -> Result<Response, ApiError> {
    let sel = selector(q.qualifier.as_deref())?;
    p.delete_event_config(&fname, &sel).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- schedules --------------------------------------------------------------------------

fn schedule_json(s: &ScheduleRow) -> Value {
    json!({
        "name": s.name,
        "function": s.function,
        "qualifier": s.qualifier,
        "expression": s.expression,
        "input": s.input,
        "description": s.description,
        "enabled": s.enabled,
        "createdAt": rfc3339_ms(s.created_ms),
        "lastFiredAt": s.last_fire_ms.map(rfc3339_ms),
        "nextFireAt": s.next_fire_ms.filter(|_| s.enabled).map(rfc3339_ms),
    })
}

fn schedule_spec(b: PutSchedule) -> Result<ScheduleSpec, ApiError> {
    let (function, qualifier) = target(&b.function)?;
    let input = match b.input {
        None | Some(Value::Null) => None,
        // A string is taken as JSON text (EventBridge's "Constant (JSON text)").
        Some(Value::String(s)) => Some(s),
        Some(v) => Some(v.to_string()),
    };
    Ok(ScheduleSpec {
        function,
        qualifier,
        expression: b.expression,
        input,
        description: b.description.unwrap_or_default(),
        enabled: b.enabled.unwrap_or(true),
    })
}

/// `POST /v1/schedules`: create a schedule (409 if the name is taken).
pub async fn create_schedule(
    State(p): State<AppState>,
    JsonBody(mut b): JsonBody<PutSchedule>,
) -> Result<Response, ApiError> {
    let raw = b
        .name
        .take()
        .ok_or_else(|| bad("a schedule needs a name"))?;
    let sname = schedule_name(&raw)?;
    let row = p.put_schedule(&sname, schedule_spec(b)?, false).await?;
    Ok((StatusCode::CREATED, Json(schedule_json(&row))).into_response())
}

/// `PUT /v1/schedules/{name}`: create or replace a schedule.
pub async fn put_schedule(
    State(p): State<AppState>,
    SchedulePath(sname): SchedulePath,
    JsonBody(b): JsonBody<PutSchedule>,
) -> Result<Response, ApiError> {
    if b.name.as_deref().is_some_and(|n| n != sname.as_str()) {
        return Err(bad("the name in the body differs from the one in the path"));
    }
    let row = p.put_schedule(&sname, schedule_spec(b)?, true).await?;
    Ok(Json(schedule_json(&row)).into_response())
}

/// `PATCH /v1/schedules/{name}` with `{"enabled": false}`: disable or enable.
pub async fn patch_schedule(
    State(p): State<AppState>,
    SchedulePath(sname): SchedulePath,
    JsonBody(b): JsonBody<PatchSchedule>,
) -> Result<Response, ApiError> {
    let row = p.enable_schedule(&sname, b.enabled).await?;
    Ok(Json(schedule_json(&row)).into_response())
}

/// `GET /v1/schedules`.
pub async fn list_schedules(State(p): State<AppState>) -> Result<Response, ApiError> {
    let rows = p.schedules().await?;
    Ok(
        Json(json!({ "schedules": rows.iter().map(schedule_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// `GET /v1/schedules/{name}`.
pub async fn get_schedule(
    State(p): State<AppState>,
    SchedulePath(sname): SchedulePath,
) -> Result<Response, ApiError> {
    Ok(Json(schedule_json(&p.schedule(&sname).await?)).into_response())
}

/// `DELETE /v1/schedules/{name}`.
pub async fn delete_schedule(
    State(p): State<AppState>,
    SchedulePath(sname): SchedulePath,
) -> Result<Response, ApiError> {
    p.delete_schedule(&sname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- queues -----------------------------------------------------------------------------

fn queue_json(q: &QueueRow, counts: QueueCounts, trigger: Option<&TriggerRow>) -> Value {
    json!({
        "name": q.name,
        "createdAt": rfc3339_ms(q.created_ms),
        "visibilityTimeout": q.visibility_s,
        "deadLetterQueue": q.dead_letter,
        "maxReceiveCount": q.max_receives,
        "messages": counts.visible,
        "messagesInFlight": counts.hidden,
        "trigger": trigger.map(trigger_json),
    })
}

fn trigger_json(t: &TriggerRow) -> Value {
    json!({
        "queue": t.queue,
        "function": t.function,
        "qualifier": t.qualifier,
        "batchSize": t.batch_size,
        "maximumBatchingWindowInSeconds": f64::from(t.window_ms) / 1000.0,
        "enabled": t.enabled,
    })
}

fn message_json(m: &Message) -> Value {
    json!({
        "id": m.id,
        "body": String::from_utf8_lossy(&m.body),
        "attributes": m.attributes,
        "sentAt": rfc3339_ms(m.sent_ms),
        "visibleAt": rfc3339_ms(m.visible_ms),
        "receiveCount": m.receives,
    })
}

/// `POST /v1/queues`: create a queue.
pub async fn create_queue(
    State(p): State<AppState>,
    JsonBody(b): JsonBody<CreateQueue>,
) -> Result<Response, ApiError> {
    let qname = queue_name(&b.name)?;
    let spec = QueueSpec {
        visibility_s: b.visibility_timeout,
        dead_letter: b.dead_letter_queue.as_deref().map(queue_name).transpose()?,
        max_receives: b.max_receive_count,
    };
    let row = p.create_queue(&qname, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(queue_json(&row, QueueCounts::default(), None)),
    )
        .into_response())
}

/// `GET /v1/queues`.
pub async fn list_queues(State(p): State<AppState>) -> Result<Response, ApiError> {
    let triggers = p.triggers().await?;
    let queues: Vec<Value> = p
        .queues()
        .await?
        .iter()
        .map(|(q, c)| queue_json(q, *c, triggers.iter().find(|t| t.queue == q.name)))
        .collect();
    Ok(Json(json!({ "queues": queues })).into_response())
}

/// `GET /v1/queues/{name}`.
pub async fn get_queue(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
) -> Result<Response, ApiError> {
    let (q, c) = p.queue(&qname).await?;
    let trigger = p.trigger(&qname).await.ok();
    Ok(Json(queue_json(&q, c, trigger.as_ref())).into_response())
}

/// `DELETE /v1/queues/{name}`.
pub async fn delete_queue(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
) -> Result<Response, ApiError> {
    p.delete_queue(&qname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/queues/{name}/messages`: send one message (any body that is not
/// `application/json` with a `messages` array is one message, as is), or a batch.
pub async fn send(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = read_limited(&headers, body, MAX_SEND_BODY_BYTES).await?;
    let batch = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
        && serde_json::from_slice::<Value>(&bytes)
            .ok()
            .is_some_and(|v| v.get("messages").is_some());
    let bodies = if batch {
        let b: SendMessages = parse_json(&bytes)?;
        b.messages
            .into_iter()
            .map(|m| {
                let text = match m.body {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (
                    bytes::Bytes::from(text),
                    m.attributes.unwrap_or_else(|| json!({})),
                )
            })
            .collect()
    } else {
        vec![(bytes, json!({}))]
    };
    let ids = p.send_messages(&qname, bodies).await?;
    Ok((StatusCode::CREATED, Json(json!({ "messageIds": ids }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    limit: Option<usize>,
}

/// `GET /v1/queues/{name}/messages?limit=`: look at messages without receiving them.
pub async fn list_messages(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    Query(q): Query<LimitQuery>,
) -> Result<Response, ApiError> {
    let messages = p
        .messages(&qname, q.limit.unwrap_or(100).clamp(1, 10_000))
        .await?;
    Ok(
        Json(json!({ "messages": messages.iter().map(message_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// `DELETE /v1/queues/{name}/messages`: purge.
pub async fn purge(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
) -> Result<Response, ApiError> {
    let n = p.purge_queue(&qname).await?;
    Ok(Json(json!({ "purged": n })).into_response())
}

/// `GET /v1/queues/{name}/messages/{id}`.
pub async fn get_message(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let m = p.message(&qname, &id).await?;
    Ok(Json(message_json(&m)).into_response())
}

/// `DELETE /v1/queues/{name}/messages/{id}`.
pub async fn delete_message(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    p.delete_message(&qname, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/queues/{name}/redrive`: turn dead letters back into events of their function.
pub async fn redrive(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    JsonOrEmpty(b): JsonOrEmpty<Redrive>,
) -> Result<Response, ApiError> {
    let out = p.redrive(&qname, b.message_ids).await?;
    Ok(Json(json!({
        "redriven": out.redriven.iter().map(|(m, e)| json!({"messageId": m, "eventId": e})).collect::<Vec<_>>(),
        "skipped": out.skipped.iter().map(|(m, why)| json!({"messageId": m, "reason": why})).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `PUT /v1/queues/{name}/trigger`: a function consumes the queue.
pub async fn put_trigger(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
    JsonBody(b): JsonBody<PutTrigger>,
) -> Result<Response, ApiError> {
    let (function, qualifier) = target(&b.function)?;
    let window = b.maximum_batching_window_in_seconds.unwrap_or(0.0);
    if !(0.0..=300.0).contains(&window) {
        return Err(bad("maximumBatchingWindowInSeconds must be 0 to 300"));
    }
    let spec = TriggerSpec {
        function,
        qualifier,
        batch_size: b.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
        window_ms: (window * 1000.0) as u32,
        enabled: b.enabled.unwrap_or(true),
    };
    let row = p.put_trigger(&qname, spec).await?;
    Ok(Json(trigger_json(&row)).into_response())
}

/// `GET /v1/queues/{name}/trigger`.
pub async fn get_trigger(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
) -> Result<Response, ApiError> {
    Ok(Json(trigger_json(&p.trigger(&qname).await?)).into_response())
}

/// `DELETE /v1/queues/{name}/trigger`.
pub async fn delete_trigger(
    State(p): State<AppState>,
    QueuePath(qname): QueuePath,
) -> Result<Response, ApiError> {
    p.delete_trigger(&qname).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
