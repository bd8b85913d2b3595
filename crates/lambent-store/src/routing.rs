//! Aliases, reserved concurrency, function URL configurations and access keys: the rows beside
//! the function versions, in the same SQLite file and under the same rules (one transaction per
//! change).

use std::collections::BTreeMap;

use std::time::Duration;

use lambent_core::{
    Alias, AliasName, FunctionName, FunctionUrlConfig, KeepAliveSetting, KeyRole, Qualifier,
    ScalingConfig, UrlAuthType,
};
use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::metadata::{
    MetadataError, SqliteMetadataStore, check_revision, is_unique_violation, version_number,
};
use crate::registry::{KeyStore, RoutingStore};

/// A stored access key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// The access key id.
    pub id: String,
    /// The secret (needed in clear to check SigV4 signatures).
    pub secret: String,
    /// Free text.
    pub description: String,
    /// RFC 3339.
    pub created: String,
    /// What the key may do (the key made or given at first start is an admin key).
    pub role: KeyRole,
}

/// What the account holds, for `GetAccountSettings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountUsage {
    /// Functions.
    pub function_count: u64,
    /// Bytes of code over all versions (Lambda counts each version).
    pub total_code_size: u64,
}

fn qualifier_of(function: &str, n: i64) -> Result<Qualifier, MetadataError> {
    match n {
        0 => Ok(Qualifier::Latest),
        n => u32::try_from(n)
            .map(Qualifier::Version)
            .map_err(|_| MetadataError::Corrupt {
                name: function.to_owned(),
                what: format!("version {n} out of range"),
            }),
    }
}

fn row_to_alias(row: &Row<'_>) -> rusqlite::Result<Result<Alias, MetadataError>> {
    let function: String = row.get(0)?;
    let name: String = row.get(1)?;
    let version: i64 = row.get(2)?;
    let description: String = row.get(3)?;
    let weights: String = row.get(4)?;
    let revision_id: String = row.get(5)?;
    let corrupt = |what: String| MetadataError::Corrupt {
        name: function.clone(),
        what,
    };
    Ok((|| {
        let raw: BTreeMap<String, f64> =
            serde_json::from_str(&weights).map_err(|e| corrupt(e.to_string()))?;
        Ok(Alias {
            function: FunctionName::new(&function).map_err(|e| corrupt(e.to_string()))?,
            name: AliasName::new(&name).map_err(|e| corrupt(e.to_string()))?,
            version: qualifier_of(&function, version)?,
            description,
            additional_weights: lambent_core::alias::parse_weights(&raw)
                .map_err(|e| corrupt(e.to_string()))?,
            revision_id,
        })
    })())
}

fn row_to_url(row: &Row<'_>) -> rusqlite::Result<Result<FunctionUrlConfig, MetadataError>> {
    let function: String = row.get(0)?;
    let alias: String = row.get(1)?;
    let auth: String = row.get(2)?;
    let cors: Option<String> = row.get(3)?;
    let created: String = row.get(4)?;
    let last_modified: String = row.get(5)?;
    let corrupt = |what: String| MetadataError::Corrupt {
        name: function.clone(),
        what,
    };
    Ok((|| {
        Ok(FunctionUrlConfig {
            function: FunctionName::new(&function).map_err(|e| corrupt(e.to_string()))?,
            alias: if alias.is_empty() {
                None
            } else {
                Some(AliasName::new(&alias).map_err(|e| corrupt(e.to_string()))?)
            },
            auth_type: auth
                .parse::<UrlAuthType>()
                .map_err(|e| corrupt(e.to_string()))?,
            cors: cors
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            created,
            last_modified,
        })
    })())
}

fn weights_json(alias: &Alias) -> String {
    let raw: BTreeMap<String, f64> = alias
        .additional_weights
        .iter()
        .map(|(v, w)| (v.to_string(), *w))
        .collect();
    serde_json::to_string(&raw).unwrap_or_else(|_| "{}".into())
}

fn function_exists(tx: &Transaction<'_>, function: &FunctionName) -> Result<(), MetadataError> {
    let n: i64 = tx.query_row(
        "SELECT COUNT(*) FROM function_versions WHERE name = ?1 AND version = 0",
        [function.as_str()],
        |r| r.get(0),
    )?;
    if n == 0 {
        return Err(MetadataError::NoSuchFunction(function.to_string()));
    }
    Ok(())
}

