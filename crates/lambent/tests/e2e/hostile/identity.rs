//! Hostile: identity (see docs/sandbox.md, threat model).
//!
//! Every sandbox runs as its own uid and gid, so a process that got out of its own sandbox's
//! namespaces would still be another user to every other sandbox; and idle sandboxes are frozen,
//! so a function's background work stops when its call ends.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::Server;

/// The first id of the range `serve` reserves by default, and the range's size.
const UID_BASE: u64 = 200_000;
const UID_RANGE: u64 = 65_536;

fn function_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, contents) in files {
        std::fs::write(dir.path().join(path), contents).expect("write");
    }
    dir
}

/// Invokes `name` with `event`; returns the status, whether it was a cold start, and the body.
async fn call(server: &Server, name: &str, event: Value) -> (u16, bool, Value) {
    let resp = crate::harness::client()
        .post(server.url(&format!("/v1/functions/{name}/invoke")))
        .json(&event)
        .send()
        .await
        .expect("invoke");
    let status = resp.status().as_u16();
    let cold = resp
        .headers()
        .get("x-lambent-cold-start")
        .is_some_and(|v| v == "true");
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, cold, body)
}

/// Host pids of the processes running as `uid` (a sandbox's, since no two share one).
fn pids_of_uid(uid: u64) -> Vec<i32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|id| id.parse::<u64>().ok());
        if real == Some(uid) {
            out.push(pid);
        }
    }
    out
}

const PY_IDENTITY: &str = r#"
import errno, os, signal, time, uuid
INSTANCE = uuid.uuid4().hex

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def handler(event, context):
    if "secret" in event:
        fd = os.open("/tmp/secret", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, event["secret"].encode())
        os.close(fd)
    out = {"instance": INSTANCE, "uid": os.getuid(), "gid": os.getgid(),
           "euid": os.geteuid(), "groups": os.getgroups()}
    st = os.stat("/tmp")
    out["tmp_owner"] = [st.st_uid, st.st_gid]
    out["passwd"] = [l for l in open("/etc/passwd").read().splitlines() if l.startswith("sbx_user1051:")]
    out["group"] = [l for l in open("/etc/group").read().splitlines() if l.startswith("sbx_user1051:")]
    out["read_code"] = attempt(lambda: open("/var/task/app.py").read())
    if "victim" in event:
        # The other sandbox's runtime, by its host pid: not in this pid namespace at all.
        out["kill_victim"] = attempt(lambda: os.kill(event["victim"], signal.SIGKILL))
    time.sleep(event.get("hold", 0))
    return out
"#;

/// What a process on the host running as `uid` (as a process escaped from that sandbox would)
/// can do to the process `victim`: signal it, read its environment, read its /tmp.
fn probe_as(uid: u32, victim: i32) -> Value {
    let script = r#"
import errno, json, os, sys
victim = int(sys.argv[1])
def attempt(f):
    try:
        return ["ok", f()]
    except OSError as e:
        return [errno.errorcode.get(e.errno, str(e.errno)), None]
print(json.dumps({
    "uid": os.getuid(),
    "kill": attempt(lambda: os.kill(victim, 0)),
    "environ": attempt(lambda: len(open("/proc/%d/environ" % victim, "rb").read())),
    "secret": attempt(lambda: open("/proc/%d/root/tmp/secret" % victim).read()),
}))
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &victim.to_string()])
        .current_dir("/")
        .uid(uid)
        .gid(uid)
        .output()
        .expect("run the probe");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe json")
}

