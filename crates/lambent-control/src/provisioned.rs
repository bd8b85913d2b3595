//! Provisioned concurrency: a published version keeps a number of
//! instances initialised ahead of calls, and calls use them first (Lambda's
//! `PutProvisionedConcurrencyConfig`). For the process tier the executor starts and keeps the
//! instances; a wasm function has nothing to keep (each call gets a fresh instance in
//! microseconds from code compiled at deploy), so its configuration is ready at once.

use std::sync::Arc;

use lambent_core::{FunctionName, Qualifier, Selector};
use lambent_store::metadata::rfc3339_ms;

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
    fn check_node_room(
        &self,
        name: &FunctionName,
        selector: &Selector,
        version: Qualifier,
        requested: u32,
    ) -> Result<(), ControlError> {
        let memory_of = |f: &FunctionName, v: Qualifier| {
            self.resolve(f, v)
                .map(|r| u64::from(r.version.config.memory_mb))
                .unwrap_or(0)
        };
        let own = selector.to_string();
        let (mut count, mut mb) = (
            u64::from(requested),
            u64::from(requested) * memory_of(name, version),
        );
        for (function, qualifier, n, _) in self.metadata.provisioned(None)? {
            if function == name.as_str() && qualifier == own {
                continue;
            }
            let (Ok(f), Ok(sel)) = (FunctionName::new(&function), qualifier.parse::<Selector>())
            else {
                continue;
            };
            count += u64::from(n);
            if let Ok(v) = self.main_version(&f, &sel) {
                mb += u64::from(n) * memory_of(&f, v);
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
            let executor = self.executor(resolved.version.config.runtime)?;
            let mut spec = (*self.spec(&resolved, dir)).clone();
            for (k, v) in &mut spec.environment {
                if k == "AWS_LAMBDA_INITIALIZATION_TYPE" {
                    *v = "provisioned-concurrency".into();
                }
            }
            executor.set_provisioned(Arc::new(spec), requested);
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
                        if resolved.version.config.runtime.is_wasm() {
                            return Some((requested, None));
                        }
                        let executor = self.executor(resolved.version.config.runtime).ok()?;
                        executor
                            .provisioned_status(&function, &v.to_string())
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
