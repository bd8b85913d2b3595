//! Calling functions: HTTP pass-through, CGI, logs, limits, versions, concurrency.

use crate::harness::{Server, expect_error};

#[tokio::test]
async fn http_component_passes_requests_and_responses_through() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    let client = crate::harness::client();

    let r = client.get(s.url("/fn/hello/")).send().await.expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(!r.headers()["x-lambent-invocation-id"].is_empty());
    assert_eq!(r.headers()["x-lambent-cold-start"], "true");
    assert_eq!(r.headers()["x-lambent-version"], "$LATEST");
    let init: f64 = r.headers()["x-lambent-init-ms"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(init > 0.0);
    assert_eq!(r.text().await.expect("body"), "Hello from lambent!\n");

    let r = client.get(s.url("/fn/hello")).send().await.expect("call");
    assert_eq!(r.headers()["x-lambent-cold-start"], "false");
    assert_eq!(r.text().await.expect("body"), "Hello from lambent!\n");

    let r = client
        .post(s.url("/fn/hello/echo?a=1&b=2"))
        .header("x-test", "abc")
        .header("content-type", "application/octet-stream")
        .body(vec![7u8; 300_000])
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-echo-method"], "POST");
    assert_eq!(r.headers()["x-echo-path"], "/echo?a=1&b=2");
    assert_eq!(r.headers()["x-echo-test"], "abc");
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.expect("body").as_ref(), &[7u8; 300_000][..]);

    let r = client
        .put(s.url("/fn/hello/status/418"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["x-custom"], "yes");
    assert_eq!(r.text().await.expect("body"), "status 418\n");

    let r = client
        .get(s.url("/fn/hello/env"))
        .send()
        .await
        .expect("call");
    assert!(r.text().await.expect("body").contains("GREETING=hi"));
}

