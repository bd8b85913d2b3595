//! Resource limits through cgroups, v2 or v1, whichever the host gives the controllers to.
//!
//! Each sandbox gets its own cgroup below lambent's: memory (the function's setting, no swap), a
//! pids limit, and CPU weight proportional to memory (Lambda gives a full vCPU at 1769 MB). The
//! cgroup also tells lambent what the sandbox used (peak memory) and whether the kernel's OOM
//! killer struck, so an out-of-memory death is reported as such.
//!
//! Idle sandboxes are frozen between calls, as Lambda freezes its execution environments: the
//! v1 `freezer` hierarchy (`freezer.state`) or v2's `cgroup.freeze`. A frozen sandbox's
//! processes and threads make no progress until it is thawed for its next call; it is thawed
//! before it is killed too (v1 holds even SIGKILL until then).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::os::Os;

/// Processes and threads one sandbox may have at once (Lambda's limit is 1024).
pub const PIDS_LIMIT: u32 = 1024;
/// Memory setting, in MB, at which a sandbox gets a full CPU's weight (Lambda's 1769 MB).
pub const FULL_CPU_MEMORY_MB: u32 = 1769;
/// cgroup v1 `cpu.shares` of one full CPU.
const V1_SHARES_PER_CPU: u64 = 1024;
/// cgroup v2 `cpu.weight` of one full CPU (the default weight).
const V2_WEIGHT_PER_CPU: u64 = 100;
/// Name of lambent's own cgroup directory below the one it was started in.
const LAMBENT_GROUP: &str = "lambent-sandboxes";
/// Name of the leaf lambent moves itself into on cgroup v2 when its cgroup must hold no processes.
const SUPERVISOR_GROUP: &str = "lambent-supervisor";

/// Why a cgroup could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// a cgroup file operation failed
    #[error("cgroup {path}: {source}")]
    Io {
        /// the file or directory
        path: PathBuf,
        /// the error
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The host's cgroup setup, as detected at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupDriver {
    /// The unified hierarchy holds the controllers; sandboxes go below `parent`.
    V2 {
        /// lambent's sandbox cgroup (`<own cgroup>/lambent-sandboxes`).
        parent: PathBuf,
    },
    /// Controllers are on v1 hierarchies; each path is lambent's sandbox cgroup in one of them.
    V1 {
        /// the memory controller's directory
        memory: PathBuf,
        /// the pids controller's directory
        pids: Option<PathBuf>,
        /// the cpu controller's directory
        cpu: Option<PathBuf>,
        /// the freezer hierarchy's directory
        freezer: Option<PathBuf>,
    },
    /// No usable memory controller: sandboxes run without cgroup limits.
    Unavailable {
        /// why, for the log and `/healthz`
        reason: String,
    },
}

/// A mount of a cgroup file system, from `/proc/self/mountinfo`.
#[derive(Debug, Clone)]
struct CgroupMount {
    root: String,
    mount_point: PathBuf,
    v2: bool,
    controllers: Vec<String>,
}

fn parse_mountinfo(mountinfo: &str) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || right.len() < 3 {
            continue;
        }
        let v2 = match right[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        out.push(CgroupMount {
            root: fields[3].to_owned(),
            mount_point: PathBuf::from(fields[4]),
            v2,
            controllers: right[2].split(',').map(str::to_owned).collect(),
        });
    }
    out
}