/// Checks that every version the alias routes to exists.
fn alias_versions_exist(tx: &Transaction<'_>, alias: &Alias) -> Result<(), MetadataError> {
    function_exists(tx, &alias.function)?;
    let versions = std::iter::once(alias.version).chain(
        alias
            .additional_weights
            .keys()
            .map(|v| Qualifier::Version(*v)),
    );
    for q in versions {
        let n: i64 = tx.query_row(
            "SELECT COUNT(*) FROM function_versions WHERE name = ?1 AND version = ?2",
            params![alias.function.as_str(), version_number(q)],
            |r| r.get(0),
        )?;
        if n == 0 {
            return Err(MetadataError::NoSuchVersion {
                function: alias.function.to_string(),
                version: q.to_string(),
            });
        }
    }
    Ok(())
}

const ALIAS_COLUMNS: &str = "function, name, version, description, weights, revision_id";
const URL_COLUMNS: &str = "function, alias, auth_type, cors, created, last_modified";

/// A scheduled change of a function's provisioned concurrency: at each firing of `expression`,
/// `qualifier` gets `provisioned` instances (0 removes its configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedScheduleRow {
    /// The function.
    pub function: String,
    /// The schedule's name, unique per function.
    pub name: String,
    /// A published version or an alias.
    pub qualifier: String,
    /// `cron(...)`.
    pub expression: String,
    /// Instances from the firing on.
    pub provisioned: u32,
}

