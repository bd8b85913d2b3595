//! `lambent.toml`: a function's manifest, so a directory can be deployed as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// The manifest's file name.
pub const MANIFEST: &str = "lambent.toml";

/// A function's manifest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Runtime (wasi-http, wasi-cgi, python3.12, nodejs20.x, provided.al2023...); detected from
    /// .wasm code when absent.
    pub runtime: Option<String>,
    /// The code: a .wasm or .zip file, or a directory to zip, relative to the manifest (default:
    /// the manifest's directory).
    #[serde(default)]
    pub code: PathBuf,
    /// Entry point of a Python or Node.js function (FILE.FUNCTION).
    pub handler: Option<String>,
    /// Size of /tmp in MB.
    pub ephemeral_storage: Option<u32>,
    /// Network egress.
    pub egress: Option<bool>,
    /// Memory in MB.
    pub memory: Option<u32>,
    /// Timeout in seconds.
    pub timeout: Option<u32>,
    /// Free text.
    pub description: Option<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Reads `dir/lambent.toml`; the code path comes back joined to `dir`.
pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is a directory without a readable {MANIFEST}",
            dir.display()
        )
    })?;
    let mut manifest: Manifest =
        toml::from_str(&text).with_context(|| format!("invalid manifest {}", path.display()))?;
    manifest.code = if manifest.code.as_os_str().is_empty() {
        dir.to_owned()
    } else {
        dir.join(&manifest.code)
    };
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_manifest_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(MANIFEST),
            "runtime = \"wasi-http\"\ncode = \"x.wasm\"\nmemory = 256\n[env]\nA = \"1\"\n",
        )
        .expect("write");
        let m = load(dir.path()).expect("valid");
        assert_eq!(m.memory, Some(256));
        assert_eq!(m.code, dir.path().join("x.wasm"));
        assert_eq!(m.env["A"], "1");
        std::fs::write(dir.path().join(MANIFEST), "code = \"x.wasm\"\nmemroy = 1\n")
            .expect("write");
        let err = load(dir.path()).expect_err("typo");
        assert!(format!("{err:#}").contains("memroy"), "{err:#}");
    }
}
