//! Code packages: the zip a process-tier function is deployed as, checked before it is stored
//! and unpacked once per code hash into a directory that sandboxes mount read-only at `/var/task`.
//!
//! Checking refuses what could escape or exhaust the host: absolute or `..` paths (zip-slip),
//! symbolic links that lead outside the code root once the tree is unpacked (each link is
//! resolved against the archive's own tree, following the other links it passes through, so a
//! chain such as `x -> .` and `l -> x/x/../..` is caught although each target looks harmless on
//! its own), more than [`MAX_UNZIPPED_CODE_BYTES`] unzipped (counted as bytes are written, not as
//! the zip declares), more than [`MAX_ZIP_ENTRIES`] entries, and an archive without a file (Lambda
//! refuses those too). The executable bit survives, so a `bootstrap` can run.
//!
//! Unpacking is atomic and durable: the tree is written beside its final name, flushed to disk
//! (`syncfs` once, rather than an `fsync` per file), renamed into place and the rename flushed
//! with the parent directory. Staging trees a crash left behind are removed by
//! [`remove_leftovers`] at start.

use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use lambent_core::limits::{MAX_UNZIPPED_CODE_BYTES, MAX_ZIP_ENTRIES};

/// Longest symbolic link target kept from a zip.
const MAX_LINK_TARGET_BYTES: u64 = 4096;
/// Links followed while resolving one link, as the kernel's own limit (`MAXSYMLINKS`); more is a
/// loop.
const MAX_LINK_HOPS: u32 = 40;
/// Prefix of the staging directory a package is unpacked into before it is renamed into place.
const STAGING_PREFIX: &str = ".unpack-";
/// Mode of unpacked files without an executable bit: readable by the sandbox's user.
const FILE_MODE: u32 = 0o644;
/// Mode of unpacked executables and directories.
const EXEC_MODE: u32 = 0o755;
/// The file type bits of a Unix mode, and the value for a symbolic link.
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;

/// Why a code package was refused or could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// not a zip archive
    #[error(
        "the code is not a zip archive; process runtimes take a .zip (or a directory the CLI zips)"
    )]
    NotZip,
    /// the archive is damaged
    #[error("the zip archive is damaged: {0}")]
    Corrupt(String),
    /// an entry whose path leaves the code root
    #[error("zip entry {0:?} has an absolute path or '..'; paths must stay inside the code root")]
    UnsafePath(String),
    /// a link that points outside the code root
    #[error("zip entry {path:?} is a link to {target:?}, which is outside the code root")]
    LinkOutside {
        /// the link's path
        path: String,
        /// where it points
        target: String,
    },
    /// too big once unzipped
    #[error(
        "the code is more than {limit} bytes unzipped (Lambda's limit); make the package smaller"
    )]
    TooLarge {
        /// the limit in bytes
        limit: u64,
    },
    /// too many entries
    #[error("the zip has {count} entries; the limit is {limit}")]
    TooManyEntries {
        /// entries in the archive
        count: usize,
        /// the limit
        limit: usize,
    },
    /// links that lead to each other forever
    #[error("zip entry {0:?} is a link in a loop of links")]
    LinkLoop(String),
    /// no file at all
    #[error("the zip archive has no files; upload a non-empty zip with your function's code")]
    Empty,
    /// two entries for one path, one of them a link or a directory
    #[error("zip entry {0:?} conflicts with another entry of the same path")]
    Conflict(String),
    /// the file system failed
    #[error("cannot unpack code into {path}: {source}")]
    Io {
        /// where
        path: PathBuf,
        /// the error
        source: io::Error,
    },
}

/// Whether `bytes` look like a zip archive (a local file header, or an empty archive).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// What a checked package holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackageSummary {
    /// Entries in the archive.
    pub entries: usize,
    /// Bytes once unzipped, as declared by the archive.
    pub unzipped_bytes: u64,
}

enum EntryKind {
    Dir,
    File { executable: bool },
    Link(String),
}

struct Entry {
    index: usize,
    path: PathBuf,
    kind: EntryKind,
}

/// Checks a package without writing anything.
pub fn inspect(bytes: &[u8]) -> Result<PackageSummary, PackageError> {
    let mut archive = open(bytes)?;
    let entries = checked_entries(&mut archive)?;
    let mut unzipped = 0u64;
    for i in 0..archive.len() {
        let file = archive
            .by_index_raw(i)
            .map_err(|e| PackageError::Corrupt(e.to_string()))?;
        unzipped = unzipped.saturating_add(file.size());
    }
    if unzipped > MAX_UNZIPPED_CODE_BYTES {
        return Err(PackageError::TooLarge {
            limit: MAX_UNZIPPED_CODE_BYTES,
        });
    }
    Ok(PackageSummary {
        entries: entries.len(),
        unzipped_bytes: unzipped,
    })
}

