//! Provisioned concurrency: a published version keeps a number of
//! instances initialised ahead of calls, and calls use them first (Lambda's
//! `PutProvisionedConcurrencyConfig`). For the process tier the executor starts and keeps the
//! instances; a wasm function has nothing to keep (each call gets a fresh instance in
//! microseconds from code compiled at deploy), so its configuration is ready at once.
//!
//! Scheduled changes (a plus over Lambda, which needs Application Auto Scaling for it): at each
//! firing of a `cron(...)` expression a configuration gets a new number of instances, so two
//! schedules make a window of warm capacity.

use std::collections::HashMap;
use std::sync::Arc;

use lambent_core::schedule::Schedule;
use lambent_core::{FunctionName, Qualifier, ScheduleName, Selector};
use lambent_store::ProvisionedScheduleRow;
use lambent_store::metadata::rfc3339_ms;

use crate::assignment::Executor;
use crate::assignment::wasm::WasmExecutor;
use crate::platform::{ControlError, LoadedCode, Platform, now_ms};
use lambent_core::AliasName;

/// A provisioned concurrency configuration and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedConfig {
    /// The function.
    pub function: String,
    /// The version it is set on.
    pub qualifier: String,
    /// Instances asked for.
    pub requested: u32,
    /// Instances initialised now.
    pub allocated: u32,
    /// When it last changed (RFC 3339).
    pub last_modified: String,
    /// Why instances cannot start, once several starts in a row failed.
    pub status_reason: Option<String>,
}

impl ProvisionedConfig {
    /// `READY` once every instance is initialised, `FAILED` while instances cannot start
    /// (lambent keeps retrying, backing off), else `IN_PROGRESS` (Lambda's statuses).
    pub fn status(&self) -> &'static str {
        if self.allocated >= self.requested {
            "READY"
        } else if self.status_reason.is_some() {
            "FAILED"
        } else {
            "IN_PROGRESS"
        }
    }
}

fn parse_qualifier(raw: &str) -> Result<Selector, ControlError> {
    let selector: Selector = raw
        .parse()
        .map_err(|e: lambent_core::NameError| ControlError::Invalid(e.to_string()))?;
    if selector == Selector::Version(Qualifier::Latest) {
        return Err(ControlError::Invalid(
            "provisioned concurrency applies to a published version, not $LATEST; \
             publish a version first (lambent publish NAME)"
                .into(),
        ));
    }
    Ok(selector)
}

impl Platform {
    /// Keeps `requested` instances of `name:qualifier` initialised ahead of calls.
    pub async fn put_provisioned(
        &self,
        name: &FunctionName,
        qualifier: &str,
        requested: u32,
    ) -> Result<ProvisionedConfig, ControlError> {
        let selector = parse_qualifier(qualifier)?;
        let limit = self.max_sandboxes();
        if requested == 0 || requested as usize > limit {
            return Err(ControlError::Invalid(format!(
                "ProvisionedConcurrentExecutions must be 1 to {limit} (this node's sandboxes, serve --max-sandboxes); got {requested}"
            )));
        }
        if let Some(reserved) = self.concurrency.reservation(name)
            && requested > reserved
        {
            return Err(ControlError::Invalid(format!(
                "ProvisionedConcurrentExecutions {requested} exceeds the function's reserved concurrency of {reserved}"
            )));
        }
        let _guard = self.writes.lock().await;
        let version = self.provisioned_version(name, &selector)?;
        self.check_one_config_per_version(name, &selector, version, None)?;
        self.check_node_room(name, &selector, version, requested)?;
        self.apply_provisioned(name, &selector, requested).await?;
        self.metadata
            .put_provisioned(name, &selector.to_string(), requested, now_ms())?;
        self.provisioned_config(name, qualifier)
    }

