//! The plan of one sandbox: everything the helper process needs to build it, computed by lambent
//! as plain data. Keeping the decisions here (what is mounted where, which variables, which
//! limits) makes them testable without root; [`crate::helper`] only carries them out.

use std::path::{Path, PathBuf};

use lambent_core::RuntimeFamily;
use serde::{Deserialize, Serialize};

/// The name of the user (and group) functions run as, Lambda's; its uid and gid are the
/// sandbox's own (see [`crate::identity`]).
pub const SANDBOX_USER: &str = "sbx_user1051";
/// Port of the Runtime API inside every sandbox's own network namespace (Lambda's).
pub const RUNTIME_API_PORT: u16 = 9001;
/// Open files per sandbox process (Lambda's 1024).
pub const NOFILE_LIMIT: u64 = 1024;
/// Hostname inside sandboxes.
pub const HOSTNAME: &str = "lambent-sandbox";
/// Size of the sandbox's root file system, which holds only mount points and a few small files.
pub const ROOT_TMPFS_BYTES: u64 = 1024 * 1024;
/// Size of `/dev`, which holds only device bind mounts.
pub const DEV_TMPFS_BYTES: u64 = 64 * 1024;
/// Where the function's code is, inside the sandbox.
pub const TASK_ROOT: &str = "/var/task";
/// Where lambent's runtime bootstraps are, inside the sandbox.
pub const RUNTIME_DIR: &str = "/var/runtime";

/// Host directories every sandbox sees read-only: the system's programs and libraries. On hosts
/// where `/bin`, `/lib`... are links into `/usr`, the link is recreated instead.
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];
/// Entries of the host's `/etc` a program may need (dynamic linker, name resolution, TLS roots,
/// time zones, Debian's alternatives and Python's site configuration). Nothing with secrets:
/// `passwd` and `group` are written fresh, `shadow` is never there.
const ETC_ENTRIES: &[&str] = &[
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "resolv.conf",
    "gai.conf",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
    "alternatives",
    "mime.types",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
];
/// Device nodes bound from the host into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `/proc` files that show the host's kernel, devices or memory, hidden under `/dev/null` (runc's
/// and Docker's masked files, plus the kernel command line, its symbols and the interrupt
/// counters, which say what hardware the host has).
const PROC_NULL_FILES: &[&str] = &[
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/latency_stats",
    "/proc/kallsyms",
    "/proc/cmdline",
    "/proc/interrupts",
];
/// `/proc` directories about the host's hardware, hidden under an empty read-only tmpfs.
const PROC_EMPTY_DIRS: &[&str] = &["/proc/acpi", "/proc/asound", "/proc/scsi", "/proc/firmware"];
/// `/proc` entries that write kernel or host settings, bound read-only over themselves.
const PROC_READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];
/// Size of the empty tmpfs over a masked `/proc` directory (it stays empty: it is read-only).
pub const PROC_MASK_TMPFS_BYTES: u64 = 4096;

/// One mount, relative to the new root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A bind mount of a host path.
    Bind {
        /// host path
        source: PathBuf,
        /// path inside the sandbox
        target: PathBuf,
        /// whether the source is a directory (else a file is made as the mount point)
        dir: bool,
        /// read-only, no setuid, no devices
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// path inside the sandbox
        target: PathBuf,
        /// size limit in bytes
        size_bytes: u64,
        /// mode of its root directory
        mode: u32,
        /// owner (uid, gid) of its root directory; root when `None`
        owner: Option<(u32, u32)>,
    },
}

/// How one `/proc` entry is hidden once the sandbox's `/proc` is mounted. The helper skips entries
/// this kernel does not have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcMask {
    /// A file with `/dev/null` bound over it: reads are empty.
    Null(PathBuf),
    /// A directory with an empty read-only tmpfs over it.
    Empty(PathBuf),
    /// An entry bound read-only over itself.
    ReadOnly(PathBuf),
}

impl ProcMask {
    /// The masked path, inside the sandbox.
    pub fn path(&self) -> &Path {
        match self {
            ProcMask::Null(p) | ProcMask::Empty(p) | ProcMask::ReadOnly(p) => p,
        }
    }
}

/// The masks every sandbox's `/proc` gets, in the order they are applied.
pub fn proc_masks() -> Vec<ProcMask> {
    let paths = |list: &'static [&'static str]| list.iter().map(PathBuf::from);
    paths(PROC_NULL_FILES)
        .map(ProcMask::Null)
        .chain(paths(PROC_EMPTY_DIRS).map(ProcMask::Empty))
        .chain(paths(PROC_READONLY).map(ProcMask::ReadOnly))
        .collect()
}

