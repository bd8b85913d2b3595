//! Per-sandbox identities: every sandbox runs as its own uid, with the gid of the same number,
//! taken from a range lambent reserves on the host, so two live sandboxes never share one.
//!
//! A process that got out of its sandbox's pid and mount namespaces would still be a different
//! user from every other sandbox's processes: the kernel refuses it their signals, their
//! `/proc/<pid>` entries (`root`, `fd`, `environ`, `mem`) and their files. An identity is taken
//! when a sandbox is launched and given back only once the sandbox's cgroup is removed (its
//! processes are dead), so an id is never reused while a process that had it may live.
//!
//! Within one lambent the pool's own bookkeeping keeps ids apart. Between lambent processes on
//! one host (tests run several; an operator may too) each taken id also holds an open file
//! description lock on one byte of [`ID_LOCK_FILE`] (the byte at the id's offset), which the
//! kernel drops when lambent dies.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

/// First uid (and gid) of the range lambent reserves for sandboxes by default (`serve
/// --sandbox-uid-base`): above the ids Debian hands to system and regular users (up to 60000),
/// systemd's dynamic users (61184-65519) and `nobody` (65534), below systemd-nspawn's container
/// range (from 524288).
pub const DEFAULT_UID_BASE: u32 = 200_000;
/// How many ids the range holds: uids and gids `base` to `base + UID_RANGE - 1`. Far more than
/// a node's sandboxes ([`crate::DEFAULT_MAX_SANDBOXES`]), so ids of sandboxes still being torn
/// down never run it dry.
pub const UID_RANGE: u32 = 65_536;
/// The lowest base accepted: the range stays clear of every id a distribution hands out.
pub const MIN_UID_BASE: u32 = 65_536;
/// The host-wide lock file whose bytes (one per id) keep lambent processes on one host from
/// taking the same id.
pub const ID_LOCK_FILE: &str = "/run/lambent/sandbox-ids.lock";

/// Why a range of ids cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// the base is below the lowest accepted one
    #[error(
        "the sandbox uid base {base} is below {MIN_UID_BASE}: the range would overlap the ids of the host's own users"
    )]
    BaseTooLow {
        /// the base asked for
        base: u32,
    },
    /// the range would run past the largest id
    #[error("the sandbox uid base {base} leaves no room for {UID_RANGE} ids below 2^32 - 1")]
    BaseTooHigh {
        /// the base asked for
        base: u32,
    },
    /// the range is smaller than the sandboxes that may live at once
    #[error("{max_sandboxes} sandboxes cannot have their own ids in a range of {UID_RANGE}")]
    TooManySandboxes {
        /// sandboxes that may exist at once
        max_sandboxes: usize,
    },
}

/// Checks a range's base for a node with `max_sandboxes` sandboxes.
pub fn check_range(base: u32, max_sandboxes: usize) -> Result<(), IdentityError> {
    if base < MIN_UID_BASE {
        return Err(IdentityError::BaseTooLow { base });
    }
    // (uid_t)-1 means "unchanged" to setresuid, so the last id must stay below it.
    if base.checked_add(UID_RANGE).is_none() {
        return Err(IdentityError::BaseTooHigh { base });
    }
    if max_sandboxes > UID_RANGE as usize {
        return Err(IdentityError::TooManySandboxes { max_sandboxes });
    }
    Ok(())
}

/// The ids of one lambent process.
#[derive(Debug)]
pub struct IdentityPool {
    base: u32,
    /// Which offsets of the range this process holds.
    taken: Mutex<Taken>,
    /// The host-wide lock file, when it could be opened.
    locks: Option<File>,
}

/// The offsets a process holds, and the lowest one that may be free.
#[derive(Debug)]
struct Taken {
    held: Vec<bool>,
    lowest_free: usize,
}

/// One sandbox's uid and gid, given back to its pool when dropped.
#[derive(Debug)]
pub struct SandboxIdentity {
    uid: u32,
    pool: Arc<IdentityPool>,
}

impl SandboxIdentity {
    /// The uid, which is also the gid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Keeps the id taken for as long as this process lives: for a sandbox whose processes
    /// could not be shown to be gone.
    pub fn leak(self) {
        tracing::warn!(
            uid = self.uid,
            "a sandbox's processes may outlive it: its uid is not reused"
        );
        std::mem::forget(self);
    }
}

impl Drop for SandboxIdentity {
    fn drop(&mut self) {
        self.pool.release(self.uid);
    }
}

impl IdentityPool {
    /// A pool over `base ..= base + UID_RANGE - 1` (see [`check_range`]), sharing ids with other
    /// lambent processes through `lock_file` (normally [`ID_LOCK_FILE`]). Without the lock file
    /// (it cannot be created) ids are kept apart within this process only, and a warning says so.
    pub fn new(base: u32, lock_file: &Path) -> Arc<Self> {
        let locks = open_lock_file(lock_file)
            .map_err(|e| {
                tracing::warn!(
                    file = %lock_file.display(),
                    error = %e,
                    "cannot open the sandbox id lock file: another lambent on this host with the same --sandbox-uid-base could give its sandboxes the same uids"
                );
            })
            .ok();
        Arc::new(Self {
            base,
            taken: Mutex::new(Taken {
                held: vec![false; UID_RANGE as usize],
                lowest_free: 0,
            }),
            locks,
        })
    }

