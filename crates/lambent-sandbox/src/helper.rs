//! The sandbox helper: the privileged part, kept apart from the server like Firecracker's jailer.
//!
//! lambent starts its own binary with [`HELPER_ARG`] for every sandbox (a fresh, single-threaded
//! process, so `fork` is sound and nothing of the server's state leaks in). Its stdin is a Unix
//! socket to lambent, its stdout and stderr the sandbox's log pipe. It reads a [`SandboxPlan`],
//! then:
//!
//! 0. closes every descriptor but those three (lambent may have inherited some without
//!    close-on-exec from whoever started it);
//! 1. unshares the mount, pid, ipc, uts and network namespaces, joins the sandbox's cgroup and
//!    makes it the root of a new cgroup namespace (an egress sandbox's network namespace comes
//!    first and is linked to the host before the rest, see [`crate::network`]);
//! 2. forks the sandbox's init (pid 1 of the new pid namespace), which builds the root file system
//!    (a tmpfs with read-only binds of the system directories and the code, a fresh `/proc` with
//!    the plan's masks, `/dev` and `/tmp`), brings up loopback, opens the Runtime API's listening
//!    socket and passes it to lambent, pivots into the new root and makes it read-only;
//! 3. init forks the runtime, which sets rlimits, drops every capability, switches to the sandbox
//!    user, sets `no_new_privs`, closes every descriptor above stderr, installs the seccomp filters
//!    of [`crate::seccomp`] and execs the runtime;
//! 4. init reaps orphans and exits with the runtime's status; the helper waits for init and exits
//!    the same way. When lambent closes the socket (or dies) the helper kills init, and the kernel
//!    kills everything in the pid namespace with it.

#![allow(
    unsafe_code,
    reason = "fork, pivot_root, ioctl and capset are raw system calls"
)]

use std::ffi::CString;
use std::io::{IoSlice, Read, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork, setgroups, setresgid, setresuid};
use seccompiler::BpfProgram;

use crate::network::{self, LinkAddresses};
use crate::plan::{
    EgressPlan, HOSTNAME, Mount, PROC_MASK_TMPFS_BYTES, ProcMask, ROOT_TMPFS_BYTES, Rlimit,
    SandboxPlan,
};
use crate::seccomp::seccomp_filters;

/// The first argument that makes the `lambent` binary act as the sandbox helper.
pub const HELPER_ARG: &str = "__lambent-sandbox-helper";
/// Exit status of a helper or init that could not build the sandbox.
pub const SETUP_FAILED: i32 = 111;
/// Exit status when the runtime could not be executed.
pub const EXEC_FAILED: i32 = 127;
/// Largest plan the helper reads.
const MAX_PLAN_BYTES: u32 = 1 << 20;

/// What `argv[0]` of the helper (and so of the sandbox's init, pid 1) says: a name, not the host
/// path of lambent's binary.
pub const HELPER_ARGV0: &str = "lambent-sandbox-helper";
/// Options of the sandbox's `/proc`: the function's user sees only its own processes, not init
/// (which runs as root and holds the helper's command line).
const PROC_OPTIONS: &str = "hidepid=2";

/// Message tags on the control socket, helper to lambent.
pub(crate) const TAG_READY: u8 = b'R';
pub(crate) const TAG_ERROR: u8 = b'E';
/// Helper to lambent: the egress sandbox's network namespace exists, link it to the host.
pub(crate) const TAG_NETNS: u8 = b'N';
/// Lambent to helper: the link is made; its addresses follow.
pub(crate) const TAG_GO: u8 = b'G';
/// Length of the [`TAG_GO`] message.
pub(crate) const GO_LEN: usize = 9;

