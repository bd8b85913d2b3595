//! Function configuration: the shapes callers send (create, update), the validated runtime type,
//! and the stored record of one version of a function.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::{
    DEFAULT_EPHEMERAL_STORAGE_MB, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, MAX_DESCRIPTION_CHARS,
    MAX_ENVIRONMENT_BYTES, MAX_EPHEMERAL_STORAGE_MB, MAX_HANDLER_CHARS, MAX_MEMORY_MB,
    MAX_ROLE_CHARS, MAX_TIMEOUT_S, MAX_WASM_MEMORY_MB, MIN_EPHEMERAL_STORAGE_MB, MIN_MEMORY_MB,
    MIN_TIMEOUT_S,
};
use crate::name::{FunctionName, Qualifier};

/// Why a function configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// the runtime is not one lambent knows
    #[error(
        "unknown runtime {0:?}; supported runtimes: wasi-http, wasi-cgi, python3 (or python3.9 to python3.13), nodejs (or nodejs18.x, nodejs20.x, nodejs22.x), provided (or provided.al2, provided.al2023)"
    )]
    UnknownRuntime(String),
    /// a zip package without a runtime
    #[error(
        "a zip package needs a runtime; set runtime to python3.12, nodejs20.x or provided.al2023 (or another supported runtime)"
    )]
    RuntimeRequired,
    /// a Python or Node.js function without a handler
    #[error("runtime {0} needs a handler such as app.handler (file app, function handler)")]
    HandlerRequired(Runtime),
    /// a handler that cannot name a function
    #[error(
        "handler {0:?} is invalid; use FILE.FUNCTION (e.g. app.handler), at most 128 characters without spaces"
    )]
    BadHandler(String),
    /// a handler given to a WebAssembly function
    #[error("runtime {0} takes no handler; the component itself is the handler")]
    HandlerNotAllowed(Runtime),
    /// ephemeral storage outside the allowed range
    #[error("ephemeral storage {0} MB is out of range; use 512 to 10240 MB")]
    EphemeralStorageOutOfRange(u32),
    /// a role that cannot be an ARN
    #[error(
        "role {0:?} is invalid; give an ARN such as arn:aws:iam::000000000000:role/NAME (at most 2048 characters, no spaces)"
    )]
    BadRole(String),
    /// network egress asked of a WebAssembly function
    #[error("runtime {0} cannot have network egress; only process runtimes can")]
    EgressNotSupported(Runtime),
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

/// The isolation tier and language family a runtime belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeFamily {
    /// WebAssembly, run by wasmtime.
    Wasm,
    /// Python, run by lambent's bootstrap in a process sandbox.
    Python,
    /// Node.js, run by lambent's bootstrap in a process sandbox.
    Node,
    /// The function's own `bootstrap` executable in a process sandbox.
    Provided,
}

/// How a function's code is run. Each runtime belongs to one isolation tier. Lambda's runtime
/// names are accepted as they are and kept, so a function moved from Lambda keeps its setting;
/// every Python (Node.js) name runs on the host's one Python (Node.js).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    /// A WebAssembly component of the `wasi:http/proxy` world.
    WasiHttp,
    /// A WASI preview1 command module speaking CGI on stdin/stdout.
    WasiCgi,
    /// Python (`python3`, or one of Lambda's `python3.N` names, kept as given).
    Python(PythonName),
    /// Node.js (`nodejs`, or one of Lambda's `nodejsN.x` names, kept as given).
    Node(NodeName),
    /// A `bootstrap` executable (`provided`, `provided.al2`, `provided.al2023`).
    Provided(ProvidedName),
}

/// The Python runtime names lambent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PythonName {
    /// `python3`
    Python3,
    /// `python3.9`
    V39,
    /// `python3.10`
    V310,
    /// `python3.11`
    V311,
    /// `python3.12`
    V312,
    /// `python3.13`
    V313,
}

/// The Node.js runtime names lambent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeName {
    /// `nodejs`
    Nodejs,
    /// `nodejs18.x`
    V18,
    /// `nodejs20.x`
    V20,
    /// `nodejs22.x`
    V22,
}

