//! Hostile: runtime_api (see docs/sandbox.md, threat model). A function attacks its own Runtime
//! API from inside its sandbox: it floods it with thousands of connections and parallel stalled
//! uploads, and it answers invocations that are not its current one, or the current one twice.
//! lambent must stay within a bounded memory and descriptor budget, keep serving `/healthz` and
//! other functions, refuse the answers it should refuse without reading their bodies, and judge an
//! oversized answer from its `Content-Length` alone.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, client, expect_error, memory_of};

const FLOOD_PY: &str = include_str!("runtime_api/flood.py");
const ANSWERS_PY: &str = include_str!("runtime_api/answers.py");
const ECHO_PY: &str = "def handler(event, context):\n    return {\"echo\": event}\n";

/// How much lambent's resident memory may grow during the flood (a resource bound, generous:
/// what lambent may hold for the attacker is about 31 MB).
const RSS_GROWTH_BOUND_KB: u64 = 200 * 1024;

/// How many more descriptors lambent may hold during the flood than before it (the attacker may
/// hold 4 connections; before the bounds, lambent held one per connection, thousands).
const FD_GROWTH_BOUND: usize = 64;

/// Deploys `source` as `app.py` under `name`.
fn deploy(server: &Server, name: &str, source: &str, extra: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("app.py"), source).expect("write app.py");
    server.deploy_python(name, dir.path(), extra);
    dir
}

async fn invoke(server: &Server, name: &str, event: &Value) -> reqwest::Response {
    client()
        .post(server.url(&format!("/v1/functions/{name}/invoke")))
        .json(event)
        .send()
        .await
        .expect("invoke")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

#[tokio::test]
async fn a_function_flooding_its_runtime_api_cannot_starve_lambent_or_other_functions() {
    let server = Server::start().await;
    let _victim = deploy(&server, "victim", ECHO_PY, &["--timeout", "60"]);
    let _flooder = deploy(
        &server,
        "flooder",
        FLOOD_PY,
        &["--memory", "128", "--timeout", "60"],
    );
    let warm = invoke(&server, "victim", &json!({"n": 0})).await;
    assert_eq!(warm.status(), 200);
    let pid = server.pid();
    let idle_rss = memory_of(pid, "VmRSS") / 1024;
    let idle_fds = open_fds(pid);

    // 3 holders x 900 held connections, and 200 uploads of ~5.9 MB each left hanging, for 8 s.
    let flood = {
        let url = server.url("/v1/functions/flooder/invoke");
        let event =
            json!({"seconds": 8, "holders": 3, "hold": 900, "uploads": 200, "fill": 5_900_000});
        tokio::spawn(async move {
            client()
                .post(url)
                .json(&event)
                .send()
                .await
                .map(|r| r.status())
        })
    };
    // A hang guard only: a starved lambent does not answer at all.
    let probe = crate::harness::client_builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let (mut peak_rss, mut peak_fds, mut answered) = (idle_rss, idle_fds, 0u64);
    while !flood.is_finished() {
        let health = probe
            .get(server.url("/healthz"))
            .send()
            .await
            .expect("/healthz answers during the flood");
        assert_eq!(health.status(), 200, "/healthz during the flood");
        answered += 1;
        let r = probe
            .post(server.url("/v1/functions/victim/invoke"))
            .json(&json!({"n": answered}))
            .send()
            .await
            .expect("another function answers during the flood");
        assert_eq!(r.status(), 200, "another function during the flood");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["echo"]["n"], answered);
        peak_rss = peak_rss.max(memory_of(pid, "VmRSS") / 1024);
        peak_fds = peak_fds.max(open_fds(pid));
    }
    let _ = flood.await.expect("flood task");

    // The attack really happened: thousands of connections, hundreds of uploads.
    let inv = server
        .wait_for_log("flooder", |i| {
            i["logs"].as_str().is_some_and(|l| l.contains("FLOOD {"))
        })
        .await;
    let logs = inv["logs"].as_str().unwrap_or_default();
    let report: Value = logs
        .lines()
        .find_map(|l| l.strip_prefix("FLOOD "))
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| panic!("no flood report in {logs}"));
    let made: u64 = report["holders"]
        .as_array()
        .expect("holders")
        .iter()
        .map(|h| h["made"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        made >= 2_700,
        "the flood opened thousands of connections: {report}"
    );
    assert!(
        report["uploads"]["started"].as_u64().unwrap_or(0) >= 200,
        "{report}"
    );

    assert!(answered > 0, "nothing was checked during the flood");
    assert!(
        peak_rss < idle_rss + RSS_GROWTH_BOUND_KB,
        "lambent grew from {idle_rss} kB to {peak_rss} kB during the flood ({report})"
    );
    assert!(
        peak_fds < idle_fds + FD_GROWTH_BOUND,
        "lambent went from {idle_fds} to {peak_fds} descriptors during the flood ({report})"
    );
}

#[tokio::test]
async fn answers_for_other_invocations_or_twice_at_once_are_refused_unread() {
    let server = Server::start().await;
    let _dir = deploy(&server, "answers", ANSWERS_PY, &["--timeout", "60"]);
    let first = invoke(&server, "answers", &json!({})).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.json::<Value>().await.expect("json"),
        json!({"first": true})
    );

    let second = invoke(&server, "answers", &json!({})).await;
    assert_eq!(second.status(), 200);
    let r: Value = second.json().await.expect("json");
    let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
    assert!(
        text("unknown").starts_with("HTTP/1.1 403"),
        "an unknown id: {r}"
    );
    assert!(
        text("previous").starts_with("HTTP/1.1 403"),
        "the previous invocation's id: {r}"
    );
    assert!(
        text("previous").contains("not waiting for an answer"),
        "{r}"
    );
    // Of two answers for the current invocation sent at once, one was refused with neither its
    // body sent nor waited for; the other one's body became the answer the caller got (this one).
    assert!(
        text("concurrent").starts_with("HTTP/1.1 403"),
        "the second answer at once: {r}"
    );
    assert!(text("concurrent").contains("already being received"), "{r}");
    assert!(matches!(text("refused_was").as_str(), "A" | "B"), "{r}");

    // An answer whose head alone declares more than 6 MB is refused (413 to the runtime, the
    // size error to the caller) without waiting for a byte of its body.
    let oversized = invoke(&server, "answers", &json!({"mode": "oversized"})).await;
    expect_error(oversized, 502, "FunctionResponseTooLarge").await;
}