    /// The published version a configuration on `selector` keeps instances of: the version
    /// itself, or the one an alias points to (its main version: calls routed by weight to
    /// another version start on demand).
    fn provisioned_version(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Result<Qualifier, ControlError> {
        match self.main_version(name, selector)? {
            Qualifier::Latest => Err(ControlError::Invalid(format!(
                "alias {selector} points to $LATEST; provisioned concurrency applies to a published version"
            ))),
            v => Ok(v),
        }
    }

    /// A version takes one configuration, directly or through an alias (as on Lambda);
    /// `moving` is an alias about to point at `version` instead of where it points now.
    pub(crate) fn check_one_config_per_version(
        &self,
        name: &FunctionName,
        selector: &Selector,
        version: Qualifier,
        moving: Option<&AliasName>,
    ) -> Result<(), ControlError> {
        let own = selector.to_string();
        for (_, qualifier, _, _) in self.metadata.provisioned(Some(name))? {
            if qualifier == own {
                continue;
            }
            let Ok(other) = qualifier.parse::<Selector>() else {
                continue;
            };
            if moving.is_some_and(|a| other == Selector::Alias(a.clone())) {
                continue;
            }
            if self.main_version(name, &other).ok() == Some(version) {
                return Err(ControlError::Conflict(format!(
                    "version {version} of {name} already has provisioned concurrency through {qualifier}; a version takes one configuration, on itself or on one alias"
                )));
            }
        }
        Ok(())
    }

    /// All configurations together fit the node: its sandboxes and its memory budget.
    pub(crate) fn check_node_room(
        &self,
        name: &FunctionName,
        selector: &Selector,
        version: Qualifier,
        requested: u32,
    ) -> Result<(), ControlError> {
        // The memory of a process-tier version's instance; wasm keeps no instances.
        let memory_of = |f: &FunctionName, v: Qualifier| {
            self.resolve(f, v)
                .ok()
                .filter(|r| !r.version.config.runtime.is_wasm())
                .map(|r| u64::from(r.version.config.memory_mb))
        };
        let Some(own_mb) = memory_of(name, version) else {
            return Ok(());
        };
        let own = selector.to_string();
        let (mut count, mut mb) = (u64::from(requested), u64::from(requested) * own_mb);
        for (function, qualifier, n, _) in self.metadata.provisioned(None)? {
            if function == name.as_str() && qualifier == own {
                continue;
            }
            let (Ok(f), Ok(sel)) = (FunctionName::new(&function), qualifier.parse::<Selector>())
            else {
                continue;
            };
            if let Some(each) = self
                .main_version(&f, &sel)
                .ok()
                .and_then(|v| memory_of(&f, v))
            {
                count += u64::from(n);
                mb += u64::from(n) * each;
            }
        }
        let sandboxes = self.max_sandboxes() as u64;
        let (budget, _) = self.memory_budget();
        if count > sandboxes {
            return Err(ControlError::Invalid(format!(
                "provisioned concurrency on this node would total {count} instances, over its {sandboxes} sandboxes (serve --max-sandboxes)"
            )));
        }
        if mb > budget {
            return Err(ControlError::Invalid(format!(
                "provisioned concurrency on this node would reserve {mb} MB, over its {budget} MB memory budget (serve --memory-budget-mb)"
            )));
        }
        Ok(())
    }

    /// An alias with provisioned concurrency moves from `from` to `to`: its instances follow.
    pub(crate) async fn move_provisioned(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        from: Qualifier,
        to: Qualifier,
    ) {
        let key = alias.to_string();
        let Some(requested) = self
            .metadata
            .provisioned(Some(name))
            .unwrap_or_default()
            .into_iter()
            .find(|(_, q, _, _)| *q == key)
            .map(|(_, _, n, _)| n)
        else {
            return;
        };
        for (version, n) in [(from, 0), (to, requested)] {
            if let Err(e) = self
                .apply_provisioned(name, &Selector::Version(version), n)
                .await
            {
                tracing::warn!(function = %name, alias = %alias, "cannot move provisioned instances: {e}");
            }
        }
    }

    /// Stops keeping instances of `version` (its alias's configuration was deleted).
    pub(crate) async fn move_provisioned_off(&self, name: &FunctionName, version: Qualifier) {
        if let Err(e) = self
            .apply_provisioned(name, &Selector::Version(version), 0)
            .await
        {
            tracing::warn!(function = %name, version = %version, "cannot release provisioned instances: {e}");
        }
    }

    /// Hands the configuration to the executor.
    async fn apply_provisioned(
        &self,
        name: &FunctionName,
        selector: &Selector,
        requested: u32,
    ) -> Result<(), ControlError> {
        let version = self.main_version(name, selector)?;
        let resolved = self.resolve(name, version)?;
        let (code, _) = self.prepared_code(&resolved.version).await?;
        if let LoadedCode::Package(dir) = code {
            let pool = self.process_pool(resolved.version.config.runtime)?;
            let mut spec = (*self.spec(&resolved, dir)).clone();
            for (k, v) in &mut spec.environment {
                if k == "AWS_LAMBDA_INITIALIZATION_TYPE" {
                    *v = "provisioned-concurrency".into();
                }
            }
            pool.set_provisioned(resolved.pool_key(), Arc::new(spec), requested);
        }
        Ok(())
    }

    /// One configuration with its progress.
    pub fn provisioned_config(
        &self,
        name: &FunctionName,
        qualifier: &str,
    ) -> Result<ProvisionedConfig, ControlError> {
        let selector = parse_qualifier(qualifier)?;
        let key = selector.to_string();
        self.provisioned_configs(name)?
            .into_iter()
            .find(|c| c.qualifier == key)
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "no provisioned concurrency configuration exists for {name}:{key}"
                ))
            })
    }

    /// Every configuration of a function, with progress.
    pub fn provisioned_configs(
        &self,
        name: &FunctionName,
    ) -> Result<Vec<ProvisionedConfig>, ControlError> {
        self.get(name, Qualifier::Latest)?;
        let rows = self.metadata.provisioned(Some(name))?;
        Ok(rows
            .into_iter()
            .map(|(function, qualifier, requested, updated_ms)| {
                let (allocated, status_reason) = qualifier
                    .parse::<Selector>()
                    .ok()
                    .and_then(|s| self.main_version(name, &s).ok())
                    .and_then(|v| {
                        let resolved = self.resolve(name, v).ok()?;
                        if resolved.version.config.runtime.is_wasm()
                            && !WasmExecutor::KEEPS_INSTANCES
                        {
                            // Nothing to keep: every call gets a fresh instance.
                            return Some((requested, None));
                        }
                        let pool = self.process_pool(resolved.version.config.runtime).ok()?;
                        pool.provisioned_status(resolved.pool_key())
                            .map(|s| (s.allocated, s.failure))
                    })
                    .unwrap_or((0, None));
                ProvisionedConfig {
                    function,
                    qualifier,
                    requested,
                    allocated,
                    last_modified: rfc3339_ms(updated_ms),
                    status_reason,
                }
            })
            .collect())
    }

    /// Stops keeping instances for `name:qualifier`.
    pub async fn delete_provisioned(
        &self,
        name: &FunctionName,
        qualifier: &str,
    ) -> Result<(), ControlError> {
        let selector = parse_qualifier(qualifier)?;
        let _guard = self.writes.lock().await;
        if !self
            .metadata
            .delete_provisioned(name, &selector.to_string())?
        {
            return Err(ControlError::NotFound(format!(
                "no provisioned concurrency configuration exists for {name}:{selector}"
            )));
        }
        // Zero stops keeping them; the instances become ordinary idle ones.
        if let Err(e) = self.apply_provisioned(name, &selector, 0).await {
            tracing::warn!(function = %name, qualifier = %selector, "cannot release provisioned instances: {e}");
        }
        Ok(())
    }

    /// Applies the stored configurations again (at start).
    pub(crate) async fn restore_provisioned(&self) {
        let rows = match self.metadata.provisioned(None) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!("cannot read provisioned concurrency: {e}");
                return;
            }
        };
        for (function, qualifier, requested, _) in rows {
            let (Ok(name), Ok(selector)) =
                (FunctionName::new(&function), qualifier.parse::<Selector>())
            else {
                continue;
            };
            if let Err(e) = self.apply_provisioned(&name, &selector, requested).await {
                tracing::warn!(
                    function,
                    qualifier,
                    "cannot restore provisioned concurrency: {e}"
                );
            }
        }
    }
}

