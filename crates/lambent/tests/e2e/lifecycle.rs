//! Restarts and shutdown.

use std::time::{Duration, Instant};

use crate::harness::{Server, expect_error};

#[tokio::test]
async fn after_a_restart_functions_work_without_compiling_again() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut s = Server::start_in(tmp.path()).await;
    s.deploy("hello", "hello-c", &[]);
    s.deploy("cgi", "cgi-c", &[]);
    s.cli_ok(&["publish", "hello"]);
    assert_eq!(s.metric("lambent_wasm_compilations_total").await, 2);
    assert!(s.terminate().success());

    let s = Server::start_in(tmp.path()).await;
    let client = crate::harness::client();
    for url in ["/fn/hello/", "/fn/hello:1/", "/fn/cgi/x"] {
        let r = client.get(s.url(url)).send().await.expect("call");
        assert_eq!(r.status(), 200, "{url}");
    }
    assert_eq!(
        s.metric("lambent_wasm_compilations_total").await,
        0,
        "the restarted server compiled code again instead of using the artifact cache"
    );
    assert!(s.metric("lambent_wasm_artifact_cache_hits_total").await >= 2);
}

#[tokio::test]
async fn sigterm_lets_in_flight_calls_finish() {
    let mut s = Server::start().await;
    s.deploy("hello", "hello-c", &["--timeout", "2"]);
    let url = s.url("/fn/hello/loop");
    let started = Instant::now();
    let call = tokio::spawn(async move { crate::harness::get(url).await });
    // Wait until the call is running (it is counted when its instance starts).
    while s.metric("lambent_invocations_total").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "call never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    let r = call
        .await
        .expect("join")
        .expect("the in-flight call got an answer");
    expect_error(r, 504, "FunctionTimeout").await;
}

#[tokio::test]
async fn a_full_instance_pool_answers_429_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with(tmp.path(), &["--max-instances", "1"]).await;
    s.deploy("hello", "hello-c", &["--timeout", "2"]);
    let url = s.url("/fn/hello/loop");
    let busy = tokio::spawn(async move { crate::harness::get(url).await });
    let started = Instant::now();
    while s.metric("lambent_invocations_total").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "call never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = crate::harness::get(s.url("/fn/hello/"))
        .await
        .expect("call");
    let m = expect_error(r, 429, "TooManyRequests").await;
    assert!(m.contains("maximum concurrent"), "{m}");
    let r = busy.await.expect("join").expect("answer");
    expect_error(r, 504, "FunctionTimeout").await;
    let r = crate::harness::get(s.url("/fn/hello/"))
        .await
        .expect("call");
    assert_eq!(r.status(), 200, "the slot is free again");
}
