//! The client commands of asynchronous invocation: `invoke --async`, `events`, `event-config`,
//! `schedule`/`schedules` and `queue`/`queues`. Like the rest of the client, each is one call to
//! the HTTP API printed as a table or a line (or the server's JSON with `--json`).

use anyhow::bail;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use lambent_api::contract::{
    CreateQueue, PatchSchedule, PutEventConfig, PutSchedule, PutTrigger, Redrive,
};
use lambent_core::{QueueName, ScheduleName, Selector, Target};
use serde_json::{Value, json};

use crate::client::{Api, print_json, read_file, text};
use crate::{QueueCommand, ScheduleCommand};

/// Request header carrying the idempotency key of an asynchronous invocation.
const HEADER_IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Characters of an error or a message body shown in a table cell.
const SHORT_CHARS: usize = 60;

/// `s` on one line, cut to `max` characters with an ellipsis.
fn shorten(s: &str, max: usize) -> String {
    let one_line = s.replace(['\r', '\n', '\t'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `function` or `function:qualifier` (the qualifier left out when it is $LATEST).
fn function_ref(v: &Value) -> String {
    let f = text(v, "function");
    match text(v, "qualifier").as_str() {
        "" | "$LATEST" => f,
        q => format!("{f}:{q}"),
    }
}

/// A function target as it goes into a path: `name`, or `name:qualifier` unless it is $LATEST.
fn target_path(raw: &str) -> anyhow::Result<String> {
    let target: Target = raw.parse()?;
    Ok(if target.qualifier == Selector::default() {
        target.name.to_string()
    } else {
        format!("{}:{}", target.name, target.qualifier)
    })
}

fn queue_name(raw: &str) -> anyhow::Result<QueueName> {
    Ok(QueueName::new(raw)?)
}

fn schedule_name(raw: &str) -> anyhow::Result<ScheduleName> {
    Ok(ScheduleName::new(raw)?)
}

/// An event or message id, checked before it goes into a path.
fn id_segment<'a>(what: &str, id: &'a str) -> anyhow::Result<&'a str> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{what} id {id:?} is invalid: ids are letters, digits, '-' and '_'");
    }
    Ok(id)
}

fn detail(rows: &[(&str, String)]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    for (k, v) in rows {
        t.add_row([(*k).to_owned(), v.clone()]);
    }
    t
}

/// `lambent invoke NAME[:Q] --async`.
pub async fn invoke_async(
    api: &Api,
    json: bool,
    target: &str,
    body: Vec<u8>,
    idempotency_key: Option<String>,
) -> anyhow::Result<()> {
    let path = target_path(target)?;
    let mut req = api
        .http
        .post(api.url(&format!("/v1/functions/{path}/events")))
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = &idempotency_key {
        req = req.header(HEADER_IDEMPOTENCY_KEY, key);
    }
    let v = api.json(req).await?;
    if json {
        return print_json(&v);
    }
    let id = text(&v, "eventId");
    if v.get("duplicate").and_then(Value::as_bool) == Some(true) {
        println!(
            "duplicate: event {id} was already accepted with this idempotency key; it is not run again"
        );
    } else {
        println!("accepted event {id}");
    }
    Ok(())
}