fn open(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, PackageError> {
    if !is_zip(bytes) {
        return Err(PackageError::NotZip);
    }
    let archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| PackageError::Corrupt(e.to_string()))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(PackageError::TooManyEntries {
            count: archive.len(),
            limit: MAX_ZIP_ENTRIES,
        });
    }
    Ok(archive)
}

/// A relative path made of normal components only, or `None`.
fn safe_relative(name: &str) -> Option<PathBuf> {
    if name.contains('\0') || name.contains('\\') {
        return None;
    }
    let path = Path::new(name);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Why a link does not resolve inside the code root.
#[derive(Debug, PartialEq, Eq)]
enum Unresolvable {
    /// the walk left the root, or the target is absolute or empty
    Outside,
    /// more than [`MAX_LINK_HOPS`] links on the way
    Loop,
}

/// Resolves `target`, a link's target, from the directory `from` (components relative to the
/// root) as the kernel would in the unpacked tree: each component that names another link of the
/// archive is replaced by that link's own resolution. Returns the resolved path's components, or
/// why it leaves the root. `links` maps each link's path to its target.
fn resolve_link(
    links: &std::collections::HashMap<PathBuf, String>,
    from: &[PathBuf],
    target: &str,
    hops: &mut u32,
) -> Result<Vec<PathBuf>, Unresolvable> {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return Err(Unresolvable::Outside);
    }
    let mut at: Vec<PathBuf> = from.to_vec();
    for c in Path::new(target).components() {
        match c {
            Component::Normal(part) => {
                let next = at
                    .last()
                    .map_or_else(|| PathBuf::from(part), |p| p.join(part));
                match links.get(&next) {
                    Some(inner) => {
                        *hops += 1;
                        if *hops > MAX_LINK_HOPS {
                            return Err(Unresolvable::Loop);
                        }
                        at = resolve_link(links, &at, inner, hops)?;
                    }
                    None => at.push(next),
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if at.pop().is_none() {
                    return Err(Unresolvable::Outside);
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(Unresolvable::Outside),
        }
    }
    Ok(at)
}

/// The path prefixes of `path` (`a`, `a/b`, `a/b/c`): the stack [`resolve_link`] walks from.
fn prefixes(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for c in path.components() {
        let next = out
            .last()
            .map_or_else(|| PathBuf::from(c.as_os_str()), |p| p.join(c));
        out.push(next);
    }
    out
}

/// The entries of an archive, with every link resolved against the tree they make and an
/// archive without files refused.
fn checked_entries(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
) -> Result<Vec<Entry>, PackageError> {
    let entries = entries(archive)?;
    if !entries
        .iter()
        .any(|e| matches!(e.kind, EntryKind::File { .. }))
    {
        return Err(PackageError::Empty);
    }
    let links: std::collections::HashMap<PathBuf, String> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::Link(t) => Some((e.path.clone(), t.clone())),
            _ => None,
        })
        .collect();
    for e in &entries {
        if let EntryKind::Link(target) = &e.kind {
            let mut dir = prefixes(&e.path);
            dir.pop();
            let mut hops = 0;
            match resolve_link(&links, &dir, target, &mut hops) {
                Ok(_) => {}
                Err(Unresolvable::Outside) => {
                    return Err(PackageError::LinkOutside {
                        path: e.path.display().to_string(),
                        target: target.clone(),
                    });
                }
                Err(Unresolvable::Loop) => {
                    return Err(PackageError::LinkLoop(e.path.display().to_string()));
                }
            }
        }
    }
    Ok(entries)
}

fn entries(archive: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Result<Vec<Entry>, PackageError> {
    let mut out = Vec::with_capacity(archive.len());
    for index in 0..archive.len() {
        let mut file = archive
            .by_index(index)
            .map_err(|e| PackageError::Corrupt(e.to_string()))?;
        let name = file.name().to_owned();
        let path = safe_relative(&name).ok_or_else(|| PackageError::UnsafePath(name.clone()))?;
        if path.as_os_str().is_empty() {
            continue;
        }
        let mode = file.unix_mode().unwrap_or(0);
        let kind = if file.is_dir() {
            EntryKind::Dir
        } else if mode & S_IFMT == S_IFLNK {
            let mut target = String::new();
            (&mut file)
                .take(MAX_LINK_TARGET_BYTES)
                .read_to_string(&mut target)
                .map_err(|e| PackageError::Corrupt(format!("link {name}: {e}")))?;
            EntryKind::Link(target)
        } else {
            EntryKind::File {
                executable: mode & 0o111 != 0,
            }
        };
        out.push(Entry { index, path, kind });
    }
    Ok(out)
}

/// Unpacks a package into `dest`, which must not exist: it is built beside `dest` and renamed into
/// place, so a failure or a crash leaves no half-unpacked directory under that name.
pub fn unpack(bytes: &[u8], dest: &Path) -> Result<(), PackageError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Io { path, source }
    };
    let mut archive = open(bytes)?;
    let entries = checked_entries(&mut archive)?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let staging = parent.join(format!(
        "{STAGING_PREFIX}{}",
        uuid::Uuid::new_v4().as_simple()
    ));
    let result = unpack_into(&mut archive, &entries, &staging).and_then(|()| {
        open_directories(&staging).map_err(io_err(&staging))?;
        // Everything written reaches the disk before the tree appears under its name.
        let dir = fs::File::open(&staging).map_err(io_err(&staging))?;
        nix::unistd::syncfs(&dir).map_err(|e| io_err(&staging)(e.into()))?;
        match fs::rename(&staging, dest) {
            Ok(()) => fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err(parent)),
            // Another caller unpacked the same hash first: theirs is as good as ours.
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(&staging);
                Ok(())
            }
            Err(e) => Err(io_err(dest)(e)),
        }
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Gives every directory of an unpacked tree [`EXEC_MODE`] (directories made for a file's parents
/// get lambent's private umask otherwise, and sandboxes read the tree as their own uids). Links
/// are not followed.
fn open_directories(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(EXEC_MODE))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            open_directories(&entry.path())?;
        }
    }
    Ok(())
}

