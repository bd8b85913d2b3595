//! The data directory at rest: private to lambent's user.
//!
//! The data directory holds access-key secrets (in `metadata.db`), every function's code and the
//! durable events, so it is created `0700` and every file lambent writes in it is `0600`: lambent
//! sets its file-creation mask to `077` when it opens the directory (SQLite, the code store and the
//! wasm cache then create private files without each having to remember), and at start it narrows
//! whatever it finds wider (a directory made by an older lambent, a file copied in by hand), with
//! a warning naming how many and one example.
//!
//! Two trees inside are deliberately readable by others: `packages/` (unpacked code) and
//! `runtimes/` (lambent's bootstraps). Sandboxes mount them read-only and run as their own
//! unprivileged uids, which must be able to read them; the `0700` data directory above them still
//! keeps every other local user out, since a bind mount inside a sandbox is reached without
//! walking the host path above it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the data directory and of every directory lambent makes in it.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file lambent writes in the data directory.
pub const FILE_MODE: u32 = 0o600;
/// lambent's file-creation mask while it serves: nothing for group or others.
const UMASK: u32 = 0o077;
/// Trees that sandboxes read as their own uids, and so keep their read bits (see the module doc).
const SANDBOX_READABLE: &[&str] = &["packages", "runtimes", "sandbox-root"];

/// What [`secure`] narrowed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Narrowed {
    /// Paths whose mode was wider than lambent's and was narrowed.
    pub paths: Vec<PathBuf>,
}

/// Creates `data_dir` (`0700`, parents too) if needed, sets the process's file-creation mask to
/// `077`, and narrows every directory and file in it that is wider than [`DIR_MODE`] or
/// [`FILE_MODE`] (the sandbox-readable trees excepted). Symbolic links are not followed.
pub fn secure(data_dir: &Path) -> io::Result<Narrowed> {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(UMASK));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(data_dir)?;
    let mut narrowed = Narrowed::default();
    narrow(data_dir, DIR_MODE, &mut narrowed)?;
    let entries = fs::read_dir(data_dir)?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if SANDBOX_READABLE.iter().any(|s| name == *s) {
            continue;
        }
        walk(&entry.path(), &mut narrowed)?;
    }
    if let Some(first) = narrowed.paths.first() {
        tracing::warn!(
            count = narrowed.paths.len(),
            example = %first.display(),
            "the data directory held files other users could read; narrowed them to 0600 (directories 0700)"
        );
    }
    Ok(narrowed)
}

fn walk(path: &Path, narrowed: &mut Narrowed) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        // Removed meanwhile (a temporary file): nothing to narrow.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        narrow(path, DIR_MODE, narrowed)?;
        for entry in fs::read_dir(path)?.flatten() {
            walk(&entry.path(), narrowed)?;
        }
    } else if meta.is_file() {
        narrow(path, FILE_MODE, narrowed)?;
    }
    Ok(())
}

/// Clears the bits of `path`'s mode that `allowed` does not have.
fn narrow(path: &Path, allowed: u32, narrowed: &mut Narrowed) -> io::Result<()> {
    let mode = fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    if mode & !allowed != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))?;
        narrowed.paths.push(path.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn wide_modes_are_narrowed_and_sandbox_trees_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        fs::create_dir_all(data.join("code/ab")).expect("mkdir");
        fs::create_dir_all(data.join("packages/abc")).expect("mkdir");
        for (p, m) in [
            ("", 0o755),
            ("code", 0o755),
            ("code/ab", 0o775),
            ("packages", 0o755),
            ("packages/abc", 0o755),
        ] {
            fs::set_permissions(data.join(p), fs::Permissions::from_mode(m)).expect("chmod");
        }
        fs::write(data.join("metadata.db"), b"x").expect("write");
        fs::set_permissions(data.join("metadata.db"), fs::Permissions::from_mode(0o644))
            .expect("chmod");
        fs::write(data.join("code/ab/ab12.zst"), b"x").expect("write");
        fs::set_permissions(
            data.join("code/ab/ab12.zst"),
            fs::Permissions::from_mode(0o666),
        )
        .expect("chmod");
        fs::write(data.join("packages/abc/app.py"), b"x").expect("write");
        fs::set_permissions(
            data.join("packages/abc/app.py"),
            fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).expect("link");

        let narrowed = secure(&data).expect("secure");
        assert_eq!(narrowed.paths.len(), 5, "{narrowed:?}");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("code")), 0o700);
        assert_eq!(mode(&data.join("code/ab")), 0o700);
        assert_eq!(mode(&data.join("metadata.db")), 0o600);
        assert_eq!(mode(&data.join("code/ab/ab12.zst")), 0o600);
        assert_eq!(mode(&data.join("packages/abc/app.py")), 0o644);
        assert_eq!(mode(&data.join("packages/abc")), 0o755);
        assert_eq!(
            mode(Path::new("/etc/passwd")) & 0o004,
            0o004,
            "links not followed"
        );

        // New files are private without anyone setting a mode.
        let fresh = data.join("fresh");
        fs::write(&fresh, b"x").expect("write");
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(secure(&data).expect("again"), Narrowed::default());
    }
}
