//! The registry's storage as domain operations: functions and their versions, aliases,
//! function URLs, per-function settings (reserved concurrency, admission waits, scaling,
//! provisioned concurrency and its schedules), invocation records and metered usage, and access
//! keys. No SQL and no connection appear here: [`SqliteMetadataStore`](crate::SqliteMetadataStore)
//! is the embedded backend (`metadata.db`), and a NATS JetStream key-value backend for a fleet
//! is a second implementation of the same traits.
//!
//! The operations are grouped in four traits by what they hold, and [`MetadataStore`] is all of
//! them: control holds one `Arc<dyn MetadataStore>`. Where a caller changes something it read
//! with a revision (Lambda's `RevisionId`), the comparison and the write are one operation
//! (`..._if_revision`), so the check cannot go stale between the two.
//!
//! These traits are synchronous, unlike [`EventStore`](crate::EventStore): control reads the
//! registry through its own caches on the invocation path and writes it from blocking contexts
//! (the invocation recorder's thread, deploys inside `spawn_blocking`), and most of its callers
//! are synchronous methods that the HTTP front ends call directly. A network backend implements
//! them with a blocking client; making them async is the next step once those callers are, and
//! changes the traits' signatures, not their operations. They live in this crate, beside the
//! rows they speak in (`AccessKeyRow`, `ProvisionedScheduleRow`, `UsageQuery`, ...) and the
//! error enum that lists the backends' failures, for the reason given in
//! [`crate::events`].

use std::collections::BTreeMap;

use lambent_core::{
    Alias, AliasName, FunctionName, FunctionUrlConfig, FunctionVersion, InvocationRecord,
    Qualifier, ScalingConfig, UsageRow,
};

use crate::metadata::{MetadataError, UsageGroupSums, UsageQuery};
use crate::routing::{AccessKeyRow, AccountUsage, ProvisionedScheduleRow};

/// What a publish stores besides `$LATEST`'s code and configuration.
#[derive(Debug, Clone, Copy)]
pub struct Publish<'a> {
    /// The new version's description (`$LATEST`'s when `None`).
    pub description: Option<&'a str>,
    /// Its last-modified time (RFC 3339).
    pub now: &'a str,
    /// Its revision id.
    pub revision_id: &'a str,
}

/// Functions and their versions.
pub trait FunctionStore {
    /// Creates a function: stores `latest` as its `$LATEST`. Fails if the name is taken.
    fn create(&self, latest: &FunctionVersion) -> Result<(), MetadataError>;

    /// Replaces the `$LATEST` of an existing function, if its revision is still `revision` (any
    /// revision when `None`): the comparison and the write are one step, so two writers that
    /// read the same revision cannot both win. `RevisionMismatch` otherwise.
    fn replace_latest_if_revision(
        &self,
        latest: &FunctionVersion,
        revision: Option<&str>,
    ) -> Result<(), MetadataError>;

    /// One version of a function.
    fn get(
        &self,
        name: &FunctionName,
        qualifier: Qualifier,
    ) -> Result<Option<FunctionVersion>, MetadataError>;

    /// A page of functions (their `$LATEST`), by name, starting after `after`.
    fn list(&self, limit: u32, after: Option<&str>) -> Result<Vec<FunctionVersion>, MetadataError>;

    /// Every version of a function, `$LATEST` first; empty when the function does not exist.
    fn versions(&self, name: &FunctionName) -> Result<Vec<FunctionVersion>, MetadataError>;

    /// Every version of every function (for warming the executor at start-up).
    fn all_versions(&self) -> Result<Vec<FunctionVersion>, MetadataError>;

    /// Publishes `$LATEST` as the next version number, if `$LATEST`'s revision is still
    /// `revision` (any revision when `None`; `RevisionMismatch` otherwise). Like Lambda, when
    /// `$LATEST` has not changed since the newest published version, that version is returned
    /// instead of a new one; the boolean says whether a version was created.
    fn publish_if_revision(
        &self,
        name: &FunctionName,
        publish: &Publish<'_>,
        revision: Option<&str>,
    ) -> Result<(FunctionVersion, bool), MetadataError>;

    /// Deletes a function and all its versions; returns the code hashes they referenced, or
    /// `NoSuchFunction`.
    fn delete(&self, name: &FunctionName) -> Result<Vec<String>, MetadataError>;

    /// Whether any version of any function uses the code `sha256`.
    fn code_in_use(&self, sha256: &str) -> Result<bool, MetadataError>;
}

