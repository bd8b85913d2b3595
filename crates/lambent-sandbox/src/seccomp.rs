//! The runtime's seccomp filters: an allow list derived from Docker's default profile
//! (moby `profiles/seccomp/default.json`), narrowed for functions that only speak the Lambda
//! Runtime API over a socket.
//!
//! Three filters are installed, oldest first; for each system call the kernel runs all of them and
//! the most restrictive answer wins (for two `ERRNO` answers, the newer filter's errno):
//!
//! 1. [`ALLOWED`] (and the architecture's [`ALLOWED_ARCH`]) are allowed; **every other system
//!    call fails with `ENOSYS`**, as on a kernel that lacks it. `ENOSYS` rather than `EPERM`
//!    because it is the answer libc and language runtimes probe for before falling back to an
//!    older call (`clone3` -> `clone`, `faccessat2` -> `faccessat`, `fchmodat2`, `statx`...); an
//!    `EPERM` there breaks them (the glibc 2.34 `clone3` breakage of Docker's old profile). It also
//!    closes the x32 and future-system-call bypasses a deny list has: an unknown number is denied.
//! 2. The privileged calls of [`DENIED`], `clone` with a namespace flag and `personality` with a
//!    value other than [`PERSONALITIES`] fail with `EPERM`, what an unprivileged caller gets from
//!    the kernel: mounting, tracing, namespaces, keyrings, BPF, perf, `userfaultfd`, `io_uring`.
//! 3. `socket` for a family other than [`SOCKET_FAMILIES`] fails with `EAFNOSUPPORT`, as on a
//!    kernel without that family (glibc then assumes what it would have asked netlink for).
//!
//! `memfd_create` stays allowed, as in Docker: V8-based tools (headless Chromium), .NET's
//! write-xor-execute double mapping and libffi closures use it, and it gives nothing `/tmp` (a
//! writable, executable tmpfs counted in the same memory cgroup) does not already give.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Why the filters could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler does not know this architecture
    #[error("seccomp does not support the architecture {0}")]
    Arch(&'static str),
    /// seccompiler refused a rule or could not compile a filter
    #[error("cannot build the seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
}

/// System calls every runtime may make on any architecture: Docker's default allow list without
/// `ptrace`, `process_vm_*`, `io_uring_*`, `name_to_handle_at`, `fanotify_mark`, `adjtimex`,
/// `clock_adjtime`, `memfd_secret` and `process_mrelease`. `clone`, `socket` and `personality`
/// are allowed here and narrowed by the later filters.
const ALLOWED: &[i64] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_clone,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_ioctl,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lgetxattr,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_madvise,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_mincore,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_personality,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_pselect6,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_set_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd4,
    libc::SYS_socket,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlinkat,
    libc::SYS_utimensat,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
];

/// The x86-64 system calls of Docker's allow list that newer architectures replaced (`open`,
/// `stat`, `fork`, `getrlimit`... by `openat`, `newfstatat`, `clone`, `prlimit64`), plus
/// `arch_prctl` (thread-local storage) and `fchmodat2`.
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[i64] = &[
    libc::SYS_access,
    libc::SYS_alarm,
    libc::SYS_arch_prctl,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_creat,
    libc::SYS_dup2,
    libc::SYS_epoll_create,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_fchmodat2,
    libc::SYS_fork,
    libc::SYS_futimesat,
    libc::SYS_getdents,
    libc::SYS_getpgrp,
    libc::SYS_getrlimit,
    libc::SYS_inotify_init,
    libc::SYS_lchown,
    libc::SYS_link,
    libc::SYS_lstat,
    libc::SYS_mkdir,
    libc::SYS_mknod,
    libc::SYS_modify_ldt,
    libc::SYS_open,
    libc::SYS_pause,
    libc::SYS_pipe,
    libc::SYS_poll,
    libc::SYS_readlink,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_rmdir,
    libc::SYS_select,
    libc::SYS_setrlimit,
    libc::SYS_signalfd,
    libc::SYS_stat,
    libc::SYS_symlink,
    libc::SYS_sync_file_range,
    libc::SYS_time,
    libc::SYS_unlink,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_vfork,
];
/// See the x86-64 list; aarch64 has only the `*at` forms, all in [`ALLOWED`].
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[i64] = &[];

