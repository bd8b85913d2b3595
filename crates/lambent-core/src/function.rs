//! Function configuration: the shapes callers send (create, update), the validated runtime type,
//! and the stored record of one version of a function.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::{
    DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, MAX_DESCRIPTION_CHARS, MAX_ENVIRONMENT_BYTES,
    MAX_MEMORY_MB, MAX_TIMEOUT_S, MAX_WASM_MEMORY_MB, MIN_MEMORY_MB, MIN_TIMEOUT_S,
};
use crate::name::{FunctionName, Qualifier};

/// Why a function configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// the runtime is not one lambent knows
    #[error("unknown runtime {0:?}; supported runtimes: wasi-http, wasi-cgi")]
    UnknownRuntime(String),
    /// memory outside the allowed range
    #[error("memory {got} MB is out of range; use {min} to {max} MB for runtime {runtime}")]
    MemoryOutOfRange {
        /// what was asked for
        got: u32,
        /// the smallest allowed
        min: u32,
        /// the largest allowed for this runtime
        max: u32,
        /// the runtime the range applies to
        runtime: Runtime,
    },
    /// timeout outside the allowed range
    #[error("timeout {0} s is out of range; use 1 to 900 seconds")]
    TimeoutOutOfRange(u32),
    /// an environment variable name that is not allowed
    #[error(
        "environment variable name {0:?} is invalid; start with a letter and use letters, digits and '_'"
    )]
    BadEnvironmentKey(String),
    /// environment variables too large
    #[error("environment variables take {0} bytes; the limit is 4096 bytes of keys and values")]
    EnvironmentTooLarge(usize),
    /// description too long
    #[error("description has {0} characters; the limit is 256")]
    DescriptionTooLong(usize),
}

/// How a function's code is run. Each runtime belongs to one isolation tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// A WebAssembly component of the `wasi:http/proxy` world.
    WasiHttp,
    /// A WASI preview1 command module speaking CGI on stdin/stdout.
    WasiCgi,
}

impl Runtime {
    /// Every runtime, in the order they are documented.
    pub const ALL: [Runtime; 2] = [Runtime::WasiHttp, Runtime::WasiCgi];

    /// The name used in the API, the CLI and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::WasiHttp => "wasi-http",
            Runtime::WasiCgi => "wasi-cgi",
        }
    }

    /// Whether the code is WebAssembly run by the wasm executor.
    pub fn is_wasm(self) -> bool {
        matches!(self, Runtime::WasiHttp | Runtime::WasiCgi)
    }

    /// The largest memory setting this runtime can honour, in MB.
    pub fn max_memory_mb(self) -> u32 {
        if self.is_wasm() {
            MAX_WASM_MEMORY_MB
        } else {
            MAX_MEMORY_MB
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Runtime {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Runtime::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ConfigError::UnknownRuntime(s.to_owned()))
    }
}

impl Serialize for Runtime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Runtime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a caller sends to create a function (or to deploy one by name). The code travels
/// separately (multipart part or raw body) or base64-encoded in `code`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionCreate {
    /// The function's name; required by `POST /v1/functions`, taken from the path otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FunctionName>,
    /// The runtime as a string (checked later, so the error names the supported ones); detected
    /// from the code when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Environment variables given to every invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The code, base64-encoded, for callers that send one JSON document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What a caller sends to change a function's configuration; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionUpdate {
    /// Memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Replaces all environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<BTreeMap<String, String>>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A function's validated configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// How the code runs.
    pub runtime: Runtime,
    /// Memory limit in MB.
    pub memory_mb: u32,
    /// Timeout in seconds.
    pub timeout_s: u32,
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Free text.
    pub description: String,
}

impl FunctionConfig {
    /// Builds a configuration from a create request, with `runtime` already decided (given or
    /// detected from the code).
    pub fn from_create(create: &FunctionCreate, runtime: Runtime) -> Result<Self, ConfigError> {
        let config = FunctionConfig {
            runtime,
            memory_mb: create.memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            timeout_s: create.timeout_s.unwrap_or(DEFAULT_TIMEOUT_S),
            environment: create.environment.clone().unwrap_or_default(),
            description: create.description.clone().unwrap_or_default(),
        };
        config.validate()?;
        Ok(config)
    }