/// Removes staging trees that an unpack interrupted by a crash left in `packages_dir`; returns
/// how many.
pub fn remove_leftovers(packages_dir: &Path) -> usize {
    let Ok(dir) = fs::read_dir(packages_dir) else {
        return 0;
    };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
        .filter(|e| fs::remove_dir_all(e.path()).is_ok())
        .count()
}

fn unpack_into(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    entries: &[Entry],
    root: &Path,
) -> Result<(), PackageError> {
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| PackageError::Io { path, source }
    };
    fs::create_dir_all(root).map_err(io_err(root))?;
    let mut budget = MAX_UNZIPPED_CODE_BYTES;
    // Directories and files first; links last, so no write can go through a link.
    for entry in entries {
        let target = root.join(&entry.path);
        match entry.kind {
            EntryKind::Dir => {
                fs::create_dir_all(&target).map_err(io_err(&target))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(EXEC_MODE))
                    .map_err(io_err(&target))?;
            }
            EntryKind::File { executable } => {
                if let Some(dir) = target.parent() {
                    fs::create_dir_all(dir).map_err(io_err(dir))?;
                }
                if target.is_dir() {
                    return Err(PackageError::Conflict(entry.path.display().to_string()));
                }
                let mut file = archive
                    .by_index(entry.index)
                    .map_err(|e| PackageError::Corrupt(e.to_string()))?;
                let mut out = fs::File::create(&target).map_err(io_err(&target))?;
                // Count what is really written: declared sizes can lie.
                let written = io::copy(&mut (&mut file).take(budget + 1), &mut out)
                    .map_err(|e| PackageError::Corrupt(format!("{}: {e}", entry.path.display())))?;
                if written > budget {
                    return Err(PackageError::TooLarge {
                        limit: MAX_UNZIPPED_CODE_BYTES,
                    });
                }
                budget -= written;
                out.flush().map_err(io_err(&target))?;
                let mode = if executable { EXEC_MODE } else { FILE_MODE };
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                    .map_err(io_err(&target))?;
            }
            EntryKind::Link(_) => {}
        }
    }
    for entry in entries {
        if let EntryKind::Link(link_target) = &entry.kind {
            let link = root.join(&entry.path);
            if let Some(dir) = link.parent() {
                fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
            if link.symlink_metadata().is_ok() {
                return Err(PackageError::Conflict(entry.path.display().to_string()));
            }
            symlink(link_target, &link).map_err(io_err(&link))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for (name, body, mode) in entries {
                if mode & S_IFMT == S_IFLNK {
                    w.add_symlink(
                        *name,
                        std::str::from_utf8(body).expect("utf8"),
                        SimpleFileOptions::default(),
                    )
                    .expect("link");
                } else {
                    w.start_file(*name, SimpleFileOptions::default().unix_permissions(*mode))
                        .expect("start");
                    w.write_all(body).expect("write");
                }
            }
            w.finish().expect("finish");
        }
        out.into_inner()
    }

    #[test]
    fn unpacks_files_keeping_the_executable_bit() {
        let dir = tempfile::tempdir().expect("tmp");
        let z = zip_of(&[
            ("app.py", b"def handler(e, c): return e\n", 0o600),
            ("bootstrap", b"#!/bin/sh\n", 0o700),
            ("lib/util.py", b"X = 1\n", 0o644),
            ("lib/link.py", b"util.py", S_IFLNK | 0o777),
        ]);
        assert_eq!(inspect(&z).expect("valid").entries, 4);
        let dest = dir.path().join("pkg");
        unpack(&z, &dest).expect("unpack");
        let mode = |p: &str| {
            fs::metadata(dest.join(p))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("bootstrap"), 0o755);
        assert_eq!(mode("app.py"), 0o644);
        assert_eq!(
            fs::read_to_string(dest.join("lib/link.py")).expect("via link"),
            "X = 1\n"
        );
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no staging directory is left"
        );
    }

    #[test]
    fn refuses_paths_that_escape() {
        for name in ["../evil.py", "/etc/evil", "a/../../evil", "a\\..\\evil"] {
            let z = zip_of(&[(name, b"x", 0o644)]);
            assert!(
                matches!(inspect(&z), Err(PackageError::UnsafePath(_))),
                "{name}"
            );
        }
        for target in ["/etc/shadow", "../../outside", "a/../../.."] {
            let z = zip_of(&[
                ("app.py", b"x", 0o644),
                ("dir/link", target.as_bytes(), S_IFLNK | 0o777),
            ]);
            assert!(
                matches!(inspect(&z), Err(PackageError::LinkOutside { .. })),
                "{target}"
            );
        }
        let inside = zip_of(&[
            ("app.py", b"x", 0o644),
            ("dir/link", b"../app.py", S_IFLNK | 0o777),
        ]);
        assert!(inspect(&inside).is_ok());
    }

    #[test]
    fn refuses_chains_of_links_that_leave_the_root() {
        // Each target looks inside on its own; `x` is the root itself, so `x/x/../..` is its parent.
        let chained = zip_of(&[
            ("app.py", b"x", 0o644),
            ("x", b".", S_IFLNK | 0o777),
            ("l", b"x/x/../..", S_IFLNK | 0o777),
        ]);
        assert!(
            matches!(inspect(&chained), Err(PackageError::LinkOutside { ref path, .. }) if path == "l"),
            "{:?}",
            inspect(&chained)
        );
        // A link into a directory that is itself a link upwards.
        let through_dir = zip_of(&[
            ("app.py", b"x", 0o644),
            ("a/b/up", b"../..", S_IFLNK | 0o777),
            ("a/esc", b"b/up/..", S_IFLNK | 0o777),
        ]);
        assert!(matches!(
            inspect(&through_dir),
            Err(PackageError::LinkOutside { .. })
        ));
        let looping = zip_of(&[
            ("app.py", b"x", 0o644),
            ("p", b"q", S_IFLNK | 0o777),
            ("q", b"p", S_IFLNK | 0o777),
        ]);
        assert!(matches!(inspect(&looping), Err(PackageError::LinkLoop(_))));
        // Links through links that stay inside are fine.
        let fine = zip_of(&[
            ("lib/util.py", b"X = 1", 0o644),
            ("cur", b"lib", S_IFLNK | 0o777),
            ("via", b"cur/../cur/util.py", S_IFLNK | 0o777),
        ]);
        assert!(inspect(&fine).is_ok(), "{:?}", inspect(&fine));
    }

    #[test]
    fn an_archive_without_files_is_refused() {
        assert!(matches!(inspect(&zip_of(&[])), Err(PackageError::Empty)));
        let only_links = zip_of(&[("l", b"l2", S_IFLNK | 0o777)]);
        assert!(matches!(inspect(&only_links), Err(PackageError::Empty)));
        let dir = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            unpack(&zip_of(&[]), &dir.path().join("pkg")),
            Err(PackageError::Empty)
        ));
    }

    #[test]
    fn leftover_staging_trees_are_removed() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(dir.path().join(".unpack-deadbeef/sub")).expect("mkdir");
        fs::create_dir_all(dir.path().join("0123abcd")).expect("mkdir");
        assert_eq!(remove_leftovers(dir.path()), 1);
        assert!(dir.path().join("0123abcd").is_dir());
        assert!(!dir.path().join(".unpack-deadbeef").exists());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Path-like strings built from a few names, `.`, `..`, empty parts and slashes.
        fn pathish() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("a".to_owned()),
                    Just("b".to_owned()),
                    Just("x".to_owned()),
                    Just(".".to_owned()),
                    Just("..".to_owned()),
                    Just(String::new()),
                    "[a-z\\\\/.\\x00]{1,4}",
                ],
                1..5,
            )
            .prop_map(|parts| parts.join("/"))
        }

        /// Like `zip_of`, but an entry the writer refuses (a duplicate name, say) is left out.
        fn lenient_zip_of(entries: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
            let mut out = Cursor::new(Vec::new());
            {
                let mut w = zip::ZipWriter::new(&mut out);
                for (name, body, mode) in entries {
                    if mode & S_IFMT == S_IFLNK {
                        let target = String::from_utf8_lossy(body).into_owned();
                        let _ = w.add_symlink(name.as_str(), target, SimpleFileOptions::default());
                    } else if w
                        .start_file(
                            name.as_str(),
                            SimpleFileOptions::default().unix_permissions(*mode),
                        )
                        .is_ok()
                    {
                        let _ = w.write_all(body);
                    }
                }
                w.finish().expect("finish");
            }
            out.into_inner()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn safe_names_never_leave_the_root(name in pathish()) {
                if let Some(p) = safe_relative(&name) {
                    prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                }
            }

            /// Whatever links an archive holds, once it passes the check and is unpacked on a real
            /// file system, every link that resolves at all resolves inside the code root.
            #[test]
            fn accepted_links_resolve_inside_once_unpacked(
                links in proptest::collection::vec((pathish(), pathish()), 1..5)
            ) {
                let mut items: Vec<(String, Vec<u8>, u32)> =
                    vec![("a/file".to_owned(), b"x".to_vec(), 0o644)];
                for (name, target) in &links {
                    items.push((name.clone(), target.clone().into_bytes(), S_IFLNK | 0o777));
                }
                let z = lenient_zip_of(&items);
                let dir = tempfile::tempdir().expect("tmp");
                let dest = dir.path().join("pkg");
                if unpack(&z, &dest).is_ok() {
                    let root = fs::canonicalize(&dest).expect("root");
                    for (name, _) in &links {
                        let Some(rel) = safe_relative(name) else { continue };
                        if let Ok(real) = fs::canonicalize(dest.join(&rel)) {
                            prop_assert!(
                                real.starts_with(&root),
                                "{name} resolves to {} outside {}",
                                real.display(),
                                root.display()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_non_zips_and_conflicts() {
        assert!(matches!(inspect(b"\0asm"), Err(PackageError::NotZip)));
        assert!(matches!(
            inspect(b"PK\x03\x04garbage"),
            Err(PackageError::Corrupt(_))
        ));
        let dir = tempfile::tempdir().expect("tmp");
        let z = zip_of(&[
            ("a/b.txt", b"x", 0o644),
            ("a", b"elsewhere", S_IFLNK | 0o777),
        ]);
        let err = unpack(&z, &dir.path().join("pkg")).expect_err("conflict");
        assert!(matches!(err, PackageError::Conflict(_)), "{err}");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn a_zip_bomb_is_stopped_while_unpacking() {
        // Highly compressible data whose declared size is honest but over the limit is refused by
        // inspect; the unpacking budget catches archives that lie about sizes.
        let big = vec![0u8; 1024 * 1024];
        let mut out = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            for i in 0..260 {
                w.start_file(
                    format!("f{i}"),
                    SimpleFileOptions::default()
                        .compression_method(zip::CompressionMethod::Deflated),
                )
                .expect("start");
                w.write_all(&big).expect("write");
            }
            w.finish().expect("finish");
        }
        let z = out.into_inner();
        assert!(z.len() < 2 * 1024 * 1024, "compresses well: {}", z.len());
        assert!(matches!(inspect(&z), Err(PackageError::TooLarge { .. })));
        let dir = tempfile::tempdir().expect("tmp");
        assert!(matches!(
            unpack(&z, &dir.path().join("pkg")),
            Err(PackageError::TooLarge { .. })
        ));
    }
}
