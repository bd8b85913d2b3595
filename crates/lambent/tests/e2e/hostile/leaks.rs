//! Hostile: leaks (see docs/sandbox.md, threat model). A function looks for what the platform did
//! not mean to give it: descriptors lambent inherited, lambent's environment, the host's cgroup
//! layout, kernel command line and `/proc` files, and host paths of the data dir and binaries.

use std::process::Command;

use serde_json::json;

use crate::harness::{BIN, SECRET_ACCESS_KEY, Server};
use crate::sandbox::{call, deploy_dir, function_dir};

/// Starts the program in `argv[2:]` the way a careless supervisor would: with a file (`argv[1]`)
/// at fd 6, a listening TCP socket at fd 5 and one end of a Unix socket pair at fd 7, none
/// close-on-exec.
const LEAKY_LAUNCHER: &str = r#"
import os, socket, sys
os.dup2(os.open(sys.argv[1], os.O_RDONLY), 6)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
os.dup2(listener.fileno(), 5)
a, b = socket.socketpair()
os.dup2(a.fileno(), 7)
os.execv(sys.argv[2], sys.argv[2:])
"#;

/// Lists the runtime's descriptors (what each points at, and for sockets where they lead) and
/// its environment.
const PY_FDS_AND_ENV: &str = r#"
import os, socket

def describe(fd):
    try:
        target = os.readlink("/proc/self/fd/%d" % fd)
    except OSError:
        return None  # the descriptor the listing itself used, closed by now
    info = {"target": target}
    if target.startswith("socket:"):
        s = socket.socket(fileno=os.dup(fd))
        try:
            info["family"] = int(s.family)
            info["listening"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            try:
                info["peer"] = "%s:%s" % s.getpeername()[:2]
            except (OSError, TypeError):
                info["peer"] = None
        finally:
            s.close()
    return info

def handler(event, context):
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        d = describe(int(name))
        if d is not None:
            fds[name] = d
    return {"fds": fds, "env": dict(os.environ)}
"#;

/// Variables Lambda sets (besides `AWS_LAMBDA_*`), lambent's per-runtime ones, and what Python
/// adds itself (`LC_CTYPE`, PEP 538).
const LAMBDA_VARIABLES: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "TZ",
    "LANG",
    "PATH",
    "LD_LIBRARY_PATH",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
    "LC_CTYPE",
];

#[tokio::test]
async fn a_function_gets_no_inherited_descriptor_and_none_of_lambents_environment() {
    let secret = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret.path(), "the supervisor's secret").expect("write secret");
    let secret_path = secret.path().display().to_string();
    let mut launcher = Command::new("/usr/bin/python3");
    launcher
        .args(["-c", LEAKY_LAUNCHER, &secret_path, BIN])
        .env("LAMBENT_LEAK_CANARY", "canary-5e1f0a")
        .env("DATABASE_PASSWORD", "canary-5e1f0a");
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_via(launcher, tmp.path(), &[]).await;
    // The attack is real: lambent itself holds the leaked descriptors.
    let lambent_fd6 =
        std::fs::read_link(format!("/proc/{}/fd/6", server.pid())).expect("lambent inherited fd 6");
    assert_eq!(lambent_fd6.display().to_string(), secret_path);

    let dir = function_dir(&[("app.py", PY_FDS_AND_ENV, false)]);
    deploy_dir(
        &server,
        "fdleak",
        dir.path(),
        &[
            "--runtime",
            "python3",
            "--handler",
            "app.handler",
            "--env",
            "OWN_SETTING=mine",
        ],
    );
    let a = call(&server, "fdleak", json!({})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let fds = a.body["fds"].as_object().expect("fds");
    assert_eq!(fds["0"]["target"], "/dev/null", "{fds:?}");
    for std in ["1", "2"] {
        let target = fds[std]["target"].as_str().expect("target");
        assert!(target.starts_with("pipe:"), "fd {std}: {target}");
    }
    let env = a.body["env"].as_object().expect("env");
    let api = env["AWS_LAMBDA_RUNTIME_API"].as_str().expect("runtime api");
    for (fd, info) in fds {
        if ["0", "1", "2"].contains(&fd.as_str()) {
            continue;
        }
        // Anything else is what the runtime opened itself: its connection to the Runtime API.
        assert!(
            info["family"] == json!(libc::AF_INET)
                && info["listening"] == json!(0)
                && info["peer"] == json!(api),
            "fd {fd} is not the runtime's own: {info} (all: {fds:?})"
        );
    }

    for (name, value) in env {
        let value = value.as_str().unwrap_or("");
        assert!(
            !name.starts_with("LAMBENT_")
                && !value.contains("canary")
                && value != SECRET_ACCESS_KEY,
            "lambent's environment leaked: {name}={value}"
        );
        assert!(
            name.starts_with("AWS_LAMBDA_")
                || LAMBDA_VARIABLES.contains(&name.as_str())
                || name == "OWN_SETTING",
            "unexpected variable {name}={value}"
        );
    }
    assert_eq!(env["OWN_SETTING"], "mine");
    assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
}