#[tokio::test]
async fn each_sandbox_is_its_own_user_so_one_cannot_signal_or_read_another() {
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", PY_IDENTITY)]);
    server.deploy_python("ida", dir.path(), &[]);
    server.deploy_python("idb", dir.path(), &[]);

    // Three sandboxes live at once: two instances of the same function and one of another.
    let (a1, a2, b) = tokio::join!(
        call(
            &server,
            "ida",
            json!({"hold": 1.0, "secret": "secret of a1"})
        ),
        call(
            &server,
            "ida",
            json!({"hold": 1.0, "secret": "secret of a2"})
        ),
        call(
            &server,
            "idb",
            json!({"hold": 1.0, "secret": "secret of b"})
        ),
    );
    for (status, cold, body) in [&a1, &a2, &b] {
        assert_eq!(*status, 200, "{body}");
        assert!(
            *cold,
            "each of the overlapping calls got its own sandbox: {body}"
        );
    }
    let (a1, a2, b) = (a1.2, a2.2, b.2);
    assert_ne!(a1["instance"], a2["instance"], "two instances: {a1} {a2}");
    let uid = |v: &Value| v["uid"].as_u64().expect("uid");
    let ids = [uid(&a1), uid(&a2), uid(&b)];
    assert!(
        ids[0] != ids[1] && ids[0] != ids[2] && ids[1] != ids[2],
        "no two live sandboxes share a uid, not even two instances of one function: {ids:?}"
    );
    for v in [&a1, &a2, &b] {
        let id = uid(v);
        assert!((UID_BASE..UID_BASE + UID_RANGE).contains(&id), "{v}");
        assert_eq!(v["gid"].as_u64(), Some(id), "gid = uid: {v}");
        assert_eq!(v["euid"].as_u64(), Some(id), "{v}");
        assert_eq!(v["groups"], json!([id]), "no other groups: {v}");
        assert_eq!(
            v["tmp_owner"],
            json!([id, id]),
            "/tmp is the sandbox's: {v}"
        );
        assert_eq!(
            v["passwd"],
            json!([format!("sbx_user1051:x:{id}:{id}::/tmp:/usr/sbin/nologin")]),
            "{v}"
        );
        assert_eq!(v["group"], json!([format!("sbx_user1051:x:{id}:")]), "{v}");
        assert_eq!(v["read_code"], "ok", "the code stays readable: {v}");
    }

    // On the host, each uid is one sandbox's processes.
    let (uid_a, uid_b) = (ids[0], ids[2]);
    let pids_a = pids_of_uid(uid_a);
    let pids_b = pids_of_uid(uid_b);
    assert!(
        !pids_a.is_empty() && !pids_b.is_empty(),
        "{pids_a:?} {pids_b:?}"
    );
    let victim = pids_b[0];

    // From inside sandbox a: b's processes are not even there to be signalled.
    let (status, cold, attack) = call(&server, "ida", json!({"victim": victim})).await;
    assert_eq!(status, 200, "{attack}");
    assert!(!cold);
    assert_eq!(attack["kill_victim"], "ESRCH", "{attack}");

    // What the uid split buys: a process running as a's uid in the host's namespaces (one that
    // got out of its sandbox) still cannot signal b, read b's environment or b's /tmp ...
    let uid_a = u32::try_from(uid_a).expect("u32");
    let uid_b = u32::try_from(uid_b).expect("u32");
    let escaped = probe_as(uid_a, victim);
    assert_eq!(escaped["uid"].as_u64(), Some(u64::from(uid_a)));
    assert_eq!(escaped["kill"][0], "EPERM", "{escaped}");
    assert_eq!(escaped["environ"][0], "EACCES", "{escaped}");
    assert_eq!(escaped["secret"][0], "EACCES", "{escaped}");
    // ... while b's own uid can: had the two sandboxes shared a uid, a could have.
    let same = probe_as(uid_b, victim);
    assert_eq!(same["kill"][0], "ok", "{same}");
    assert_eq!(same["environ"][0], "ok", "{same}");
    assert_eq!(same["secret"], json!(["ok", "secret of b"]), "{same}");

    // b is unharmed and still the same warm instance.
    let (status, cold, again) = call(&server, "idb", json!({})).await;
    assert_eq!(status, 200, "{again}");
    assert!(!cold, "b's instance survived: {again}");
    assert_eq!(again["instance"], b["instance"]);
    assert_eq!(again["uid"].as_u64(), Some(u64::from(uid_b)));
}

const PY_BACKGROUND: &str = r#"
import os, threading, time
TICKS = []
STARTED = False
CHILD_LOG = "/tmp/child-ticks"

def tick():
    while True:
        TICKS.append(time.time())
        time.sleep(0.02)

