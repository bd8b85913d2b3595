//! Hostile: seccomp (see docs/sandbox.md, threat model). From inside a real Python function, a
//! function calls what the allow list keeps from it, as raw system calls through ctypes, and
//! checks the errno each gets: `EPERM` for the privileged calls, `EAFNOSUPPORT` for socket
//! families other than Unix and IP, `ENOSYS` for calls outside the list.

use serde_json::json;

use crate::harness::Server;
use crate::sandbox::{call, deploy_dir, function_dir};

/// x86-64 system call numbers the probe uses (the test runs on x86-64 CI).
const PY_SYSCALLS: &str = r#"
import ctypes, errno, os, socket

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

NR = {"io_uring_setup": 425, "userfaultfd": 323, "bpf": 321, "perf_event_open": 298,
      "personality": 135, "memfd_create": 319, "ptrace": 101, "mount": 165, "unshare": 272,
      "keyctl": 250, "add_key": 248, "clone": 56, "clone3": 435, "setns": 308,
      "process_vm_readv": 310, "pidfd_getfd": 438, "open_tree": 428, "fsopen": 430}

def raw(name, *args):
    nr = NR[name] if isinstance(name, str) else name
    ctypes.set_errno(0)
    rc = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    if rc >= 0:
        return rc, "ok"
    e = ctypes.get_errno()
    return rc, errno.errorcode.get(e, str(e))

def outcome(name, *args):
    rc, what = raw(name, *args)
    if what == "ok" and name in ("userfaultfd", "io_uring_setup", "memfd_create", "perf_event_open"):
        os.close(rc)
    return what

def open_socket(family, kind):
    try:
        socket.socket(family, kind).close()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def handler(event, context):
    params = ctypes.create_string_buffer(120)
    attr = ctypes.create_string_buffer(128)
    CLONE_NEWUSER, SIGCHLD = 0x10000000, 17
    rc, clone_ns = raw("clone", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if rc == 0:
        os._exit(0)
    rc, clone_plain = raw("clone", SIGCHLD, 0, 0, 0, 0)
    if rc == 0:
        os._exit(0)
    if rc > 0:
        os.waitpid(rc, 0)
    calls = {
        "io_uring_setup": outcome("io_uring_setup", 1, params),
        "userfaultfd": outcome("userfaultfd", os.O_CLOEXEC | 1),  # UFFD_USER_MODE_ONLY
        "bpf": outcome("bpf", 0, attr, 72),  # BPF_MAP_CREATE
        "perf_event_open": outcome("perf_event_open", attr, 0, -1, -1, 0),
        "personality_read_implies_exec": outcome("personality", 0x0400000),
        "personality_addr_no_randomize": outcome("personality", 0x0040000),
        "personality_query": outcome("personality", 0xffffffff),
        "memfd_create": outcome("memfd_create", b"probe", 0),
        "ptrace_traceme": outcome("ptrace", 0, 0, 0, 0),
        "mount": outcome("mount", b"none", b"/tmp", b"tmpfs", 0, 0),
        "unshare_user": outcome("unshare", CLONE_NEWUSER),
        "setns": outcome("setns", 0, 0),
        "keyctl": outcome("keyctl", 0, -3, 0),  # KEYCTL_GET_KEYRING_ID of the session keyring
        "add_key": outcome("add_key", b"user", b"probe", b"x", 1, -3),
        "process_vm_readv": outcome("process_vm_readv", os.getpid(), 0, 0, 0, 0, 0),
        "pidfd_getfd": outcome("pidfd_getfd", 0, 0, 0),
        "open_tree": outcome("open_tree", -100, b"/", 1),
        "fsopen": outcome("fsopen", b"tmpfs", 0),
        "clone_newuser": clone_ns,
        "clone_plain": clone_plain,
        "clone3": outcome("clone3", 0, 0),
        "unknown_1000": outcome(1000),
        "x32_mount": outcome(0x40000000 | 165, 0, 0, 0, 0, 0),
    }
    sockets = {
        "unix": open_socket(socket.AF_UNIX, socket.SOCK_STREAM),
        "inet": open_socket(socket.AF_INET, socket.SOCK_STREAM),
        "inet_udp": open_socket(socket.AF_INET, socket.SOCK_DGRAM),
        "inet6": open_socket(socket.AF_INET6, socket.SOCK_STREAM),
        "netlink": open_socket(socket.AF_NETLINK, socket.SOCK_RAW),
        "vsock": open_socket(40, socket.SOCK_STREAM),
        "packet": open_socket(17, socket.SOCK_RAW),
        "alg": open_socket(38, socket.SOCK_SEQPACKET),
        "bluetooth": open_socket(31, socket.SOCK_STREAM),
    }
    # What still works: a real TCP round trip over loopback.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    client.sendall(b"ping")
    echoed = peer.recv(4).decode()
    for s in (client, peer, server):
        s.close()
    return {"calls": calls, "sockets": sockets, "echoed": echoed}
"#;

#[tokio::test]
async fn denied_system_calls_and_socket_families_fail_with_the_chosen_errno() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the probe uses x86-64 system call numbers"
    );
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", PY_SYSCALLS, false)]);
    deploy_dir(
        &server,
        "syscalls",
        dir.path(),
        &["--runtime", "python3", "--handler", "app.handler"],
    );
    let a = call(&server, "syscalls", json!({})).await;
    assert_eq!(a.status, 200, "{} {}", a.body, a.log());
    let calls = &a.body["calls"];
    for denied in [
        "io_uring_setup",
        "userfaultfd",
        "bpf",
        "perf_event_open",
        "personality_read_implies_exec",
        "personality_addr_no_randomize",
        "ptrace_traceme",
        "mount",
        "unshare_user",
        "setns",
        "keyctl",
        "add_key",
        "process_vm_readv",
        "pidfd_getfd",
        "open_tree",
        "fsopen",
        "clone_newuser",
    ] {
        assert_eq!(calls[denied], "EPERM", "{denied}: {calls}");
    }
    for unknown in ["clone3", "unknown_1000", "x32_mount"] {
        assert_eq!(calls[unknown], "ENOSYS", "{unknown}: {calls}");
    }
    for allowed in ["personality_query", "memfd_create", "clone_plain"] {
        assert_eq!(calls[allowed], "ok", "{allowed}: {calls}");
    }

    let sockets = &a.body["sockets"];
    for family in ["unix", "inet", "inet_udp", "inet6"] {
        assert_eq!(sockets[family], "ok", "{family}: {sockets}");
    }
    for family in ["netlink", "vsock", "packet", "alg", "bluetooth"] {
        assert_eq!(sockets[family], "EAFNOSUPPORT", "{family}: {sockets}");
    }
    assert_eq!(a.body["echoed"], "ping");
}
