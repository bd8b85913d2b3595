//! Zips a function's directory for upload, the way `zip -r` would but reproducibly: entries in
//! name order with a fixed timestamp, so an unchanged directory gives the same bytes (and the same
//! code hash, so publishing it again makes no new version). Executable bits and links are kept.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Context;
use zip::write::SimpleFileOptions;

use crate::manifest::MANIFEST;

/// The zip of everything under `dir` except the manifest.
pub fn zip_directory(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut writer = zip::ZipWriter::new(&mut out);
    add_dir(&mut writer, dir, dir)?;
    writer.finish().context("cannot finish the zip")?;
    Ok(out.into_inner())
}

fn add_dir<W: Write + std::io::Seek>(
    writer: &mut zip::ZipWriter<W>,
    root: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .context("path outside the directory")?
            .to_string_lossy()
            .into_owned();
        if rel == MANIFEST {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path)?;
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(meta.permissions().mode() & 0o777);
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            writer.add_symlink(rel, target.to_string_lossy(), options)?;
        } else if meta.is_dir() {
            writer.add_directory(format!("{rel}/"), options)?;
            add_dir(writer, root, &path)?;
        } else {
            writer.start_file(rel, options)?;
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            writer.write_all(&bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_reproducibly_keeping_modes() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("app.py"), "x").expect("write");
        std::fs::write(dir.path().join(MANIFEST), "runtime = 'python3'").expect("write");
        std::fs::create_dir(dir.path().join("bin")).expect("mkdir");
        let exe = dir.path().join("bin/bootstrap");
        std::fs::write(&exe, "#!/bin/sh").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let a = zip_directory(dir.path()).expect("zip");
        let b = zip_directory(dir.path()).expect("zip");
        assert_eq!(a, b, "same directory, same bytes");
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(a)).expect("valid zip");
        let names: Vec<String> = archive.file_names().map(str::to_owned).collect();
        assert!(!names.iter().any(|n| n == MANIFEST), "{names:?}");
        let boot = archive.by_name("bin/bootstrap").expect("entry");
        assert_eq!(boot.unix_mode().map(|m| m & 0o777), Some(0o755));
    }
}
