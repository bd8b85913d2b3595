//! Schedules: `rate(...)` and `cron(...)` expressions (EventBridge syntax, UTC) that turn into
//! one asynchronous event per firing.
//!
//! A firing is stored in one transaction with the schedule's next time, and its event carries the
//! idempotency key `schedule:NAME:TIME`, so a restart can neither lose nor repeat it. Firings
//! missed while lambent was down are not replayed: the scheduler fires once for the latest one it
//! missed and moves on.

use std::sync::Arc;
use std::time::Duration;

use lambent_core::limits::ACCOUNT_ID;
use lambent_core::schedule::Schedule;
use lambent_core::{FunctionName, ScheduleName, Selector};
use lambent_store::events::{Firing, NewEvent, ScheduleRow};
use lambent_store::metadata::rfc3339_ms;
use serde_json::json;

use crate::platform::{ControlError, Platform, new_id};

/// Longest the scheduler sleeps without looking again.
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Longest fixed input.
pub const MAX_SCHEDULE_INPUT_BYTES: usize = 8192;

/// What a caller sets on a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// The function.
    pub function: FunctionName,
    /// Its version or alias.
    pub qualifier: Selector,
    /// `rate(...)` or `cron(...)`.
    pub expression: String,
    /// A fixed input (JSON text) sent instead of the scheduled-event document.
    pub input: Option<String>,
    /// Free text.
    pub description: String,
    /// Whether it fires.
    pub enabled: bool,
}

fn next_fire(schedule: &Schedule, anchor: i64, after: i64) -> Option<i64> {
    let anchor = u64::try_from(anchor).unwrap_or(0);
    let after = u64::try_from(after).unwrap_or(0);
    schedule
        .next_after(anchor, after)
        .and_then(|t| i64::try_from(t).ok())
}

impl Platform {
    fn parse_schedule(&self, spec: &ScheduleSpec) -> Result<Schedule, ControlError> {
        let schedule =
            Schedule::parse(&spec.expression).map_err(|e| ControlError::Invalid(e.to_string()))?;
        if let Some(input) = &spec.input {
            if input.len() > MAX_SCHEDULE_INPUT_BYTES {
                return Err(ControlError::Invalid(format!(
                    "the schedule's input is {} bytes; the limit is {MAX_SCHEDULE_INPUT_BYTES}",
                    input.len()
                )));
            }
            serde_json::from_str::<serde_json::Value>(input).map_err(|e| {
                ControlError::Invalid(format!("the schedule's input must be JSON text: {e}"))
            })?;
        }
        let q = self.route(&spec.function, &spec.qualifier)?;
        self.get(&spec.function, q)?;
        Ok(schedule)
    }

    /// Creates a schedule, or replaces it with `replace`.
    pub async fn put_schedule(
        &self,
        name: &ScheduleName,
        spec: ScheduleSpec,
        replace: bool,
    ) -> Result<ScheduleRow, ControlError> {
        let schedule = self.parse_schedule(&spec)?;
        let now = self.events.clock.now_ms();
        let existing = self.schedule(name).await.ok();
        // Keep the anchor (and so a rate's phase) when only other fields change.
        let anchor = existing
            .as_ref()
            .filter(|e| e.expression == schedule.to_string())
            .map_or(now, |e| e.anchor_ms);
        let row = ScheduleRow {
            name: name.to_string(),
            function: spec.function.to_string(),
            qualifier: spec.qualifier.to_string(),
            expression: schedule.to_string(),
            input: spec.input,
            description: spec.description,
            enabled: spec.enabled,
            created_ms: existing.as_ref().map_or(now, |e| e.created_ms),
            anchor_ms: anchor,
            last_fire_ms: existing.as_ref().and_then(|e| e.last_fire_ms),
            next_fire_ms: next_fire(&schedule, anchor, now),
        };
        self.events.store.put_schedule(row.clone(), replace).await?;
        self.events.schedules_changed.notify_one();
        Ok(row)
    }

    /// Turns a schedule on or off.
    pub async fn enable_schedule(
        &self,
        name: &ScheduleName,
        enabled: bool,
    ) -> Result<ScheduleRow, ControlError> {
        let row = self.schedule(name).await?;
        let spec = ScheduleSpec {
            function: FunctionName::new(&row.function)?,
            qualifier: row.qualifier.parse()?,
            expression: row.expression,
            input: row.input,
            description: row.description,
            enabled,
        };
        self.put_schedule(name, spec, true).await
    }