/// Longest look back, at start, for a scheduled change missed while lambent was down.
const CATCH_UP_MS: i64 = 8 * 24 * 3600 * 1000;
/// How often scheduled changes are looked at.
const SCHEDULE_TICK: std::time::Duration = std::time::Duration::from_secs(1);

/// The last firing of `schedule` in `(since, now]`.
fn last_fire(schedule: &Schedule, since: i64, now: i64) -> Option<i64> {
    let mut at = u64::try_from(since).ok()?;
    let now = u64::try_from(now).ok()?;
    let mut last = None;
    while let Some(next) = schedule.next_after(0, at).filter(|n| *n <= now) {
        last = Some(next);
        at = next;
    }
    last.and_then(|t| i64::try_from(t).ok())
}

/// A scheduled change with its next firing.
#[derive(Debug, Clone)]
pub struct ProvisionedSchedule {
    /// As stored.
    pub row: ProvisionedScheduleRow,
    /// The next firing (ms since the epoch, UTC).
    pub next_ms: Option<i64>,
}

impl Platform {
    /// Schedules a change of `name:qualifier`'s provisioned concurrency: at each firing of the
    /// `cron(...)` expression it gets `provisioned` instances (0 removes the configuration).
    /// Two schedules make a window, e.g. 10 instances on weekdays from 8:00 to 18:00.
    pub async fn put_provisioned_schedule(
        &self,
        name: &FunctionName,
        schedule_name: &str,
        qualifier: &str,
        expression: &str,
        provisioned: u32,
    ) -> Result<ProvisionedSchedule, ControlError> {
        ScheduleName::new(schedule_name).map_err(|e| ControlError::Invalid(e.to_string()))?;
        let schedule =
            Schedule::parse(expression).map_err(|e| ControlError::Invalid(e.to_string()))?;
        if !matches!(schedule, Schedule::Cron(_)) {
            return Err(ControlError::Invalid(format!(
                "a scheduled change of provisioned concurrency takes a cron(...) expression (wall-clock times, UTC), not {expression}"
            )));
        }
        let selector = parse_qualifier(qualifier)?;
        let version = self.provisioned_version(name, &selector)?;
        self.resolve(name, version)?;
        self.check_one_config_per_version(name, &selector, version, None)?;
        let limit = self.max_sandboxes();
        if provisioned as usize > limit {
            return Err(ControlError::Invalid(format!(
                "provisioned must be 0 to {limit} (this node's sandboxes); got {provisioned}"
            )));
        }
        let row = ProvisionedScheduleRow {
            function: name.to_string(),
            name: schedule_name.to_owned(),
            qualifier: selector.to_string(),
            expression: schedule.to_string(),
            provisioned,
        };
        let _guard = self.writes.lock().await;
        self.metadata.put_provisioned_schedule(&row)?;
        let next_ms = next_fire_after(&schedule, self.events.clock.now_ms());
        Ok(ProvisionedSchedule { row, next_ms })
    }