/// The custom-runtime names lambent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProvidedName {
    /// `provided`
    Provided,
    /// `provided.al2`
    Al2,
    /// `provided.al2023`
    Al2023,
}

impl Runtime {
    /// Every runtime, in the order they are documented.
    pub const ALL: [Runtime; 15] = [
        Runtime::WasiHttp,
        Runtime::WasiCgi,
        Runtime::Python(PythonName::Python3),
        Runtime::Python(PythonName::V39),
        Runtime::Python(PythonName::V310),
        Runtime::Python(PythonName::V311),
        Runtime::Python(PythonName::V312),
        Runtime::Python(PythonName::V313),
        Runtime::Node(NodeName::Nodejs),
        Runtime::Node(NodeName::V18),
        Runtime::Node(NodeName::V20),
        Runtime::Node(NodeName::V22),
        Runtime::Provided(ProvidedName::Provided),
        Runtime::Provided(ProvidedName::Al2),
        Runtime::Provided(ProvidedName::Al2023),
    ];

    /// The name used in the API, the CLI and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::WasiHttp => "wasi-http",
            Runtime::WasiCgi => "wasi-cgi",
            Runtime::Python(p) => match p {
                PythonName::Python3 => "python3",
                PythonName::V39 => "python3.9",
                PythonName::V310 => "python3.10",
                PythonName::V311 => "python3.11",
                PythonName::V312 => "python3.12",
                PythonName::V313 => "python3.13",
            },
            Runtime::Node(n) => match n {
                NodeName::Nodejs => "nodejs",
                NodeName::V18 => "nodejs18.x",
                NodeName::V20 => "nodejs20.x",
                NodeName::V22 => "nodejs22.x",
            },
            Runtime::Provided(p) => match p {
                ProvidedName::Provided => "provided",
                ProvidedName::Al2 => "provided.al2",
                ProvidedName::Al2023 => "provided.al2023",
            },
        }
    }

    /// The tier and language family.
    pub fn family(self) -> RuntimeFamily {
        match self {
            Runtime::WasiHttp | Runtime::WasiCgi => RuntimeFamily::Wasm,
            Runtime::Python(_) => RuntimeFamily::Python,
            Runtime::Node(_) => RuntimeFamily::Node,
            Runtime::Provided(_) => RuntimeFamily::Provided,
        }
    }

    /// Whether the code is WebAssembly run by the wasm executor.
    pub fn is_wasm(self) -> bool {
        self.family() == RuntimeFamily::Wasm
    }

    /// Whether the runtime needs a `handler` setting (`module.function`).
    pub fn needs_handler(self) -> bool {
        matches!(self.family(), RuntimeFamily::Python | RuntimeFamily::Node)
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
    /// The entry point of a Python or Node.js function, `FILE.FUNCTION` (Lambda's `Handler`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Size of the writable `/tmp` of a process-tier function, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_mb: Option<u32>,
    /// Whether a process-tier function may reach the network (see `docs/sandbox.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
    /// The execution role's ARN (Lambda's `Role`): stored and returned, it grants nothing here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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
    /// The entry point, `FILE.FUNCTION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Size of `/tmp`, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_mb: Option<u32>,
    /// Network egress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
    /// The execution role's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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
    /// The entry point (`FILE.FUNCTION`) of a Python or Node.js function; empty otherwise, or
    /// whatever a `provided` function wants in `_HANDLER`.
    #[serde(default)]
    pub handler: String,
    /// Size of `/tmp` of a process-tier function, in MB.
    #[serde(default = "default_ephemeral_storage_mb")]
    pub ephemeral_storage_mb: u32,
    /// Whether a process-tier function shares the host's network (otherwise it has loopback only).
    #[serde(default)]
    pub egress: bool,
    /// The execution role's ARN, kept for Lambda clients; empty when none was given.
    #[serde(default)]
    pub role: String,
}

