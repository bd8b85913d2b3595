//! A content-addressed code store on the local filesystem.
//!
//! Each object is named by the sha256 of its uncompressed bytes and stored zstd-compressed at
//! `<root>/<first two hex digits>/<sha256>.zst`. Writes go to a temporary file of their own
//! (so concurrent writes of the same hash never share one), which is flushed, renamed into place,
//! and the rename flushed with its directory: a crash never leaves a half-written object under
//! its final name, an acknowledged write survives a power cut, and identical uploads are stored
//! once. Temporary files a crash left behind are removed when the store is opened.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// zstd level for stored code: fast to write, and wasm compresses well even at low levels.
const ZSTD_LEVEL: i32 = 3;
/// Suffix of an object being written.
const TMP_SUFFIX: &str = ".tmp";

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
        let store = Self { root };
        let removed = store.remove_leftovers();
        if removed > 0 {
            tracing::info!(
                removed,
                "code store: removed temporary files left by a crash"
            );
        }
        Ok(store)
    }

    /// Removes the temporary files of writes that a crash interrupted; returns how many.
    fn remove_leftovers(&self) -> usize {
        let Ok(shards) = fs::read_dir(&self.root) else {
            return 0;
        };
        shards
            .flatten()
            .filter(|shard| shard.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|shard| fs::read_dir(shard.path()).ok())
            .flat_map(|files| files.flatten())
            .filter(|f| {
                let name = f.file_name();
                let name = name.to_string_lossy();
                name.starts_with('.') && name.ends_with(TMP_SUFFIX)
            })
            .filter(|f| fs::remove_file(f.path()).is_ok())
            .count()
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
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{sha}.{}.{n}{TMP_SUFFIX}", std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = fs::File::create_new(&tmp)?;
            file.write_all(&compressed)?;
            file.sync_all()?;
            // A concurrent write of the same hash may rename first: the content is the same.
            fs::rename(&tmp, &path)?;
            fs::File::open(dir)?.sync_all()
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
    fn concurrent_writes_of_one_hash_are_safe_and_leftovers_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CodeStore::open(dir.path()).expect("open");
        let code: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| store.put(&code).expect("put"));
            }
        });
        let sha = sha256_hex(&code);
        assert_eq!(store.get(&sha).expect("get"), code);
        let shard = dir.path().join(&sha[..2]);
        let names = |d: &Path| -> Vec<String> {
            fs::read_dir(d)
                .expect("ls")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&shard), vec![format!("{sha}.zst")]);
        // A crash mid-write leaves a temporary file; the next open removes it.
        fs::write(shard.join(format!(".{sha}.0123{TMP_SUFFIX}")), b"half").expect("write");
        let _ = CodeStore::open(dir.path()).expect("reopen");
        assert_eq!(names(&shard), vec![format!("{sha}.zst")]);
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
