//! Counting under load: reserved concurrency is exact (excess sync calls get 429 with
//! Retry-After, excess async events wait and all run), and admission queueing lets excess calls
//! wait for a slot instead.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, client, get};

/// A Python function that sleeps for `event["sleep"]` seconds.
fn deploy_sleeper(server: &Server, name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("app.py"),
        "import os, time\n\n\ndef handler(event, context):\n    time.sleep(event.get(\"sleep\", 0))\n    return {\"slept\": event.get(\"sleep\", 0), \"init\": os.environ.get(\"AWS_LAMBDA_INITIALIZATION_TYPE\")}\n",
    )
    .expect("write app.py");
    std::fs::write(
        dir.path().join("lambent.toml"),
        "runtime = \"python3.12\"\nhandler = \"app.handler\"\nmemory = 128\ntimeout = 30\n",
    )
    .expect("write lambent.toml");
    let path = dir.path().to_str().expect("utf-8").to_owned();
    server.cli_ok(&["deploy", name, &path]);
    dir
}

/// Sends `n` concurrent sync calls; returns each one's status and Retry-After header.
async fn burst(server: &Server, name: &str, n: usize, sleep: f64) -> Vec<(u16, Option<String>)> {
    let calls = (0..n).map(|_| {
        let url = server.url(&format!("/v1/functions/{name}/invoke"));
        async move {
            let r = client()
                .post(url)
                .json(&json!({ "sleep": sleep }))
                .send()
                .await
                .expect("invoke");
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.status().as_u16(), retry)
        }
    });
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn reserved_concurrency_is_exact_and_admission_queueing_absorbs_a_burst() {
    let server = Server::start().await;
    let _code = deploy_sleeper(&server, "slow");
    server.cli_ok(&["concurrency", "slow", "3"]);

    // 10 concurrent slow calls: exactly 3 run, 7 are refused with Retry-After.
    let answers = burst(&server, "slow", 10, 2.0).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let throttled: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!((ok, throttled.len()), (3, 7), "{answers:?}");
    assert!(throttled.iter().all(|(_, r)| r.is_some()), "{answers:?}");

    // 10 async events: the excess waits in the queue and every one runs.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = client()
            .post(server.url("/v1/functions/slow/events"))
            .json(&json!({ "sleep": 0.5 }))
            .send()
            .await
            .expect("event");
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        ids.push(v["eventId"].as_str().expect("id").to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for id in &ids {
            let v: Value = get(server.url(&format!("/v1/events/{id}")))
                .await
                .expect("event")
                .json()
                .await
                .expect("json");
            assert_ne!(v["state"], "failed", "{v}");
            if v["state"] == "succeeded" {
                done += 1;
            }
        }
        if done == ids.len() {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of 10 events ran");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // With an admission wait the same kind of burst is absorbed: the excess waits for a slot.
    let out = server.cli_ok(&["concurrency", "slow", "--wait", "30000"]);
    assert!(out.contains("wait up to 30000 ms"), "{out}");
    let answers = burst(&server, "slow", 6, 1.0).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    // A wait too long for a synchronous call is refused with a clear message.
    let r = client()
        .put(server.url("/v1/functions/slow/admission"))
        .json(&json!({ "maxWaitMs": 600_000 }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(
        v["error"]["message"]
            .as_str()
            .expect("message")
            .contains("asynchronous"),
        "{v}"
    );
    let out = server.cli_ok(&["concurrency", "slow", "--clear-wait"]);
    assert!(out.contains("429 at once"), "{out}");
    let v: Value = get(server.url("/v1/functions/slow/admission"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(v, json!({"maxWaitMs": null, "effectiveMaxWaitMs": 0}));
}

#[tokio::test]
async fn the_adaptive_keep_alive_learns_to_keep_a_busy_function_warm() {
    // A one-second fixed keep-alive would stop the instance between the two bursts below; the
    // adaptive policy learns from the first burst that this function's calls come close
    // together (all idle times in the first minute) and keeps its instance for that minute.
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &["--keep-alive", "1", "--keep-alive-policy", "adaptive"],
    )
    .await;
    let _code = deploy_sleeper(&server, "busy");
    for _ in 0..12 {
        let answers = burst(&server, "busy", 1, 0.0).await;
        assert_eq!(answers[0].0, 200);
    }
    assert_eq!(server.metric("lambent_sandboxes_started_total").await, 1);
    // Three seconds idle: longer than the fallback keep-alive and its reaper's tick.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let answers = burst(&server, "busy", 1, 0.0).await;
    assert_eq!(answers[0].0, 200);
    assert_eq!(
        server.metric("lambent_sandboxes_started_total").await,
        1,
        "the instance was kept warm"
    );
    assert_eq!(server.metric("lambent_sandboxes_reaped_total").await, 0);
}

#[tokio::test]
async fn provisioned_instances_exist_before_the_first_call_and_serve_it_warm() {
    let server = Server::start().await;
    let _code = deploy_sleeper(&server, "ready");
    server.cli_ok(&["publish", "ready"]);
    // $LATEST cannot be provisioned, as on Lambda.
    let r = client()
        .put(server.url("/v1/functions/ready/provisioned?qualifier=$LATEST"))
        .json(&json!({ "provisioned": 2 }))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);
    let out = server.cli_ok(&["provisioned", "ready:1", "2"]);
    assert!(out.contains("of 2 instances"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = get(server.url("/v1/functions/ready/provisioned?qualifier=1"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if v["status"] == "READY" {
            assert_eq!(v["allocated"], 2);
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.metric("lambent_sandboxes_started_total").await,
        2,
        "both instances started before any call"
    );
    // The first call is warm and runs on a provisioned instance.
    let r = client()
        .post(server.url("/v1/functions/ready/invoke?qualifier=1"))
        .json(&json!({}))
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["init"], "provisioned-concurrency", "{v}");
    assert_eq!(server.metric("lambent_sandboxes_started_total").await, 2);
    // The Lambda API reports the same configuration.
    let v: Value =
        get(server.url("/2019-09-30/functions/ready/provisioned-concurrency?Qualifier=1"))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
    assert_eq!(v["Status"], "READY", "{v}");
    assert_eq!(v["RequestedProvisionedConcurrentExecutions"], 2);
    let v: Value = get(server.url("/2019-09-30/functions/ready/provisioned-concurrency?List=ALL"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["ProvisionedConcurrencyConfigs"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    // Removing it lets the instances go back to ordinary ones; the configuration is gone.
    server.cli_ok(&["provisioned", "ready:1", "--clear"]);
    let r = get(server.url("/2019-09-30/functions/ready/provisioned-concurrency?Qualifier=1"))
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
}