    /// A function's scheduled changes.
    pub fn provisioned_schedules(
        &self,
        name: &FunctionName,
    ) -> Result<Vec<ProvisionedSchedule>, ControlError> {
        self.get(name, Qualifier::Latest)?;
        let now = self.events.clock.now_ms();
        Ok(self
            .metadata
            .provisioned_schedules(Some(name))?
            .into_iter()
            .map(|row| {
                let next_ms = Schedule::parse(&row.expression)
                    .ok()
                    .and_then(|s| next_fire_after(&s, now));
                ProvisionedSchedule { row, next_ms }
            })
            .collect())
    }

    /// Removes a scheduled change (the configuration stays as it is).
    pub async fn delete_provisioned_schedule(
        &self,
        name: &FunctionName,
        schedule_name: &str,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        if !self
            .metadata
            .delete_provisioned_schedule(name, schedule_name)?
        {
            return Err(ControlError::NotFound(format!(
                "function {name} has no provisioned concurrency schedule {schedule_name}"
            )));
        }
        Ok(())
    }

    /// Applies scheduled changes as they come due. At start it applies, per configuration, the
    /// latest change missed while lambent was down (within 8 days).
    pub(crate) async fn provisioned_schedule_loop(self: Arc<Self>) {
        let mut checked: HashMap<(String, String), i64> = HashMap::new();
        let mut first = true;
        loop {
            let now = self.events.clock.now_ms();
            let rows = match self.metadata.provisioned_schedules(None) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!("cannot read provisioned concurrency schedules: {e}");
                    Vec::new()
                }
            };
            // Per configuration, the change that fired last wins.
            let mut due: HashMap<(String, String), (i64, ProvisionedScheduleRow)> = HashMap::new();
            let mut present = Vec::with_capacity(rows.len());
            for row in rows {
                let key = (row.function.clone(), row.name.clone());
                let since = match checked.get(&key) {
                    Some(t) => *t,
                    None if first => now - CATCH_UP_MS,
                    None => now,
                };
                checked.insert(key.clone(), now);
                present.push(key);
                let Ok(schedule) = Schedule::parse(&row.expression) else {
                    continue;
                };
                if let Some(fired) = last_fire(&schedule, since, now) {
                    let target = (row.function.clone(), row.qualifier.clone());
                    if due.get(&target).is_none_or(|(t, _)| fired > *t) {
                        due.insert(target, (fired, row));
                    }
                }
            }
            checked.retain(|k, _| present.contains(k));
            let configs = if first {
                self.metadata.provisioned(None).unwrap_or_default()
            } else {
                Vec::new()
            };
            for (fired, row) in due.into_values() {
                // At start, a configuration changed since the firing (by it, before the
                // restart, or by hand) is left as it is.
                let changed_since = configs.iter().any(|(f, q, _, updated_ms)| {
                    *f == row.function && *q == row.qualifier && *updated_ms >= fired
                });
                if !changed_since {
                    self.apply_scheduled(&row).await;
                }
            }
            first = false;
            tokio::time::sleep(SCHEDULE_TICK).await;
        }
    }

    async fn apply_scheduled(&self, row: &ProvisionedScheduleRow) {
        let Ok(name) = FunctionName::new(&row.function) else {
            return;
        };
        let result = if row.provisioned == 0 {
            match self.delete_provisioned(&name, &row.qualifier).await {
                Err(ControlError::NotFound(_)) => Ok(()),
                other => other,
            }
        } else {
            self.put_provisioned(&name, &row.qualifier, row.provisioned)
                .await
                .map(|_| ())
        };
        match result {
            Ok(()) => tracing::info!(
                function = %row.function,
                qualifier = %row.qualifier,
                schedule = %row.name,
                provisioned = row.provisioned,
                "scheduled provisioned concurrency applied"
            ),
            Err(e) => tracing::warn!(
                function = %row.function,
                qualifier = %row.qualifier,
                schedule = %row.name,
                "cannot apply scheduled provisioned concurrency: {e}"
            ),
        }
    }
}

/// The next firing after `now`.
fn next_fire_after(schedule: &Schedule, now: i64) -> Option<i64> {
    schedule
        .next_after(0, u64::try_from(now).ok()?)
        .and_then(|t| i64::try_from(t).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_published_versions_and_aliases_take_provisioned_concurrency() {
        assert!(parse_qualifier("3").is_ok());
        let latest = parse_qualifier("$LATEST").expect_err("latest");
        assert!(latest.to_string().contains("publish"), "{latest}");
        assert!(parse_qualifier("live").is_ok(), "aliases take it too");
    }
}
