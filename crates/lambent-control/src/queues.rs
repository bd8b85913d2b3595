//! lambent's named queues: producers send messages over HTTP, a trigger hands them to a function
//! in batches (Lambda's SQS event shape, with `batchItemFailures` honoured), and a queue is also
//! where failed asynchronous events land as dead letters, to be inspected, redriven or purged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lambent_core::event::{
    DEFAULT_VISIBILITY_S, MAX_BATCH_SIZE, MAX_BATCH_WINDOW_S, MAX_MESSAGE_BYTES, MAX_VISIBILITY_S,
};
use lambent_core::limits::{ACCOUNT_ID, MAX_SYNC_PAYLOAD_BYTES};
use lambent_core::{FunctionName, InvokeError, QueueName, Selector};
use lambent_store::events::{
    Message, NewEvent, NewMessage, QueueCounts, QueueRow, Receive, Settlement, TriggerRow,
};
use serde_json::{Value, json};

use crate::events::queue_not_found;
use crate::platform::{ControlError, InvokeOptions, Platform, new_id};

/// Most messages one send may carry.
pub const MAX_SEND_BATCH: usize = 1000;

/// What a caller sets on a new queue.
#[derive(Debug, Clone, Default)]
pub struct QueueSpec {
    /// How long a received message stays hidden (default 30 s).
    pub visibility_s: Option<u32>,
    /// Where messages go after `max_receives` receives.
    pub dead_letter: Option<QueueName>,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receives: Option<u32>,
}

/// What a caller sets on a trigger.
#[derive(Debug, Clone)]
pub struct TriggerSpec {
    /// The function.
    pub function: FunctionName,
    /// Its version or alias.
    pub qualifier: Selector,
    /// Most messages per call (1-10000, default 10).
    pub batch_size: u32,
    /// Longest wait to fill a batch, in ms (0-300 s).
    pub window_ms: u32,
    /// Whether it runs.
    pub enabled: bool,
}

/// The most messages one redrive moves; a bigger queue takes several.
pub const MAX_REDRIVE: usize = 10_000;

/// What a redrive did.
#[derive(Debug, Clone, Default)]
pub struct Redriven {
    /// Messages turned back into events: (message id, new event id).
    pub redriven: Vec<(String, String)>,
    /// Messages left in place, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// The function and payload a dead letter (an invocation record) came from.
fn record_source(body: &[u8]) -> Result<(String, String, Vec<u8>), String> {
    let record: Value = serde_json::from_slice(body)
        .map_err(|_| "not an invocation record (not JSON)".to_owned())?;
    let arn = record["requestContext"]["functionArn"]
        .as_str()
        .ok_or("not an invocation record (no requestContext.functionArn)")?;
    let parts: Vec<&str> = arn.split(':').collect();
    let (function, qualifier) = match parts.as_slice() {
        ["arn", _, "lambda", _, _, "function", f] => (*f, "$LATEST"),
        ["arn", _, "lambda", _, _, "function", f, q] => (*f, *q),
        _ => return Err(format!("function ARN {arn} is not understood")),
    };
    let payload = if let Some(b64) = record["lambent"]["payloadBase64"].as_str() {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("payloadBase64 is not base64: {e}"))?
    } else {
        match &record["requestPayload"] {
            Value::Null => return Err("the record has no requestPayload".into()),
            v => v.to_string().into_bytes(),
        }
    };
    Ok((function.to_owned(), qualifier.to_owned(), payload))
}