/// `lambent events [ID]`.
pub async fn events(
    api: &Api,
    json: bool,
    id: Option<String>,
    function: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
) -> anyhow::Result<()> {
    if let Some(id) = id {
        let id = id_segment("event", &id)?;
        let e = api
            .json(api.http.get(api.url(&format!("/v1/events/{id}"))))
            .await?;
        if json {
            return print_json(&e);
        }
        println!(
            "{}",
            detail(&[
                ("id", text(&e, "id")),
                ("function", function_ref(&e)),
                ("state", text(&e, "state")),
                ("attempts", text(&e, "attempts")),
                ("throttles", text(&e, "throttles")),
                ("source", text(&e, "source")),
                ("idempotency key", text(&e, "idempotencyKey")),
                ("accepted", text(&e, "acceptedAt")),
                ("updated", text(&e, "updatedAt")),
                ("next attempt", text(&e, "nextAttemptAt")),
                ("condition", text(&e, "condition")),
                ("error", text(&e, "error")),
                ("payload bytes", text(&e, "payloadBytes")),
                ("result", text(&e, "result")),
            ])
        );
        return Ok(());
    }
    let mut req = api.http.get(api.url("/v1/events"));
    if let Some(f) = &function {
        req = req.query(&[("function", f)]);
    }
    if let Some(s) = &state {
        req = req.query(&[("state", s)]);
    }
    if let Some(n) = limit {
        req = req.query(&[("limit", n)]);
    }
    let v = api.json(req).await?;
    if json {
        return print_json(&v);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "ID",
        "FUNCTION",
        "STATE",
        "ATTEMPTS",
        "ACCEPTED",
        "NEXT ATTEMPT / UPDATED",
        "ERROR",
    ]);
    for e in items(&v, "events") {
        let next = match text(e, "nextAttemptAt") {
            n if n.is_empty() => text(e, "updatedAt"),
            n => format!("next {n}"),
        };
        t.add_row([
            text(e, "id"),
            function_ref(e),
            text(e, "state"),
            text(e, "attempts"),
            text(e, "acceptedAt"),
            next,
            shorten(&text(e, "error"), SHORT_CHARS),
        ]);
    }
    println!("{t}");
    println!(
        "{} waiting, {} running",
        text(&v, "waiting"),
        text(&v, "running")
    );
    Ok(())
}

/// The options of `lambent event-config`.
pub struct EventConfigChange {
    pub retries: Option<u32>,
    pub max_age: Option<u32>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub delete: bool,
}

/// `lambent event-config NAME[:Q]`.
pub async fn event_config(
    api: &Api,
    json: bool,
    target: &str,
    change: EventConfigChange,
) -> anyhow::Result<()> {
    let t: Target = target.parse()?;
    let url = api.url(&format!("/v1/functions/{}/event-config", t.name));
    let qualifier = [("qualifier", t.qualifier.to_string())];
    let EventConfigChange {
        retries,
        max_age,
        on_success,
        on_failure,
        delete,
    } = change;
    let v = if delete {
        api.json(api.http.delete(url).query(&qualifier)).await?;
        if json {
            return print_json(&json!({ "deleted": format!("{}:{}", t.name, t.qualifier) }));
        }
        println!(
            "deleted the event invoke configuration of {}:{}",
            t.name, t.qualifier
        );
        return Ok(());
    } else if retries.is_some() || max_age.is_some() || on_success.is_some() || on_failure.is_some()
    {
        let body = PutEventConfig {
            maximum_retry_attempts: retries.map(i64::from),
            maximum_event_age_in_seconds: max_age.map(i64::from),
            on_success,
            on_failure,
        };
        api.json(api.http.put(url).query(&qualifier).json(&body))
            .await?
    } else {
        api.json(api.http.get(url).query(&qualifier)).await?
    };
    if json {
        return print_json(&v);
    }
    println!(
        "{}",
        detail(&[
            ("function", function_ref(&v)),
            ("retries", text(&v, "maximumRetryAttempts")),
            ("max age s", text(&v, "maximumEventAgeInSeconds")),
            ("on success", text(&v, "onSuccess")),
            ("on failure", text(&v, "onFailure")),
            ("last modified", text(&v, "lastModified")),
        ])
    );
    Ok(())
}

fn schedule_table(items: &[Value]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "NAME",
        "FUNCTION",
        "EXPRESSION",
        "ENABLED",
        "LAST FIRED",
        "NEXT FIRE",
    ]);
    for s in items {
        t.add_row([
            text(s, "name"),
            function_ref(s),
            text(s, "expression"),
            text(s, "enabled"),
            text(s, "lastFiredAt"),
            text(s, "nextFireAt"),
        ]);
    }
    t
}

/// `lambent schedules`.
pub async fn schedules(api: &Api, json: bool) -> anyhow::Result<()> {
    let v = api.json(api.http.get(api.url("/v1/schedules"))).await?;
    if json {
        return print_json(&v);
    }
    println!("{}", schedule_table(items(&v, "schedules")));
    Ok(())
}

