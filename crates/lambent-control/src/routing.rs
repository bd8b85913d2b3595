//! The parts of the control plane that sit around a version: aliases and their weighted routing,
//! reserved concurrency, function URL configurations, account settings, access keys, and
//! asynchronous (`Event`) invocations.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lambent_core::limits::{MAX_CODE_BYTES, MAX_UNZIPPED_CODE_BYTES};
use lambent_core::{
    Alias, AliasName, FunctionName, FunctionUrlConfig, Qualifier, ScalingConfig, Selector,
    UrlAuthType,
};
use lambent_store::AccountUsage;
use lambent_store::metadata::now_rfc3339;

use crate::auth::{Bootstrap, KeyRing};
use crate::keepalive::KeepAlivePolicy;
use crate::platform::{ControlError, MAX_ADMISSION_WAIT, Platform, keep_alive_policy, new_id};

/// What a caller may change on an alias; absent fields stay.
#[derive(Debug, Clone, Default)]
pub struct AliasUpdate {
    /// The main version.
    pub version: Option<Qualifier>,
    /// Free text.
    pub description: Option<String>,
    /// Replaces the weighted routing.
    pub additional_weights: Option<BTreeMap<u32, f64>>,
}

/// Limits and usage of this install, for `GetAccountSettings`.
#[derive(Debug, Clone, Copy)]
pub struct AccountSettings {
    /// Concurrent executions the account may have.
    pub concurrent_executions: u32,
    /// What functions without a reservation share.
    pub unreserved_concurrent_executions: u32,
    /// Largest code upload.
    pub code_size_zipped: u64,
    /// Largest unzipped package.
    pub code_size_unzipped: u64,
    /// What the account holds.
    pub usage: AccountUsage,
    /// Bytes free for code where the data directory lives.
    pub code_storage_free: u64,
}

fn alias_not_found(name: &FunctionName, alias: &AliasName) -> ControlError {
    ControlError::NotFound(format!("alias {alias} of function {name} does not exist"))
}

impl Platform {
    /// The region requests are signed for and ARNs name.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The access keys.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// What the first start did about the admin key.
    pub fn bootstrap(&self) -> &Bootstrap {
        &self.bootstrap
    }

    // ----- aliases and routing ----------------------------------------------------------

    fn cached_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<Arc<Alias>, ControlError> {
        let key = (name.clone(), alias.clone());
        if let Some(a) = self.aliases.read().get(&key) {
            return Ok(a.clone());
        }
        let a = self
            .metadata
            .alias(name, alias)?
            .ok_or_else(|| alias_not_found(name, alias))?;
        let a = Arc::new(a);
        self.aliases.write().insert(key, a.clone());
        Ok(a)
    }