impl Platform {
    /// Creates a queue.
    pub async fn create_queue(
        &self,
        name: &QueueName,
        spec: QueueSpec,
    ) -> Result<QueueRow, ControlError> {
        let visibility_s = spec.visibility_s.unwrap_or(DEFAULT_VISIBILITY_S);
        if visibility_s > MAX_VISIBILITY_S {
            return Err(ControlError::Invalid(format!(
                "visibilityTimeout must be 0 to {MAX_VISIBILITY_S} seconds"
            )));
        }
        match (&spec.dead_letter, spec.max_receives) {
            (Some(dlq), Some(n)) if n >= 1 => {
                if dlq == name {
                    return Err(ControlError::Invalid(
                        "a queue cannot be its own dead-letter queue".into(),
                    ));
                }
                let exists = self.events.store.queue(dlq.as_str()).await?.is_some();
                if !exists {
                    return Err(ControlError::Invalid(format!(
                        "dead-letter queue {dlq} does not exist; create it first (lambent queue create {dlq})"
                    )));
                }
            }
            (None, None) => {}
            _ => {
                return Err(ControlError::Invalid(
                    "give deadLetterQueue and maxReceiveCount (at least 1) together".into(),
                ));
            }
        }
        let row = QueueRow {
            name: name.to_string(),
            created_ms: self.clock().now_ms(),
            visibility_s,
            dead_letter: spec.dead_letter.map(|q| q.to_string()),
            max_receives: spec.max_receives,
        };
        self.events.store.create_queue(row.clone()).await?;
        Ok(row)
    }

    /// One queue and its counts.
    pub async fn queue(&self, name: &QueueName) -> Result<(QueueRow, QueueCounts), ControlError> {
        let now = self.clock().now_ms();
        let store = &self.events.store;
        let q = store
            .queue(name.as_str())
            .await?
            .ok_or_else(|| queue_not_found(name.as_str()))?;
        let counts = store.queue_counts(name.as_str(), now).await?;
        Ok((q, counts))
    }

    /// Every queue and its counts.
    pub async fn queues(&self) -> Result<Vec<(QueueRow, QueueCounts)>, ControlError> {
        let now = self.clock().now_ms();
        let store = &self.events.store;
        let mut out = Vec::new();
        for q in store.queues().await? {
            let counts = store.queue_counts(&q.name, now).await?;
            out.push((q, counts));
        }
        Ok(out)
    }

    /// Deletes a queue with its messages and trigger. A queue still named as a destination or
    /// dead-letter queue cannot be deleted.
    pub async fn delete_queue(&self, name: &QueueName) -> Result<(), ControlError> {
        self.queue(name).await?;
        let mut used_by = self
            .queues()
            .await?
            .into_iter()
            .find(|(q, _)| q.dead_letter.as_deref() == Some(name.as_str()))
            .map(|(q, _)| format!("queue {}", q.name));
        if used_by.is_none() {
            let d = format!("queue:{name}");
            used_by = self
                .events
                .store
                .configs()
                .await
                .ok()
                .into_iter()
                .flatten()
                .find(|c| {
                    c.on_failure.as_deref() == Some(d.as_str())
                        || c.on_success.as_deref() == Some(d.as_str())
                })
                .map(|c| format!("function {}:{}", c.function, c.qualifier));
        }
        if let Some(user) = used_by {
            return Err(ControlError::Conflict(format!(
                "queue {name} is a destination of {user}; change that first"
            )));
        }
        self.events.store.delete_queue(name.as_str()).await?;
        self.events.triggers_changed.notify_one();
        Ok(())
    }

    /// Sends messages; returns their ids.
    pub async fn send_messages(
        &self,
        name: &QueueName,
        bodies: Vec<(Bytes, Value)>,
    ) -> Result<Vec<String>, ControlError> {
        if bodies.is_empty() || bodies.len() > MAX_SEND_BATCH {
            return Err(ControlError::Invalid(format!(
                "send 1 to {MAX_SEND_BATCH} messages at a time"
            )));
        }
        let mut messages = Vec::with_capacity(bodies.len());
        for (body, attributes) in bodies {
            if body.len() > MAX_MESSAGE_BYTES {
                return Err(InvokeError::PayloadTooLarge {
                    limit: MAX_MESSAGE_BYTES,
                }
                .into());
            }
            if std::str::from_utf8(&body).is_err() {
                return Err(ControlError::Invalid(
                    "a message body must be UTF-8 text (encode binary data, e.g. as base64)".into(),
                ));
            }
            if !attributes.is_object() {
                return Err(ControlError::Invalid(
                    "message attributes must be a JSON object".into(),
                ));
            }
            messages.push(NewMessage {
                id: new_id(),
                body: body.to_vec(),
                attributes,
            });
        }
        let ids = messages.iter().map(|m| m.id.clone()).collect();
        let now = self.clock().now_ms();
        self.events.store.send(name.as_str(), messages, now).await?;
        self.events.queue_wake(name.as_str()).notify_one();
        Ok(ids)
    }

