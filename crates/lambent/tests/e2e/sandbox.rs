//! The process tier: real Python, Node.js and Rust functions in real sandboxes (these tests need
//! root, as `lambent serve` does for process runtimes), reached over the Lambda Runtime API.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Server, expect_error};

/// Writes `files` (path, contents, executable) into a fresh directory.
pub(crate) fn function_dir(files: &[(&str, &str, bool)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, contents, exec) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, contents).expect("write");
        if *exec {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    dir
}

pub(crate) fn deploy_dir(server: &Server, name: &str, dir: &Path, args: &[&str]) {
    let path = dir.to_str().expect("utf-8");
    let mut all = vec!["deploy", name, path];
    all.extend_from_slice(args);
    server.cli_ok(&all);
}

/// The answer of one native invoke.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn log(&self) -> String {
        let b64 = self.header("x-lambent-log-result");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("log is base64"),
        )
        .expect("utf-8 log")
    }
}

pub(crate) async fn call(server: &Server, name: &str, event: Value) -> Answer {
    let resp = crate::harness::client()
        .post(server.url(&format!("/v1/functions/{name}/invoke")))
        .header("x-lambent-log-type", "Tail")
        .json(&event)
        .send()
        .await
        .expect("invoke");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

const PY_ECHO: &str = r#"
import os, time, uuid
INSTANCE = uuid.uuid4().hex
CALLS = 0

def handler(event, context):
    global CALLS
    CALLS += 1
    print("echo got", event)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("raise"):
        raise ValueError("asked to raise: " + event["raise"])
    return {
        "event": event,
        "instance": INSTANCE,
        "calls": CALLS,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "remaining": context.get_remaining_time_in_millis(),
        "env": {k: os.environ.get(k) for k in ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "TZ", "_HANDLER", "LAMBDA_TASK_ROOT",
               "AWS_LAMBDA_RUNTIME_API", "GREETING"]},
    }
"#;