/// A resource limit, as `setrlimit` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rlimit {
    /// open files
    NoFile(u64),
    /// core file size
    Core(u64),
}

/// Everything the helper needs to build one sandbox and start its runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPlan {
    /// An empty host directory the new root is mounted on (inside the private mount namespace, so
    /// all sandboxes share it).
    pub root_dir: PathBuf,
    /// Mounts in order, after the root tmpfs.
    pub mounts: Vec<Mount>,
    /// Links to create: (link path inside the sandbox, target).
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// Small files to write into the root: (path inside the sandbox, contents).
    pub files: Vec<(PathBuf, String)>,
    /// What is hidden in the sandbox's `/proc`.
    pub proc_masks: Vec<ProcMask>,
    /// Every sandbox has its own network namespace, with loopback only unless this is set: then
    /// lambent adds a link to the host (see [`crate::network`]) before the sandbox is built.
    pub egress: Option<EgressPlan>,
    /// Port the Runtime API listens on inside the sandbox.
    pub runtime_api_port: u16,
    /// `cgroup.procs` files the sandbox joins before anything runs.
    pub cgroup_procs: Vec<PathBuf>,
    /// The unprivileged user and group.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// Resource limits of the runtime process.
    pub rlimits: Vec<Rlimit>,
    /// The runtime's command line; `argv[0]` is the program.
    pub argv: Vec<String>,
    /// The runtime's environment, without `AWS_LAMBDA_RUNTIME_API` (set once the port is known).
    pub env: Vec<(String, String)>,
    /// The runtime's working directory.
    pub cwd: PathBuf,
}

/// What an egress sandbox's helper needs to configure its end of the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressPlan {
    /// The `ip` program (iproute2) on the host, run inside the sandbox's namespace before the
    /// root is built.
    pub ip: PathBuf,
}

/// What the plan is built from.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The runtime family.
    pub family: RuntimeFamily,
    /// The unpacked code.
    pub code_dir: &'a Path,
    /// lambent's runtime bootstraps on the host.
    pub runtime_dir: &'a Path,
    /// The empty directory the root is mounted on.
    pub root_dir: &'a Path,
    /// Size of `/tmp` in MB.
    pub ephemeral_storage_mb: u32,
    /// Network egress (a link to the host with NAT), or loopback only.
    pub egress: Option<EgressPlan>,
    /// The cgroup to join.
    pub cgroup_procs: Vec<PathBuf>,
    /// The environment (AWS's variables and the function's own).
    pub env: Vec<(String, String)>,
    /// The Python interpreter on the host.
    pub python: &'a Path,
    /// The Node.js binary on the host, if any.
    pub node: Option<&'a Path>,
    /// The sandbox's own uid, which is also its gid.
    pub uid: u32,
}

/// Whether a host path is a symbolic link, and where to.
fn host_link(path: &Path) -> Option<PathBuf> {
    std::fs::read_link(path).ok()
}