/// Reads what a function could learn about the host from `/proc`.
const PY_PROC: &str = r#"
import errno, os

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read(65536).decode("utf-8", "replace")
    except OSError as e:
        return "error " + errno.errorcode.get(e.errno, str(e.errno))

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def handler(event, context):
    exists = lambda p: os.path.lexists(p)
    processes = {}
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        processes[pid] = {"cmdline": read("/proc/%s/cmdline" % pid).replace("\0", " "),
                          "environ": read("/proc/%s/environ" % pid).replace("\0", " ")}
    return {
        "files": {p: read(p) for p in event["files"] if exists(p)},
        "dirs": {p: sorted(os.listdir(p)) for p in event["dirs"] if exists(p)},
        "readonly": {p: bool(os.statvfs(p).f_flag & os.ST_RDONLY) for p in event["readonly"] if exists(p)},
        "sysrq": attempt(lambda: open("/proc/sysrq-trigger", "w").close()),
        "cgroup": read("/proc/self/cgroup"),
        "init": read("/proc/1/cmdline"),
        "processes": processes,
        "mountinfo": read("/proc/self/mountinfo"),
    }
"#;

/// `/proc` files that must read empty inside (Docker's and runc's masks, and the kernel's command
/// line).
const MASKED_FILES: &[&str] = &[
    "/proc/cmdline",
    "/proc/kcore",
    "/proc/keys",
    "/proc/timer_list",
    "/proc/sched_debug",
    "/proc/kallsyms",
    "/proc/interrupts",
];
const MASKED_DIRS: &[&str] = &["/proc/acpi", "/proc/asound", "/proc/scsi"];
const READONLY: &[&str] = &[
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/irq",
    "/proc/bus",
    "/proc/fs",
];

#[tokio::test]
async fn proc_hides_the_hosts_kernel_cgroups_and_paths() {
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", PY_PROC, false)]);
    deploy_dir(
        &server,
        "procpeek",
        dir.path(),
        &["--runtime", "python3", "--handler", "app.handler"],
    );
    let event = json!({"files": MASKED_FILES, "dirs": MASKED_DIRS, "readonly": READONLY});
    let a = call(&server, "procpeek", event).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let b = &a.body;

    // The host's kernel command line is there to read outside; inside it reads empty.
    let host_cmdline = std::fs::read_to_string("/proc/cmdline").expect("host cmdline");
    assert!(!host_cmdline.trim().is_empty());
    assert_eq!(b["files"]["/proc/cmdline"], "", "{b}");
    for (path, contents) in b["files"].as_object().expect("files") {
        assert_eq!(contents, "", "{path} is not masked");
    }
    for (path, entries) in b["dirs"].as_object().expect("dirs") {
        assert_eq!(entries, &json!([]), "{path} is not emptied");
    }
    for path in READONLY {
        if std::path::Path::new(path).exists() {
            assert_eq!(b["readonly"][path], true, "{path} is writable: {b}");
        }
    }
    if std::path::Path::new("/proc/sysrq-trigger").exists() {
        assert_eq!(b["sysrq"], "EROFS", "{b}");
    }

    // A cgroup namespace rooted at the sandbox's own cgroup: every hierarchy reads `/`.
    let cgroup = b["cgroup"].as_str().expect("cgroup");
    assert!(!cgroup.trim().is_empty());
    for line in cgroup.lines() {
        assert!(line.ends_with(":/"), "host cgroup layout shows: {cgroup}");
    }

    // init (root) is hidden from the function's user; nothing visible names a host path.
    assert!(
        b["init"].as_str().expect("init").starts_with("error"),
        "{b}"
    );
    let data_dir = server.data_dir.display().to_string();
    let bin_dir = std::path::Path::new(BIN)
        .parent()
        .expect("bin dir")
        .display()
        .to_string();
    for (pid, p) in b["processes"].as_object().expect("processes") {
        for what in ["cmdline", "environ"] {
            let text = p[what].as_str().unwrap_or("");
            assert!(
                !text.contains(&data_dir) && !text.contains(&bin_dir),
                "process {pid}'s {what} shows a host path: {text}"
            );
        }
    }
    // lambent's binaries are never mounted. (The code and runtime binds do show their sources'
    // paths inside the data dir's file system in mountinfo: the kernel prints a bind's root.)
    let mountinfo = b["mountinfo"].as_str().expect("mountinfo");
    assert!(!mountinfo.contains(&bin_dir), "{mountinfo}");
    assert!(
        mountinfo_field(mountinfo, 4).all(|mount_point| !mount_point.contains(&data_dir)),
        "{mountinfo}"
    );
}

/// Field `n` (0-based) of every line of a mountinfo.
fn mountinfo_field(mountinfo: &str, n: usize) -> impl Iterator<Item = &str> {
    mountinfo
        .lines()
        .filter_map(move |l| l.split_whitespace().nth(n))
}