#[tokio::test]
async fn cgi_module_sees_the_cgi_environment() {
    let s = Server::start().await;
    s.deploy("cgi", "cgi-c", &[]);
    let client = crate::harness::client();
    let r = client
        .post(s.url("/fn/cgi/some/path?q=1&r=2"))
        .header("x-test", "t1")
        .body("the body")
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["query"], "q=1&r=2");
    assert_eq!(v["x_test"], "t1");
    assert_eq!(v["body"], "the body");

    let r = client
        .get(s.url("/fn/cgi/teapot"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 418);

    // The invoke API sends the event as a POST body and returns the output.
    let r = client
        .post(s.url("/v1/functions/cgi/invoke"))
        .body(r#"{"answer":42}"#)
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-lambent-function-status"], "200");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["body"], r#"{"answer":42}"#);
    assert_eq!(v["path"], "/");
}

#[tokio::test]
async fn logs_are_kept_per_invocation_and_per_function() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    s.deploy("cgi", "cgi-c", &[]);
    let client = crate::harness::client();
    let r = client
        .get(s.url("/fn/hello/log"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-lambent-invocation-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let inv = s.wait_for_log("hello", |i| i["id"] == id.as_str()).await;
    let logs = inv["logs"].as_str().expect("logs");
    assert!(logs.contains("log line to stdout"), "{logs}");
    assert!(logs.contains("log line to stderr"), "{logs}");
    assert_eq!(inv["outcome"], "success");

    let one: serde_json::Value = crate::harness::get(s.url(&format!("/v1/invocations/{id}")))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(one["function"], "hello");
    assert!(
        one["logs"]
            .as_str()
            .expect("logs")
            .contains("log line to stdout")
    );

    // CGI: stderr is the log, stdout the response.
    let r = client.get(s.url("/fn/cgi/log")).send().await.expect("call");
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-lambent-invocation-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let inv = s.wait_for_log("cgi", |i| i["id"] == id.as_str()).await;
    assert!(inv["logs"].as_str().expect("logs").contains("cgi log line"));

    let out = s.cli_ok(&["logs", "hello"]);
    assert!(out.contains("log line to stderr"), "{out}");
    let out = s.cli_ok(&["logs", "cgi", "--invocation", &id]);
    assert!(out.contains("cgi log line"), "{out}");
}

#[tokio::test]
async fn a_guest_that_loops_is_stopped_at_its_timeout_and_the_next_call_works() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &["--timeout", "1"]);
    s.deploy("cgi", "cgi-c", &["--timeout", "1"]);
    let client = crate::harness::client();
    for f in ["hello", "cgi"] {
        let r = client
            .get(s.url(&format!("/fn/{f}/loop")))
            .send()
            .await
            .expect("call");
        let id = r.headers()["x-lambent-invocation-id"]
            .to_str()
            .expect("id")
            .to_owned();
        let message = expect_error(r, 504, "FunctionTimeout").await;
        assert!(message.contains("timed out after 1"), "{message}");
        let inv = s.wait_for_log(f, |i| i["id"] == id.as_str()).await;
        assert_eq!(inv["outcome"], "timeout");
        let r = client
            .get(s.url(&format!("/fn/{f}/")))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200, "{f} works after a timeout");
    }
    let r = client.get(s.url("/healthz")).send().await.expect("health");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_guest_that_outgrows_its_memory_or_traps_fails_cleanly() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &["--memory", "128"]);
    s.deploy("cgi", "cgi-c", &["--memory", "128"]);
    let client = crate::harness::client();
    for f in ["hello", "cgi"] {
        let r = client
            .get(s.url(&format!("/fn/{f}/oom")))
            .send()
            .await
            .expect("call");
        let message = expect_error(r, 502, "FunctionOutOfMemory").await;
        assert!(message.contains("128 MB limit"), "{message}");
        let r = client
            .get(s.url(&format!("/fn/{f}/")))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200, "{f} works after running out of memory");
    }
    let r = client
        .get(s.url("/fn/hello/trap"))
        .send()
        .await
        .expect("call");
    let message = expect_error(r, 502, "FunctionTrap").await;
    assert!(message.contains("unreachable"), "{message}");
    let r = client.get(s.url("/fn/hello/")).send().await.expect("call");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn published_versions_are_immutable() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &["--env", "GREETING=one"]);
    let out = s.cli_ok(&["publish", "hello", "--description", "first"]);
    assert!(out.contains("version 1"), "{out}");
    s.deploy(
        "hello",
        "hello-c",
        &["--env", "GREETING=two", "--memory", "256"],
    );
    let client = crate::harness::client();
    let v1 = client
        .get(s.url("/fn/hello:1/env"))
        .send()
        .await
        .expect("call");
    assert_eq!(v1.headers()["x-lambent-version"], "1");
    assert!(v1.text().await.expect("body").contains("GREETING=one"));
    let latest = client
        .get(s.url("/fn/hello/env"))
        .send()
        .await
        .expect("call");
    assert!(latest.text().await.expect("body").contains("GREETING=two"));

    let v: serde_json::Value = client
        .get(s.url("/v1/functions/hello?qualifier=1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(v["memory_mb"], 128);
    assert_eq!(v["description"], "first");
    // Publishing an unchanged $LATEST twice yields one version, like Lambda.
    let r = client
        .post(s.url("/v1/functions/hello/versions"))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 201);
    let r = client
        .post(s.url("/v1/functions/hello/versions"))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["version"], "2");
    let versions: serde_json::Value = client
        .get(s.url("/v1/functions/hello/versions"))
        .send()
        .await
        .expect("versions")
        .json()
        .await
        .expect("json");
    let names: Vec<_> = versions["versions"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["version"].as_str().expect("str").to_owned())
        .collect();
    assert_eq!(names, ["$LATEST", "1", "2"]);
    let r = client
        .get(s.url("/fn/hello:3/"))
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "ResourceNotFound").await;
}

#[tokio::test]
async fn two_hundred_and_fifty_concurrent_calls_all_succeed() {
    // Each call is a 128 MB instance: a budget that holds 250 of them on any host.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with(dir.path(), &["--memory-budget-mb", "40000"]).await;
    s.deploy("hello", "hello-c", &[]);
    s.deploy("cgi", "cgi-c", &[]);
    let client = crate::harness::client_builder()
        .pool_max_idle_per_host(300)
        .build()
        .expect("client");
    let calls = (0..250).map(|i| {
        let client = client.clone();
        let url = if i % 2 == 0 {
            s.url("/fn/hello/echo")
        } else {
            s.url("/fn/cgi/x")
        };
        async move {
            let r = client
                .post(url)
                .body(format!("call {i}"))
                .send()
                .await
                .expect("call");
            (r.status().as_u16(), r.text().await.expect("body"), i)
        }
    });
    let results = futures::future::join_all(calls).await;
    for (status, body, i) in results {
        assert_eq!(status, 200, "call {i}: {body}");
        assert!(body.contains(&format!("call {i}")), "call {i}: {body}");
    }
    assert_eq!(s.metric("lambent_invocation_errors_total").await, 0);
}

#[tokio::test]
async fn python_component_runs() {
    let s = Server::start().await;
    s.deploy("py", "hello-python", &[]);
    let r = crate::harness::client()
        .delete(s.url("/fn/py/some/path?q=1"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-method"], "DELETE");
    assert_eq!(r.headers()["x-path"], "/some/path?q=1");
    assert_eq!(
        r.text().await.expect("body"),
        "Hello from Python on lambent!\n"
    );
}