impl SandboxPlan {
    /// The plan for one sandbox. `probe` answers what the host has (a test passes a fake).
    pub fn build(input: &PlanInput<'_>, probe: &dyn HostProbe) -> SandboxPlan {
        let mut mounts = Vec::new();
        let mut symlinks = Vec::new();
        let ro_dir = |source: &Path, target: &Path| Mount::Bind {
            source: source.to_owned(),
            target: target.to_owned(),
            dir: true,
            readonly: true,
        };
        for dir in SYSTEM_DIRS {
            let path = Path::new(dir);
            if let Some(target) = probe.link(path) {
                symlinks.push((path.to_owned(), target));
            } else if probe.is_dir(path) {
                mounts.push(ro_dir(path, path));
            }
        }
        for entry in ETC_ENTRIES {
            let host = Path::new("/etc").join(entry);
            if let Some(target) = probe.link(&host) {
                // Links in /etc (alternatives, localtime) point into /usr or /etc, both present.
                symlinks.push((host, target));
            } else if probe.is_dir(&host) {
                mounts.push(ro_dir(&host, &host));
            } else if probe.is_file(&host) {
                mounts.push(Mount::Bind {
                    source: host.clone(),
                    target: host,
                    dir: false,
                    readonly: true,
                });
            }
        }
        mounts.push(Mount::Tmpfs {
            target: "/dev".into(),
            size_bytes: DEV_TMPFS_BYTES,
            mode: 0o755,
            owner: None,
        });
        for dev in DEVICES {
            let host = Path::new("/dev").join(dev);
            if probe.exists(&host) {
                mounts.push(Mount::Bind {
                    source: host.clone(),
                    target: host,
                    dir: false,
                    readonly: false,
                });
            }
        }
        for (link, target) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ] {
            symlinks.push((link.into(), target.into()));
        }
        mounts.push(ro_dir(input.code_dir, Path::new(TASK_ROOT)));
        mounts.push(ro_dir(input.runtime_dir, Path::new(RUNTIME_DIR)));
        mounts.push(Mount::Tmpfs {
            target: "/tmp".into(),
            size_bytes: u64::from(input.ephemeral_storage_mb) * 1024 * 1024,
            mode: 0o1777,
            owner: Some((input.uid, input.uid)),
        });
        let id = input.uid;
        let files = vec![
            (
                PathBuf::from("/etc/passwd"),
                format!(
                    "root:x:0:0:root:/root:/usr/sbin/nologin\n{SANDBOX_USER}:x:{id}:{id}::/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
                ),
            ),
            (
                PathBuf::from("/etc/group"),
                format!("root:x:0:\n{SANDBOX_USER}:x:{id}:\nnogroup:x:65534:\n"),
            ),
            (PathBuf::from("/etc/hostname"), format!("{HOSTNAME}\n")),
        ];
        let argv = match input.family {
            RuntimeFamily::Python => vec![
                input.python.display().to_string(),
                format!("{RUNTIME_DIR}/python/bootstrap.py"),
            ],
            RuntimeFamily::Node => vec![
                input
                    .node
                    .map_or_else(|| "/usr/bin/node".into(), |n| n.display().to_string()),
                format!("{RUNTIME_DIR}/node/bootstrap.js"),
            ],
            RuntimeFamily::Provided | RuntimeFamily::Wasm => vec![format!("{TASK_ROOT}/bootstrap")],
        };
        SandboxPlan {
            root_dir: input.root_dir.to_owned(),
            mounts,
            symlinks,
            files,
            proc_masks: proc_masks(),
            egress: input.egress.clone(),
            runtime_api_port: RUNTIME_API_PORT,
            cgroup_procs: input.cgroup_procs.clone(),
            uid: input.uid,
            gid: input.uid,
            rlimits: vec![Rlimit::NoFile(NOFILE_LIMIT), Rlimit::Core(0)],
            argv,
            env: input.env.clone(),
            cwd: TASK_ROOT.into(),
        }
    }
}