    /// One schedule.
    pub async fn schedule(&self, name: &ScheduleName) -> Result<ScheduleRow, ControlError> {
        self.events
            .store
            .schedule(name.as_str())
            .await?
            .ok_or_else(|| ControlError::NotFound(format!("schedule {name} does not exist")))
    }

    /// Every schedule.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>, ControlError> {
        Ok(self.events.store.schedules().await?)
    }

    /// Deletes a schedule.
    pub async fn delete_schedule(&self, name: &ScheduleName) -> Result<(), ControlError> {
        let existed = self.events.store.delete_schedule(name.as_str()).await?;
        if !existed {
            return Err(ControlError::NotFound(format!(
                "schedule {name} does not exist"
            )));
        }
        self.events.schedules_changed.notify_one();
        Ok(())
    }

    /// The event a firing sends: the fixed input, or EventBridge's scheduled-event document.
    fn scheduled_event(&self, row: &ScheduleRow, fire_ms: i64) -> Vec<u8> {
        if let Some(input) = &row.input {
            return input.clone().into_bytes();
        }
        let time = rfc3339_ms(fire_ms);
        // EventBridge writes whole seconds: 2026-11-29T12:00:00Z.
        let time = format!("{}Z", time.split('.').next().unwrap_or(&time));
        json!({
            "version": "0",
            "id": new_id(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": time,
            "region": self.region,
            "resources": [format!("arn:aws:events:{}:{ACCOUNT_ID}:rule/{}", self.region, row.name)],
            "detail": {}
        })
        .to_string()
        .into_bytes()
    }

    /// Fires what is due; returns when the next firing is.
    async fn fire_due(&self) -> Option<i64> {
        let rows = match self.events.store.schedules().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("cannot read schedules: {e}");
                return None;
            }
        };
        let now = self.events.clock.now_ms();
        let mut earliest: Option<i64> = None;
        for row in rows.into_iter().filter(|r| r.enabled) {
            let Some(due) = row.next_fire_ms else {
                continue;
            };
            let Ok(schedule) = Schedule::parse(&row.expression) else {
                tracing::error!(schedule = %row.name, "stored expression {} no longer parses", row.expression);
                continue;
            };
            if due > now {
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
                continue;
            }
            // The latest firing time not after now: missed firings collapse into it.
            let mut fire_ms = due;
            let mut steps = 0;
            while let Some(t) = next_fire(&schedule, row.anchor_ms, fire_ms) {
                if t > now || steps > 1_000_000 {
                    break;
                }
                fire_ms = t;
                steps += 1;
            }
            if steps > 0 {
                tracing::info!(schedule = %row.name, missed = steps, "firings missed while lambent was down; firing once");
            }
            let next = next_fire(&schedule, row.anchor_ms, now);
            let event = NewEvent {
                id: new_id(),
                function: row.function.clone(),
                qualifier: row.qualifier.clone(),
                payload: self.scheduled_event(&row, fire_ms),
                headers: vec![("content-type".into(), "application/json".into())],
                idempotency_key: Some(format!("schedule:{}:{fire_ms}", row.name)),
                source: format!("schedule:{}", row.name),
                accepted_ms: now,
            };
            let firing = Firing {
                name: row.name.clone(),
                expected_next_ms: due,
                fired_ms: fire_ms,
                next_ms: next,
                event,
            };
            let fired = self.events.store.fire(firing).await;
            match fired {
                Ok(true) => {
                    tracing::debug!(schedule = %row.name, at = fire_ms, "fired");
                    self.events
                        .accepted
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.events.dispatch.notify_one();
                }
                Ok(false) => {}
                Err(e) => tracing::error!(schedule = %row.name, "cannot fire: {e}"),
            }
            if let Some(n) = next {
                earliest = Some(earliest.map_or(n, |e| e.min(n)));
            }
        }
        earliest
    }

    pub(crate) async fn schedule_loop(self: Arc<Self>) {
        loop {
            let next = self.fire_due().await;
            let wait = next.map_or(MAX_SLEEP, |t| {
                let ms = (t - self.events.clock.now_ms()).max(0);
                Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_SLEEP)
            });
            let _ = tokio::time::timeout(wait, self.events.schedules_changed.notified()).await;
        }
    }
}
