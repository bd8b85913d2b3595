//! The OS boundary of the sandbox's control logic: the file operations cgroup management makes.
//! [`HostOs`] performs them; tests use a recording double so the logic runs without root.

use std::fmt::Debug;
use std::io;
use std::path::Path;

/// File operations on kernel file systems (cgroupfs, procfs).
pub trait Os: Send + Sync + Debug {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `contents` to an existing file (a cgroup knob).
    fn write(&self, path: &Path, contents: &str) -> io::Result<()>;
    /// Creates one directory.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes one empty directory.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Whether a path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Sends SIGKILL to a process; a process that is already gone is not an error.
    fn kill(&self, pid: i32);
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostOs;

impl Os for HostOs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
        // Kernel knobs take one write; `fs::write` would truncate and write, which cgroupfs
        // accepts, but opening without O_CREAT makes a typo an error instead of a new file.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(contents.as_bytes())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        match std::fs::create_dir(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        }
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn kill(&self, pid: i32) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A recording file system for tests.

    use std::collections::{BTreeMap, BTreeSet};
    use std::io;
    use std::path::{Path, PathBuf};

    use parking_lot::Mutex;

    use super::Os;

    /// Files and directories in memory; every write and kill is recorded.
    #[derive(Debug, Default)]
    pub struct FakeOs {
        pub files: Mutex<BTreeMap<PathBuf, String>>,
        pub dirs: Mutex<BTreeSet<PathBuf>>,
        pub writes: Mutex<Vec<(PathBuf, String)>>,
        pub kills: Mutex<Vec<i32>>,
        /// Writes to these paths fail with EBUSY, once each.
        pub busy_once: Mutex<BTreeSet<PathBuf>>,
    }

    impl FakeOs {
        pub fn with_file(self, path: &str, contents: &str) -> Self {
            self.files.lock().insert(path.into(), contents.into());
            self
        }
        pub fn written(&self, path: &str) -> Option<String> {
            self.writes
                .lock()
                .iter()
                .rev()
                .find(|(p, _)| p == Path::new(path))
                .map(|(_, c)| c.clone())
        }
    }

    impl Os for FakeOs {
        fn read(&self, path: &Path) -> io::Result<String> {
            self.files
                .lock()
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
        fn write(&self, path: &Path, contents: &str) -> io::Result<()> {
            if self.busy_once.lock().remove(path) {
                return Err(io::Error::from_raw_os_error(libc::EBUSY));
            }
            self.writes.lock().push((path.into(), contents.into()));
            self.files.lock().insert(path.into(), contents.into());
            Ok(())
        }
        fn mkdir(&self, path: &Path) -> io::Result<()> {
            self.dirs.lock().insert(path.into());
            Ok(())
        }
        fn rmdir(&self, path: &Path) -> io::Result<()> {
            if self.dirs.lock().remove(path) {
                Ok(())
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        }
        fn exists(&self, path: &Path) -> bool {
            self.dirs.lock().contains(path) || self.files.lock().contains_key(path)
        }
        fn kill(&self, pid: i32) {
            self.kills.lock().push(pid);
        }
    }
}