    /// The version a call to `name:selector` runs: the version itself, or for an alias one of its
    /// versions, picked by its weights.
    pub fn route(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Result<Qualifier, ControlError> {
        match selector {
            Selector::Version(q) => Ok(*q),
            Selector::Alias(a) => Ok(self.cached_alias(name, a)?.pick(fastrand::f64())),
        }
    }

    /// The version `selector` names for reading its configuration: for an alias, its main version.
    pub fn main_version(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Result<Qualifier, ControlError> {
        match selector {
            Selector::Version(q) => Ok(*q),
            Selector::Alias(a) => Ok(self.cached_alias(name, a)?.version),
        }
    }

    /// Creates an alias.
    pub async fn create_alias(
        &self,
        name: &FunctionName,
        alias: AliasName,
        version: Qualifier,
        description: String,
        additional_weights: BTreeMap<u32, f64>,
    ) -> Result<Alias, ControlError> {
        check_description(&description)?;
        let a = Alias {
            function: name.clone(),
            name: alias,
            version,
            description,
            additional_weights,
            revision_id: new_id(),
        };
        a.validate()?;
        let _guard = self.writes.lock().await;
        self.metadata.create_alias(&a)?;
        self.aliases.write().remove(&(name.clone(), a.name.clone()));
        Ok(a)
    }

    /// Changes an alias; with `revision`, only if the alias still has that revision.
    pub async fn update_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
        update: AliasUpdate,
        revision: Option<&str>,
    ) -> Result<Alias, ControlError> {
        let _guard = self.writes.lock().await;
        let mut a = self
            .metadata
            .alias(name, alias)?
            .ok_or_else(|| alias_not_found(name, alias))?;
        crate::platform::check_revision(&a.revision_id, revision)?;
        let before = a.version;
        let provisioned = self
            .metadata
            .provisioned(Some(name))?
            .into_iter()
            .find(|(_, q, _, _)| *q == alias.as_str())
            .map(|(_, _, n, _)| n);
        if let Some(v) = update.version {
            if let Some(requested) = provisioned
                && v != before
            {
                if v == Qualifier::Latest {
                    return Err(ControlError::Invalid(format!(
                        "alias {alias} has provisioned concurrency, which applies to a published version, not $LATEST; delete it first"
                    )));
                }
                let selector = Selector::Alias(alias.clone());
                self.check_one_config_per_version(name, &selector, v, Some(alias))?;
                self.resolve(name, v)?;
                self.check_node_room(name, &selector, v, requested)?;
            }
            a.version = v;
        }
        if let Some(d) = update.description {
            check_description(&d)?;
            a.description = d;
        }
        if let Some(w) = update.additional_weights {
            a.additional_weights = w;
        }
        a.revision_id = new_id();
        a.validate()?;
        self.metadata.update_alias_if_revision(&a, revision)?;
        self.aliases.write().remove(&(name.clone(), alias.clone()));
        if provisioned.is_some() && a.version != before {
            self.move_provisioned(name, alias, before, a.version).await;
        }
        Ok(a)
    }

    /// One alias.
    pub fn alias(&self, name: &FunctionName, alias: &AliasName) -> Result<Alias, ControlError> {
        self.metadata
            .alias(name, alias)?
            .ok_or_else(|| alias_not_found(name, alias))
    }

    /// A function's aliases.
    pub fn aliases(&self, name: &FunctionName) -> Result<Vec<Alias>, ControlError> {
        self.get(name, Qualifier::Latest)?;
        Ok(self.metadata.aliases(name)?)
    }

    /// Deletes an alias (and its function URL).
    pub async fn delete_alias(
        &self,
        name: &FunctionName,
        alias: &AliasName,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        let kept = self.metadata.alias(name, alias)?.map(|a| a.version);
        self.metadata.delete_alias(name, alias)?;
        self.aliases.write().remove(&(name.clone(), alias.clone()));
        // Its provisioned concurrency (and any schedule of it) goes with it.
        match self.metadata.delete_provisioned(name, alias.as_str()) {
            Ok(true) => {
                if let Some(version) = kept {
                    self.move_provisioned_off(name, version).await;
                }
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(function = %name, alias = %alias, "cannot delete the alias's provisioned concurrency: {e}")
            }
        }
        if let Err(e) = self
            .metadata
            .delete_provisioned_schedules_of(name, alias.as_str())
        {
            tracing::warn!(function = %name, alias = %alias, "cannot delete the alias's provisioned concurrency schedules: {e}");
        }
        self.urls
            .write()
            .remove(&(name.clone(), Some(alias.clone())));
        Ok(())
    }

    /// Deletes one published version; refused while an alias routes to it.
    pub async fn delete_version(
        &self,
        name: &FunctionName,
        version: u32,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        let sha = self.metadata.delete_version(name, version)?;
        self.forget(name);
        self.retire(name, Some(Qualifier::Version(version)));
        self.collect_garbage([sha]);
        Ok(())
    }

    // ----- concurrency ------------------------------------------------------------------

    /// Reserves concurrency for a function (which also caps it there).
    pub async fn put_reserved_concurrency(
        &self,
        name: &FunctionName,
        reserved: u32,
    ) -> Result<u32, ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        self.concurrency
            .check_reservation(name, reserved)
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        self.metadata.put_reserved_concurrency(name, reserved)?;
        self.concurrency.set_reservation(name, Some(reserved));
        Ok(reserved)
    }