fn default_ephemeral_storage_mb() -> u32 {
    DEFAULT_EPHEMERAL_STORAGE_MB
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
            handler: create.handler.clone().unwrap_or_default(),
            ephemeral_storage_mb: create
                .ephemeral_storage_mb
                .unwrap_or(DEFAULT_EPHEMERAL_STORAGE_MB),
            egress: create.egress.unwrap_or(false),
            role: create.role.clone().unwrap_or_default(),
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
            handler: update
                .handler
                .clone()
                .unwrap_or_else(|| self.handler.clone()),
            ephemeral_storage_mb: update
                .ephemeral_storage_mb
                .unwrap_or(self.ephemeral_storage_mb),
            egress: update.egress.unwrap_or(self.egress),
            role: update.role.clone().unwrap_or_else(|| self.role.clone()),
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
        if self.role.len() > MAX_ROLE_CHARS || self.role.chars().any(char::is_whitespace) {
            return Err(ConfigError::BadRole(self.role.clone()));
        }
        let description_chars = self.description.chars().count();
        if description_chars > MAX_DESCRIPTION_CHARS {
            return Err(ConfigError::DescriptionTooLong(description_chars));
        }
        self.validate_process_settings()
    }

    fn validate_process_settings(&self) -> Result<(), ConfigError> {
        let runtime = self.runtime;
        let handler = self.handler.as_str();
        let bad_handler = || ConfigError::BadHandler(handler.to_owned());
        if handler.chars().count() > MAX_HANDLER_CHARS || handler.chars().any(char::is_whitespace) {
            return Err(bad_handler());
        }
        if runtime.needs_handler() {
            if handler.is_empty() {
                return Err(ConfigError::HandlerRequired(runtime));
            }
            // FILE.FUNCTION where FILE may contain '/' (a subdirectory) and dots of its own.
            let (file, function) = handler.rsplit_once('.').ok_or_else(bad_handler)?;
            if file.is_empty()
                || function.is_empty()
                || file.starts_with('/')
                || file.split('/').any(|part| part == ".." || part.is_empty())
            {
                return Err(bad_handler());
            }
        } else if runtime.is_wasm() && !handler.is_empty() {
            return Err(ConfigError::HandlerNotAllowed(runtime));
        }
        if !(MIN_EPHEMERAL_STORAGE_MB..=MAX_EPHEMERAL_STORAGE_MB)
            .contains(&self.ephemeral_storage_mb)
        {
            return Err(ConfigError::EphemeralStorageOutOfRange(
                self.ephemeral_storage_mb,
            ));
        }
        if runtime.is_wasm() && self.egress {
            return Err(ConfigError::EgressNotSupported(runtime));
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
        assert_eq!(
            "python3.12".parse::<Runtime>(),
            Ok(Runtime::Python(PythonName::V312))
        );
        assert_eq!(
            "provided.al2023".parse::<Runtime>().map(Runtime::family),
            Ok(RuntimeFamily::Provided)
        );
        for r in Runtime::ALL {
            assert_eq!(r.as_str().parse::<Runtime>(), Ok(r));
        }
    }

    #[test]
    fn process_settings_are_checked() {
        let python = Runtime::Python(PythonName::Python3);
        assert_eq!(
            FunctionConfig::from_create(&create(), python),
            Err(ConfigError::HandlerRequired(python))
        );
        let mut c = create();
        for bad in [
            "app",
            "app.",
            ".handler",
            "../x.handler",
            "a b.handler",
            "/abs.h",
        ] {
            c.handler = Some(bad.into());
            assert_eq!(
                FunctionConfig::from_create(&c, python),
                Err(ConfigError::BadHandler(bad.into())),
                "{bad}"
            );
        }
        c.handler = Some("pkg/app.module.handler".into());
        let ok = FunctionConfig::from_create(&c, python).expect("valid");
        assert_eq!(ok.ephemeral_storage_mb, 512);
        assert!(!ok.egress);
        assert!(matches!(
            FunctionConfig::from_create(&c, Runtime::WasiHttp),
            Err(ConfigError::HandlerNotAllowed(_))
        ));
        c.ephemeral_storage_mb = Some(100);
        assert!(matches!(
            FunctionConfig::from_create(&c, python),
            Err(ConfigError::EphemeralStorageOutOfRange(100))
        ));
        let provided = FunctionConfig::from_create(
            &FunctionCreate {
                egress: Some(true),
                ..create()
            },
            Runtime::Provided(ProvidedName::Al2023),
        )
        .expect("provided needs no handler");
        assert!(provided.egress);
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