impl RoutingStore for SqliteMetadataStore {
    fn create_alias(&self, alias: &Alias) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        alias_versions_exist(&tx, alias)?;
        let inserted = tx.execute(
            &format!("INSERT INTO aliases ({ALIAS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![
                alias.function.as_str(),
                alias.name.as_str(),
                version_number(alias.version),
                alias.description,
                weights_json(alias),
                alias.revision_id,
            ],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(MetadataError::AliasExists {
                    function: alias.function.to_string(),
                    alias: alias.name.to_string(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit()?;
        Ok(())
    }

    fn update_alias_if_revision(
        &self,
        alias: &Alias,
        revision: Option<&str>,
    ) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        if revision.is_some() {
            let current: Option<String> = tx
                .query_row(
                    "SELECT revision_id FROM aliases WHERE function = ?1 AND name = ?2",
                    params![alias.function.as_str(), alias.name.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(current) = current {
                check_revision(alias.function.as_str(), &current, revision)?;
            }
        }
        alias_versions_exist(&tx, alias)?;
        let n = tx.execute(
            "UPDATE aliases SET version = ?3, description = ?4, weights = ?5, revision_id = ?6 \
             WHERE function = ?1 AND name = ?2",
            params![
                alias.function.as_str(),
                alias.name.as_str(),
                version_number(alias.version),
                alias.description,
                weights_json(alias),
                alias.revision_id,
            ],
        )?;
        if n == 0 {
            return Err(MetadataError::NoSuchAlias {
                function: alias.function.to_string(),
                alias: alias.name.to_string(),
            });
        }
        tx.commit()?;
        Ok(())
    }

    fn alias(
        &self,
        function: &FunctionName,
        name: &AliasName,
    ) -> Result<Option<Alias>, MetadataError> {
        let conn = self.conn.lock();
        conn.query_row(
            &format!("SELECT {ALIAS_COLUMNS} FROM aliases WHERE function = ?1 AND name = ?2"),
            params![function.as_str(), name.as_str()],
            row_to_alias,
        )
        .optional()?
        .transpose()
    }

    fn aliases(&self, function: &FunctionName) -> Result<Vec<Alias>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {ALIAS_COLUMNS} FROM aliases WHERE function = ?1 ORDER BY name"
        ))?;
        let rows = stmt.query_map([function.as_str()], row_to_alias)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    fn delete_alias(&self, function: &FunctionName, name: &AliasName) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
            params![function.as_str(), name.as_str()],
        )?;
        if n == 0 {
            return Err(MetadataError::NoSuchAlias {
                function: function.to_string(),
                alias: name.to_string(),
            });
        }
        tx.execute(
            "DELETE FROM function_urls WHERE function = ?1 AND alias = ?2",
            params![function.as_str(), name.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_version(
        &self,
        function: &FunctionName,
        version: u32,
    ) -> Result<String, MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        let mut stmt = tx.prepare(&format!(
            "SELECT {ALIAS_COLUMNS} FROM aliases WHERE function = ?1"
        ))?;
        let aliases = stmt
            .query_map([function.as_str()], row_to_alias)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);
        for alias in aliases {
            let alias = alias?;
            if alias.version == Qualifier::Version(version)
                || alias.additional_weights.contains_key(&version)
            {
                return Err(MetadataError::VersionInUse {
                    function: function.to_string(),
                    version,
                    alias: alias.name.to_string(),
                });
            }
        }
        let sha: Option<String> = tx
            .query_row(
                "SELECT code_sha256 FROM function_versions WHERE name = ?1 AND version = ?2",
                params![function.as_str(), i64::from(version)],
                |r| r.get(0),
            )
            .optional()?;
        let sha = sha.ok_or_else(|| MetadataError::NoSuchVersion {
            function: function.to_string(),
            version: version.to_string(),
        })?;
        tx.execute(
            "DELETE FROM function_versions WHERE name = ?1 AND version = ?2",
            params![function.as_str(), i64::from(version)],
        )?;
        tx.execute(
            "DELETE FROM function_provisioned WHERE function = ?1 AND qualifier = ?2",
            params![function.as_str(), version.to_string()],
        )?;
        tx.commit()?;
        Ok(sha)
    }

    // ----- reserved concurrency ---------------------------------------------------------

    fn put_reserved_concurrency(
        &self,
        function: &FunctionName,
        reserved: u32,
    ) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        tx.execute(
            "INSERT OR REPLACE INTO function_concurrency (function, reserved) VALUES (?1, ?2)",
            params![function.as_str(), reserved],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_reserved_concurrency(&self, function: &FunctionName) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM function_concurrency WHERE function = ?1",
            [function.as_str()],
        )? > 0)
    }

    fn reserved_concurrency(&self) -> Result<BTreeMap<String, u32>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached("SELECT function, reserved FROM function_concurrency")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ----- admission queueing -----------------------------------------------------------

    fn put_admission_wait(
        &self,
        function: &FunctionName,
        max_wait_ms: u32,
    ) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        tx.execute(
            "INSERT OR REPLACE INTO function_admission (function, max_wait_ms) VALUES (?1, ?2)",
            params![function.as_str(), max_wait_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_admission_wait(&self, function: &FunctionName) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM function_admission WHERE function = ?1",
            [function.as_str()],
        )? > 0)
    }

    fn admission_waits(&self) -> Result<BTreeMap<String, u32>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt =
            conn.prepare_cached("SELECT function, max_wait_ms FROM function_admission")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ----- scaling settings ---------------------------------------------------------------

    fn put_scaling(
        &self,
        function: &FunctionName,
        scaling: &ScalingConfig,
    ) -> Result<(), MetadataError> {
        let (policy, seconds) = match scaling.keep_alive {
            None => (None, None),
            Some(KeepAliveSetting::Adaptive) => (Some("adaptive"), None),
            Some(KeepAliveSetting::Fixed(d)) => (Some("fixed"), Some(d.as_secs())),
        };
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        tx.execute(
            "INSERT OR REPLACE INTO function_scaling (function, instance_concurrency, keep_alive, keep_alive_s) VALUES (?1, ?2, ?3, ?4)",
            params![function.as_str(), scaling.instance_concurrency, policy, seconds],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_scaling(&self, function: &FunctionName) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM function_scaling WHERE function = ?1",
            [function.as_str()],
        )? > 0)
    }

    fn scaling(&self) -> Result<BTreeMap<String, ScalingConfig>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT function, instance_concurrency, keep_alive, keep_alive_s FROM function_scaling",
        )?;
        let rows = stmt.query_map([], |r| {
            let keep_alive = match (
                r.get::<_, Option<String>>(2)?.as_deref(),
                r.get::<_, Option<u64>>(3)?,
            ) {
                (Some("adaptive"), _) => Some(KeepAliveSetting::Adaptive),
                (Some("fixed"), Some(s)) => Some(KeepAliveSetting::Fixed(Duration::from_secs(s))),
                _ => None,
            };
            Ok((
                r.get::<_, String>(0)?,
                ScalingConfig {
                    instance_concurrency: r.get(1)?,
                    keep_alive,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ----- provisioned concurrency ------------------------------------------------------

    fn put_provisioned(
        &self,
        function: &FunctionName,
        qualifier: &str,
        requested: u32,
        updated_ms: i64,
    ) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, function)?;
        tx.execute(
            "INSERT OR REPLACE INTO function_provisioned (function, qualifier, requested, updated_ms) \
             VALUES (?1, ?2, ?3, ?4)",
            params![function.as_str(), qualifier, requested, updated_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_provisioned(
        &self,
        function: &FunctionName,
        qualifier: &str,
    ) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM function_provisioned WHERE function = ?1 AND qualifier = ?2",
            params![function.as_str(), qualifier],
        )? > 0)
    }

    fn provisioned(
        &self,
        function: Option<&FunctionName>,
    ) -> Result<Vec<(String, String, u32, i64)>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT function, qualifier, requested, updated_ms FROM function_provisioned \
             WHERE (?1 IS NULL OR function = ?1) ORDER BY function, qualifier",
        )?;
        let rows = stmt.query_map([function.map(FunctionName::as_str)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn put_provisioned_schedule(&self, row: &ProvisionedScheduleRow) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        let function = FunctionName::new(&row.function)
            .map_err(|e| MetadataError::NoSuchFunction(e.to_string()))?;
        function_exists(&tx, &function)?;
        tx.execute(
            "INSERT OR REPLACE INTO provisioned_schedules (function, name, qualifier, expression, provisioned) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.function, row.name, row.qualifier, row.expression, row.provisioned],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_provisioned_schedule(
        &self,
        function: &FunctionName,
        name: &str,
    ) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM provisioned_schedules WHERE function = ?1 AND name = ?2",
            params![function.as_str(), name],
        )? > 0)
    }

    fn delete_provisioned_schedules_of(
        &self,
        function: &FunctionName,
        qualifier: &str,
    ) -> Result<usize, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute(
            "DELETE FROM provisioned_schedules WHERE function = ?1 AND qualifier = ?2",
            params![function.as_str(), qualifier],
        )?)
    }

    fn provisioned_schedules(
        &self,
        function: Option<&FunctionName>,
    ) -> Result<Vec<ProvisionedScheduleRow>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT function, name, qualifier, expression, provisioned FROM provisioned_schedules \
             WHERE (?1 IS NULL OR function = ?1) ORDER BY function, name",
        )?;
        let rows = stmt.query_map([function.map(FunctionName::as_str)], |r| {
            Ok(ProvisionedScheduleRow {
                function: r.get(0)?,
                name: r.get(1)?,
                qualifier: r.get(2)?,
                expression: r.get(3)?,
                provisioned: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ----- function URLs ----------------------------------------------------------------

    fn put_url(&self, url: &FunctionUrlConfig, replace: bool) -> Result<(), MetadataError> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction()?;
        function_exists(&tx, &url.function)?;
        let alias = url.alias.as_ref().map_or("", AliasName::as_str);
        if let Some(a) = &url.alias {
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM aliases WHERE function = ?1 AND name = ?2",
                params![url.function.as_str(), a.as_str()],
                |r| r.get(0),
            )?;
            if n == 0 {
                return Err(MetadataError::NoSuchAlias {
                    function: url.function.to_string(),
                    alias: a.to_string(),
                });
            }
        }
        let cors = url.cors.as_ref().map(ToString::to_string);
        let function = url.function.as_str();
        let auth = url.auth_type.as_str();
        if replace {
            let n = tx.execute(
                "UPDATE function_urls SET auth_type = ?3, cors = ?4, last_modified = ?5 \
                 WHERE function = ?1 AND alias = ?2",
                params![function, alias, auth, cors, url.last_modified],
            )?;
            if n == 0 {
                return Err(MetadataError::NoSuchUrl(url.function.to_string()));
            }
        } else {
            let inserted = tx.execute(
                &format!(
                    "INSERT INTO function_urls ({URL_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![function, alias, auth, cors, url.created, url.last_modified],
            );
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(MetadataError::UrlExists(url.function.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn url(
        &self,
        function: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<Option<FunctionUrlConfig>, MetadataError> {
        let conn = self.conn.lock();
        conn.query_row(
            &format!("SELECT {URL_COLUMNS} FROM function_urls WHERE function = ?1 AND alias = ?2"),
            params![function.as_str(), alias.map_or("", AliasName::as_str)],
            row_to_url,
        )
        .optional()?
        .transpose()
    }

    fn urls(&self) -> Result<Vec<FunctionUrlConfig>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!("SELECT {URL_COLUMNS} FROM function_urls"))?;
        let rows = stmt.query_map([], row_to_url)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    fn delete_url(
        &self,
        function: &FunctionName,
        alias: Option<&AliasName>,
    ) -> Result<(), MetadataError> {
        let conn = self.conn.lock();
        let n = conn.execute(
            "DELETE FROM function_urls WHERE function = ?1 AND alias = ?2",
            params![function.as_str(), alias.map_or("", AliasName::as_str)],
        )?;
        if n == 0 {
            return Err(MetadataError::NoSuchUrl(function.to_string()));
        }
        Ok(())
    }

    // ----- account ----------------------------------------------------------------------

    fn account_usage(&self) -> Result<AccountUsage, MetadataError> {
        let conn = self.conn.lock();
        let (count, size): (i64, i64) = conn.query_row(
            "SELECT (SELECT COUNT(*) FROM function_versions WHERE version = 0), \
                    (SELECT COALESCE(SUM(code_size), 0) FROM function_versions)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(AccountUsage {
            function_count: u64::try_from(count).unwrap_or(0),
            total_code_size: u64::try_from(size).unwrap_or(0),
        })
    }
}

impl KeyStore for SqliteMetadataStore {
    fn put_access_key(&self, key: &AccessKeyRow) -> Result<(), MetadataError> {
        let conn = self.conn.lock();
        conn.execute(
            "INSERT OR REPLACE INTO access_keys (id, secret, description, created, admin, role) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.id,
                key.secret,
                key.description,
                key.created,
                key.role == KeyRole::Admin,
                key.role.as_str()
            ],
        )?;
        Ok(())
    }

    fn access_keys(&self) -> Result<Vec<AccessKeyRow>, MetadataError> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, secret, description, created, role FROM access_keys ORDER BY created, id",
        )?;
        let rows = stmt.query_map([], |r| {
            let role: String = r.get(4)?;
            let role = role.parse::<KeyRole>().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, e.into())
            })?;
            Ok(AccessKeyRow {
                id: r.get(0)?,
                secret: r.get(1)?,
                description: r.get(2)?,
                created: r.get(3)?,
                role,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn delete_access_key(&self, id: &str) -> Result<bool, MetadataError> {
        let conn = self.conn.lock();
        Ok(conn.execute("DELETE FROM access_keys WHERE id = ?1", [id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::tests::{publish, version};
    use crate::registry::FunctionStore;

    /// Keys stored by a lambent from before roles keep working: the admin key is `admin`, the
    /// others `deploy`.
    #[test]
    fn keys_from_before_roles_get_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        {
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE access_keys (id TEXT PRIMARY KEY, secret TEXT NOT NULL, \
                 description TEXT NOT NULL, created TEXT NOT NULL, admin INTEGER NOT NULL) \
                 WITHOUT ROWID; \
                 INSERT INTO access_keys VALUES ('LKADMIN', 'a', '', '1', 1); \
                 INSERT INTO access_keys VALUES ('LKOTHER', 'b', '', '2', 0);",
            )
            .expect("old schema");
        }
        let s = SqliteMetadataStore::open(&path).expect("open old database");
        let roles: Vec<(String, KeyRole)> = s
            .access_keys()
            .expect("keys")
            .into_iter()
            .map(|k| (k.id, k.role))
            .collect();
        assert_eq!(
            roles,
            [
                ("LKADMIN".to_owned(), KeyRole::Admin),
                ("LKOTHER".to_owned(), KeyRole::Deploy)
            ]
        );
        // New keys store their role, and a reopen changes nothing.
        s.put_access_key(&AccessKeyRow {
            id: "LKINVOKE".into(),
            secret: "c".into(),
            description: String::new(),
            created: "3".into(),
            role: KeyRole::Invoke,
        })
        .expect("put");
        drop(s);
        let s = SqliteMetadataStore::open(&path).expect("reopen");
        let roles: Vec<KeyRole> = s
            .access_keys()
            .expect("keys")
            .into_iter()
            .map(|k| k.role)
            .collect();
        assert_eq!(roles, [KeyRole::Admin, KeyRole::Deploy, KeyRole::Invoke]);
    }

    fn store() -> (tempfile::TempDir, SqliteMetadataStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SqliteMetadataStore::open(&dir.path().join("m.db")).expect("open");
        (dir, s)
    }

    fn alias(version: Qualifier, weights: &[(u32, f64)]) -> Alias {
        Alias {
            function: FunctionName::new("f").expect("name"),
            name: AliasName::new("live").expect("alias"),
            version,
            description: "d".into(),
            additional_weights: weights.iter().copied().collect(),
            revision_id: "r".into(),
        }
    }

    #[test]
    fn aliases_point_at_existing_versions_and_pin_them() {
        let (_d, s) = store();
        s.create(&version("f", "aa")).expect("create");
        let name = FunctionName::new("f").expect("name");
        assert!(matches!(
            s.create_alias(&alias(Qualifier::Version(1), &[])),
            Err(MetadataError::NoSuchVersion { .. })
        ));
        publish(&s, &name, None, "r1").expect("v1");
        s.replace_latest_if_revision(&version("f", "bb"), None)
            .expect("latest");
        publish(&s, &name, None, "r2").expect("v2");
        let a = alias(Qualifier::Version(1), &[(2, 0.25)]);
        s.create_alias(&a).expect("alias");
        assert!(matches!(
            s.create_alias(&a),
            Err(MetadataError::AliasExists { .. })
        ));
        assert_eq!(s.alias(&name, &a.name).expect("get"), Some(a.clone()));
        assert!(matches!(
            s.delete_version(&name, 2),
            Err(MetadataError::VersionInUse { version: 2, .. })
        ));
        let mut moved = alias(Qualifier::Version(2), &[]);
        moved.revision_id = "r-next".into();
        assert!(
            matches!(
                s.update_alias_if_revision(&moved, Some("stale")),
                Err(MetadataError::RevisionMismatch { .. })
            ),
            "a stale revision is refused"
        );
        assert_eq!(s.alias(&name, &a.name).expect("get"), Some(a.clone()));
        s.update_alias_if_revision(&moved, Some("r"))
            .expect("update");
        assert!(matches!(
            s.update_alias_if_revision(&moved, Some("r")),
            Err(MetadataError::RevisionMismatch { .. })
        ));
        assert_eq!(s.delete_version(&name, 1).expect("delete v1"), "aa");
        assert_eq!(s.aliases(&name).expect("list").len(), 1);
        s.delete_alias(&name, &a.name).expect("delete alias");
        assert!(matches!(
            s.delete_alias(&name, &a.name),
            Err(MetadataError::NoSuchAlias { .. })
        ));
    }

    #[test]
    fn urls_concurrency_and_keys_go_with_the_function() {
        let (_d, s) = store();
        s.create(&version("f", "aa")).expect("create");
        let name = FunctionName::new("f").expect("name");
        let url = FunctionUrlConfig {
            function: name.clone(),
            alias: None,
            auth_type: UrlAuthType::None,
            cors: Some(serde_json::json!({"AllowOrigins": ["*"]})),
            created: "t0".into(),
            last_modified: "t0".into(),
        };
        s.put_url(&url, false).expect("create url");
        assert!(matches!(
            s.put_url(&url, false),
            Err(MetadataError::UrlExists(_))
        ));
        let changed = FunctionUrlConfig {
            auth_type: UrlAuthType::AwsIam,
            last_modified: "t1".into(),
            ..url.clone()
        };
        s.put_url(&changed, true).expect("update url");
        assert_eq!(s.url(&name, None).expect("get"), Some(changed));
        s.put_reserved_concurrency(&name, 5).expect("reserve");
        assert_eq!(s.reserved_concurrency().expect("all").get("f"), Some(&5));
        assert_eq!(s.account_usage().expect("usage").function_count, 1);
        s.delete(&name).expect("delete");
        assert!(s.urls().expect("urls").is_empty());
        assert!(s.reserved_concurrency().expect("all").is_empty());
        assert!(matches!(
            s.put_reserved_concurrency(&name, 1),
            Err(MetadataError::NoSuchFunction(_))
        ));
        let key = AccessKeyRow {
            id: "LKA".into(),
            secret: "s".into(),
            description: String::new(),
            created: "t".into(),
            role: KeyRole::Admin,
        };
        s.put_access_key(&key).expect("key");
        assert_eq!(s.access_keys().expect("keys"), vec![key]);
        assert!(s.delete_access_key("LKA").expect("delete"));
        assert!(!s.delete_access_key("LKA").expect("delete again"));
    }
}
