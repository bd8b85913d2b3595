//! A content-addressed code store on the local filesystem.
//!
//! Each object is named by the sha256 of its uncompressed bytes and stored zstd-compressed at
//! `<root>/<first two hex digits>/<sha256>.zst`. Writes go to a temporary file that is renamed
//! into place, so a crash never leaves a half-written object under its final name, and identical
//! uploads are stored once.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// zstd level for stored code: fast to write, and wasm compresses well even at low levels.
const ZSTD_LEVEL: i32 = 3;

/// Errors of the code store.
#[derive(Debug, thiserror::Error)]
pub enum CodeStoreError {
    /// I/O on the store's directory failed
    #[error("code store I/O on {path}: {source}")]
    Io {
        /// the file or directory involved
        path: PathBuf,
        /// the underlying error
        source: io::Error,
    },
    /// no object with this hash
    #[error("no code object {0}")]
    Missing(String),
    /// the object's content does not hash to its name
    #[error("code object {0} is corrupt: its content does not match its sha256")]
    Corrupt(String),
    /// the name is not a sha256 hex digest
    #[error("{0:?} is not a sha256 hex digest")]
    BadDigest(String),
}

/// The filesystem code store.
#[derive(Debug, Clone)]
pub struct CodeStore {
    root: PathBuf,
}

/// The sha256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl CodeStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, CodeStoreError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|source| CodeStoreError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf, CodeStoreError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CodeStoreError::BadDigest(sha256.to_owned()));
        }
        Ok(self.root.join(&sha256[..2]).join(format!("{sha256}.zst")))
    }

    /// Stores `bytes` and returns their sha256 and whether this call wrote a new object (false
    /// when an identical upload was already stored).
    pub fn put(&self, bytes: &[u8]) -> Result<(String, bool), CodeStoreError> {
        let sha = sha256_hex(bytes);
        let path = self.path_of(&sha)?;
        if path.exists() {
            return Ok((sha, false));
        }
        let io_err = |path: &Path| {
            let path = path.to_owned();
            move |source| CodeStoreError::Io { path, source }
        };
        let dir = path.parent().unwrap_or(&self.root);
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let compressed = zstd::bulk::compress(bytes, ZSTD_LEVEL).map_err(io_err(&path))?;
        let tmp = dir.join(format!(".{sha}.{}.tmp", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(&compressed)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(source) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(CodeStoreError::Io { path, source });
        }
        Ok((sha, true))
    }

    /// Reads the object named `sha256`, checking that its content still hashes to its name.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, CodeStoreError> {
        let path = self.path_of(sha256)?;
        let compressed = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(CodeStoreError::Missing(sha256.to_owned()));
            }
            Err(source) => return Err(CodeStoreError::Io { path, source }),
        };
        let bytes = zstd::stream::decode_all(&compressed[..])
            .map_err(|_| CodeStoreError::Corrupt(sha256.to_owned()))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(CodeStoreError::Corrupt(sha256.to_owned()));
        }
        Ok(bytes)
    }

    /// Whether an object named `sha256` exists.
    pub fn contains(&self, sha256: &str) -> bool {
        self.path_of(sha256).is_ok_and(|p| p.exists())
    }

    /// Removes the object named `sha256`; removing an absent object is not an error.
    pub fn remove(&self, sha256: &str) -> Result<(), CodeStoreError> {
        let path = self.path_of(sha256)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CodeStoreError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_uploads_are_stored_once_and_compressed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CodeStore::open(dir.path()).expect("open");
        let code = vec![7u8; 100_000];
        let (sha, new) = store.put(&code).expect("put");
        assert!(new);
        let (sha2, new2) = store.put(&code).expect("put again");
        assert_eq!(sha, sha2);
        assert!(!new2);
        assert_eq!(store.get(&sha).expect("get"), code);
        let on_disk = fs::metadata(store.path_of(&sha).expect("path"))
            .expect("stat")
            .len();
        assert!(
            on_disk < 1000,
            "stored {on_disk} bytes for 100000 repetitive ones"
        );
        store.remove(&sha).expect("remove");
        assert!(matches!(store.get(&sha), Err(CodeStoreError::Missing(_))));
    }

    #[test]
    fn corruption_and_bad_names_are_detected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CodeStore::open(dir.path()).expect("open");
        let (sha, _) = store.put(b"hello").expect("put");
        let other = zstd::bulk::compress(b"jello", 3).expect("compress");
        fs::write(store.path_of(&sha).expect("path"), other).expect("overwrite");
        assert!(matches!(store.get(&sha), Err(CodeStoreError::Corrupt(_))));
        assert!(matches!(
            store.get("../../etc/passwd"),
            Err(CodeStoreError::BadDigest(_))
        ));
    }
}