    /// A function's reserved concurrency, if any.
    pub fn reserved_concurrency(&self, name: &FunctionName) -> Result<Option<u32>, ControlError> {
        self.get(name, Qualifier::Latest)?;
        Ok(self.concurrency.reservation(name))
    }

    /// Removes a function's reservation.
    pub async fn delete_reserved_concurrency(
        &self,
        name: &FunctionName,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        self.metadata.delete_reserved_concurrency(name)?;
        self.concurrency.set_reservation(name, None);
        Ok(())
    }

    /// Lets refused calls of a function wait up to `max_wait` for a slot, first come first
    /// served, instead of getting a 429 at once.
    pub async fn put_admission_wait(
        &self,
        name: &FunctionName,
        max_wait: Duration,
    ) -> Result<Duration, ControlError> {
        if max_wait > MAX_ADMISSION_WAIT {
            return Err(ControlError::Invalid(format!(
                "maxWaitMs must be 0 to {} ms; a longer wait belongs in an asynchronous invocation",
                MAX_ADMISSION_WAIT.as_millis()
            )));
        }
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        let ms = u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX);
        self.metadata.put_admission_wait(name, ms)?;
        self.concurrency.set_max_wait(name, Some(max_wait));
        Ok(max_wait)
    }

    /// A function's admission wait: its own if set, and the one that applies.
    pub fn admission_wait(
        &self,
        name: &FunctionName,
    ) -> Result<(Option<Duration>, Duration), ControlError> {
        self.get(name, Qualifier::Latest)?;
        Ok((
            self.concurrency.own_max_wait(name),
            self.concurrency.max_wait(name),
        ))
    }

    /// Removes a function's own admission wait (the account default applies again).
    pub async fn delete_admission_wait(&self, name: &FunctionName) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        self.metadata.delete_admission_wait(name)?;
        self.concurrency.set_max_wait(name, None);
        Ok(())
    }

    /// Sets a function's own scaling settings: calls per instance, and its keep-alive.
    pub async fn put_scaling(
        &self,
        name: &FunctionName,
        scaling: ScalingConfig,
    ) -> Result<ScalingConfig, ControlError> {
        let _guard = self.writes.lock().await;
        let latest = self.get(name, Qualifier::Latest)?;
        scaling
            .check(latest.config.runtime.family())
            .map_err(|e| ControlError::Invalid(e.to_string()))?;
        self.metadata.put_scaling(name, &scaling)?;
        self.keep_alive.set_policy(
            name.as_str(),
            keep_alive_policy(scaling.keep_alive, self.default_keep_alive),
        );
        self.scaling.write().insert(name.clone(), scaling);
        Ok(scaling)
    }

    /// A function's scaling settings: its own, if any, and the ones that apply.
    pub fn scaling(
        &self,
        name: &FunctionName,
    ) -> Result<(Option<ScalingConfig>, ScalingConfig), ControlError> {
        self.get(name, Qualifier::Latest)?;
        let own = self.scaling.read().get(name).copied();
        Ok((own, own.unwrap_or_default()))
    }

    /// Removes a function's own scaling settings (the platform's apply again).
    pub async fn delete_scaling(&self, name: &FunctionName) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        self.metadata.delete_scaling(name)?;
        self.keep_alive.set_policy(name.as_str(), None);
        self.scaling.write().remove(name);
        Ok(())
    }

    /// The platform's keep-alive policy, for functions without their own.
    pub fn default_keep_alive_policy(&self) -> KeepAlivePolicy {
        self.keep_alive.default_policy()
    }

    /// Limits and usage of this install.
    pub fn account_settings(&self) -> Result<AccountSettings, ControlError> {
        Ok(AccountSettings {
            concurrent_executions: self.concurrency.account_limit(),
            unreserved_concurrent_executions: self.concurrency.unreserved_limit(),
            code_size_zipped: MAX_CODE_BYTES as u64,
            code_size_unzipped: MAX_UNZIPPED_CODE_BYTES,
            usage: self.metadata.account_usage()?,
            code_storage_free: nix::sys::statvfs::statvfs(self.data_dir.as_path())
                .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
                .unwrap_or(0),
        })
    }

    // ----- function URLs ----------------------------------------------------------------

    /// Creates (or, with `replace`, changes) a function URL configuration.
    pub async fn put_url(
        &self,
        name: &FunctionName,
        alias: Option<AliasName>,
        auth_type: Option<UrlAuthType>,
        cors: Option<serde_json::Value>,
        replace: bool,
    ) -> Result<FunctionUrlConfig, ControlError> {
        let _guard = self.writes.lock().await;
        let now = now_rfc3339();
        let key = (name.clone(), alias.clone());
        let config = if replace {
            let mut c = self.metadata.url(name, alias.as_ref())?.ok_or_else(|| {
                ControlError::NotFound(format!(
                    "function {name} has no URL configuration for this qualifier"
                ))
            })?;
            if let Some(a) = auth_type {
                c.auth_type = a;
            }
            if cors.is_some() {
                c.cors = cors;
            }
            c.last_modified = now;
            c
        } else {
            let auth_type = auth_type.ok_or_else(|| {
                ControlError::Invalid("AuthType is required: NONE or AWS_IAM".into())
            })?;
            FunctionUrlConfig {
                function: name.clone(),
                alias,
                auth_type,
                cors,
                created: now.clone(),
                last_modified: now,
            }
        };
        self.metadata.put_url(&config, replace)?;
        self.urls.write().insert(key, Arc::new(config.clone()));
        Ok(config)
    }

    /// A function URL configuration.
    pub fn url(
        &self,
        name: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<FunctionUrlConfig, ControlError> {
        self.get(name, Qualifier::Latest)?;
        self.metadata.url(name, alias)?.ok_or_else(|| {
            ControlError::NotFound(format!(
                "function {name} has no URL configuration for this qualifier"
            ))
        })
    }

    /// Deletes a function URL configuration.
    pub async fn delete_url(
        &self,
        name: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<(), ControlError> {
        let _guard = self.writes.lock().await;
        self.get(name, Qualifier::Latest)?;
        self.metadata.delete_url(name, alias)?;
        self.urls.write().remove(&(name.clone(), alias.cloned()));
        Ok(())
    }

    /// The URL configuration that governs `/fn/name[:selector]`, from memory: unqualified (or
    /// `$LATEST`) and alias URLs can have one; version numbers never do.
    pub fn url_config(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Option<Arc<FunctionUrlConfig>> {
        let alias = match selector {
            Selector::Version(Qualifier::Latest) => None,
            Selector::Version(Qualifier::Version(_)) => return None,
            Selector::Alias(a) => Some(a.clone()),
        };
        self.urls.read().get(&(name.clone(), alias)).cloned()
    }

    // ----- asynchronous invocations -----------------------------------------------------

    /// Checks that `name:selector` could be invoked (Lambda's `DryRun`); returns the version.
    pub fn check_invoke(
        &self,
        name: &FunctionName,
        selector: &Selector,
    ) -> Result<Qualifier, ControlError> {
        let q = self.main_version(name, selector)?;
        self.get(name, q)?;
        Ok(q)
    }
}

fn check_description(d: &str) -> Result<(), ControlError> {
    let chars = d.chars().count();
    if chars > lambent_core::limits::MAX_DESCRIPTION_CHARS {
        return Err(lambent_core::ConfigError::DescriptionTooLong(chars).into());
    }
    Ok(())
}