    /// Messages of a queue, oldest first, without receiving them.
    pub async fn messages(
        &self,
        name: &QueueName,
        limit: usize,
    ) -> Result<Vec<Message>, ControlError> {
        self.queue(name).await?;
        Ok(self.events.store.peek(name.as_str(), limit).await?)
    }

    /// One message.
    pub async fn message(&self, name: &QueueName, id: &str) -> Result<Message, ControlError> {
        self.queue(name).await?;
        self.events
            .store
            .message(name.as_str(), id)
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("queue {name} has no message {id}")))
    }

    /// Deletes one message.
    pub async fn delete_message(&self, name: &QueueName, id: &str) -> Result<(), ControlError> {
        let deleted = self
            .events
            .store
            .delete_messages(name.as_str(), vec![id.to_owned()])
            .await?;
        if deleted == 0 {
            return Err(ControlError::NotFound(format!(
                "queue {name} has no message {id}"
            )));
        }
        Ok(())
    }

    /// Deletes every message of a queue; how many.
    pub async fn purge_queue(&self, name: &QueueName) -> Result<usize, ControlError> {
        self.queue(name).await?;
        Ok(self.events.store.purge(name.as_str()).await?)
    }

    /// Turns dead letters (invocation records) back into events of the function they came from,
    /// and removes them from the queue, in one transaction. `ids` limits it to some messages.
    pub async fn redrive(
        &self,
        name: &QueueName,
        ids: Option<Vec<String>>,
    ) -> Result<Redriven, ControlError> {
        self.queue(name).await?;
        let candidates: Vec<Message> = match ids {
            None => self.messages(name, MAX_REDRIVE).await?,
            Some(mut ids) => {
                if ids.len() > MAX_REDRIVE {
                    return Err(ControlError::Invalid(format!(
                        "a redrive names at most {MAX_REDRIVE} messages; got {}",
                        ids.len()
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                ids.retain(|id| seen.insert(id.clone()));
                let mut found = Vec::with_capacity(ids.len());
                for id in &ids {
                    found.push(self.message(name, id).await?);
                }
                found
            }
        };
        let now = self.clock().now_ms();
        let mut skipped = Vec::new();
        let mut events = Vec::new();
        for m in candidates {
            let source = record_source(&m.body).and_then(|(function, qualifier, payload)| {
                let target = FunctionName::new(&function)
                    .map_err(|e| e.to_string())
                    .and_then(|f| {
                        let s: Selector = qualifier.parse().map_err(|e| format!("{e}"))?;
                        Ok((f, s))
                    });
                match target.and_then(|(f, s)| {
                    let q = self.main_version(&f, &s).map_err(|e| e.to_string())?;
                    self.get(&f, q).map_err(|e| e.to_string())
                }) {
                    Ok(_) => Ok((function, qualifier, payload)),
                    Err(e) => Err(format!("cannot run {function}:{qualifier} again: {e}")),
                }
            });
            match source {
                Ok((function, qualifier, payload)) => events.push((
                    m.id,
                    NewEvent {
                        id: new_id(),
                        function,
                        qualifier,
                        payload,
                        headers: vec![("content-type".into(), "application/json".into())],
                        idempotency_key: None,
                        source: format!("redrive:{name}"),
                        accepted_ms: now,
                    },
                )),
                Err(why) => skipped.push((m.id, why)),
            }
        }
        // The store enqueues only what this call deleted, so two redrives racing over the same
        // message enqueue it once.
        let redriven = self.events.store.redrive(name.as_str(), events).await?;
        self.events.dispatch.notify_one();
        Ok(Redriven { redriven, skipped })
    }

    // ----- triggers -----------------------------------------------------------------------

    /// Attaches (or replaces) the function that consumes a queue.
    pub async fn put_trigger(
        &self,
        name: &QueueName,
        spec: TriggerSpec,
    ) -> Result<TriggerRow, ControlError> {
        self.queue(name).await?;
        if spec.batch_size == 0 || spec.batch_size > MAX_BATCH_SIZE {
            return Err(ControlError::Invalid(format!(
                "batchSize must be 1 to {MAX_BATCH_SIZE}"
            )));
        }
        if spec.window_ms > MAX_BATCH_WINDOW_S * 1000 {
            return Err(ControlError::Invalid(format!(
                "maximumBatchingWindowInSeconds must be 0 to {MAX_BATCH_WINDOW_S}"
            )));
        }
        let q = self.route(&spec.function, &spec.qualifier)?;
        self.get(&spec.function, q)?;
        let row = TriggerRow {
            queue: name.to_string(),
            function: spec.function.to_string(),
            qualifier: spec.qualifier.to_string(),
            batch_size: spec.batch_size,
            window_ms: spec.window_ms,
            enabled: spec.enabled,
            created_ms: self.clock().now_ms(),
        };
        self.events.store.put_trigger(row.clone()).await?;
        self.events.triggers_changed.notify_one();
        Ok(row)
    }

    /// The trigger of a queue.
    pub async fn trigger(&self, name: &QueueName) -> Result<TriggerRow, ControlError> {
        self.triggers()
            .await?
            .into_iter()
            .find(|t| t.queue == name.as_str())
            .ok_or_else(|| ControlError::NotFound(format!("queue {name} has no trigger")))
    }

    /// Every trigger.
    pub async fn triggers(&self) -> Result<Vec<TriggerRow>, ControlError> {
        Ok(self.events.store.triggers().await?)
    }

    /// Detaches a queue's function.
    pub async fn delete_trigger(&self, name: &QueueName) -> Result<(), ControlError> {
        let existed = self.events.store.delete_trigger(name.as_str()).await?;
        if !existed {
            return Err(ControlError::NotFound(format!(
                "queue {name} has no trigger"
            )));
        }
        self.events.triggers_changed.notify_one();
        Ok(())
    }

    /// Keeps one consumer task per enabled trigger.
    pub(crate) async fn trigger_supervisor(self: Arc<Self>) {
        let mut running: HashMap<String, (TriggerRow, tokio::task::JoinHandle<()>)> =
            HashMap::new();
        loop {
            match self.triggers().await {
                Ok(rows) => {
                    let wanted: HashMap<String, TriggerRow> = rows
                        .into_iter()
                        .filter(|t| t.enabled)
                        .map(|t| (t.queue.clone(), t))
                        .collect();
                    running.retain(|queue, (row, task)| {
                        let keep = wanted.get(queue) == Some(row) && !task.is_finished();
                        if !keep {
                            task.abort();
                        }
                        keep
                    });
                    for (queue, row) in wanted {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            running.entry(queue)
                        {
                            let p = self.clone();
                            let r = row.clone();
                            let task = tokio::spawn(async move { p.consume(r).await });
                            slot.insert((row, task));
                        }
                    }
                }
                Err(e) => tracing::error!("cannot read triggers: {e}"),
            }
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.events.triggers_changed.notified(),
            )
            .await;
        }
    }

    /// Receives up to `limit` messages that fit in one synchronous payload, hidden for
    /// `hidden_ms`.
    async fn receive(&self, trigger: &TriggerRow, limit: usize, hidden_ms: i64) -> Vec<Message> {
        let now = self.clock().now_ms();
        let receive = Receive {
            now_ms: now,
            limit,
            max_bytes: BATCH_BODY_BYTES,
            hidden_until_ms: now + hidden_ms,
        };
        match self.events.store.receive(&trigger.queue, receive).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(queue = %trigger.queue, "cannot receive: {e}");
                Vec::new()
            }
        }
    }

    async fn consume(self: Arc<Self>, trigger: TriggerRow) {
        let wake = self.events.queue_wake(&trigger.queue);
        let batch_size = trigger.batch_size as usize;
        let window_ms = i64::from(trigger.window_ms);
        let mut failures = 0u32;
        loop {
            let (visibility_ms, timeout_ms) = self.consumer_timing(&trigger).await;
            // Hidden long enough to outlast the call (and the batching window before it), so
            // no message is handed out twice while its batch is still running.
            let hidden_ms = visibility_ms.max(timeout_ms + 5_000) + window_ms;
            let mut batch = self.receive(&trigger, batch_size, hidden_ms).await;
            if batch.is_empty() {
                let next = self
                    .events
                    .store
                    .next_visible(&trigger.queue)
                    .await
                    .ok()
                    .flatten();
                let ms = next.map_or(1000, |t| (t - self.clock().now_ms()).clamp(0, 1000));
                let _ = tokio::time::timeout(
                    Duration::from_millis(u64::try_from(ms).unwrap_or(1000)),
                    wake.notified(),
                )
                .await;
                continue;
            }
            if batch.len() < batch_size && window_ms > 0 {
                tokio::time::sleep(Duration::from_millis(u64::from(trigger.window_ms))).await;
                let more = self
                    .receive(&trigger, batch_size - batch.len(), hidden_ms - window_ms)
                    .await;
                batch.extend(more);
            }
            if self.deliver_batch(&trigger, batch, visibility_ms).await {
                failures = 0;
            } else {
                // The whole batch failed: back off (1 s doubling to 60 s) so a broken function
                // behind a queue with a short visibility timeout does not spin.
                failures = failures.saturating_add(1);
                let ms = 1000u64 << failures.min(6).saturating_sub(1);
                tokio::time::sleep(Duration::from_millis(ms.min(60_000))).await;
            }
        }
    }

    /// The queue's visibility timeout and the function's timeout, in ms.
    async fn consumer_timing(&self, trigger: &TriggerRow) -> (i64, i64) {
        let visibility = self
            .events
            .store
            .queue(&trigger.queue)
            .await
            .ok()
            .flatten()
            .map_or(i64::from(DEFAULT_VISIBILITY_S), |q| {
                i64::from(q.visibility_s)
            })
            * 1000;
        let timeout = FunctionName::new(&trigger.function)
            .ok()
            .and_then(|f| {
                let s: Selector = trigger.qualifier.parse().ok()?;
                let q = self.main_version(&f, &s).ok()?;
                self.get(&f, q).ok()
            })
            .map_or(3, |v| i64::from(v.config.timeout_s))
            * 1000;
        (visibility, timeout)
    }

    /// Runs one batch and acknowledges what succeeded; false when the whole batch failed.
    async fn deliver_batch(
        &self,
        trigger: &TriggerRow,
        mut batch: Vec<Message>,
        visibility_ms: i64,
    ) -> bool {
        let arn = format!("arn:aws:sqs:{}:{ACCOUNT_ID}:{}", self.region, trigger.queue);
        let mut records: Vec<Value> = Vec::with_capacity(batch.len());
        let mut size = 16usize;
        let mut sent = 0;
        for m in &batch {
            let record = json!({
                "messageId": m.id,
                "receiptHandle": m.id,
                "body": String::from_utf8_lossy(&m.body),
                "attributes": {
                    "ApproximateReceiveCount": m.receives.to_string(),
                    "SentTimestamp": m.sent_ms.to_string(),
                    "SenderId": "lambent",
                    "ApproximateFirstReceiveTimestamp": m.sent_ms.to_string(),
                },
                "messageAttributes": m.attributes,
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": self.region,
            });
            // Escaping can grow a body; stop before the batch passes the synchronous payload
            // limit and give the rest back for the next batch.
            size += record.to_string().len() + 1;
            if sent > 0 && size > MAX_SYNC_PAYLOAD_BYTES {
                break;
            }
            records.push(record);
            sent += 1;
        }
        let rest: Vec<String> = batch.split_off(sent).into_iter().map(|m| m.id).collect();
        let payload = json!({ "Records": records }).to_string();
        let all: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
        let failed = match self.invoke_batch(trigger, payload).await {
            Ok(body) => partial_failures(&body, &all),
            Err(why) => {
                tracing::warn!(queue = %trigger.queue, function = %trigger.function, "batch failed: {why}");
                all.clone()
            }
        };
        let whole_failed = !all.is_empty() && failed.len() == all.len();
        let done: Vec<String> = all.into_iter().filter(|id| !failed.contains(id)).collect();
        let now = self.clock().now_ms();
        let settlement = Settlement {
            done,
            unsent: rest,
            failed,
            now_ms: now,
            visible_ms: now + visibility_ms,
        };
        if let Err(e) = self.events.store.settle(&trigger.queue, settlement).await {
            // The messages stay hidden until their visibility runs out and then come back:
            // nothing is lost, some may run twice.
            tracing::error!(queue = %trigger.queue, "cannot acknowledge a batch: {e}");
        }
        !whole_failed
    }

    /// One synchronous call with a batch; the response body, or why it failed.
    async fn invoke_batch(&self, trigger: &TriggerRow, payload: String) -> Result<Vec<u8>, String> {
        let name = FunctionName::new(&trigger.function).map_err(|e| e.to_string())?;
        let selector: Selector = trigger
            .qualifier
            .parse()
            .map_err(|e: lambent_core::NameError| e.to_string())?;
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri("/")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(payload)))
            .map_err(|e| e.to_string())?;
        let options = InvokeOptions {
            script_name: format!("/fn/{name}"),
            remote_addr: None,
            request_id: None,
        };
        let served = self
            .invoke(&name, &selector, request, options)
            .await
            .map_err(|f| f.error.to_string())?;
        let status = served.response.status();
        let error = served.function_error.clone();
        let body = served
            .response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if let Some(e) = error {
            return Err(format!("function error {e}"));
        }
        if status.is_server_error() {
            return Err(format!("the function answered {status}"));
        }
        Ok(body.to_vec())
    }
}

