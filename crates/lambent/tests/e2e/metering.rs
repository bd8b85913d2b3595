//! Metering: every call is metered (usage per minute, per-function metrics), throttles are
//! counted, and the sums agree with the calls made and with the stored records.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Server, client, expect_error, get, get_json};

/// Usage grouped by function, polled until `function` shows `calls` calls (a wasm call is
/// metered when its guest finishes, which can be just after its answer).
async fn usage_of(server: &Server, function: &str, calls: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(
            server,
            &format!("/v1/usage?groupBy=function&function={function}"),
        )
        .await;
        let groups = v["groups"].as_array().expect("groups");
        if let Some(g) = groups.iter().find(|g| g["key"] == function)
            && g["invocations"].as_u64() == Some(calls)
        {
            return g.clone();
        }
        assert!(
            Instant::now() < deadline,
            "usage never reached {calls}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-3 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

#[tokio::test]
async fn metering_sums_match_the_calls_made() {
    let server = Server::start().await;
    // A wasm function whose silent successes are metered but not stored one by one.
    server.deploy("echo", "cgi-c", &["--memory", "256"]);
    let mut client_ms = 0.0;
    for i in 0..20 {
        let started = Instant::now();
        let r = client()
            .post(server.url("/v1/functions/echo/invoke"))
            .body(format!("call {i}"))
            .send()
            .await
            .expect("invoke");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("body");
        client_ms += started.elapsed().as_secs_f64() * 1e3;
    }
    let echo = usage_of(&server, "echo", 20).await;
    assert_eq!(echo["errors"], 0);
    assert_eq!(echo["throttles"], 0);
    assert_eq!(
        echo["coldStarts"], 1,
        "only the first call loaded the code: {echo}"
    );
    let duration = echo["durationMs"].as_f64().expect("duration");
    let billed = echo["billedMs"].as_u64().expect("billed");
    assert!(
        duration > 0.0 && duration <= client_ms,
        "{duration} vs {client_ms}"
    );
    // Each call rounds up on its own: at least the total, at most one ms more per call.
    assert!(
        billed as f64 >= duration && billed as f64 <= duration + 20.0,
        "{echo}"
    );
    close(
        echo["gbSeconds"].as_f64().expect("gb-s"),
        0.25 * billed as f64 / 1000.0,
        "GB-seconds = 256 MB x billed",
    );

    // A process-tier function: every call is stored, and the records add up to the usage.
    server.deploy("py", "lambda-python", &[]);
    for i in 0..5 {
        let r = client()
            .post(server.url("/v1/functions/py/invoke"))
            .json(&json!({"n": i}))
            .send()
            .await
            .expect("invoke");
        assert_eq!(r.status(), 200);
    }
    let py = usage_of(&server, "py", 5).await;
    let records = get_json(&server, "/v1/invocations?function=py").await;
    let records = records["invocations"].as_array().expect("records");
    assert_eq!(records.len(), 5);
    let sum = |k: &str| records.iter().map(|r| r[k].as_f64().expect(k)).sum::<f64>();
    close(
        py["durationMs"].as_f64().expect("d"),
        sum("duration_ms"),
        "duration",
    );
    close(
        py["billedMs"].as_f64().expect("b"),
        sum("billed_ms"),
        "billed",
    );
    close(
        py["gbSeconds"].as_f64().expect("g"),
        sum("gb_seconds"),
        "GB-s",
    );
    for r in records {
        assert_eq!(r["memory_mb"], 128);
        assert_eq!(r["tenant"], "default");
        let billed = r["billed_ms"].as_f64().expect("billed");
        let d = r["duration_ms"].as_f64().expect("duration");
        assert!(billed >= d && billed < d + 1.0, "{r}");
    }
    assert_eq!(py["coldStarts"], 1, "{py}");
    assert!(py["initMs"].as_f64().expect("init") > 0.0);

    // Throttles are metered too, and not billed.
    server.cli_ok(&["concurrency", "echo", "0"]);
    let r = client()
        .post(server.url("/v1/functions/echo/invoke"))
        .body("x")
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 429);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = get_json(&server, "/v1/usage?groupBy=function&function=echo").await;
        if v["total"]["throttles"] == 1 {
            assert_eq!(v["total"]["invocations"], 20);
            assert_eq!(v["total"]["billedMs"], echo["billedMs"]);
            break;
        }
        assert!(Instant::now() < deadline, "{v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Totals, per tenant and per time; and the per-function metrics say the same.
    let total = get_json(&server, "/v1/usage?groupBy=total").await;
    assert_eq!(total["total"]["invocations"], 25);
    let tenants = get_json(&server, "/v1/usage?groupBy=tenant").await;
    assert_eq!(tenants["groups"][0]["key"], "default");
    assert_eq!(tenants["groups"][0]["invocations"], 25);
    let minutes = get_json(&server, "/v1/usage?groupBy=minute").await;
    let per_minute: u64 = minutes["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["invocations"].as_u64().expect("n"))
        .sum();
    assert_eq!(per_minute, 25);
    assert!(
        minutes["groups"][0]["key"]
            .as_str()
            .expect("key")
            .ends_with(":00.000Z")
    );
    assert_eq!(
        server
            .metric("lambent_function_invocations_total{function=\"echo\"}")
            .await,
        20
    );
    assert_eq!(
        server
            .metric("lambent_function_throttles_total{function=\"echo\"}")
            .await,
        1
    );
    assert_eq!(
        server
            .metric("lambent_function_duration_seconds_count{function=\"py\"}")
            .await,
        5
    );

    // The CLI shows the same sums.
    let out = server.cli_ok(&["--json", "usage", "--function", "py", "--since", "1h"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["total"]["invocations"], 5);
    let table = server.cli_ok(&["usage", "--by", "total"]);
    let row: Vec<&str> = table
        .lines()
        .map(|l| {
            l.split_whitespace()
                .filter(|c| *c != "│")
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first() == Some(&"all"))
        .unwrap_or_else(|| panic!("no total row in {table}"));
    assert_eq!(row[1], "25", "{table}");
    assert_eq!(row[3], "1", "one throttle: {table}");

    // Bad questions get clear errors.
    for (query, hint) in [
        ("from=yesterday", "RFC 3339"),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "before",
        ),
        ("groupBy=week", "groupBy"),
        ("function=no%20such", "name"),
    ] {
        let r = get(server.url(&format!("/v1/usage?{query}")))
            .await
            .expect("get");
        let m = expect_error(r, 400, "InvalidParameterValue").await;
        assert!(m.contains(hint), "{query}: {m}");
    }
    let r = get(server.url("/v1/invocations?limit=0"))
        .await
        .expect("get");
    expect_error(r, 400, "InvalidParameterValue").await;
}

#[tokio::test]
async fn a_call_whose_caller_goes_away_is_still_metered() {
    let server = Server::start().await;
    let code = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        code.path().join("app.py"),
        "import time\n\n\ndef handler(event, context):\n    time.sleep(5)\n    return 1\n",
    )
    .expect("app.py");
    let path = code.path().to_str().expect("utf-8");
    server.cli_ok(&[
        "deploy",
        "nap",
        path,
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ]);
    // The caller gives up after a second; the call had run for that long.
    let gave_up = client()
        .post(server.url("/v1/functions/nap/invoke"))
        .timeout(Duration::from_millis(1000))
        .json(&json!({}))
        .send()
        .await;
    assert!(gave_up.is_err(), "the client timed out");
    let g = usage_of(&server, "nap", 1).await;
    assert_eq!(g["errors"], 1, "{g}");
    let billed = g["billedMs"].as_u64().expect("billed ms");
    assert!((900..5000).contains(&billed), "billed {billed} ms: {g}");
    // Records are written by the recorder's thread: wait for it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let v = loop {
        let v = get_json(&server, "/v1/invocations?function=nap").await;
        if v["invocations"].as_array().is_some_and(|r| !r.is_empty()) {
            break v;
        }
        assert!(Instant::now() < deadline, "no record: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let records = v["invocations"].as_array().expect("records");
    assert_eq!(records.len(), 1, "{v}");
    assert_eq!(records[0]["outcome"], "abandoned", "{v}");
}
