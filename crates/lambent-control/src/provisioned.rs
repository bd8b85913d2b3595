//! Provisioned concurrency: a published version keeps a number of
//! instances initialised ahead of calls, and calls use them first (Lambda's
//! `PutProvisionedConcurrencyConfig`). For the process tier the executor starts and keeps the
//! instances; a wasm function has nothing to keep (each call gets a fresh instance in
//! microseconds from code compiled at deploy), so its configuration is ready at once.

use std::sync::Arc;

use lambent_core::{FunctionName, Qualifier, Selector};
use lambent_store::metadata::rfc3339_ms;

use crate::platform::{ControlError, LoadedCode, Platform, now_ms};

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
    if let Selector::Alias(alias) = &selector {
        return Err(ControlError::Invalid(format!(
            "provisioned concurrency is set on a published version in lambent, not yet on an \
             alias ({alias}); give the version the alias points to"
        )));
    }
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
        self.apply_provisioned(name, &selector, requested).await?;
        self.metadata
            .put_provisioned(name, &selector.to_string(), requested, now_ms())?;
        self.provisioned_config(name, qualifier)
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
    fn only_published_versions_take_provisioned_concurrency() {
        assert!(parse_qualifier("3").is_ok());
        let latest = parse_qualifier("$LATEST").expect_err("latest");
        assert!(latest.to_string().contains("publish"), "{latest}");
        let alias = parse_qualifier("live").expect_err("alias");
        assert!(alias.to_string().contains("alias"), "{alias}");
    }
}