/// Privileged system calls that fail with `EPERM` (not `ENOSYS`): what a function asking for them
/// would get from the kernel as an unprivileged user, said plainly. None is in [`ALLOWED`].
const DENIED: &[i64] = &[
    // mounts and roots
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fanotify_init,
    libc::SYS_fanotify_mark,
    // namespaces
    libc::SYS_unshare,
    libc::SYS_setns,
    // other processes' memory
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_process_madvise,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    // kernel attack surface
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_memfd_secret,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // the machine
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_iopl,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_ioperm,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_uselib,
];

/// `clone` flags that create namespaces (Docker's mask `0x7E020000`); `clone` with any of them
/// fails with `EPERM`. `clone3` keeps `ENOSYS` (its flags are in memory a filter cannot read), so
/// libc falls back to `clone`, whose flags it can.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// `personality` values Docker allows: `PER_LINUX`, `PER_LINUX32`, `UNAME26`, both together, and
/// `0xffffffff` (query). Others (`READ_IMPLIES_EXEC`, `ADDR_NO_RANDOMIZE`...) fail with `EPERM`.
pub const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// The only socket families a function may open: local sockets and IP. Netlink, packet, vsock,
/// Bluetooth, alg and the rest fail with `EAFNOSUPPORT`.
pub const SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
];

/// Builds the runtime's filters, in the order they must be installed (see the module notes).
pub fn seccomp_filters() -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|_| SeccompError::Arch(std::env::consts::ARCH))?;
    let allowed = SeccompFilter::new(
        ALLOWED
            .iter()
            .chain(ALLOWED_ARCH)
            .map(|&nr| (nr, vec![]))
            .collect(),
        SeccompAction::Errno(libc::ENOSYS as u32),
        SeccompAction::Allow,
        arch,
    )?;

    let mut denied: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&nr| (nr, vec![])).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    denied.insert(libc::SYS_clone, clone_rules);
    denied.insert(libc::SYS_personality, vec![none_of(0, PERSONALITIES)?]);
    let denied = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;

    let families = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_socket, vec![none_of(0, SOCKET_FAMILIES)?])]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EAFNOSUPPORT as u32),
        arch,
    )?;

    [allowed, denied, families]
        .into_iter()
        .map(|f| BpfProgram::try_from(f).map_err(SeccompError::from))
        .collect()
}