#[tokio::test]
async fn python_functions_get_lambdas_context_stay_warm_and_report_errors() {
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", PY_ECHO, false)]);
    deploy_dir(
        &server,
        "pyecho",
        dir.path(),
        &[
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--memory",
            "256",
            "--env",
            "GREETING=hi",
        ],
    );
    let first = call(&server, "pyecho", json!({"n": 1})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("x-lambent-cold-start"), "true");
    let b = &first.body;
    assert_eq!(b["event"], json!({"n": 1}));
    assert_eq!(b["calls"], 1);
    assert_eq!(b["request_id"], first.header("x-lambent-invocation-id"));
    assert_eq!(b["function_name"], "pyecho");
    assert_eq!(b["memory"], "256");
    assert_eq!(
        b["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:pyecho"
    );
    let remaining = b["remaining"].as_i64().expect("remaining");
    assert!((1..=3000).contains(&remaining), "{remaining}");
    let env = &b["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "pyecho");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["_HANDLER"], "app.handler");
    assert_eq!(env["LAMBDA_TASK_ROOT"], "/var/task");
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9001");
    assert_eq!(env["GREETING"], "hi");
    let log = first.log();
    assert!(log.contains("echo got {'n': 1}"), "{log}");
    assert!(
        log.contains(&format!(
            "START RequestId: {}",
            b["request_id"].as_str().unwrap_or_default()
        )),
        "{log}"
    );
    assert!(log.contains("Billed Duration: "), "{log}");
    assert!(log.contains("Memory Size: 256 MB"), "{log}");
    assert!(
        log.contains("Init Duration: "),
        "a cold start reports init: {log}"
    );

    // Warm: the same instance, with its module-level state.
    let second = call(&server, "pyecho", json!({"n": 2})).await;
    assert_eq!(second.header("x-lambent-cold-start"), "false");
    assert_eq!(second.body["instance"], first.body["instance"]);
    assert_eq!(second.body["calls"], 2);
    assert!(!second.log().contains("Init Duration"));

    // A handler's exception is a function error: 200, its type in a header, Lambda's document.
    let err = call(&server, "pyecho", json!({"raise": "boom"})).await;
    assert_eq!(err.status, 200);
    assert_eq!(err.header("x-lambent-function-error"), "ValueError");
    assert_eq!(err.body["errorType"], "ValueError");
    assert_eq!(err.body["errorMessage"], "asked to raise: boom");
    let trace = err.body["stackTrace"].as_array().expect("stack trace");
    assert!(
        trace
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("app.py")),
        "{trace:?}"
    );
    // The instance survives a handled error.
    let after = call(&server, "pyecho", json!({})).await;
    assert_eq!(after.body["instance"], first.body["instance"]);

    // Concurrent calls get separate instances, one call at a time each.
    let calls = (0..3).map(|i| call(&server, "pyecho", json!({"sleep": 0.5, "i": i})));
    let answers = futures::future::join_all(calls).await;
    let mut instances: Vec<&str> = answers
        .iter()
        .map(|a| a.body["instance"].as_str().expect("instance"))
        .collect();
    instances.sort_unstable();
    instances.dedup();
    assert_eq!(
        instances.len(),
        3,
        "three concurrent calls, three instances"
    );
    assert_eq!(server.metric("lambent_sandboxes ").await, 3);

    // The CLI shows the output and, with --log, the log; a function error fails the command.
    let out = server.cli(&["invoke", "pyecho", "--data", r#"{"raise":"cli"}"#, "--log"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ValueError"), "{stderr}");
    assert!(stderr.contains("REPORT RequestId"), "{stderr}");

    // Changing the configuration retires warm instances: the next call is cold and sees it.
    server.cli_ok(&[
        "deploy",
        "pyecho",
        dir.path().to_str().expect("utf-8"),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--env",
        "GREETING=changed",
    ]);
    let changed = call(&server, "pyecho", json!({})).await;
    assert_eq!(changed.header("x-lambent-cold-start"), "true");
    assert_eq!(changed.body["env"]["GREETING"], "changed");
}

#[tokio::test]
async fn init_errors_and_bad_handlers_are_reported_as_function_errors() {
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", "import not_a_module\n", false)]);
    deploy_dir(
        &server,
        "broken",
        dir.path(),
        &["--runtime", "python3", "--handler", "app.handler"],
    );
    let a = call(&server, "broken", json!({})).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("x-lambent-function-error"),
        "Runtime.ImportModuleError"
    );
    assert!(
        a.body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("not_a_module"),
        "{}",
        a.body
    );
    let dir = function_dir(&[("app.py", "def other(e, c):\n    return 1\n", false)]);
    deploy_dir(
        &server,
        "nohandler",
        dir.path(),
        &["--runtime", "python3", "--handler", "app.handler"],
    );
    let a = call(&server, "nohandler", json!({})).await;
    assert_eq!(
        a.header("x-lambent-function-error"),
        "Runtime.HandlerNotFound"
    );
    // A provided function whose bootstrap exits without using the Runtime API.
    let dir = function_dir(&[("bootstrap", "#!/bin/sh\necho giving up >&2\nexit 3\n", true)]);
    deploy_dir(
        &server,
        "quitter",
        dir.path(),
        &["--runtime", "provided.al2023"],
    );
    let resp = crate::harness::client()
        .post(server.url("/v1/functions/quitter/invoke"))
        .body("{}")
        .send()
        .await
        .expect("invoke");
    let message = expect_error(resp, 502, "FunctionRuntimeExited").await;
    assert!(message.contains("status 3"), "{message}");
}

const NODE_APP: &str = r#"
let calls = 0;
exports.handler = async (event, context) => {
  calls += 1;
  console.log('node got', JSON.stringify(event));
  if (event.raise) throw new TypeError('node raised ' + event.raise);
  return { event, calls, requestId: context.awsRequestId, fn: context.functionName,
           remaining: context.getRemainingTimeInMillis(), node: process.version };
};
exports.callback = (event, context, callback) => {
  setTimeout(() => callback(null, { style: 'callback', event }), 10);
};
"#;

#[tokio::test]
async fn node_functions_async_and_callback_styles() {
    assert!(
        Path::new("/usr/bin/node").exists(),
        "Node.js (/usr/bin/node) is needed; scripts/test.sh installs it"
    );
    let server = Server::start().await;
    let dir = function_dir(&[("index.js", NODE_APP, false)]);
    deploy_dir(
        &server,
        "nodeasync",
        dir.path(),
        &["--runtime", "nodejs20.x", "--handler", "index.handler"],
    );
    deploy_dir(
        &server,
        "nodecb",
        dir.path(),
        &["--runtime", "nodejs", "--handler", "index.callback"],
    );
    let a = call(&server, "nodeasync", json!({"x": 1})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["event"], json!({"x": 1}));
    assert_eq!(a.body["fn"], "nodeasync");
    assert_eq!(a.body["requestId"], a.header("x-lambent-invocation-id"));
    assert!(a.log().contains("node got {\"x\":1}"), "{}", a.log());
    let b = call(&server, "nodeasync", json!({})).await;
    assert_eq!(b.body["calls"], 2, "warm instance keeps module state");
    let e = call(&server, "nodeasync", json!({"raise": "it"})).await;
    assert_eq!(e.header("x-lambent-function-error"), "TypeError");
    assert_eq!(e.body["errorMessage"], "node raised it");
    let c = call(&server, "nodecb", json!({"y": 2})).await;
    assert_eq!(c.body, json!({"style": "callback", "event": {"y": 2}}));
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

#[tokio::test]
async fn a_rust_function_built_with_aws_lambda_runtime_crate_runs_as_provided() {
    let binary = workspace_target().join("debug/bootstrap");
    assert!(
        binary.is_file(),
        "{} is missing; build it with `cargo build -p hello-lambda-rust` (scripts/test.sh does)",
        binary.display()
    );
    let server = Server::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::copy(&binary, dir.path().join("bootstrap")).expect("copy");
    deploy_dir(
        &server,
        "rusty",
        dir.path(),
        &["--runtime", "provided.al2023", "--memory", "256"],
    );
    let a = call(&server, "rusty", json!({"from": "test"})).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["echo"], json!({"from": "test"}));
    assert_eq!(a.body["request_id"], a.header("x-lambent-invocation-id"));
    assert_eq!(a.body["function_name"], "rusty");
    assert_eq!(a.body["memory"], "256");
    let e = call(&server, "rusty", json!({"fail": true})).await;
    assert_eq!(e.status, 200);
    assert!(!e.header("x-lambent-function-error").is_empty());
    assert_eq!(e.body["errorMessage"], "asked to fail");
}

#[tokio::test]
async fn awslambdaric_from_pypi_runs_unmodified() {
    let ric = workspace_target().join("fixtures/awslambdaric");
    assert!(
        ric.join("awslambdaric").is_dir(),
        "{} is missing; scripts/test.sh installs awslambdaric from PyPI there",
        ric.display()
    );
    let server = Server::start().await;
    let dir = function_dir(&[
        (
            "app.py",
            "def handler(event, context):\n    return {'ric': True, 'event': event, 'id': context.aws_request_id}\n",
            false,
        ),
        (
            "bootstrap",
            "#!/bin/sh\nexport PYTHONPATH=/var/task\nexec /usr/bin/python3 -m awslambdaric \"$_HANDLER\"\n",
            true,
        ),
    ]);
    copy_tree(&ric, dir.path());
    deploy_dir(
        &server,
        "ric",
        dir.path(),
        &[
            "--runtime",
            "provided.al2023",
            "--handler",
            "app.handler",
            "--timeout",
            "10",
        ],
    );
    let a = call(&server, "ric", json!({"k": "v"})).await;
    assert_eq!(a.status, 200, "{} {}", a.body, a.log());
    assert_eq!(a.body["ric"], true);
    assert_eq!(a.body["event"], json!({"k": "v"}));
    assert_eq!(a.body["id"], a.header("x-lambent-invocation-id"));
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

const PY_PROBE: &str = r#"
import ctypes, errno, os, socket

def attempt(f):
    try:
        f()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def connect(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
    finally:
        s.close()

def handler(event, context):
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines() if ":" in l)
    with open("/tmp/" + event["name"], "w") as f:
        f.write("secret of " + event["name"])
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    cmdlines = []
    for p in pids:
        try:
            cmdlines.append(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return {
        "uid": os.getuid(), "gid": os.getgid(),
        "read_root": attempt(lambda: os.listdir("/root")),
        "read_shadow": attempt(lambda: open("/etc/shadow").read()),
        "read_data_dir": attempt(lambda: os.listdir(event["data_dir"])),
        "write_task": attempt(lambda: open("/var/task/new", "w")),
        "write_usr": attempt(lambda: open("/usr/new", "w")),
        "write_root": attempt(lambda: open("/new", "w")),
        "tmp_files": sorted(os.listdir("/tmp")),
        "task_files": sorted(os.listdir("/var/task")),
        "pids": len(pids),
        "cmdlines": cmdlines,
        "mount_errno": errno.errorcode.get(ctypes.get_errno(), "") if rc != 0 else "mounted",
        "cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
        "lambent_port": attempt(lambda: connect("127.0.0.1", event["port"])),
        "internet": attempt(lambda: connect("192.0.2.1", 80)),
        "hostname": socket.gethostname(),
    }
"#;

#[tokio::test]
async fn sandboxes_isolate_functions_from_the_host_and_each_other() {
    let server = Server::start().await;
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let a_dir = function_dir(&[("probe.py", PY_PROBE, false), ("only_a.txt", "a", false)]);
    let b_dir = function_dir(&[("probe.py", PY_PROBE, false), ("only_b.txt", "b", false)]);
    deploy_dir(
        &server,
        "proba",
        a_dir.path(),
        &["--runtime", "python3", "--handler", "probe.handler"],
    );
    deploy_dir(
        &server,
        "probb",
        b_dir.path(),
        &["--runtime", "python3", "--handler", "probe.handler"],
    );
    deploy_dir(
        &server,
        "probnet",
        b_dir.path(),
        &[
            "--runtime",
            "python3",
            "--handler",
            "probe.handler",
            "--egress",
        ],
    );
    let data_dir = server.data_dir.display().to_string();
    let event = |name: &str| json!({"name": name, "data_dir": data_dir, "port": port});
    let a = call(&server, "proba", event("a")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = a.body;
    // Each sandbox runs as its own id from the reserved range (uid = gid).
    let uid = a["uid"].as_u64().expect("uid");
    assert!((200_000..200_000 + 65_536).contains(&uid), "{a}");
    assert_eq!(a["gid"].as_u64(), Some(uid), "{a}");
    assert_eq!(a["read_root"], "ENOENT", "{a}");
    assert_eq!(a["read_shadow"], "ENOENT", "{a}");
    assert_eq!(a["read_data_dir"], "ENOENT", "{a}");
    assert_eq!(a["write_task"], "EROFS", "{a}");
    assert_eq!(a["write_usr"], "EROFS", "{a}");
    assert_eq!(a["write_root"], "EROFS", "{a}");
    assert_eq!(a["tmp_files"], json!(["a"]));
    assert_eq!(a["task_files"], json!(["only_a.txt", "probe.py"]));
    assert!(
        a["pids"].as_u64().expect("pids") <= 3,
        "only the sandbox's processes: {a}"
    );
    assert!(
        !a["cmdlines"]
            .as_array()
            .expect("cmdlines")
            .iter()
            .any(|c| c.as_str().unwrap_or("").contains("serve")),
        "the server is invisible: {a}"
    );
    assert_eq!(a["mount_errno"], "EPERM", "{a}");
    assert_eq!(a["cap_eff"], "0000000000000000");
    assert_eq!(a["cap_bnd"], "0000000000000000");
    assert_eq!(a["no_new_privs"], "1");
    assert_eq!(a["seccomp"], "2");
    assert_eq!(
        a["lambent_port"], "ECONNREFUSED",
        "own network namespace: {a}"
    );
    assert_eq!(a["internet"], "ENETUNREACH", "{a}");
    assert_eq!(a["hostname"], "lambent-sandbox");

    // Another function sees neither a's /tmp nor a's code.
    let b = call(&server, "probb", event("b")).await.body;
    assert_eq!(b["tmp_files"], json!(["b"]), "{b}");
    assert_eq!(b["task_files"], json!(["only_b.txt", "probe.py"]));

    // Egress is a link of the sandbox's own network namespace: the host's loopback (lambent's
    // own port) is not the sandbox's (hostile::egress tries the rest).
    let n = call(&server, "probnet", event("n")).await;
    assert_eq!(n.status, 200, "{}", n.body);
    assert_eq!(n.body["lambent_port"], "ECONNREFUSED", "{}", n.body);
    assert!(n.header("x-lambent-log-result").len() > 10);
}

const PY_ABUSE: &str = r#"
import os, time

def handler(event, context):
    what = event["what"]
    if what == "spin":
        while True:
            pass
    if what == "hog":
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    if what == "forkbomb":
        # Children exit at once but are never reaped: each keeps its pid, none keeps memory,
        # so the pids limit is what stops the bomb.
        children = 0
        for _ in range(5000):
            try:
                if os.fork() == 0:
                    os._exit(0)
                children += 1
            except OSError as e:
                return {"stopped_after": children, "error": e.strerror}
        return {"stopped_after": children}
    return {"ok": True, "pid": os.getpid()}
"#;

#[tokio::test]
async fn timeouts_memory_hogs_and_fork_bombs_are_contained() {
    let server = Server::start().await;
    let dir = function_dir(&[("abuse.py", PY_ABUSE, false)]);
    deploy_dir(
        &server,
        "abuse",
        dir.path(),
        &[
            "--runtime",
            "python3",
            "--handler",
            "abuse.handler",
            "--timeout",
            "2",
        ],
    );
    let client = crate::harness::client();
    let invoke = |what: &'static str| {
        client
            .post(server.url("/v1/functions/abuse/invoke"))
            .json(&json!({ "what": what }))
            .send()
    };
    let ok = call(&server, "abuse", json!({"what": "nothing"})).await;
    assert_eq!(ok.body["ok"], true);

    let started = Instant::now();
    let message = expect_error(
        invoke("spin").await.expect("invoke"),
        504,
        "FunctionTimeout",
    )
    .await;
    assert!(message.contains("timed out"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the deadline is kept"
    );
    // The next call gets a fresh instance.
    let after = call(&server, "abuse", json!({"what": "nothing"})).await;
    assert_eq!(after.body["ok"], true);
    assert_eq!(after.header("x-lambent-cold-start"), "true");

    let message = expect_error(
        invoke("hog").await.expect("invoke"),
        502,
        "FunctionOutOfMemory",
    )
    .await;
    assert!(message.contains("out of memory"), "{message}");

    // A fork bomb hits the pids limit; the host keeps answering meanwhile.
    let bomb = tokio::spawn(invoke("forkbomb"));
    let health = Instant::now();
    let h = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(h.status(), 200);
    assert!(health.elapsed() < Duration::from_secs(5));
    let bomb = bomb.await.expect("join").expect("invoke");
    let v: Value = bomb.json().await.expect("json");
    let stopped = v["stopped_after"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (1000..1024).contains(&stopped),
        "the pids limit (1024 with the runtime and init) stopped it: {v}"
    );
    let fine = call(&server, "abuse", json!({"what": "nothing"})).await;
    assert_eq!(fine.body["ok"], true);
}

#[tokio::test]
async fn idle_sandboxes_are_reaped_and_deletes_stop_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::start_with(dir.path(), &["--keep-alive", "0.5"]).await;
    let code = function_dir(&[("app.py", PY_ECHO, false)]);
    deploy_dir(
        &server,
        "brief",
        code.path(),
        &["--runtime", "python3", "--handler", "app.handler"],
    );
    let first = call(&server, "brief", json!({})).await;
    assert_eq!(first.header("x-lambent-cold-start"), "true");
    assert_eq!(server.metric("lambent_sandboxes ").await, 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric("lambent_sandboxes ").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle sandbox was never reaped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.metric("lambent_sandboxes_reaped_total").await >= 1);
    let again = call(&server, "brief", json!({})).await;
    assert_eq!(
        again.header("x-lambent-cold-start"),
        "true",
        "scaled to zero, so cold"
    );
    server.cli_ok(&["rm", "brief"]);
    assert_eq!(
        server.metric("lambent_sandboxes ").await,
        0,
        "delete stops warm sandboxes"
    );
}

#[tokio::test]
async fn bad_packages_are_refused_and_leave_nothing_behind() {
    let server = Server::start().await;
    let client = crate::harness::client();
    // A zip whose entry climbs out of the code root.
    let mut zip = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut zip);
        w.start_file("../../escape.py", zip::write::SimpleFileOptions::default())
            .expect("start");
        std::io::Write::write_all(&mut w, b"x").expect("write");
        w.finish().expect("finish");
    }
    let code = base64::engine::general_purpose::STANDARD.encode(zip.into_inner());
    let resp = client
        .post(server.url("/v1/functions"))
        .json(&json!({"name": "slip", "runtime": "python3", "handler": "a.b", "code": code}))
        .send()
        .await
        .expect("post");
    let message = expect_error(resp, 400, "InvalidCode").await;
    assert!(message.contains("escape.py"), "{message}");
    let resp = client
        .post(server.url("/v1/functions"))
        .json(&json!({"name": "nohandler", "runtime": "python3.12", "code": code}))
        .send()
        .await
        .expect("post");
    let message = expect_error(resp, 400, "InvalidConfiguration").await;
    assert!(message.contains("handler"), "{message}");
    let resp = client
        .post(server.url("/v1/functions"))
        .json(&json!({"name": "notzip", "runtime": "provided", "code": "AGFzbQEAAAA="}))
        .send()
        .await
        .expect("post");
    expect_error(resp, 400, "InvalidCode").await;
    let listed: Value = client
        .get(server.url("/v1/functions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["functions"], json!([]));
    let packages = std::fs::read_dir(server.data_dir.join("packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(packages, 0, "nothing unpacked is left");
    // A directory without a runtime is refused by the CLI with advice.
    let dir = function_dir(&[("app.py", "x = 1\n", false)]);
    let out = server.cli(&["deploy", "dirnort", dir.path().to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runtime"));
}