/// lambent's own cgroup path per hierarchy, from `/proc/self/cgroup`: (controllers, path).
fn parse_self_cgroup(contents: &str) -> Vec<(Vec<String>, String)> {
    contents
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some((
                controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path.to_owned(),
            ))
        })
        .collect()
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount` from `root`.
fn dir_in(mount: &CgroupMount, path: &str) -> PathBuf {
    let rel = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    if rel.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(rel)
    }
}

fn has_words(text: &str, words: &[&str]) -> bool {
    words
        .iter()
        .all(|w| text.split_whitespace().any(|t| t == *w))
}

impl CgroupDriver {
    /// Detects the host's cgroups from the contents of `/proc/self/mountinfo` and
    /// `/proc/self/cgroup`, and prepares lambent's sandbox cgroup. Prefers v2 when the unified
    /// hierarchy has the memory and pids controllers.
    pub fn detect(os: &dyn Os, mountinfo: &str, self_cgroup: &str) -> CgroupDriver {
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_self_cgroup(self_cgroup);
        if let Some(m) = mounts.iter().find(|m| m.v2)
            && let Some((_, path)) = own.iter().find(|(c, _)| c.is_empty())
        {
            let own_dir = dir_in(m, path);
            let available = os
                .read(&own_dir.join("cgroup.controllers"))
                .unwrap_or_default();
            if has_words(&available, &["memory", "pids"]) {
                match Self::prepare_v2(os, &own_dir, &available) {
                    Ok(parent) => return CgroupDriver::V2 { parent },
                    Err(e) => {
                        return CgroupDriver::Unavailable {
                            reason: format!("cgroup v2 has the controllers but {e}"),
                        };
                    }
                }
            }
        }
        let v1_dir = |controller: &str| {
            let m = mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|c| c == controller))?;
            let (_, path) = own
                .iter()
                .find(|(c, _)| c.iter().any(|x| x == controller))?;
            let dir = dir_in(m, path).join(LAMBENT_GROUP);
            os.mkdir(&dir).ok()?;
            Some(dir)
        };
        match v1_dir("memory") {
            Some(memory) => CgroupDriver::V1 {
                memory,
                pids: v1_dir("pids"),
                cpu: v1_dir("cpu"),
                freezer: v1_dir("freezer"),
            },
            None => CgroupDriver::Unavailable {
                reason: "no cgroup v2 hierarchy with the memory and pids controllers and no \
                         writable cgroup v1 memory hierarchy"
                    .into(),
            },
        }
    }

    /// Makes `<own>/lambent-sandboxes` with the controllers enabled. cgroup v2 lets a cgroup hand
    /// controllers to children only while it holds no processes itself, so lambent first moves
    /// its own processes into a leaf beside the sandboxes if needed.
    fn prepare_v2(os: &dyn Os, own: &Path, available: &str) -> Result<PathBuf, CgroupError> {
        let wanted: Vec<&str> = ["memory", "pids", "cpu"]
            .into_iter()
            .filter(|c| has_words(available, &[c]))
            .collect();
        let enable = wanted
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let control = own.join("cgroup.subtree_control");
        let enabled = os.read(&control).unwrap_or_default();
        if !has_words(&enabled, &wanted)
            && let Err(first) = os.write(&control, &enable)
        {
            // EBUSY: processes live in our cgroup. Move them to a leaf and try again.
            if first.raw_os_error() != Some(libc::EBUSY) {
                return Err(io_err(&control)(first));
            }
            let leaf = own.join(SUPERVISOR_GROUP);
            os.mkdir(&leaf).map_err(io_err(&leaf))?;
            let procs = own.join("cgroup.procs");
            let pids = os.read(&procs).map_err(io_err(&procs))?;
            let leaf_procs = leaf.join("cgroup.procs");
            for pid in pids.split_whitespace() {
                // A process may exit meanwhile; only our own move must succeed.
                let _ = os.write(&leaf_procs, pid);
            }
            os.write(&control, &enable).map_err(io_err(&control))?;
        }
        let parent = own.join(LAMBENT_GROUP);
        os.mkdir(&parent).map_err(io_err(&parent))?;
        let sub = parent.join("cgroup.subtree_control");
        os.write(&sub, &enable).map_err(io_err(&sub))?;
        Ok(parent)
    }

    /// A line for the log: which cgroups sandboxes get.
    pub fn describe(&self) -> String {
        match self {
            CgroupDriver::V2 { parent } => format!("cgroup v2 at {}", parent.display()),
            CgroupDriver::V1 { memory, .. } => {
                format!("cgroup v1 (memory at {})", memory.display())
            }
            CgroupDriver::Unavailable { reason } => {
                format!("no cgroup limits ({reason}); memory limits are NOT enforced")
            }
        }
    }

    /// Whether sandboxes can be frozen: cgroup v2 (every cgroup but the root has
    /// `cgroup.freeze`, from Linux 5.2) or a v1 `freezer` hierarchy.
    pub fn can_freeze(&self) -> bool {
        match self {
            CgroupDriver::V2 { .. } => true,
            CgroupDriver::V1 { freezer, .. } => freezer.is_some(),
            CgroupDriver::Unavailable { .. } => false,
        }
    }

    /// Creates the cgroup of one sandbox with its limits.
    pub fn create(
        &self,
        os: &dyn Os,
        name: &str,
        limits: &CgroupLimits,
    ) -> Result<SandboxCgroup, CgroupError> {
        let mut cg = SandboxCgroup {
            v2: matches!(self, CgroupDriver::V2 { .. }),
            dirs: Vec::new(),
            memory: None,
            freezer: None,
        };
        let result = self.create_into(os, name, limits, &mut cg);
        if let Err(e) = result {
            cg.remove(os);
            return Err(e);
        }
        Ok(cg)
    }

    fn create_into(
        &self,
        os: &dyn Os,
        name: &str,
        limits: &CgroupLimits,
        cg: &mut SandboxCgroup,
    ) -> Result<(), CgroupError> {
        let set = |dir: &Path, file: &str, value: String| {
            let p = dir.join(file);
            os.write(&p, &value).map_err(io_err(&p))
        };
        match self {
            CgroupDriver::V2 { parent } => {
                let dir = parent.join(name);
                os.mkdir(&dir).map_err(io_err(&dir))?;
                cg.dirs.push(dir.clone());
                cg.memory = Some(dir.clone());
                set(&dir, "memory.max", limits.memory_bytes.to_string())?;
                if os.exists(&dir.join("memory.swap.max")) {
                    set(&dir, "memory.swap.max", "0".into())?;
                }
                set(&dir, "pids.max", limits.pids.to_string())?;
                if os.exists(&dir.join("cpu.weight")) {
                    set(&dir, "cpu.weight", limits.v2_cpu_weight().to_string())?;
                }
                if os.exists(&dir.join("cgroup.freeze")) {
                    cg.freezer = Some(dir.clone());
                }
            }
            CgroupDriver::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => {
                let dir = memory.join(name);
                os.mkdir(&dir).map_err(io_err(&dir))?;
                cg.dirs.push(dir.clone());
                cg.memory = Some(dir.clone());
                set(
                    &dir,
                    "memory.limit_in_bytes",
                    limits.memory_bytes.to_string(),
                )?;
                if os.exists(&dir.join("memory.memsw.limit_in_bytes")) {
                    set(
                        &dir,
                        "memory.memsw.limit_in_bytes",
                        limits.memory_bytes.to_string(),
                    )?;
                }
                if os.exists(&dir.join("memory.swappiness")) {
                    // Best effort: the root cgroup's children refuse it on some kernels.
                    let _ = os.write(&dir.join("memory.swappiness"), "0");
                }
                if let Some(pids) = pids {
                    let dir = pids.join(name);
                    os.mkdir(&dir).map_err(io_err(&dir))?;
                    cg.dirs.push(dir.clone());
                    set(&dir, "pids.max", limits.pids.to_string())?;
                }
                if let Some(cpu) = cpu {
                    let dir = cpu.join(name);
                    os.mkdir(&dir).map_err(io_err(&dir))?;
                    cg.dirs.push(dir.clone());
                    set(&dir, "cpu.shares", limits.v1_cpu_shares().to_string())?;
                }
                if let Some(freezer) = freezer {
                    let dir = freezer.join(name);
                    os.mkdir(&dir).map_err(io_err(&dir))?;
                    cg.dirs.push(dir.clone());
                    cg.freezer = Some(dir);
                }
            }
            CgroupDriver::Unavailable { .. } => {}
        }
        Ok(())
    }
}

/// The prefix of the cgroup names of sandboxes made by the lambent process `pid`.
pub fn instance_prefix(pid: u32) -> String {
    format!("sb-{pid}-")
}

impl CgroupDriver {
    /// The directories sandbox cgroups are made in (one per hierarchy).
    fn parents(&self) -> Vec<PathBuf> {
        match self {
            CgroupDriver::V2 { parent } => vec![parent.clone()],
            CgroupDriver::V1 {
                memory,
                pids,
                cpu,
                freezer,
            } => std::iter::once(memory.clone())
                .chain(pids.clone())
                .chain(cpu.clone())
                .chain(freezer.clone())
                .collect(),
            CgroupDriver::Unavailable { .. } => Vec::new(),
        }
    }

    /// Removes the cgroups left by lambent processes that died without cleaning up (their
    /// sandboxes died with them). Cgroups of live lambent processes are left alone.
    pub fn remove_stale(&self, alive: impl Fn(u32) -> bool) -> usize {
        let mut left = 0;
        for parent in self.parents() {
            let Ok(entries) = std::fs::read_dir(&parent) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let owner = name
                    .strip_prefix("sb-")
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse::<u32>().ok());
                if let Some(pid) = owner
                    && !alive(pid)
                    && !remove_stale_dir(&entry.path())
                {
                    left += 1;
                }
            }
        }
        left
    }
}

/// Tries to remove a dead lambent's sandbox cgroup. Its sandboxes normally died with it, but one
/// that was frozen (idle) when lambent died stays frozen, its helper unable to notice: it is
/// thawed and killed, then removed. False if processes remain (the next sweep tries again).
fn remove_stale_dir(dir: &Path) -> bool {
    if std::fs::remove_dir(dir).is_ok() {
        return true;
    }
    // Whichever knob this hierarchy has; the others are not there.
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    if std::fs::write(dir.join("cgroup.kill"), "1").is_err()
        && let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs"))
    {
        for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
            crate::os::HostOs.kill(pid);
        }
    }
    for _ in 0..STALE_REMOVE_ATTEMPTS {
        if std::fs::remove_dir(dir).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Attempts, 10 ms apart, to remove a stale sandbox cgroup after killing what is left in it.
const STALE_REMOVE_ATTEMPTS: u32 = 20;

/// The limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Most processes and threads.
    pub pids: u32,
    /// The function's memory setting, which its CPU weight follows.
    pub memory_mb: u32,
}

impl CgroupLimits {
    /// The limits for a function with `memory_mb` of memory.
    pub fn for_memory(memory_mb: u32) -> Self {
        Self {
            memory_bytes: u64::from(memory_mb) * 1024 * 1024,
            pids: PIDS_LIMIT,
            memory_mb,
        }
    }

    fn cpu_share(self, per_cpu: u64) -> u64 {
        (per_cpu * u64::from(self.memory_mb) / u64::from(FULL_CPU_MEMORY_MB)).max(2)
    }

    /// `cpu.shares` for cgroup v1 (1024 is one CPU; at least 2).
    pub fn v1_cpu_shares(self) -> u64 {
        self.cpu_share(V1_SHARES_PER_CPU)
    }

    /// `cpu.weight` for cgroup v2 (100 is one CPU; 1 to 10000).
    pub fn v2_cpu_weight(self) -> u64 {
        self.cpu_share(V2_WEIGHT_PER_CPU).clamp(1, 10_000)
    }
}

/// The cgroup (one directory per hierarchy) of one sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxCgroup {
    v2: bool,
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    /// The directory whose freezer freezes the sandbox, when the host has one.
    freezer: Option<PathBuf>,
}

fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl SandboxCgroup {
    /// The `cgroup.procs` files a process writes `0` to, to join this cgroup.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// How many times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self, os: &dyn Os) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        os.read(&dir.join(file))
            .ok()
            .and_then(|t| counter(&t, key))
            .unwrap_or(0)
    }

    /// The most memory the sandbox used, in bytes, when the host can tell.
    pub fn peak_memory(&self, os: &dyn Os) -> Option<u64> {
        let dir = self.memory.as_ref()?;
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        os.read(&dir.join(file)).ok()?.trim().parse().ok()
    }

    /// Whether this sandbox can be frozen.
    pub fn can_freeze(&self) -> bool {
        self.freezer.is_some()
    }

    /// Freezes every process and thread in the sandbox (asynchronously: the kernel stops each
    /// task at its next return to user space). A sandbox without a freezer is left running.
    pub fn freeze(&self, os: &dyn Os) -> Result<(), CgroupError> {
        self.set_frozen(os, true)
    }

    /// Lets the sandbox's processes run again.
    pub fn thaw(&self, os: &dyn Os) -> Result<(), CgroupError> {
        self.set_frozen(os, false)
    }

    fn set_frozen(&self, os: &dyn Os, frozen: bool) -> Result<(), CgroupError> {
        let Some(dir) = &self.freezer else {
            return Ok(());
        };
        let (file, value) = match (self.v2, frozen) {
            (true, true) => ("cgroup.freeze", "1"),
            (true, false) => ("cgroup.freeze", "0"),
            (false, true) => ("freezer.state", "FROZEN"),
            (false, false) => ("freezer.state", "THAWED"),
        };
        let path = dir.join(file);
        os.write(&path, value).map_err(io_err(&path))
    }

    /// Kills every process in the sandbox's cgroup (thawing it first: SIGKILL does not reach
    /// a task frozen by the v1 freezer until it thaws).
    pub fn kill_all(&self, os: &dyn Os) {
        if let Err(e) = self.thaw(os) {
            tracing::debug!(error = %e, "cannot thaw a sandbox before killing it");
        }
        for dir in &self.dirs {
            if self.v2 && os.write(&dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
            if let Ok(pids) = os.read(&dir.join("cgroup.procs")) {
                for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                    os.kill(pid);
                }
            }
        }
    }

    /// Removes the cgroup directories. The kernel refuses while processes remain, so this kills
    /// stragglers and retries for a short while. False if a directory is left (processes of the
    /// sandbox may still live).
    pub fn remove(&self, os: &dyn Os) -> bool {
        let mut all = true;
        for dir in self.dirs.iter().rev() {
            for attempt in 0..50 {
                match os.rmdir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if attempt < 49 => {
                        self.kill_all(os);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        all = false;
                        tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove sandbox cgroup")
                    }
                }
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::fake::FakeOs;

    const HYBRID_MOUNTINFO: &str = "\
35 24 0:30 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
36 24 0:31 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids
37 24 0:32 / /sys/fs/cgroup/cpu rw,relatime shared:11 - cgroup cgroup rw,cpu
39 24 0:34 / /sys/fs/cgroup/freezer rw,relatime shared:13 - cgroup cgroup rw,freezer
38 24 0:33 / /sys/fs/cgroup/unified rw,relatime shared:12 - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
8:pids:/
6:freezer:/
4:memory:/process_api/abc
1:cpu:/
0::/
";

    #[test]
    fn hybrid_host_without_v2_controllers_uses_v1() {
        let os = FakeOs::default().with_file("/sys/fs/cgroup/unified/cgroup.controllers", "");
        let d = CgroupDriver::detect(&os, HYBRID_MOUNTINFO, HYBRID_SELF);
        assert_eq!(
            d,
            CgroupDriver::V1 {
                memory: "/sys/fs/cgroup/memory/process_api/abc/lambent-sandboxes".into(),
                pids: Some("/sys/fs/cgroup/pids/lambent-sandboxes".into()),
                cpu: Some("/sys/fs/cgroup/cpu/lambent-sandboxes".into()),
                freezer: Some("/sys/fs/cgroup/freezer/lambent-sandboxes".into()),
            }
        );
        assert!(d.can_freeze());
        let cg = d
            .create(&os, "sb1", &CgroupLimits::for_memory(256))
            .expect("create");
        let mem = "/sys/fs/cgroup/memory/process_api/abc/lambent-sandboxes/sb1";
        assert_eq!(
            os.written(&format!("{mem}/memory.limit_in_bytes"))
                .as_deref(),
            Some("268435456")
        );
        assert_eq!(
            os.written("/sys/fs/cgroup/pids/lambent-sandboxes/sb1/pids.max")
                .as_deref(),
            Some("1024")
        );
        // 256 MB of 1769 MB is 14% of a CPU.
        assert_eq!(
            os.written("/sys/fs/cgroup/cpu/lambent-sandboxes/sb1/cpu.shares")
                .as_deref(),
            Some("148")
        );
        assert_eq!(cg.procs_files().len(), 4);
        let state = "/sys/fs/cgroup/freezer/lambent-sandboxes/sb1/freezer.state";
        os.files.lock().insert(state.into(), "THAWED".into());
        cg.freeze(&os).expect("freeze");
        assert_eq!(os.written(state).as_deref(), Some("FROZEN"));
        cg.thaw(&os).expect("thaw");
        assert_eq!(os.written(state).as_deref(), Some("THAWED"));
        cg.freeze(&os).expect("freeze");
        // Killing thaws first: v1 holds SIGKILL for frozen tasks.
        cg.kill_all(&os);
        assert_eq!(os.written(state).as_deref(), Some("THAWED"));
        os.files.lock().insert(
            format!("{mem}/memory.oom_control").into(),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n".into(),
        );
        assert_eq!(cg.oom_kills(&os), 2);
        assert!(cg.remove(&os));
        assert!(!os.exists(Path::new(mem)));
    }

    #[test]
    fn pure_v2_moves_lambent_into_a_leaf_when_its_cgroup_is_busy() {
        let mountinfo = "30 24 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let own = "/sys/fs/cgroup/system.slice/lambent.service";
        let os = FakeOs::default()
            .with_file(
                &format!("{own}/cgroup.controllers"),
                "cpuset cpu io memory pids",
            )
            .with_file(&format!("{own}/cgroup.subtree_control"), "")
            .with_file(&format!("{own}/cgroup.procs"), "41\n42\n");
        os.busy_once
            .lock()
            .insert(format!("{own}/cgroup.subtree_control").into());
        let d = CgroupDriver::detect(&os, mountinfo, "0::/system.slice/lambent.service\n");
        assert_eq!(
            d,
            CgroupDriver::V2 {
                parent: format!("{own}/lambent-sandboxes").into()
            }
        );
        let moved: Vec<String> = os
            .writes
            .lock()
            .iter()
            .filter(|(p, _)| p.ends_with("lambent-supervisor/cgroup.procs"))
            .map(|(_, c)| c.clone())
            .collect();
        assert_eq!(moved, ["41", "42"]);
        assert_eq!(
            os.written(&format!("{own}/cgroup.subtree_control"))
                .as_deref(),
            Some("+memory +pids +cpu")
        );
        let sb = format!("{own}/lambent-sandboxes/sb");
        os.files
            .lock()
            .insert(format!("{sb}/memory.swap.max").into(), "max".into());
        os.files
            .lock()
            .insert(format!("{sb}/cgroup.freeze").into(), "0".into());
        let cg = d
            .create(&os, "sb", &CgroupLimits::for_memory(1769))
            .expect("create");
        assert_eq!(
            os.written(&format!("{sb}/memory.swap.max")).as_deref(),
            Some("0")
        );
        assert_eq!(
            os.written(&format!("{sb}/memory.max")).as_deref(),
            Some("1854930944")
        );
        os.files.lock().insert(
            format!("{sb}/memory.events").into(),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n".into(),
        );
        assert_eq!(cg.oom_kills(&os), 1);
        assert!(d.can_freeze() && cg.can_freeze());
        cg.freeze(&os).expect("freeze");
        assert_eq!(
            os.written(&format!("{sb}/cgroup.freeze")).as_deref(),
            Some("1")
        );
        cg.kill_all(&os);
        assert_eq!(
            os.written(&format!("{sb}/cgroup.freeze")).as_deref(),
            Some("0")
        );
        assert_eq!(
            os.written(&format!("{sb}/cgroup.kill")).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn no_controllers_means_no_limits_and_says_so() {
        let d = CgroupDriver::detect(&FakeOs::default(), "", "");
        assert!(matches!(d, CgroupDriver::Unavailable { .. }));
        assert!(d.describe().contains("NOT enforced"));
        let cg = d
            .create(&FakeOs::default(), "x", &CgroupLimits::for_memory(128))
            .expect("nothing to do");
        assert!(cg.procs_files().is_empty());
        assert!(!d.can_freeze() && !cg.can_freeze());
        cg.freeze(&FakeOs::default()).expect("nothing to freeze");
    }

    #[test]
    fn cpu_weight_follows_memory() {
        assert_eq!(CgroupLimits::for_memory(1769).v2_cpu_weight(), 100);
        assert_eq!(CgroupLimits::for_memory(10_240).v1_cpu_shares(), 5927);
        assert_eq!(CgroupLimits::for_memory(128).v2_cpu_weight(), 7);
    }
}