    /// This configuration with `update` applied, validated.
    pub fn updated(&self, update: &FunctionUpdate) -> Result<Self, ConfigError> {
        let config = FunctionConfig {
            runtime: self.runtime,
            memory_mb: update.memory_mb.unwrap_or(self.memory_mb),
            timeout_s: update.timeout_s.unwrap_or(self.timeout_s),
            environment: update
                .environment
                .clone()
                .unwrap_or_else(|| self.environment.clone()),
            description: update
                .description
                .clone()
                .unwrap_or_else(|| self.description.clone()),
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks every setting against its limit.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.runtime.max_memory_mb();
        if !(MIN_MEMORY_MB..=max).contains(&self.memory_mb) {
            return Err(ConfigError::MemoryOutOfRange {
                got: self.memory_mb,
                min: MIN_MEMORY_MB,
                max,
                runtime: self.runtime,
            });
        }
        if !(MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&self.timeout_s) {
            return Err(ConfigError::TimeoutOutOfRange(self.timeout_s));
        }
        let mut env_bytes = 0;
        for (key, value) in &self.environment {
            let mut chars = key.chars();
            let starts_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
            if !starts_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConfigError::BadEnvironmentKey(key.clone()));
            }
            env_bytes += key.len() + value.len();
        }
        if env_bytes > MAX_ENVIRONMENT_BYTES {
            return Err(ConfigError::EnvironmentTooLarge(env_bytes));
        }
        let description_chars = self.description.chars().count();
        if description_chars > MAX_DESCRIPTION_CHARS {
            return Err(ConfigError::DescriptionTooLong(description_chars));
        }
        Ok(())
    }
}

/// One version of a function as stored: `$LATEST` or a published number, its configuration and
/// the content address of its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionVersion {
    /// The function.
    pub name: FunctionName,
    /// Which version this is.
    pub version: Qualifier,
    /// Its configuration.
    #[serde(flatten)]
    pub config: FunctionConfig,
    /// sha256 of the code, hex.
    pub code_sha256: String,
    /// Size of the code in bytes.
    pub code_size: u64,
    /// When this version was created or `$LATEST` last changed, RFC 3339.
    pub last_modified: String,
    /// Changes on every update of `$LATEST`; lets caches tell stale entries apart.
    pub revision_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create() -> FunctionCreate {
        FunctionCreate::default()
    }

    #[test]
    fn defaults_are_lambdas() {
        let c = FunctionConfig::from_create(&create(), Runtime::WasiHttp).expect("valid");
        assert_eq!((c.memory_mb, c.timeout_s), (128, 3));
    }

    #[test]
    fn limits_are_enforced_per_runtime() {
        let mut c = create();
        c.memory_mb = Some(64);
        assert!(matches!(
            FunctionConfig::from_create(&c, Runtime::WasiHttp),
            Err(ConfigError::MemoryOutOfRange { got: 64, .. })
        ));
        c.memory_mb = Some(8192);
        let err = FunctionConfig::from_create(&c, Runtime::WasiCgi).expect_err("too big for wasm");
        assert!(err.to_string().contains("128 to 4096 MB"), "{err}");
        c.memory_mb = None;
        c.timeout_s = Some(901);
        assert_eq!(
            FunctionConfig::from_create(&c, Runtime::WasiHttp),
            Err(ConfigError::TimeoutOutOfRange(901))
        );
        c.timeout_s = Some(0);
        assert!(FunctionConfig::from_create(&c, Runtime::WasiHttp).is_err());
    }

    #[test]
    fn environment_is_checked() {
        let mut c = create();
        c.environment = Some(BTreeMap::from([("1BAD".into(), "x".into())]));
        assert!(matches!(
            FunctionConfig::from_create(&c, Runtime::WasiHttp),
            Err(ConfigError::BadEnvironmentKey(_))
        ));
        c.environment = Some(BTreeMap::from([("BIG".into(), "x".repeat(5000))]));
        assert!(matches!(
            FunctionConfig::from_create(&c, Runtime::WasiHttp),
            Err(ConfigError::EnvironmentTooLarge(_))
        ));
    }

    #[test]
    fn unknown_fields_and_runtimes_are_refused() {
        let err =
            serde_json::from_str::<FunctionCreate>(r#"{"memory":128}"#).expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `memory`"), "{err}");
        assert!("python9".parse::<Runtime>().is_err());
        assert_eq!("wasi-cgi".parse::<Runtime>(), Ok(Runtime::WasiCgi));
    }

    #[test]
    fn update_keeps_what_is_absent() {
        let base = FunctionConfig::from_create(&create(), Runtime::WasiHttp).expect("valid");
        let up = FunctionUpdate {
            timeout_s: Some(10),
            ..Default::default()
        };
        let next = base.updated(&up).expect("valid");
        assert_eq!((next.memory_mb, next.timeout_s), (128, 10));
    }
}