/// The helper's entry point: call it from `main` before anything else when the first argument is
/// [`HELPER_ARG`]. It never returns.
pub fn helper_main() -> ! {
    // lambent creates its own files private (umask 077); what the helper makes in the sandbox's
    // root (mount points, /etc/passwd) and what the runtime creates must be readable as usual.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Whatever lambent inherited without close-on-exec (a socket-activated listener, a caller's
    // open file) reached this process across exec: nothing of it goes further.
    close_descriptors_from(3);
    // SAFETY: lambent starts the helper with its control socket as stdin; nothing else in this
    // fresh process owns fd 0.
    let control = unsafe { UnixStream::from_raw_fd(0) };
    let code = match run_helper(&control) {
        Ok(code) => code,
        Err(message) => {
            send_error(&control, &message);
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn send_error(control: &UnixStream, message: &str) {
    let mut bytes = vec![TAG_ERROR];
    bytes.extend_from_slice(message.as_bytes());
    let _ = sendmsg::<()>(
        control.as_raw_fd(),
        &[IoSlice::new(&bytes)],
        &[],
        MsgFlags::empty(),
        None,
    );
}

fn read_plan(mut control: &UnixStream) -> Result<SandboxPlan, String> {
    let mut len = [0u8; 4];
    control
        .read_exact(&mut len)
        .map_err(|e| format!("cannot read the sandbox plan: {e}"))?;
    let len = u32::from_le_bytes(len);
    if len > MAX_PLAN_BYTES {
        return Err(format!("sandbox plan of {len} bytes is too large"));
    }
    let mut buf = vec![0u8; len as usize];
    control
        .read_exact(&mut buf)
        .map_err(|e| format!("cannot read the sandbox plan: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("sandbox plan is malformed: {e}"))
}

fn run_helper(control: &UnixStream) -> Result<i32, String> {
    let plan = read_plan(control)?;
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    match &plan.egress {
        // Every sandbox has its own network namespace. An egress sandbox's comes first, alone:
        // lambent links it to the host, and its end is configured (by `ip`, a child that must
        // not become pid 1 of the sandbox's pid namespace) before anything else is built.
        Some(egress) => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
                format!("cannot create the network namespace (lambent must run as root): {e}")
            })?;
            join_egress_link(control, egress)?;
        }
        None => flags |= CloneFlags::CLONE_NEWNET,
    }
    unshare(flags)
        .map_err(|e| format!("cannot create namespaces (lambent must run as root): {e}"))?;
    for procs in &plan.cgroup_procs {
        std::fs::write(procs, "0")
            .map_err(|e| format!("cannot join cgroup {}: {e}", procs.display()))?;
    }
    // Once in the sandbox's cgroup, make it the root of a cgroup namespace: `/proc/self/cgroup`
    // inside says `/`, not where lambent keeps its sandboxes (v1 and v2 alike).
    unshare(CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| format!("cannot create the cgroup namespace: {e}"))?;
    // SAFETY: the helper is single-threaded (a fresh exec that started no threads), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() }.map_err(|e| format!("cannot fork the sandbox init: {e}"))? {
        ForkResult::Child => {
            let code = match run_init(control, &plan) {
                Ok(code) => code,
                Err(message) => {
                    send_error(control, &message);
                    SETUP_FAILED
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => Ok(supervise(control, child)),
    }
}

/// In the egress sandbox's fresh network namespace: disables IPv6, asks lambent for the link to
/// the host ([`TAG_NETNS`]), waits for its addresses ([`TAG_GO`]) and configures the sandbox's end
/// with a default route via the host's.
fn join_egress_link(mut control: &UnixStream, egress: &EgressPlan) -> Result<(), String> {
    for conf in ["all", "default"] {
        // Per network namespace: the writer's.
        let knob = format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6");
        match std::fs::write(&knob, "1") {
            // A kernel without IPv6 has nothing to disable.
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot disable IPv6 in the sandbox: {e}"));
            }
            _ => {}
        }
    }
    control
        .write_all(&[TAG_NETNS])
        .map_err(|e| format!("cannot ask lambent for the sandbox's network link: {e}"))?;
    let mut go = [0u8; GO_LEN];
    control
        .read_exact(&mut go)
        .map_err(|e| format!("lambent did not link the sandbox's network: {e}"))?;
    let addrs = parse_go(&go).ok_or("lambent sent an unexpected message instead of the link")?;
    network::run_tool(
        &egress.ip,
        &["-batch", "-"],
        &network::sandbox_link_commands(addrs),
    )
    .map_err(|e| format!("cannot configure the sandbox's network link: {e}"))?;
    Ok(())
}

/// The [`TAG_GO`] message: the tag, the sandbox's address and the host's (the gateway).
pub(crate) fn go_message(addrs: LinkAddresses) -> [u8; GO_LEN] {
    let mut go = [0u8; GO_LEN];
    go[0] = TAG_GO;
    go[1..5].copy_from_slice(&addrs.sandbox.octets());
    go[5..9].copy_from_slice(&addrs.host.octets());
    go
}

fn parse_go(go: &[u8; GO_LEN]) -> Option<LinkAddresses> {
    let [tag, s0, s1, s2, s3, h0, h1, h2, h3] = *go;
    (tag == TAG_GO).then(|| LinkAddresses {
        sandbox: Ipv4Addr::new(s0, s1, s2, s3),
        host: Ipv4Addr::new(h0, h1, h2, h3),
    })
}

/// Waits for init to exit or for lambent to close the control socket, whichever comes first.
fn supervise(control: &UnixStream, init: Pid) -> i32 {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, init.as_raw(), 0) };
    if pidfd >= 0 {
        // SAFETY: pidfd_open returned a fresh descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: control.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLRDHUP,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: `fds` is a valid array of two pollfd structs for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 {
                if nix::errno::Errno::last() == nix::errno::Errno::EINTR {
                    continue;
                }
                break;
            }
            if fds[1].revents != 0 {
                break;
            }
            if fds[0].revents != 0 {
                // lambent is gone or wants the sandbox gone.
                let _ = kill(init, Signal::SIGKILL);
                break;
            }
        }
    }
    wait_exit(init)
}