/// What the plan asks of the host file system.
pub trait HostProbe {
    /// The target if `path` is a symbolic link.
    fn link(&self, path: &Path) -> Option<PathBuf>;
    /// Whether `path` is a directory (following links).
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether `path` is a regular file.
    fn is_file(&self, path: &Path) -> bool;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostFs;

impl HostProbe for HostFs {
    fn link(&self, path: &Path) -> Option<PathBuf> {
        host_link(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    struct FakeProbe {
        links: BTreeMap<PathBuf, PathBuf>,
        dirs: BTreeSet<PathBuf>,
        files: BTreeSet<PathBuf>,
    }

    impl HostProbe for FakeProbe {
        fn link(&self, p: &Path) -> Option<PathBuf> {
            self.links.get(p).cloned()
        }
        fn is_dir(&self, p: &Path) -> bool {
            self.dirs.contains(p)
        }
        fn is_file(&self, p: &Path) -> bool {
            self.files.contains(p)
        }
        fn exists(&self, p: &Path) -> bool {
            self.dirs.contains(p) || self.files.contains(p)
        }
    }

    fn debian_like() -> FakeProbe {
        FakeProbe {
            links: BTreeMap::from([
                ("/bin".into(), "usr/bin".into()),
                ("/lib".into(), "usr/lib".into()),
                ("/lib64".into(), "usr/lib64".into()),
            ]),
            dirs: BTreeSet::from(["/usr".into(), "/etc/ssl".into(), "/root".into()]),
            files: BTreeSet::from([
                "/etc/ld.so.cache".into(),
                "/etc/shadow".into(),
                "/dev/null".into(),
                "/dev/urandom".into(),
            ]),
        }
    }

    fn input<'a>(family: RuntimeFamily, egress: bool) -> PlanInput<'a> {
        let egress = egress.then(|| EgressPlan {
            ip: "/usr/sbin/ip".into(),
        });
        PlanInput {
            family,
            code_dir: Path::new("/data/packages/abc"),
            runtime_dir: Path::new("/data/runtimes"),
            root_dir: Path::new("/data/sandbox-root"),
            ephemeral_storage_mb: 1024,
            egress,
            cgroup_procs: vec!["/sys/fs/cgroup/memory/x/cgroup.procs".into()],
            env: vec![("_HANDLER".into(), "app.handler".into())],
            python: Path::new("/usr/bin/python3"),
            node: None,
            uid: 200_017,
        }
    }

    fn targets(plan: &SandboxPlan) -> Vec<String> {
        plan.mounts
            .iter()
            .map(|m| match m {
                Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } => {
                    target.display().to_string()
                }
            })
            .collect()
    }

    #[test]
    fn the_sandbox_sees_system_dirs_code_and_tmp_only() {
        let plan = SandboxPlan::build(&input(RuntimeFamily::Python, false), &debian_like());
        let t = targets(&plan);
        assert_eq!(
            t,
            [
                "/usr",
                "/etc/ld.so.cache",
                "/etc/ssl",
                "/dev",
                "/dev/null",
                "/dev/urandom",
                "/var/task",
                "/var/runtime",
                "/tmp"
            ]
        );
        assert!(
            !t.iter()
                .any(|p| p.starts_with("/root") || p == "/etc/shadow")
        );
        assert!(plan.symlinks.contains(&("/bin".into(), "usr/bin".into())));
        let code = plan
            .mounts
            .iter()
            .find(|m| matches!(m, Mount::Bind { target, .. } if target == Path::new("/var/task")))
            .expect("code mount");
        assert!(
            matches!(code, Mount::Bind { readonly: true, source, .. } if source == Path::new("/data/packages/abc"))
        );
        assert!(plan.mounts.contains(&Mount::Tmpfs {
            target: "/tmp".into(),
            size_bytes: 1024 * 1024 * 1024,
            mode: 0o1777,
            owner: Some((200_017, 200_017)),
        }));
        assert_eq!(plan.egress, None);
        assert_eq!(plan.runtime_api_port, RUNTIME_API_PORT);
        assert_eq!(
            plan.argv,
            ["/usr/bin/python3", "/var/runtime/python/bootstrap.py"]
        );
        assert_eq!((plan.uid, plan.gid), (200_017, 200_017));
        let file = |name: &str| {
            plan.files
                .iter()
                .find(|(p, _)| p == Path::new(name))
                .map(|(_, c)| c.clone())
                .expect("written")
        };
        assert!(
            file("/etc/passwd").contains("\nsbx_user1051:x:200017:200017::/tmp:"),
            "{}",
            file("/etc/passwd")
        );
        assert!(file("/etc/group").contains("\nsbx_user1051:x:200017:\n"));
    }

    #[test]
    fn proc_hides_what_runc_hides_and_the_kernel_command_line() {
        let plan = SandboxPlan::build(&input(RuntimeFamily::Node, false), &debian_like());
        for file in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/sched_debug",
            "/proc/cmdline",
        ] {
            assert!(
                plan.proc_masks.contains(&ProcMask::Null(file.into())),
                "{file}"
            );
        }
        assert!(
            plan.proc_masks
                .contains(&ProcMask::Empty("/proc/acpi".into()))
        );
        for ro in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/irq",
            "/proc/bus",
            "/proc/fs",
        ] {
            assert!(
                plan.proc_masks.contains(&ProcMask::ReadOnly(ro.into())),
                "{ro}"
            );
        }
        assert!(
            plan.proc_masks
                .iter()
                .all(|m| m.path().starts_with("/proc/"))
        );
        // Nothing the runtimes read about themselves is hidden.
        for own in ["/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat"] {
            assert!(
                !plan.proc_masks.iter().any(|m| m.path() == Path::new(own)),
                "{own}"
            );
        }
    }

    #[test]
    fn egress_sandboxes_keep_their_runtime_api_in_their_own_namespace() {
        let plan = SandboxPlan::build(&input(RuntimeFamily::Provided, true), &debian_like());
        assert_eq!(
            plan.egress,
            Some(EgressPlan {
                ip: "/usr/sbin/ip".into()
            })
        );
        assert_eq!(plan.runtime_api_port, RUNTIME_API_PORT);
        assert_eq!(plan.argv, ["/var/task/bootstrap"]);
        let json = serde_json::to_string(&plan).expect("serialises");
        let back: SandboxPlan = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, plan);
    }
}
