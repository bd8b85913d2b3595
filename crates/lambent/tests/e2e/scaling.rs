//! Counting under load: reserved concurrency is exact (excess sync calls get 429 with
//! Retry-After, excess async events wait and all run), and admission queueing lets excess calls
//! wait for a slot instead.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, client, get, get_json, post_json, put_json};

/// A Python function that sleeps for `event["sleep"]` seconds.
fn deploy_sleeper(server: &Server, name: &str) -> tempfile::TempDir {
    deploy_sleeper_with(server, name, 128)
}

/// The sleeper with `memory_mb` of memory.
fn deploy_sleeper_with(server: &Server, name: &str, memory_mb: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("app.py"),
        "import os, time\n\n\ndef handler(event, context):\n    time.sleep(event.get(\"sleep\", 0))\n    return {\"slept\": event.get(\"sleep\", 0), \"init\": os.environ.get(\"AWS_LAMBDA_INITIALIZATION_TYPE\")}\n",
    )
    .expect("write app.py");
    std::fs::write(
        dir.path().join("lambent.toml"),
        format!("runtime = \"python3.12\"\nhandler = \"app.handler\"\nmemory = {memory_mb}\ntimeout = 30\n"),
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
        let r = post_json(
            &server,
            "/v1/functions/slow/events",
            json!({ "sleep": 0.5 }),
        )
        .await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        ids.push(v["eventId"].as_str().expect("id").to_owned());
    }
    // Three run at a time; the others wait in the function's queue, which /metrics shows.
    let seen = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(server.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let waiting: u64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("lambent_function_async_events_waiting{function=\"slow\"} ")
            })
            .map_or(0, |v| v.trim().parse().expect("a count"));
        assert!(waiting <= 10, "{waiting} waiting of 10");
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < seen, "no event was ever seen waiting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut done = 0;
        for id in &ids {
            let v: Value = get_json(&server, &format!("/v1/events/{id}")).await;
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
    let r = put_json(
        &server,
        "/v1/functions/slow/admission",
        json!({ "maxWaitMs": 600_000 }),
    )
    .await;
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
    let v: Value = get_json(&server, "/v1/functions/slow/admission").await;
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
    let r = put_json(
        &server,
        "/v1/functions/ready/provisioned?qualifier=$LATEST",
        json!({ "provisioned": 2 }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let out = server.cli_ok(&["provisioned", "ready:1", "2"]);
    assert!(out.contains("of 2 instances"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = get_json(&server, "/v1/functions/ready/provisioned?qualifier=1").await;
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
    let r = post_json(&server, "/v1/functions/ready/invoke?qualifier=1", json!({})).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["init"], "provisioned-concurrency", "{v}");
    assert_eq!(server.metric("lambent_sandboxes_started_total").await, 2);
    // The Lambda API reports the same configuration.
    let v: Value = get_json(
        &server,
        "/2019-09-30/functions/ready/provisioned-concurrency?Qualifier=1",
    )
    .await;
    assert_eq!(v["Status"], "READY", "{v}");
    assert_eq!(v["RequestedProvisionedConcurrentExecutions"], 2);
    let v: Value = get_json(
        &server,
        "/2019-09-30/functions/ready/provisioned-concurrency?List=ALL",
    )
    .await;
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

/// Calls `name` once with no sleep; returns whether the call was cold.
async fn cold(server: &Server, name: &str) -> bool {
    let r = post_json(server, &format!("/v1/functions/{name}/invoke"), json!({})).await;
    assert_eq!(r.status(), 200, "{name}");
    r.headers()["x-lambent-cold-start"] == "true"
}

#[tokio::test]
async fn node_memory_is_never_oversubscribed_and_idle_instances_make_room_lru() {
    const MB: u64 = 1 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--memory-budget-mb", "512"]).await;
    let _code: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|n| deploy_sleeper(&server, n))
        .chain([deploy_sleeper_with(&server, "big", 256)])
        .collect();
    assert_eq!(
        server.metric("lambent_node_memory_budget_bytes").await,
        512 * MB
    );
    for n in ["a", "b", "c"] {
        assert!(cold(&server, n).await);
    }
    assert_eq!(
        server.metric("lambent_node_memory_reserved_bytes").await,
        384 * MB
    );
    // 256 MB more do not fit: the least recently used idle instance (a's) makes room.
    assert!(cold(&server, "big").await);
    assert_eq!(server.metric("lambent_sandboxes_evicted_total").await, 1);
    assert_eq!(
        server.metric("lambent_node_memory_reserved_bytes").await,
        512 * MB
    );
    assert!(
        !cold(&server, "b").await,
        "b was used after a, so it stayed"
    );
    assert!(cold(&server, "a").await, "a was evicted");
    // That evicted c, the least recently used then; c's return evicts big (256 MB).
    assert_eq!(server.metric("lambent_sandboxes_evicted_total").await, 2);
    assert!(cold(&server, "c").await);
    assert_eq!(server.metric("lambent_sandboxes_evicted_total").await, 3);
    assert_eq!(
        server.metric("lambent_node_memory_reserved_bytes").await,
        384 * MB
    );

    // Five concurrent slow calls of a: idle b and c make way, four instances fill the budget,
    // and the fifth call is refused with a message that says why, never oversubscribing.
    let watcher = {
        let url = server.url("/metrics");
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..30 {
                let text = get(&url)
                    .await
                    .expect("metrics")
                    .text()
                    .await
                    .expect("text");
                let reserved: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("lambent_node_memory_reserved_bytes "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("reserved bytes");
                peak = peak.max(reserved);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let calls = (0..5).map(|_| {
        let url = server.url("/v1/functions/a/invoke");
        async move {
            let r = client()
                .post(url)
                .json(&json!({ "sleep": 2.0 }))
                .send()
                .await
                .expect("invoke");
            (r.status().as_u16(), r.text().await.expect("body"))
        }
    });
    let answers = futures::future::join_all(calls).await;
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!((ok, refused.len()), (4, 1), "{answers:?}");
    assert!(refused[0].1.contains("memory budget"), "{answers:?}");
    let peak = watcher.await.expect("watcher");
    assert_eq!(
        peak,
        512 * MB,
        "four busy instances fill the budget, never more"
    );

    // Provisioned concurrency the node's memory cannot hold is refused up front.
    server.cli_ok(&["publish", "a"]);
    let r = put_json(
        &server,
        "/v1/functions/a/provisioned?qualifier=1",
        json!({ "provisioned": 5 }),
    )
    .await;
    let message = crate::harness::expect_error(r, 400, "InvalidParameterValue").await;
    assert!(
        message.contains("640 MB") && message.contains("512 MB"),
        "{message}"
    );
}

#[tokio::test]
async fn wasm_calls_share_instances_up_to_their_instance_concurrency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &[]).await;
    // The CGI example spins on /loop until its timeout: a slow call that holds its seat.
    server.deploy("spin", "cgi-c", &["--timeout", "2"]);
    server.cli_ok(&["concurrency", "spin", "1"]);
    let out = server.cli_ok(&["scaling", "spin", "--instance-concurrency", "3"]);
    assert!(out.contains("3 calls per instance"), "{out}");

    // Reserved concurrency 1 is one instance: with three calls per instance, three calls run
    // at once and a fourth is refused.
    let spawn_call = || {
        let url = server.url("/fn/spin/loop");
        tokio::spawn(async move {
            client()
                .get(url)
                .send()
                .await
                .expect("call")
                .status()
                .as_u16()
        })
    };
    let mut calls: Vec<_> = (0..3).map(|_| spawn_call()).collect();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let v = loop {
        let v = get_json(&server, "/v1/instances").await;
        if v["functions"]["spin"]["inFlight"] == 3 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "three calls never ran at once: {v}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    calls.push(spawn_call());
    let spin = &v["functions"]["spin"];
    assert_eq!(
        (spin["busy"].as_u64(), spin["inFlight"].as_u64()),
        (Some(1), Some(3)),
        "{v}"
    );
    assert_eq!(v["memoryReservedMb"], 128, "one instance's memory: {v}");
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.expect("call"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses[3], 429, "{statuses:?}");
    // The last call out gave the instance back.
    assert_eq!(server.metric("lambent_node_memory_reserved_bytes").await, 0);

    // lambent top sees the calls made while it watches.
    let top = server
        .cli_command(&[
            "top",
            "spin",
            "--iterations",
            "1",
            "--interval",
            "1.5",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("top");
    let mut top = top;
    let mut made = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while top.try_wait().expect("top").is_none() {
        assert!(Instant::now() < deadline, "top never finished");
        let r = client()
            .get(server.url("/fn/spin/"))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        made += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = top.wait_with_output().expect("top output");
    assert!(out.status.success());
    let line: Value = serde_json::from_slice(&out.stdout).expect("one JSON sample");
    let rows = line["functions"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "only spin: {line}");
    let calls_per_s = rows[0]["callsPerSecond"].as_f64().expect("rate");
    assert!(
        calls_per_s > 0.0 && calls_per_s <= f64::from(made) / 1.4,
        "{line}"
    );
    assert!(rows[0]["p50Ms"].as_f64().is_some(), "{line}");

    // Runtime API functions take one event at a time: the setting is refused, clearly.
    let _code = deploy_sleeper(&server, "py");
    let r = put_json(
        &server,
        "/v1/functions/py/scaling",
        json!({ "instanceConcurrency": 4 }),
    )
    .await;
    let message = crate::harness::expect_error(r, 400, "InvalidParameterValue").await;
    assert!(message.contains("Runtime API"), "{message}");
    let r = put_json(
        &server,
        "/v1/functions/spin/scaling",
        json!({ "instanceConcurrency": 1001 }),
    )
    .await;
    crate::harness::expect_error(r, 400, "InvalidParameterValue").await;
    server.cli_ok(&["scaling", "spin", "--clear"]);
    let v: Value = get_json(&server, "/v1/functions/spin/scaling").await;
    assert_eq!(
        (v["own"].clone(), v["instanceConcurrency"].clone()),
        (Value::Null, json!(1))
    );
}

#[tokio::test]
async fn a_function_can_have_its_own_keep_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--keep-alive", "600"]).await;
    let _a = deploy_sleeper(&server, "brief");
    let _b = deploy_sleeper(&server, "kept");
    let out = server.cli_ok(&[
        "scaling",
        "brief",
        "--keep-alive",
        "fixed",
        "--keep-alive-seconds",
        "1",
    ]);
    assert!(out.contains("keep-alive fixed, 1s"), "{out}");
    assert!(cold(&server, "brief").await);
    assert!(cold(&server, "kept").await);
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.metric("lambent_sandboxes_reaped_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "brief's instance was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cold(&server, "brief").await,
        "scaled to zero after its own keep-alive"
    );
    assert!(
        !cold(&server, "kept").await,
        "the server's 10 minutes still hold for kept"
    );
    // The setting survives a restart.
    drop(server);
    let server = Server::start_with(dir.path(), &["--keep-alive", "600"]).await;
    let out = server.cli_ok(&["scaling", "brief"]);
    assert!(
        out.contains("keep-alive fixed, 1s") && !out.contains("server's"),
        "{out}"
    );
    let r = put_json(
        &server,
        "/v1/functions/brief/scaling",
        json!({ "keepAlivePolicy": "sometimes" }),
    )
    .await;
    let message = crate::harness::expect_error(r, 400, "InvalidParameterValue").await;
    assert!(message.contains("fixed or adaptive"), "{message}");
}

#[tokio::test]
async fn provisioned_instances_that_cannot_start_report_failed_and_back_off() {
    let server = Server::start().await;
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        code.path().join("app.py"),
        "raise RuntimeError('no database')\n",
    )
    .expect("app.py");
    let path = code.path().to_str().expect("utf-8");
    server.cli_ok(&[
        "deploy",
        "broken",
        path,
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ]);
    server.cli_ok(&["publish", "broken"]);
    server.cli_ok(&["provisioned", "broken:1", "2"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let v = get_json(
            &server,
            "/2019-09-30/functions/broken/provisioned-concurrency?Qualifier=1",
        )
        .await;
        if v["Status"] == "FAILED" {
            break v;
        }
        assert_eq!(v["Status"], "IN_PROGRESS", "{v}");
        assert!(Instant::now() < deadline, "never FAILED: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let reason = v["StatusReason"].as_str().expect("reason");
    assert!(reason.contains("no database"), "{v}");
    assert_eq!(v["AllocatedProvisionedConcurrentExecutions"], 0);
    // Backing off: a few starts, not one every reaper tick for each of the two instances.
    let started = server.metric("lambent_sandboxes_started_total").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let more = server.metric("lambent_sandboxes_started_total").await - started;
    assert!(more <= 2, "{more} more starts in 3 s while backing off");
    let out = server.cli_ok(&["provisioned", "broken"]);
    assert!(
        out.contains("FAILED") && out.contains("no database"),
        "{out}"
    );
}

/// Polls a provisioned configuration until it exists and is READY.
async fn wait_ready(server: &Server, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = get(server.url(path)).await.expect("get");
        let found = r.status() == 200;
        let v: Value = r.json().await.expect("json");
        if found && v["status"] == "READY" {
            return v;
        }
        assert!(Instant::now() < deadline, "never ready: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn provisioned_concurrency_on_an_alias_follows_the_alias() {
    let server = Server::start().await;
    let _code = deploy_sleeper(&server, "aliased");
    server.cli_ok(&["publish", "aliased"]);
    server.cli_ok(&["alias", "aliased", "live", "1"]);
    server.cli_ok(&["provisioned", "aliased:live", "1"]);
    let v = wait_ready(&server, "/v1/functions/aliased/provisioned?qualifier=live").await;
    assert_eq!(v["allocated"], 1, "{v}");
    // The version behind the alias cannot take a second configuration.
    let r = put_json(
        &server,
        "/v1/functions/aliased/provisioned?qualifier=1",
        json!({ "provisioned": 1 }),
    )
    .await;
    let message = crate::harness::expect_error(r, 409, "ResourceConflict").await;
    assert!(message.contains("through live"), "{message}");
    // The first call through the alias is warm, on the provisioned instance.
    let r = post_json(
        &server,
        "/v1/functions/aliased/invoke?qualifier=live",
        json!({}),
    )
    .await;
    assert_eq!(r.headers()["x-lambent-cold-start"], "false");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["init"], "provisioned-concurrency", "{v}");

    // Pointing the alias at version 2 moves the instances there.
    let _code = deploy_sleeper_with(&server, "aliased", 256);
    server.cli_ok(&["publish", "aliased"]);
    server.cli_ok(&["alias", "aliased", "live", "2"]);
    wait_ready(&server, "/v1/functions/aliased/provisioned?qualifier=live").await;
    let r = post_json(
        &server,
        "/v1/functions/aliased/invoke?qualifier=live",
        json!({}),
    )
    .await;
    assert_eq!(r.headers()["x-lambent-version"], "2");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["init"], "provisioned-concurrency", "{v}");
    // Version 1 is free for its own configuration now; deleting the alias drops its.
    server.cli_ok(&["provisioned", "aliased:1", "1"]);
    server.cli_ok(&["unalias", "aliased", "live"]);
    let listed = get_json(&server, "/v1/functions/aliased/provisioned").await;
    let qualifiers: Vec<_> = listed["provisioned"]
        .as_array()
        .map(|a| a.iter().map(|c| c["qualifier"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(qualifiers, vec![json!("1")], "{listed}");
}

#[tokio::test]
async fn changing_latest_keeps_a_busy_instance_of_a_published_version() {
    let server = Server::start().await;
    let _code = deploy_sleeper(&server, "ver");
    server.cli_ok(&["publish", "ver"]);
    let url = server.url("/v1/functions/ver/invoke?qualifier=1");
    let busy = tokio::spawn(async move {
        client()
            .post(url)
            .json(&json!({ "sleep": 1.5 }))
            .send()
            .await
            .expect("invoke")
            .status()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_json(&server, "/v1/instances").await["functions"]["ver"]["busy"] != 1 {
        assert!(Instant::now() < deadline, "version 1 never got busy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // New code for $LATEST retires $LATEST's instances, not version 1's.
    let _code = deploy_sleeper_with(&server, "ver", 256);
    assert_eq!(busy.await.expect("call"), 200);
    let r = post_json(&server, "/v1/functions/ver/invoke?qualifier=1", json!({})).await;
    assert_eq!(
        r.headers()["x-lambent-cold-start"],
        "false",
        "version 1 stayed warm"
    );
    assert_eq!(server.metric("lambent_sandboxes_started_total").await, 1);
}

/// Moves the server's test clock to `minutes` past the next `hour`:00 UTC.
#[cfg(feature = "test-clock")]
async fn advance_to(server: &Server, hour: i64, minutes: i64) {
    const DAY: i64 = 86_400_000;
    let now = get_json(server, "/v1/debug/clock").await["nowMs"]
        .as_i64()
        .expect("now");
    let target = hour * 3_600_000 + minutes * 60_000;
    let by = (target - now.rem_euclid(DAY)).rem_euclid(DAY);
    let r = post_json(server, "/v1/debug/clock", json!({ "advanceMs": by })).await;
    assert_eq!(r.status(), 200);
}

/// Moves the test clock: only in builds with the `test-clock` feature.
#[cfg(feature = "test-clock")]
#[tokio::test]
async fn scheduled_provisioned_concurrency_opens_and_closes_a_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--test-clock"]).await;
    let _code = deploy_sleeper(&server, "office");
    server.cli_ok(&["publish", "office"]);
    let out = server.cli_ok(&[
        "provisioned-schedule",
        "office:1",
        "open",
        "cron(0 8 * * ? *)",
        "1",
    ]);
    assert!(out.contains("gets 1 provisioned instances"), "{out}");
    server.cli_ok(&[
        "provisioned-schedule",
        "office:1",
        "close",
        "cron(0 18 * * ? *)",
        "0",
    ]);
    let listed = server.cli_ok(&["provisioned-schedule", "office"]);
    assert!(
        listed.contains("open") && listed.contains("close"),
        "{listed}"
    );
    // Rates are refused: a window is wall-clock times.
    let r = put_json(
        &server,
        "/v1/functions/office/provisioned-schedules/often",
        json!({ "qualifier": "1", "schedule": "rate(5 minutes)", "provisioned": 1 }),
    )
    .await;
    let message = crate::harness::expect_error(r, 400, "InvalidParameterValue").await;
    assert!(message.contains("cron"), "{message}");

    advance_to(&server, 7, 59).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let none = get_json(&server, "/v1/functions/office/provisioned").await;
    assert_eq!(
        none["provisioned"],
        json!([]),
        "nothing before 08:00: {none}"
    );
    advance_to(&server, 8, 1).await;
    let v = wait_ready(&server, "/v1/functions/office/provisioned?qualifier=1").await;
    assert_eq!(v["allocated"], 1, "{v}");
    advance_to(&server, 18, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(&server, "/v1/functions/office/provisioned").await;
        if v["provisioned"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "the window never closed: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.cli_ok(&["provisioned-schedule", "office", "open", "--delete"]);
    let listed = get_json(&server, "/v1/functions/office/provisioned-schedules").await;
    assert_eq!(
        listed["schedules"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}