/// A rule that matches when the 32-bit argument `arg` is none of `values`.
fn none_of(arg: u8, values: &[u64]) -> Result<SeccompRule, seccompiler::BackendError> {
    let conditions = values
        .iter()
        .map(|&v| SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, v))
        .collect::<Result<Vec<_>, _>>()?;
    SeccompRule::new(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::sock_filter;

    /// `SECCOMP_RET_ACTION_FULL`: the action part of a filter's answer.
    const ACTION: u32 = 0xffff_0000;
    const ALLOW: u32 = 0x7fff_0000;
    const ERRNO: u32 = 0x0005_0000;

    /// Runs one classic BPF program on a `seccomp_data` the way the kernel does, for the
    /// instructions seccompiler emits (absolute word loads, `and`, conditional jumps, returns).
    fn run(prog: &[sock_filter], data: &[u32; 16]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let i = &prog[pc];
            pc += 1;
            let class = i.code & 0x07;
            match class {
                0x00 => {
                    // BPF_LD | BPF_W | BPF_ABS
                    assert_eq!(i.code, 0x20, "unexpected load {i:?}");
                    a = data[i.k as usize / 4];
                }
                0x04 => {
                    // BPF_ALU | BPF_AND | BPF_K
                    assert_eq!(i.code, 0x54, "unexpected alu {i:?}");
                    a &= i.k;
                }
                0x05 => {
                    let taken = match i.code & 0xf0 {
                        0x00 => {
                            pc += i.k as usize;
                            continue;
                        }
                        0x10 => a == i.k,
                        0x20 => a > i.k,
                        0x30 => a >= i.k,
                        0x40 => a & i.k != 0,
                        op => panic!("unexpected jump {op:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                0x06 => return i.k,
                _ => panic!("unexpected instruction {i:?}"),
            }
        }
    }

    /// What the kernel answers for `nr(args)` with all `filters` installed in order: the lowest
    /// action wins, the newest filter's data among equal actions.
    fn answer(filters: &[BpfProgram], nr: i64, args: [u64; 6]) -> u32 {
        let arch = match std::env::consts::ARCH {
            "x86_64" => 0xc000_003e,
            "aarch64" => 0xc000_00b7,
            other => panic!("no audit arch for {other}"),
        };
        let mut data = [0u32; 16];
        data[0] = nr as u32;
        data[1] = arch;
        for (n, a) in args.iter().enumerate() {
            // seccomp_data.args[] on a little-endian host: low word first.
            data[4 + 2 * n] = *a as u32;
            data[5 + 2 * n] = (*a >> 32) as u32;
        }
        let mut ret = ALLOW;
        for f in filters.iter().rev() {
            let cur = run(f, &data);
            if (cur & ACTION) < (ret & ACTION) {
                ret = cur;
            }
        }
        ret
    }

    fn errno(e: i32) -> u32 {
        ERRNO | e as u32
    }

    #[test]
    fn the_filters_compile_within_the_kernels_size_limit() {
        let filters = seccomp_filters().expect("filters build");
        assert_eq!(filters.len(), 3);
        // BPF_MAXINSNS
        assert!(filters.iter().all(|f| !f.is_empty() && f.len() <= 4096));
    }

    #[test]
    fn no_call_is_both_allowed_and_denied() {
        for nr in DENIED {
            assert!(
                !ALLOWED.contains(nr) && !ALLOWED_ARCH.contains(nr),
                "{nr} is in both lists"
            );
        }
    }

    #[test]
    fn what_python_node_and_rust_runtimes_call_is_allowed() {
        // Traced (strace -f) from Python 3.11 and Node.js 20 running a Runtime API client with
        // threads, subprocesses, sockets, TLS set-up, asyncio, worker threads and WebAssembly.
        let mut needed = vec![
            libc::SYS_accept4,
            libc::SYS_bind,
            libc::SYS_brk,
            libc::SYS_capget,
            libc::SYS_chdir,
            libc::SYS_clock_nanosleep,
            libc::SYS_clone,
            libc::SYS_close,
            libc::SYS_close_range,
            libc::SYS_connect,
            libc::SYS_epoll_create1,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_pwait,
            libc::SYS_eventfd2,
            libc::SYS_execve,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_faccessat2,
            libc::SYS_fcntl,
            libc::SYS_fstat,
            libc::SYS_futex,
            libc::SYS_getcwd,
            libc::SYS_getdents64,
            libc::SYS_getegid,
            libc::SYS_geteuid,
            libc::SYS_getgid,
            libc::SYS_getpeername,
            libc::SYS_getpid,
            libc::SYS_getppid,
            libc::SYS_getrandom,
            libc::SYS_getsockname,
            libc::SYS_getsockopt,
            libc::SYS_gettid,
            libc::SYS_getuid,
            libc::SYS_ioctl,
            libc::SYS_listen,
            libc::SYS_lseek,
            libc::SYS_madvise,
            libc::SYS_memfd_create,
            libc::SYS_mmap,
            libc::SYS_mprotect,
            libc::SYS_munmap,
            libc::SYS_newfstatat,
            libc::SYS_openat,
            libc::SYS_pipe2,
            libc::SYS_pkey_alloc,
            libc::SYS_pread64,
            libc::SYS_prlimit64,
            libc::SYS_read,
            libc::SYS_recvfrom,
            libc::SYS_recvmsg,
            libc::SYS_restart_syscall,
            libc::SYS_rseq,
            libc::SYS_rt_sigaction,
            libc::SYS_rt_sigprocmask,
            libc::SYS_rt_sigreturn,
            libc::SYS_sched_getaffinity,
            libc::SYS_sendto,
            libc::SYS_set_robust_list,
            libc::SYS_set_tid_address,
            libc::SYS_setsockopt,
            libc::SYS_shutdown,
            libc::SYS_socketpair,
            libc::SYS_statx,
            libc::SYS_sysinfo,
            libc::SYS_uname,
            libc::SYS_unlinkat,
            libc::SYS_wait4,
            libc::SYS_write,
            libc::SYS_writev,
        ];
        #[cfg(target_arch = "x86_64")]
        needed.extend([
            libc::SYS_access,
            libc::SYS_arch_prctl,
            libc::SYS_dup2,
            libc::SYS_epoll_wait,
            libc::SYS_getpgrp,
            libc::SYS_link,
            libc::SYS_mkdir,
            libc::SYS_poll,
            libc::SYS_readlink,
            libc::SYS_rmdir,
            libc::SYS_unlink,
            libc::SYS_vfork,
        ]);
        let filters = seccomp_filters().expect("filters build");
        // `socket`, `clone` and `personality` depend on their arguments: checked below.
        for nr in needed {
            assert_eq!(answer(&filters, nr, [0; 6]), ALLOW, "system call {nr}");
        }
        let inet = [libc::AF_INET as u64, libc::SOCK_STREAM as u64, 0, 0, 0, 0];
        assert_eq!(answer(&filters, libc::SYS_socket, inet), ALLOW);
        let unix = [libc::AF_UNIX as u64, libc::SOCK_DGRAM as u64, 0, 0, 0, 0];
        assert_eq!(answer(&filters, libc::SYS_socket, unix), ALLOW);
        // glibc's pthread_create and fork.
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(
            answer(&filters, libc::SYS_clone, [thread, 0, 0, 0, 0, 0]),
            ALLOW
        );
        let fork = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64 | 17;
        assert_eq!(
            answer(&filters, libc::SYS_clone, [fork, 0, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            answer(
                &filters,
                libc::SYS_personality,
                [0xffff_ffff, 0, 0, 0, 0, 0]
            ),
            ALLOW
        );
    }

    #[test]
    fn privileged_calls_fail_with_eperm_and_unknown_ones_with_enosys() {
        let filters = seccomp_filters().expect("filters build");
        for nr in DENIED {
            assert_eq!(answer(&filters, *nr, [0; 6]), errno(libc::EPERM), "{nr}");
        }
        for flag in NAMESPACE_FLAGS {
            let args = [*flag | 17, 0, 0, 0, 0, 0];
            assert_eq!(answer(&filters, libc::SYS_clone, args), errno(libc::EPERM));
        }
        for persona in [0x40_0000u64, 0x4_0000, 0x8_0000] {
            let args = [persona, 0, 0, 0, 0, 0];
            assert_eq!(
                answer(&filters, libc::SYS_personality, args),
                errno(libc::EPERM),
                "{persona:#x}"
            );
        }
        for nr in [libc::SYS_clone3, 1000, 0x4000_0000 | 165] {
            assert_eq!(answer(&filters, nr, [0; 6]), errno(libc::ENOSYS), "{nr}");
        }
    }

    #[test]
    fn sockets_other_than_unix_and_ip_fail_with_eafnosupport() {
        let filters = seccomp_filters().expect("filters build");
        for family in [
            libc::AF_NETLINK,
            libc::AF_PACKET,
            libc::AF_VSOCK,
            libc::AF_ALG,
            libc::AF_BLUETOOTH,
            libc::AF_KEY,
        ] {
            let args = [family as u64, libc::SOCK_RAW as u64, 0, 0, 0, 0];
            assert_eq!(
                answer(&filters, libc::SYS_socket, args),
                errno(libc::EAFNOSUPPORT),
                "family {family}"
            );
        }
        // The upper half of a 32-bit argument does not smuggle a family past the check.
        let args = [(1u64 << 32) | libc::AF_NETLINK as u64, 3, 0, 0, 0, 0];
        assert_eq!(
            answer(&filters, libc::SYS_socket, args),
            errno(libc::EAFNOSUPPORT)
        );
    }
}