def handler(event, context):
    global STARTED
    if not STARTED:
        STARTED = True
        threading.Thread(target=tick, daemon=True).start()
        if os.fork() == 0:
            # A background process too: it appends to a file in /tmp.
            while True:
                with open(CHILD_LOG, "a") as f:
                    f.write("%f\n" % time.time())
                time.sleep(0.02)
    try:
        child = [float(l) for l in open(CHILD_LOG).read().split()]
    except OSError:
        child = []
    return {"uid": os.getuid(), "thread": list(TICKS), "child": child}
"#;

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The freezer state of the cgroup of `pid` ("FROZEN", "FREEZING", "THAWED"), v1 or v2.
fn freezer_state(pid: i32) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.split(',').any(|c| c == "freezer") {
            let file = format!("/sys/fs/cgroup/freezer{path}/freezer.state");
            return std::fs::read_to_string(file)
                .ok()
                .map(|s| s.trim().to_owned());
        }
    }
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        if let Ok(events) = std::fs::read_to_string(format!("{root}{path}/cgroup.events")) {
            let frozen = events.lines().any(|l| l == "frozen 1");
            let asked = std::fs::read_to_string(format!("{root}{path}/cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1");
            return Some(
                match (asked, frozen) {
                    (_, true) => "FROZEN",
                    (true, false) => "FREEZING",
                    (false, false) => "THAWED",
                }
                .to_owned(),
            );
        }
    }
    None
}

/// Calls the background function twice with `idle` between, and counts the ticks its thread
/// and its child process made while it idled: between the end of the first call and the start
/// of the second (less a margin after the first, for the freeze to land). Also returns the
/// freezer state of its processes during the idle time.
async fn background_progress_while_idle(server: &Server, idle: Duration) -> (usize, usize, String) {
    let dir = function_dir(&[("app.py", PY_BACKGROUND)]);
    server.deploy_python("bg", dir.path(), &[]);
    let (status, _, first) = call(server, "bg", json!({})).await;
    assert_eq!(status, 200, "{first}");
    let idle_from = unix_now();
    let uid = first["uid"].as_u64().expect("uid");
    // Its runtime, its thread and its child, all frozen or all running.
    let pids = pids_of_uid(uid);
    assert!(pids.len() >= 2, "runtime and child: {pids:?}");
    let deadline = Instant::now() + idle;
    let mut state = String::new();
    while Instant::now() < deadline {
        state = freezer_state(pids[0]).unwrap_or_else(|| "no freezer".into());
        if state == "FROZEN" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The idle time itself: what runs during it is what is measured.
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    let idle_to = unix_now();
    let (status, cold, second) = call(server, "bg", json!({})).await;
    assert_eq!(status, 200, "{second}");
    assert!(!cold, "the same instance: {second}");
    let window = |key: &str| {
        second[key]
            .as_array()
            .expect("ticks")
            .iter()
            .filter_map(Value::as_f64)
            .filter(|t| *t > idle_from + 0.25 && *t < idle_to)
            .count()
    };
    (window("thread"), window("child"), state)
}

#[tokio::test]
async fn idle_sandboxes_are_frozen_so_background_work_stops_between_calls() {
    let idle = Duration::from_millis(1500);
    // Without freezing (the control: it shows the probe sees background work when it runs),
    // the thread and the child tick every 20 ms while the instance idles.
    {
        let tmp = tempfile::tempdir().expect("tempdir");
        let server = Server::start_with(tmp.path(), &["--no-freeze-idle"]).await;
        let (thread, child, state) = background_progress_while_idle(&server, idle).await;
        assert!(
            thread >= 10 && child >= 10,
            "unfrozen background work runs while idle: {thread} thread and {child} child ticks"
        );
        assert_ne!(state, "FROZEN");
    }
    // Frozen (the default): not one tick while idle, and the cgroup says FROZEN.
    let server = Server::start().await;
    let (thread, child, state) = background_progress_while_idle(&server, idle).await;
    assert_eq!(state, "FROZEN", "the idle sandbox's cgroup is frozen");
    assert!(
        thread <= 1 && child <= 1,
        "frozen background work makes no progress while idle: {thread} thread and {child} child ticks"
    );
}