/// Waits for `pid` and turns its end into an exit status (128 + signal for a killed process).
fn wait_exit(pid: Pid) -> i32 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// Init: builds the sandbox, hands the Runtime API socket to lambent, starts the runtime and reaps.
fn run_init(control: &UnixStream, plan: &SandboxPlan) -> Result<i32, String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| format!("cannot set the parent-death signal: {e}"))?;
    build_root(plan)?;
    loopback_up()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", plan.runtime_api_port))
        .map_err(|e| format!("cannot open the Runtime API socket: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("cannot read the Runtime API port: {e}"))?
        .port();
    nix::unistd::sethostname(HOSTNAME).map_err(|e| format!("cannot set the hostname: {e}"))?;
    enter_root(&plan.root_dir)?;
    let filters = seccomp_filters().map_err(|e| e.to_string())?;
    let program = CString::new(plan.argv.first().cloned().unwrap_or_default())
        .map_err(|_| "runtime path contains NUL".to_owned())?;
    let argv = cstrings(plan.argv.iter().cloned())?;
    let env = cstrings(
        plan.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain([format!("AWS_LAMBDA_RUNTIME_API=127.0.0.1:{port}")]),
    )?;
    let cwd = CString::new(plan.cwd.display().to_string())
        .map_err(|_| "working directory contains NUL".to_owned())?;

    // Ready: hand the listening socket to lambent, then let go of it and of the control socket.
    let fds = [listener.as_raw_fd()];
    let message = [TAG_READY, (port >> 8) as u8, port as u8];
    sendmsg::<()>(
        control.as_raw_fd(),
        &[IoSlice::new(&message)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("cannot pass the Runtime API socket to lambent: {e}"))?;
    drop(listener);
    let devnull = std::fs::File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    // SAFETY: fd 0 is the control socket, which init no longer needs; stdin becomes /dev/null.
    // `devnull` stays open until the dup2 is done.
    if unsafe { libc::dup2(devnull.as_raw_fd(), 0) } < 0 {
        return Err("cannot point stdin at /dev/null".into());
    }
    drop(devnull);

    // SAFETY: init is single-threaded (forked from the single-threaded helper), so the child may
    // run arbitrary code after fork.
    match unsafe { fork() }.map_err(|e| format!("cannot fork the runtime: {e}"))? {
        ForkResult::Child => {
            let err = exec_runtime(plan, &filters, &program, &argv, &env, &cwd);
            eprintln!(
                "lambent: cannot start the runtime {}: {err}",
                plan.argv.first().map_or("", String::as_str)
            );
            std::process::exit(EXEC_FAILED)
        }
        ForkResult::Parent { child } => Ok(reap_until(child)),
    }
}

fn cstrings(items: impl Iterator<Item = String>) -> Result<Vec<CString>, String> {
    items
        .map(|s| CString::new(s).map_err(|_| "argument or variable contains NUL".to_owned()))
        .collect()
}

/// Reaps every child (orphans are reparented to init) until the runtime exits.
fn reap_until(runtime: Pid) -> i32 {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == runtime => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == runtime => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// The host path of `inside` (a path inside the sandbox) under the new root.
fn under(root: &Path, inside: &Path) -> PathBuf {
    root.join(inside.strip_prefix("/").unwrap_or(inside))
}

fn build_root(plan: &SandboxPlan) -> Result<(), String> {
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("cannot make mounts private: {e}"))?;
    let root = &plan.root_dir;
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(format!("size={ROOT_TMPFS_BYTES},mode=0755").as_str()),
    )
    .map_err(|e| format!("cannot mount the root tmpfs on {}: {e}", root.display()))?;
    let mkdirs = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| format!("cannot create {}: {e}", p.display()))
    };
    for m in &plan.mounts {
        match m {
            Mount::Bind {
                source,
                target,
                dir,
                readonly,
            } => {
                let at = under(root, target);
                if *dir {
                    mkdirs(&at)?;
                } else {
                    if let Some(parent) = at.parent() {
                        mkdirs(parent)?;
                    }
                    std::fs::File::create(&at)
                        .map_err(|e| format!("cannot create {}: {e}", at.display()))?;
                }
                mount(
                    Some(source.as_path()),
                    &at,
                    none,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    none,
                )
                .map_err(|e| {
                    format!(
                        "cannot bind {} at {}: {e}",
                        source.display(),
                        target.display()
                    )
                })?;
                if *readonly {
                    mount(
                        none,
                        &at,
                        none,
                        MsFlags::MS_BIND
                            | MsFlags::MS_REMOUNT
                            | MsFlags::MS_RDONLY
                            | MsFlags::MS_NOSUID
                            | MsFlags::MS_NODEV,
                        none,
                    )
                    .map_err(|e| format!("cannot make {} read-only: {e}", target.display()))?;
                }
            }
            Mount::Tmpfs {
                target,
                size_bytes,
                mode,
                owner,
            } => {
                let at = under(root, target);
                mkdirs(&at)?;
                let mut options = format!("size={size_bytes},mode={mode:o}");
                if let Some((uid, gid)) = owner {
                    options.push_str(&format!(",uid={uid},gid={gid}"));
                }
                mount(
                    Some("tmpfs"),
                    &at,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID,
                    Some(options.as_str()),
                )
                .map_err(|e| format!("cannot mount a tmpfs at {}: {e}", target.display()))?;
            }
        }
    }
    for (link, target) in &plan.symlinks {
        let at = under(root, link);
        if let Some(parent) = at.parent() {
            mkdirs(parent)?;
        }
        std::os::unix::fs::symlink(target, &at)
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
    }
    for (path, contents) in &plan.files {
        let at = under(root, path);
        if let Some(parent) = at.parent() {
            mkdirs(parent)?;
        }
        std::fs::write(&at, contents)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    mkdirs(&under(root, Path::new("/opt")))?;
    let proc_dir = under(root, Path::new("/proc"));
    mkdirs(&proc_dir)?;
    mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(PROC_OPTIONS),
    )
    .map_err(|e| format!("cannot mount /proc: {e}"))?;
    for m in &plan.proc_masks {
        mask_proc_entry(root, m)?;
    }
    Ok(())
}