/// Invocation records and metered usage.
pub trait InvocationStore {
    /// Stores a batch of invocation records in one transaction.
    fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), MetadataError>;

    /// Keeps only the newest `keep` invocation records.
    fn prune_invocations(&self, keep: u64) -> Result<usize, MetadataError>;

    /// One invocation record.
    fn invocation(&self, id: &str) -> Result<Option<InvocationRecord>, MetadataError>;

    /// The newest `limit` invocations of a function, newest first.
    fn recent_invocations(
        &self,
        function: &FunctionName,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, MetadataError>;

    /// Invocation records that started in `[from_ms, to_ms)`, oldest first, optionally of one
    /// function, at most `limit`.
    fn invocations_between(
        &self,
        function: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<InvocationRecord>, MetadataError>;

    /// Adds metered usage to the per-minute totals, in one transaction.
    fn add_usage(&self, rows: &[UsageRow]) -> Result<(), MetadataError>;

    /// Metered usage in a time range (whole minutes: a minute counts when it starts in the
    /// range), grouped as asked, groups in key order.
    fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageGroupSums>, MetadataError>;
}

/// Aliases, per-function settings, function URLs and account totals.
pub trait RoutingStore {
    /// Creates an alias; its versions must exist.
    fn create_alias(&self, alias: &Alias) -> Result<(), MetadataError>;

    /// Replaces an existing alias, if its revision is still `revision` (any revision when
    /// `None`; `RevisionMismatch` otherwise); its versions must exist.
    fn update_alias_if_revision(
        &self,
        alias: &Alias,
        revision: Option<&str>,
    ) -> Result<(), MetadataError>;

    /// One alias.
    fn alias(
        &self,
        function: &FunctionName,
        name: &AliasName,
    ) -> Result<Option<Alias>, MetadataError>;

    /// A function's aliases by name.
    fn aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, MetadataError>;

    /// Deletes an alias and the function URL that calls it; `NoSuchAlias` if it does not exist.
    fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<(), MetadataError>;

    /// Deletes one published version; refused while an alias routes to it. Returns its code hash.
    fn delete_version(
        &self,
        function: &FunctionName,
        version: u32,
    ) -> Result<String, MetadataError>;

    /// Sets a function's reserved concurrency.
    fn put_reserved_concurrency(
        &self,
        function: &FunctionName,
        reserved: u32,
    ) -> Result<(), MetadataError>;

    /// Removes a function's reservation; true if there was one.
    fn delete_reserved_concurrency(&self, function: &FunctionName) -> Result<bool, MetadataError>;

    /// Every reservation, by function.
    fn reserved_concurrency(&self) -> Result<BTreeMap<String, u32>, MetadataError>;

    /// Sets how long a refused call of `function` may wait for a slot.
    fn put_admission_wait(
        &self,
        function: &FunctionName,
        max_wait_ms: u32,
    ) -> Result<(), MetadataError>;

    /// Removes a function's own admission wait; true if there was one.
    fn delete_admission_wait(&self, function: &FunctionName) -> Result<bool, MetadataError>;

    /// Every function's own admission wait, in ms.
    fn admission_waits(&self) -> Result<BTreeMap<String, u32>, MetadataError>;

    /// Sets `function`'s own scaling settings.
    fn put_scaling(
        &self,
        function: &FunctionName,
        scaling: &ScalingConfig,
    ) -> Result<(), MetadataError>;

    /// Removes `function`'s own scaling settings; true if it had some.
    fn delete_scaling(&self, function: &FunctionName) -> Result<bool, MetadataError>;

    /// Every function's own scaling settings.
    fn scaling(&self) -> Result<BTreeMap<String, ScalingConfig>, MetadataError>;

    /// Sets the provisioned concurrency of `function:qualifier` (a version or an alias).
    fn put_provisioned(
        &self,
        function: &FunctionName,
        qualifier: &str,
        requested: u32,
        updated_ms: i64,
    ) -> Result<(), MetadataError>;

    /// Removes a provisioned concurrency configuration; true if there was one.
    fn delete_provisioned(
        &self,
        function: &FunctionName,
        qualifier: &str,
    ) -> Result<bool, MetadataError>;

    /// Provisioned concurrency configurations: (function, qualifier, requested, updated ms),
    /// of one function or all.
    fn provisioned(
        &self,
        function: Option<&FunctionName>,
    ) -> Result<Vec<(String, String, u32, i64)>, MetadataError>;

    /// Stores a scheduled change of provisioned concurrency (replacing one of the same name).
    fn put_provisioned_schedule(&self, row: &ProvisionedScheduleRow) -> Result<(), MetadataError>;

    /// Removes a scheduled change; true if there was one.
    fn delete_provisioned_schedule(
        &self,
        function: &FunctionName,
        name: &str,
    ) -> Result<bool, MetadataError>;

    /// Removes the scheduled changes of `function:qualifier` (its alias was deleted).
    fn delete_provisioned_schedules_of(
        &self,
        function: &FunctionName,
        qualifier: &str,
    ) -> Result<usize, MetadataError>;

    /// Scheduled changes of provisioned concurrency, of one function or all.
    fn provisioned_schedules(
        &self,
        function: Option<&FunctionName>,
    ) -> Result<Vec<ProvisionedScheduleRow>, MetadataError>;

    /// Stores a function URL configuration; `replace` says whether one may exist already (an
    /// update) or must not (a create).
    fn put_url(&self, url: &FunctionUrlConfig, replace: bool) -> Result<(), MetadataError>;

    /// One function URL configuration.
    fn url(
        &self,
        function: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<Option<FunctionUrlConfig>, MetadataError>;

    /// Every function URL configuration.
    fn urls(&self) -> Result<Vec<FunctionUrlConfig>, MetadataError>;

    /// Deletes a function URL configuration; `NoSuchUrl` if there is none.
    fn delete_url(
        &self,
        function: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<(), MetadataError>;

    /// Function count and code size over all versions.
    fn account_usage(&self) -> Result<AccountUsage, MetadataError>;
}

/// Access keys.
pub trait KeyStore {
    /// Stores a key; an existing key with the same id is replaced (so the operator's
    /// `LAMBENT_SECRET_ACCESS_KEY` wins over what an earlier start stored).
    fn put_access_key(&self, key: &AccessKeyRow) -> Result<(), MetadataError>;

    /// Every key, oldest first.
    fn access_keys(&self) -> Result<Vec<AccessKeyRow>, MetadataError>;

    /// Deletes a key; false if there was none.
    fn delete_access_key(&self, id: &str) -> Result<bool, MetadataError>;
}

/// The whole registry store: every trait above, as one object control holds behind an `Arc`.
pub trait MetadataStore:
    FunctionStore + InvocationStore + RoutingStore + KeyStore + Send + Sync + std::fmt::Debug
{
}

impl<T> MetadataStore for T where
    T: FunctionStore + InvocationStore + RoutingStore + KeyStore + Send + Sync + std::fmt::Debug
{
}