    /// The first id of the range.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// Takes the lowest id that neither this process nor another lambent holds; `None` when
    /// the range is exhausted.
    pub fn take(self: &Arc<Self>) -> Option<SandboxIdentity> {
        let mut taken = self.taken.lock();
        let start = taken.lowest_free;
        let mut first_unheld = None;
        for offset in start..taken.held.len() {
            if taken.held[offset] {
                continue;
            }
            first_unheld.get_or_insert(offset);
            let uid = self.base + offset as u32;
            if !self.lock(uid, true) {
                // Another lambent holds it.
                continue;
            }
            taken.held[offset] = true;
            // Ids below `offset` this process does not hold belong to other lambents now;
            // they are tried again from the lowest one.
            taken.lowest_free = first_unheld.filter(|&o| o < offset).unwrap_or(offset + 1);
            return Some(SandboxIdentity {
                uid,
                pool: self.clone(),
            });
        }
        None
    }

    fn release(&self, uid: u32) {
        let mut taken = self.taken.lock();
        let offset = (uid - self.base) as usize;
        if let Some(slot) = taken.held.get_mut(offset) {
            self.lock(uid, false);
            *slot = false;
            taken.lowest_free = taken.lowest_free.min(offset);
        }
    }

    /// Locks (or unlocks) the byte of `uid` in the lock file; true without a lock file.
    fn lock(&self, uid: u32, lock: bool) -> bool {
        let Some(file) = &self.locks else { return true };
        let range = libc::flock {
            l_type: if lock { libc::F_WRLCK } else { libc::F_UNLCK } as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: libc::off_t::from(uid),
            l_len: 1,
            l_pid: 0,
        };
        nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_OFD_SETLK(&range)).is_ok()
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

/// Where the default lock file is.
pub fn default_lock_file() -> PathBuf {
    PathBuf::from(ID_LOCK_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_while_taken_and_reused_once_given_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = IdentityPool::new(DEFAULT_UID_BASE, &dir.path().join("ids.lock"));
        let a = pool.take().expect("a");
        let b = pool.take().expect("b");
        assert_eq!((a.uid(), b.uid()), (DEFAULT_UID_BASE, DEFAULT_UID_BASE + 1));
        drop(a);
        let c = pool.take().expect("c");
        assert_eq!(c.uid(), DEFAULT_UID_BASE);
        let d = pool.take().expect("d");
        assert_eq!(d.uid(), DEFAULT_UID_BASE + 2);
        // A leaked id stays taken.
        d.leak();
        drop(b);
        let e = pool.take().expect("e");
        let f = pool.take().expect("f");
        assert_eq!(
            (e.uid(), f.uid()),
            (DEFAULT_UID_BASE + 1, DEFAULT_UID_BASE + 3)
        );
    }

    #[test]
    fn two_pools_on_one_lock_file_never_hand_out_the_same_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ids.lock");
        let one = IdentityPool::new(DEFAULT_UID_BASE, &file);
        let two = IdentityPool::new(DEFAULT_UID_BASE, &file);
        let a = one.take().expect("a");
        let b = two.take().expect("b");
        let c = one.take().expect("c");
        assert_eq!(a.uid(), DEFAULT_UID_BASE);
        assert_eq!(b.uid(), DEFAULT_UID_BASE + 1);
        assert_eq!(c.uid(), DEFAULT_UID_BASE + 2);
        drop(a);
        let d = two.take().expect("d");
        assert_eq!(d.uid(), DEFAULT_UID_BASE);
    }

    #[test]
    fn a_pool_runs_dry_instead_of_sharing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = IdentityPool::new(DEFAULT_UID_BASE, &dir.path().join("ids.lock"));
        let all: Vec<_> = (0..UID_RANGE).map(|_| pool.take().expect("id")).collect();
        assert!(pool.take().is_none());
        drop(all);
        assert!(pool.take().is_some());
    }

    #[test]
    fn ranges_stay_clear_of_host_users_and_of_the_largest_id() {
        assert_eq!(check_range(DEFAULT_UID_BASE, 256), Ok(()));
        assert_eq!(
            check_range(1000, 256),
            Err(IdentityError::BaseTooLow { base: 1000 })
        );
        let high = u32::MAX - UID_RANGE;
        assert_eq!(check_range(high, 256), Ok(()));
        assert_eq!(
            check_range(high + 1, 256),
            Err(IdentityError::BaseTooHigh { base: high + 1 })
        );
        assert_eq!(
            check_range(DEFAULT_UID_BASE, 100_000),
            Err(IdentityError::TooManySandboxes {
                max_sandboxes: 100_000
            })
        );
    }
}