/// Hides one `/proc` entry under the new root, as runc does; entries this kernel lacks are skipped.
fn mask_proc_entry(root: &Path, mask: &ProcMask) -> Result<(), String> {
    let none: Option<&str> = None;
    let at = under(root, mask.path());
    // symlink_metadata: a /proc entry that is a link is not followed out of the sandbox.
    if std::fs::symlink_metadata(&at).is_err() {
        return Ok(());
    }
    let what = mask.path().display();
    match mask {
        ProcMask::Null(_) => mount(Some("/dev/null"), &at, none, MsFlags::MS_BIND, none)
            .map_err(|e| format!("cannot mask {what}: {e}")),
        ProcMask::Empty(_) => mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("size={PROC_MASK_TMPFS_BYTES},mode=0555").as_str()),
        )
        .map_err(|e| format!("cannot mask {what}: {e}")),
        ProcMask::ReadOnly(_) => {
            mount(
                Some(&at),
                &at,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(|e| format!("cannot bind {what}: {e}"))?;
            mount(
                none,
                &at,
                none,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | MsFlags::MS_NOSUID
                    | MsFlags::MS_NODEV
                    | MsFlags::MS_NOEXEC,
                none,
            )
            .map_err(|e| format!("cannot make {what} read-only: {e}"))
        }
    }
}