/// `lambent schedule ...`.
pub async fn schedule(api: &Api, json: bool, command: ScheduleCommand) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::Add {
            name,
            function,
            expression,
            input,
            description,
            disabled,
        } => {
            let name = schedule_name(&name)?;
            let body = PutSchedule {
                name: Some(name.as_str().to_owned()),
                function,
                expression,
                input: input.map(Value::String),
                description,
                enabled: Some(!disabled),
            };
            let s = api
                .json(api.http.post(api.url("/v1/schedules")).json(&body))
                .await?;
            if json {
                return print_json(&s);
            }
            println!("{}", schedule_table(std::slice::from_ref(&s)));
            Ok(())
        }
        ScheduleCommand::Enable { name } => enable_schedule(api, json, &name, true).await,
        ScheduleCommand::Disable { name } => enable_schedule(api, json, &name, false).await,
        ScheduleCommand::Rm { name } => {
            let name = schedule_name(&name)?;
            api.json(api.http.delete(api.url(&format!("/v1/schedules/{name}"))))
                .await?;
            if json {
                return print_json(&json!({ "deleted": name.as_str() }));
            }
            println!("deleted schedule {name}");
            Ok(())
        }
    }
}

async fn enable_schedule(api: &Api, json: bool, name: &str, enabled: bool) -> anyhow::Result<()> {
    let name = schedule_name(name)?;
    let s = api
        .json(
            api.http
                .patch(api.url(&format!("/v1/schedules/{name}")))
                .json(&PatchSchedule { enabled }),
        )
        .await?;
    if json {
        return print_json(&s);
    }
    if enabled {
        println!(
            "enabled schedule {name}; next fire {}",
            text(&s, "nextFireAt")
        );
    } else {
        println!("disabled schedule {name}");
    }
    Ok(())
}

/// What a queue's trigger column shows: `function[:q]`, and whether it is disabled.
fn trigger_cell(q: &Value) -> String {
    match q.get("trigger") {
        Some(t @ Value::Object(_)) => {
            let f = function_ref(t);
            if t.get("enabled").and_then(Value::as_bool) == Some(false) {
                format!("{f} (disabled)")
            } else {
                f
            }
        }
        _ => String::new(),
    }
}