/// The raw message bytes one batch may carry: the synchronous payload limit with room for the
/// records' envelopes.
const BATCH_BODY_BYTES: usize = MAX_SYNC_PAYLOAD_BYTES - 512 * 1024;

/// The messages a successful call reported as failed (Lambda's `batchItemFailures`). An
/// identifier that is empty or not in the batch fails the whole batch, as on Lambda; so does a
/// `batchItemFailures` that is not a list.
fn partial_failures(body: &[u8], batch: &[String]) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let items = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => return batch.to_vec(),
    };
    let mut failed = Vec::new();
    for item in items {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.iter().any(|b| b == id) => failed.push(id.to_owned()),
            _ => return batch.to_vec(),
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_item_failures_are_read_like_lambda() {
        let batch = vec!["a".to_owned(), "b".to_owned()];
        assert!(partial_failures(b"null", &batch).is_empty());
        assert!(partial_failures(b"{\"batchItemFailures\": []}", &batch).is_empty());
        assert_eq!(
            partial_failures(
                b"{\"batchItemFailures\": [{\"itemIdentifier\": \"b\"}]}",
                &batch
            ),
            ["b"]
        );
        assert_eq!(
            partial_failures(
                b"{\"batchItemFailures\": [{\"itemIdentifier\": \"zz\"}]}",
                &batch
            ),
            batch
        );
        assert_eq!(
            partial_failures(b"{\"batchItemFailures\": [{}]}", &batch),
            batch
        );
        assert_eq!(
            partial_failures(b"{\"batchItemFailures\": \"b\"}", &batch),
            batch
        );
    }

    #[test]
    fn dead_letters_lead_back_to_their_function_and_payload() {
        let record = json!({
            "requestContext": {"functionArn": "arn:aws:lambda:us-east-1:0:function:f:prod"},
            "requestPayload": {"n": 1}
        });
        let (f, q, p) = record_source(record.to_string().as_bytes()).expect("record");
        assert_eq!((f.as_str(), q.as_str()), ("f", "prod"));
        assert_eq!(p, b"{\"n\":1}");
        assert!(record_source(b"hello").is_err());
        assert!(record_source(b"{}").is_err());
    }
}