/// Closes every descriptor numbered `first` or above. Used where nothing above `first` may be
/// owned by anything still to run (the helper's start, the runtime's last step before exec).
fn close_descriptors_from(first: RawFd) {
    let first = first.max(0) as libc::c_uint;
    // SAFETY: close_range takes two numbers and flags and touches no memory; the callers own every
    // descriptor in the range (nothing else in these single-threaded processes uses them).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc/self/fd lists (collected first, since reading the
    // directory holds a descriptor of its own).
    let open: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in open.into_iter().filter(|&fd| fd >= first as RawFd) {
        // SAFETY: as above; closing the directory's own, already closed descriptor fails harmlessly.
        unsafe { libc::close(fd) };
    }
}

/// Pivots into the new root, drops the old one and makes the root read-only.
fn enter_root(root: &Path) -> Result<(), String> {
    let none: Option<&str> = None;
    nix::unistd::chdir(root).map_err(|e| format!("cannot enter {}: {e}", root.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root failed: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("cannot detach the old root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("cannot enter the new root: {e}"))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| format!("cannot make the root read-only: {e}"))
}

/// Brings up `lo` in the sandbox's fresh network namespace.
fn loopback_up() -> Result<(), String> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot open a socket to configure loopback: {e}"))?;
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the flags of the interface named in `ifr` into `ifr`, which is a
    // valid, exclusively borrowed ifreq for the duration of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(format!(
            "cannot read loopback flags: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: after SIOCGIFFLAGS the union holds the flags member.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads `ifr`, a valid ifreq, for the duration of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(format!(
            "cannot bring up loopback: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// In the runtime's process: limits, identity, filters, exec. Returns only on failure.
fn exec_runtime(
    plan: &SandboxPlan,
    filters: &[BpfProgram],
    program: &CString,
    argv: &[CString],
    env: &[CString],
    cwd: &CString,
) -> String {
    if let Err(e) = nix::unistd::setsid() {
        return format!("setsid: {e}");
    }
    for limit in &plan.rlimits {
        let (resource, value) = match *limit {
            Rlimit::NoFile(n) => (Resource::RLIMIT_NOFILE, n),
            Rlimit::Core(n) => (Resource::RLIMIT_CORE, n),
        };
        if let Err(e) = setrlimit(resource, value, value) {
            return format!("setrlimit {resource:?}: {e}");
        }
    }
    // Empty the capability bounding set while still privileged; unknown numbers fail harmlessly.
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    let gid = Gid::from_raw(plan.gid);
    let uid = Uid::from_raw(plan.uid);
    if let Err(e) = setgroups(&[gid]) {
        return format!("setgroups: {e}");
    }
    if let Err(e) = setresgid(gid, gid, gid) {
        return format!("setresgid: {e}");
    }
    // Leaving uid 0 clears the permitted and effective capability sets.
    if let Err(e) = setresuid(uid, uid, uid) {
        return format!("setresuid: {e}");
    }
    if let Err(e) = drop_remaining_capabilities() {
        return e;
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        return format!("no_new_privs: {e}");
    }
    // The runtime starts with stdin (/dev/null), stdout and stderr (the log pipe) and nothing else.
    close_descriptors_from(3);
    for filter in filters {
        if let Err(e) = seccompiler::apply_filter(filter) {
            return format!("seccomp: {e}");
        }
    }
    if let Err(e) = nix::unistd::chdir(cwd.as_c_str()) {
        return format!("chdir {}: {e}", plan.cwd.display());
    }
    match nix::unistd::execve(program, argv, env) {
        Err(e) => format!("{e}"),
        Ok(never) => match never {},
    }
}

/// Clears the inheritable and ambient capability sets (the others went with uid 0).
fn drop_remaining_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct CapHeader {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a header and two data structs laid out as the kernel's
    // __user_cap_header_struct and __user_cap_data_struct (version 3), both valid for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if rc < 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Waits for an egress sandbox's helper to ask for its network link ([`TAG_NETNS`]), or for its
/// error message.
pub(crate) fn receive_netns_request(mut control: &UnixStream) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    let n = control.read(&mut buf).map_err(|e| match e.kind() {
        // The control socket's read timeout passed.
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            "the sandbox helper did not create the sandbox's network namespace in time (the host may be overloaded)".to_owned()
        }
        _ => format!("cannot hear from the sandbox helper: {e}"),
    })?;
    match buf.get(..n) {
        Some([TAG_NETNS]) => Ok(()),
        Some([TAG_ERROR, message @ ..]) => Err(String::from_utf8_lossy(message).into_owned()),
        Some([]) | None => Err("the sandbox helper exited before the sandbox was ready".into()),
        Some(_) => Err("the sandbox helper sent an unexpected message".into()),
    }
}

/// Receives the helper's answer on the control socket: the Runtime API's listening socket and
/// port, or the helper's error message.
pub(crate) fn receive_ready(control: BorrowedFd<'_>) -> Result<(OwnedFd, u16), String> {
    let mut buf = [0u8; 4096];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        control.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| match e {
        // The control socket's read timeout passed.
        nix::errno::Errno::EAGAIN => {
            "the sandbox helper did not finish building the sandbox in time (the host may be overloaded)".to_owned()
        }
        e => format!("cannot hear from the sandbox helper: {e}"),
    })?;
    let mut fd = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: SCM_RIGHTS delivered a new descriptor that this process now owns.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    fd.get_or_insert(owned);
                }
            }
        }
    }
    let n = msg.bytes;
    let data = &buf[..n.min(buf.len())];
    match (data.first(), fd) {
        (Some(&TAG_READY), Some(fd)) if data.len() >= 3 => {
            Ok((fd, u16::from(data[1]) << 8 | u16::from(data[2])))
        }
        (Some(&TAG_ERROR), _) => Err(String::from_utf8_lossy(&data[1..]).into_owned()),
        (None, _) => Err("the sandbox helper exited before the sandbox was ready".into()),
        _ => Err("the sandbox helper sent an unexpected message".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_go_message_carries_both_ends_of_the_link() {
        let addrs = LinkAddresses::of(7);
        assert_eq!(parse_go(&go_message(addrs)), Some(addrs));
        let mut wrong = go_message(addrs);
        wrong[0] = b'X';
        assert_eq!(parse_go(&wrong), None);
    }

    #[test]
    fn paths_map_under_the_new_root() {
        assert_eq!(
            under(Path::new("/r"), Path::new("/var/task")),
            PathBuf::from("/r/var/task")
        );
    }
}