/// `lambent queues`.
pub async fn queues(api: &Api, json: bool) -> anyhow::Result<()> {
    let v = api.json(api.http.get(api.url("/v1/queues"))).await?;
    if json {
        return print_json(&v);
    }
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header([
        "NAME",
        "MESSAGES",
        "IN FLIGHT",
        "VISIBILITY S",
        "DEAD-LETTER QUEUE",
        "TRIGGER FUNCTION",
    ]);
    for q in items(&v, "queues") {
        let dlq = match text(q, "deadLetterQueue") {
            d if d.is_empty() => d,
            d => format!("{d} after {} receives", text(q, "maxReceiveCount")),
        };
        t.add_row([
            text(q, "name"),
            text(q, "messages"),
            text(q, "messagesInFlight"),
            text(q, "visibilityTimeout"),
            dlq,
            trigger_cell(q),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `lambent queue ...`.
pub async fn queue(api: &Api, json: bool, command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::Create {
            name,
            visibility_timeout,
            dead_letter_queue,
            max_receive_count,
        } => {
            let name = queue_name(&name)?;
            let body = CreateQueue {
                name: name.as_str().to_owned(),
                visibility_timeout,
                dead_letter_queue,
                max_receive_count,
            };
            let q = api
                .json(api.http.post(api.url("/v1/queues")).json(&body))
                .await?;
            if json {
                return print_json(&q);
            }
            let dlq = match text(&q, "deadLetterQueue") {
                d if d.is_empty() => String::new(),
                d => format!(
                    ", dead letters go to {d} after {} receives",
                    text(&q, "maxReceiveCount")
                ),
            };
            println!(
                "created queue {name} (visibility timeout {} s{dlq})",
                text(&q, "visibilityTimeout")
            );
            Ok(())
        }
        QueueCommand::Rm { name } => {
            let name = queue_name(&name)?;
            api.json(api.http.delete(api.url(&format!("/v1/queues/{name}"))))
                .await?;
            if json {
                return print_json(&json!({ "deleted": name.as_str() }));
            }
            println!("deleted queue {name}");
            Ok(())
        }
        QueueCommand::Send { name, data, file } => {
            let name = queue_name(&name)?;
            let body = match (data, file) {
                (_, Some(f)) => read_file(&f).await?,
                (Some(d), None) => d.into_bytes(),
                (None, None) => bail!("give the message with --data TEXT or --file FILE"),
            };
            let v = api
                .json(
                    api.http
                        .post(api.url(&format!("/v1/queues/{name}/messages")))
                        .header("content-type", "text/plain")
                        .body(body),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            for id in items(&v, "messageIds") {
                println!("sent message {} to {name}", id.as_str().unwrap_or_default());
            }
            Ok(())
        }
        QueueCommand::Messages { name, limit } => {
            let name = queue_name(&name)?;
            let mut req = api
                .http
                .get(api.url(&format!("/v1/queues/{name}/messages")));
            if let Some(n) = limit {
                req = req.query(&[("limit", n)]);
            }
            let v = api.json(req).await?;
            if json {
                return print_json(&v);
            }
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY)
                .set_header(["ID", "SENT", "RECEIVES", "BODY"]);
            for m in items(&v, "messages") {
                t.add_row([
                    text(m, "id"),
                    text(m, "sentAt"),
                    text(m, "receiveCount"),
                    shorten(&text(m, "body"), SHORT_CHARS),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        QueueCommand::Show { name, id } => {
            let name = queue_name(&name)?;
            let id = id_segment("message", &id)?;
            let m = api
                .json(
                    api.http
                        .get(api.url(&format!("/v1/queues/{name}/messages/{id}"))),
                )
                .await?;
            if json {
                return print_json(&m);
            }
            use std::io::Write;
            let body = text(&m, "body");
            let mut out = std::io::stdout().lock();
            out.write_all(body.as_bytes())?;
            if !body.ends_with('\n') && std::io::IsTerminal::is_terminal(&out) {
                out.write_all(b"\n")?;
            }
            Ok(())
        }
        QueueCommand::Redrive { name, ids } => {
            let name = queue_name(&name)?;
            for id in &ids {
                id_segment("message", id)?;
            }
            let mut req = api
                .http
                .post(api.url(&format!("/v1/queues/{name}/redrive")));
            if !ids.is_empty() {
                req = req.json(&Redrive {
                    message_ids: Some(ids.clone()),
                });
            }
            let v = api.json(req).await?;
            if json {
                return print_json(&v);
            }
            let (redriven, skipped) = (items(&v, "redriven"), items(&v, "skipped"));
            println!(
                "redriven {}, skipped {} (from queue {name})",
                redriven.len(),
                skipped.len()
            );
            for r in redriven {
                println!(
                    "redriven {} as event {}",
                    text(r, "messageId"),
                    text(r, "eventId")
                );
            }
            for s in skipped {
                println!("skipped {}: {}", text(s, "messageId"), text(s, "reason"));
            }
            Ok(())
        }
        QueueCommand::Purge { name } => {
            let name = queue_name(&name)?;
            let v = api
                .json(
                    api.http
                        .delete(api.url(&format!("/v1/queues/{name}/messages"))),
                )
                .await?;
            if json {
                return print_json(&v);
            }
            println!("purged {} messages from {name}", text(&v, "purged"));
            Ok(())
        }
        QueueCommand::Trigger {
            name,
            function,
            batch_size,
            batching_window,
            disabled,
        } => {
            let name = queue_name(&name)?;
            let body = PutTrigger {
                function,
                batch_size,
                maximum_batching_window_in_seconds: batching_window,
                enabled: Some(!disabled),
            };
            let t = api
                .json(
                    api.http
                        .put(api.url(&format!("/v1/queues/{name}/trigger")))
                        .json(&body),
                )
                .await?;
            if json {
                return print_json(&t);
            }
            println!(
                "queue {name} triggers {} (batch size {}, batching window {} s{})",
                function_ref(&t),
                text(&t, "batchSize"),
                text(&t, "maximumBatchingWindowInSeconds"),
                if t.get("enabled").and_then(Value::as_bool) == Some(false) {
                    ", disabled"
                } else {
                    ""
                }
            );
            Ok(())
        }
        QueueCommand::Untrigger { name } => {
            let name = queue_name(&name)?;
            api.json(
                api.http
                    .delete(api.url(&format!("/v1/queues/{name}/trigger"))),
            )
            .await?;
            if json {
                return print_json(&json!({ "deleted": format!("trigger of {name}") }));
            }
            println!("queue {name} no longer triggers a function");
            Ok(())
        }
    }
}
