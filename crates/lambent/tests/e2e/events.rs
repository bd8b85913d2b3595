//! Asynchronous invocation end to end, with real processes: durable accept under `kill -9`,
//! retries, dead letters and redrive, maximum age, schedules on a controllable clock, queue
//! triggers with partial batch failures, and bad input.
//!
//! The functions here are real Python functions in sandboxes with network egress; each call
//! reports its request id (the event id) to a sink the test runs (in an "outside" network
//! namespace: egress sandboxes reach nothing on the host itself), which appends it to a file.
//! That file, not lambent's own bookkeeping, is what the durability tests check.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::harness::{Outside, Server, client, expect_error, get_json, post_json};

/// Events in each durability test.
const EVENTS: usize = 10_000;
/// Concurrent producers.
const PRODUCERS: usize = 64;

// ----- the sink -------------------------------------------------------------------------------

/// An HTTP server the functions report to: `POST /{id}` appends `id` to a file and answers 200,
/// or 500 for the first `fail_first` calls of each id.
struct Sink {
    outside: Outside,
    port: u16,
    calls: Arc<Mutex<HashMap<String, u32>>>,
    successes: Arc<Mutex<HashSet<String>>>,
    total: Arc<AtomicUsize>,
    file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Sink {
    fn start(fail_first: u32) -> Sink {
        let outside = Outside::create();
        let listener: TcpListener = outside.listen();
        let port = listener.local_addr().expect("addr").port();
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ids.txt");
        let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let successes: Arc<Mutex<HashSet<String>>> = Arc::default();
        let total = Arc::new(AtomicUsize::new(0));
        let out = Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .expect("sink file"),
        ));
        {
            let (calls, successes, total) = (calls.clone(), successes.clone(), total.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let (calls, successes, total, out) =
                        (calls.clone(), successes.clone(), total.clone(), out.clone());
                    std::thread::spawn(move || {
                        let _ = serve_one(stream, fail_first, &calls, &successes, &total, &out);
                    });
                }
            });
        }
        Sink {
            outside,
            port,
            calls,
            successes,
            total,
            file,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}:{}", self.outside.addr, self.port)
    }

    /// Ids written to the file (each line is one successful call).
    fn ids_in_file(&self) -> Vec<String> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn serve_one(
    stream: TcpStream,
    fail_first: u32,
    calls: &Mutex<HashMap<String, u32>>,
    successes: &Mutex<HashSet<String>>,
    total: &AtomicUsize,
    out: &Mutex<std::fs::File>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let id = path.trim_start_matches('/').to_owned();
    total.fetch_add(1, Ordering::Relaxed);
    let n = {
        let mut c = calls.lock();
        let n = c.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let ok = n > fail_first;
    if ok {
        writeln!(out.lock(), "{id}")?;
        successes.lock().insert(id);
    }
    let (status, text) = if ok {
        ("200 OK", "ok")
    } else {
        ("500 Internal Server Error", "no")
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}

/// Deploys a Python function that reports each call's request id to the sink (raising when the
/// sink answers 500), or returns `batchItemFailures` for queue batches.
fn deploy_reporter(server: &Server, name: &str, sink: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("app.py"),
        r#"import json, os, urllib.request

SINK = os.environ["SINK"]


def handler(event, context):
    if isinstance(event, dict) and "Records" in event:
        failed = [r["messageId"] for r in event["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
    req = urllib.request.Request(SINK + "/" + context.aws_request_id, data=b"x", method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
    return {"ok": True, "event": event}
"#,
    )
    .expect("write app.py");
    std::fs::write(
        dir.path().join("lambent.toml"),
        format!(
            "runtime = \"python3.12\"\nhandler = \"app.handler\"\nmemory = 128\ntimeout = 10\negress = true\n[env]\nSINK = \"{sink}\"\n"
        ),
    )
    .expect("write lambent.toml");
    let path = dir.path().to_str().expect("utf-8").to_owned();
    server.cli_ok(&["deploy", name, &path]);
    dir
}

async fn start(dir: &Path, extra: &[&str]) -> Server {
    let mut args = Vec::new();
    if cfg!(feature = "test-clock") {
        args.push("--test-clock");
    }
    if !extra.contains(&"--event-retry-delay") {
        args.extend(["--event-retry-delay", "0.3"]);
    }
    args.extend(["--event-pollers", "16", "--keep-alive", "60"]);
    args.extend_from_slice(extra);
    Server::start_with(dir, &args).await
}

/// Accepts one event; its id.
async fn accept(server: &Server, function: &str, payload: Value) -> String {
    let r = post_json(server, &format!("/v1/functions/{function}/events"), payload).await;
    assert_eq!(r.status(), 202);
    let header = r
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .expect("request id header")
        .to_owned();
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["eventId"], header.as_str());
    header
}

/// Waits until `pred` holds for the event.
async fn wait_event(server: &Server, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get_json(server, &format!("/v1/events/{id}")).await;
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "event {id} never became {what}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `EVENTS` events from `PRODUCERS` tasks; returns the ids answered 202. Stops early
/// (without failing) when the server goes away.
/// Sends `EVENTS` events from `PRODUCERS` tasks; `progress` counts the accepts as they come.
async fn produce(base: String, function: &str, progress: Arc<AtomicUsize>) -> Vec<String> {
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(EVENTS)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRODUCERS {
        let (accepted, next, base) = (accepted.clone(), next.clone(), base.clone());
        let progress = progress.clone();
        let url = format!("{base}/v1/functions/{function}/events");
        tasks.push(tokio::spawn(async move {
            let c = client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= EVENTS {
                    return;
                }
                match c.post(&url).json(&json!({ "n": i })).send().await {
                    Ok(r) if r.status() == 202 => {
                        if let Some(id) = r.headers().get("x-amzn-requestid") {
                            accepted
                                .lock()
                                .push(id.to_str().expect("ascii id").to_owned());
                            progress.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Ok(r) => panic!("accept answered {}", r.status()),
                    Err(_) => return, // the server was killed
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
    Arc::try_unwrap(accepted)
        .map(Mutex::into_inner)
        .unwrap_or_else(|a| a.lock().clone())
}

/// Waits until every id is in the sink's file; returns how many ran more than once.
async fn wait_all_ran(sink: &Sink, ids: &[String]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let missing = {
            let done = sink.successes.lock();
            ids.iter().filter(|id| !done.contains(*id)).count()
        };
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted events never ran",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let in_file = sink.ids_in_file();
    let file: HashSet<&String> = in_file.iter().collect();
    assert!(
        ids.iter().all(|id| file.contains(id)),
        "every accepted id is in the file"
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &in_file {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    counts.values().filter(|n| **n > 1).count()
}

// ----- durability under kill -9 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_event_is_lost_when_lambent_is_killed_while_accepting() {
    let data = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start(0);
    let mut server = start(data.path(), &[]).await;
    let _code = deploy_reporter(&server, "reporter", &sink.url());
    let base = server.base.clone();
    let progress = Arc::new(AtomicUsize::new(0));
    let counted = progress.clone();
    let producer = tokio::spawn(async move { produce(base, "reporter", counted).await });
    // Kill it a fifth of the way through the accepts, while producers are still sending: on a
    // fast machine waiting for the sink instead let every accept finish before the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::Relaxed) < EVENTS / 5 {
        assert!(Instant::now() < deadline, "too few events were accepted");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill9();
    let accepted = producer.await.expect("producers");
    assert!(
        accepted.len() < EVENTS,
        "the kill came after every accept; nothing was tested"
    );
    let server = start(data.path(), &[]).await;
    let twice = wait_all_ran(&sink, &accepted).await;
    eprintln!(
        "killed while accepting: {} events accepted, all ran; {twice} ran twice",
        accepted.len()
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_event_is_lost_when_lambent_is_killed_while_running() {
    let data = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start(0);
    let mut server = start(data.path(), &[]).await;
    let _code = deploy_reporter(&server, "reporter", &sink.url());
    let accepted = produce(server.base.clone(), "reporter", Arc::default()).await;
    assert_eq!(accepted.len(), EVENTS);
    let ran_before = sink.total.load(Ordering::Relaxed);
    assert!(ran_before < EVENTS, "everything ran before the kill");
    let deadline = Instant::now() + Duration::from_secs(120);
    while sink.total.load(Ordering::Relaxed) < ran_before + 500 {
        assert!(Instant::now() < deadline, "events stopped running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let ran_at_kill = sink.successes.lock().len();
    assert!(ran_at_kill < EVENTS, "every event ran before the kill");
    let server = start(data.path(), &[]).await;
    let twice = wait_all_ran(&sink, &accepted).await;
    let metrics = server.metric("lambent_async_events_recovered_total ").await;
    eprintln!(
        "killed while running: {ran_at_kill}/{EVENTS} had run; {metrics} in flight were run again; {twice} ran twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_accepted_event_is_lost_when_lambent_is_killed_while_retrying() {
    let data = tempfile::tempdir().expect("tempdir");
    // Every event's first run fails, so every event goes through a retry.
    let sink = Sink::start(1);
    let extra = ["--event-retry-delay", "2"];
    let mut server = start(data.path(), &extra).await;
    let _code = deploy_reporter(&server, "reporter", &sink.url());
    let accepted = produce(server.base.clone(), "reporter", Arc::default()).await;
    assert_eq!(accepted.len(), EVENTS);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let retrying = get_json(&server, "/v1/events?state=retrying&limit=1").await;
        // Some events already failed and wait for their retry, and some retries succeeded.
        if !retrying["events"].as_array().expect("events").is_empty()
            && !sink.successes.lock().is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no event reached retrying");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
    let succeeded_at_kill = sink.successes.lock().len();
    let server = start(data.path(), &extra).await;
    let twice = wait_all_ran(&sink, &accepted).await;
    // Each event failed once, then succeeded: its status says two attempts (or more after the
    // kill).
    let v = get_json(&server, &format!("/v1/events/{}", accepted[0])).await;
    assert_eq!(v["state"], "succeeded");
    assert!(v["attempts"].as_u64().expect("attempts") >= 2, "{v}");
    eprintln!(
        "killed while retrying: {succeeded_at_kill}/{EVENTS} had succeeded; all did after restart; {twice} succeeded twice"
    );
}

// ----- retries, dead letters, redrive, maximum age ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_function_that_fails_twice_succeeds_on_the_third_attempt() {
    let sink = Sink::start(2);
    let server = Server::start_with(
        tempfile::tempdir().expect("tempdir").keep().as_path(),
        &["--event-retry-delay", "0.3"],
    )
    .await;
    let _code = deploy_reporter(&server, "flaky", &sink.url());
    let id = accept(&server, "flaky", json!({"order": 7})).await;
    // While it waits for a retry, its status says so and when the next attempt is.
    let retrying = wait_event(&server, &id, "retrying", |v| v["state"] == "retrying").await;
    assert!(retrying["nextAttemptAt"].is_string(), "{retrying}");
    assert!(
        retrying["error"]
            .as_str()
            .expect("error")
            .contains("function error")
    );
    let done = wait_event(&server, &id, "succeeded", |v| v["state"] == "succeeded").await;
    assert_eq!(done["attempts"], 3, "{done}");
    assert_eq!(done["condition"], "Success");
    assert_eq!(done["result"]["event"], json!({"order": 7}));
    assert_eq!(sink.calls.lock()[&id], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_that_always_fails_lands_in_the_dead_letter_queue_and_redrives() {
    let sink = Sink::start(u32::MAX);
    let server = Server::start_with(
        tempfile::tempdir().expect("tempdir").keep().as_path(),
        &["--event-retry-delay", "0.2"],
    )
    .await;
    let _code = deploy_reporter(&server, "broken", &sink.url());
    let r = post_json(&server, "/v1/queues", json!({"name": "dlq"})).await;
    assert_eq!(r.status(), 201);
    let r = client()
        .put(server.url("/v1/functions/broken/event-config"))
        .json(&json!({"maximumRetryAttempts": 1, "onFailure": "queue:dlq"}))
        .send()
        .await
        .expect("put config");
    assert_eq!(r.status(), 200);
    let payload = json!({"keep": "me intact", "n": [1, 2, 3]});
    let id = accept(&server, "broken", payload.clone()).await;
    let failed = wait_event(&server, &id, "failed", |v| v["state"] == "failed").await;
    assert_eq!(failed["attempts"], 2, "1 + MaximumRetryAttempts: {failed}");
    assert_eq!(failed["condition"], "RetriesExhausted");
    assert_eq!(sink.calls.lock()[&id], 2);

    let dead = get_json(&server, "/v1/queues/dlq/messages").await;
    let messages = dead["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{dead}");
    let record: Value =
        serde_json::from_str(messages[0]["body"].as_str().expect("body")).expect("record json");
    assert_eq!(record["requestPayload"], payload, "the payload is intact");
    assert_eq!(record["requestContext"]["requestId"], id.as_str());
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");

    // Redrive: the event runs again (and, still failing, comes back as a new dead letter).
    // Naming the message twice still redrives it once.
    let message_id = messages[0]["id"].as_str().expect("message id").to_owned();
    let r = post_json(
        &server,
        "/v1/queues/dlq/redrive",
        json!({"messageIds": [message_id, message_id]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let out: Value = r.json().await.expect("json");
    let redriven = out["redriven"].as_array().expect("redriven");
    assert_eq!(redriven.len(), 1, "{out}");
    let new_id = redriven[0]["eventId"]
        .as_str()
        .expect("event id")
        .to_owned();
    let again = wait_event(&server, &new_id, "failed", |v| v["state"] == "failed").await;
    assert_eq!(again["source"], "redrive:dlq");
    assert_eq!(sink.calls.lock()[&new_id], 2, "the redriven event ran");
    let dead = get_json(&server, "/v1/queues/dlq/messages").await;
    let bodies: Vec<Value> = dead["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().expect("body")).expect("json"))
        .collect();
    assert_eq!(
        bodies.len(),
        1,
        "the first dead letter left with the redrive"
    );
    assert_eq!(bodies[0]["requestContext"]["requestId"], new_id.as_str());
    assert_eq!(bodies[0]["requestPayload"], payload);

    let r = client()
        .delete(server.url("/v1/queues/dlq/messages"))
        .send()
        .await
        .expect("purge");
    let purged: Value = r.json().await.expect("json");
    assert_eq!(purged["purged"], 1);
}

/// Moves the test clock: only in builds with the `test-clock` feature.
#[cfg(feature = "test-clock")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_older_than_its_maximum_age_goes_to_the_failure_destination_unrun() {
    let sink = Sink::start(0);
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path(), &[]).await;
    let _code = deploy_reporter(&server, "late", &sink.url());
    post_json(&server, "/v1/queues", json!({"name": "expired"})).await;
    let r = client()
        .put(server.url("/v1/functions/late/event-config"))
        .json(&json!({"maximumEventAgeInSeconds": 60, "onFailure": "queue:expired"}))
        .send()
        .await
        .expect("config");
    assert_eq!(r.status(), 200);
    // Reserved concurrency 0 throttles every call, so the event waits.
    let r = client()
        .put(server.url("/v1/functions/late/concurrency"))
        .json(&json!({"reserved": 0}))
        .send()
        .await
        .expect("reserve");
    assert!(r.status().is_success(), "{}", r.status());
    let id = accept(&server, "late", json!({"late": true})).await;
    let waiting = wait_event(&server, &id, "throttled", |v| {
        v["state"] == "retrying" && v["throttles"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(waiting["attempts"], 0, "a throttle is not an attempt");
    let r = post_json(&server, "/v1/debug/clock", json!({"advanceMs": 61_000})).await;
    assert_eq!(r.status(), 200);
    let failed = wait_event(&server, &id, "failed", |v| v["state"] == "failed").await;
    assert_eq!(failed["condition"], "EventAgeExceeded", "{failed}");
    assert_eq!(failed["attempts"], 0);
    assert!(sink.calls.lock().is_empty(), "the function never ran");
    let dead = get_json(&server, "/v1/queues/expired/messages").await;
    let record: Value =
        serde_json::from_str(dead["messages"][0]["body"].as_str().expect("a dead letter"))
            .expect("json");
    assert_eq!(record["requestContext"]["condition"], "EventAgeExceeded");
    assert_eq!(record["requestPayload"], json!({"late": true}));
}

// ----- idempotency and Lambda's Event invoke ----------------------------------------------------

#[tokio::test]
async fn an_idempotency_key_returns_the_first_events_id() {
    let server = Server::start().await;
    server.deploy("echo", "cgi-c", &[]);
    let send = |key: &'static str, n: u32| {
        client()
            .post(server.url("/v1/functions/echo/events"))
            .header("Idempotency-Key", key)
            .json(&json!({ "n": n }))
            .send()
    };
    let first: Value = send("order-1", 1)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let second: Value = send("order-1", 2)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let other: Value = send("order-2", 3)
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["eventId"], first["eventId"]);
    assert_ne!(other["eventId"], first["eventId"]);
    let id = first["eventId"].as_str().expect("id");
    let done = wait_event(&server, id, "succeeded", |v| v["state"] == "succeeded").await;
    // The first payload ran; the duplicate's was never stored.
    let body: Value =
        serde_json::from_str(done["result"]["body"].as_str().expect("echoed body")).expect("json");
    assert_eq!(body, json!({"n": 1}));
    assert_eq!(
        server
            .metric("lambent_async_events_duplicates_total ")
            .await,
        1
    );
}

// ----- schedules --------------------------------------------------------------------------------

#[cfg(feature = "test-clock")]
async fn scheduled_events(server: &Server) -> Vec<Value> {
    let v = get_json(server, "/v1/events?function=echo&limit=1000").await;
    v["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["source"] == "schedule:every-minute")
        .cloned()
        .collect()
}

#[cfg(feature = "test-clock")]
async fn settle(server: &Server, expected: usize) -> Vec<Value> {
    // Firings are asynchronous: wait for the expected count, then a little longer to catch extras.
    let deadline = Instant::now() + Duration::from_secs(20);
    while scheduled_events(server).await.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    scheduled_events(server).await
}

/// Moves the test clock: only in builds with the `test-clock` feature.
#[cfg(feature = "test-clock")]
#[tokio::test]
async fn a_schedule_fires_on_time_once_and_not_again_after_a_restart() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut server = start(data.path(), &[]).await;
    server.deploy("echo", "cgi-c", &[]);
    let r = post_json(
        &server,
        "/v1/schedules",
        json!({"name": "every-minute", "function": "echo", "expression": "rate(1 minute)"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    assert!(created["nextFireAt"].is_string());
    assert!(
        settle(&server, 0).await.is_empty(),
        "nothing fires before its time"
    );

    post_json(&server, "/v1/debug/clock", json!({"advanceMs": 60_500})).await;
    let fired = settle(&server, 1).await;
    assert_eq!(fired.len(), 1, "one firing after one minute");
    let done = wait_event(
        &server,
        fired[0]["id"].as_str().expect("id"),
        "succeeded",
        |v| v["state"] == "succeeded",
    )
    .await;
    let event: Value = serde_json::from_str(done["result"]["body"].as_str().expect("body"))
        .expect("scheduled event json");
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert!(
        event["resources"][0]
            .as_str()
            .expect("rule arn")
            .ends_with(":rule/every-minute")
    );

    // A crash and a restart do not fire it again (the clock keeps its offset).
    server.kill9();
    let mut server = start(data.path(), &[]).await;
    assert_eq!(
        settle(&server, 1).await.len(),
        1,
        "no double firing after a restart"
    );

    // Ten minutes of downtime: one catch-up firing, not ten.
    server.terminate();
    let server = start(data.path(), &[]).await;
    post_json(&server, "/v1/debug/clock", json!({"advanceMs": 600_000})).await;
    assert_eq!(settle(&server, 2).await.len(), 2, "at most one catch-up");

    // Disabled, it does not fire.
    let r = client()
        .patch(server.url("/v1/schedules/every-minute"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("disable");
    assert_eq!(r.status(), 200);
    post_json(&server, "/v1/debug/clock", json!({"advanceMs": 120_000})).await;
    assert_eq!(
        settle(&server, 2).await.len(),
        2,
        "a disabled schedule is quiet"
    );
}

// ----- queue triggers ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_trigger_honours_batch_item_failures() {
    let sink = Sink::start(0);
    let data = tempfile::tempdir().expect("tempdir");
    let server = start(data.path(), &[]).await;
    let _code = deploy_reporter(&server, "consumer", &sink.url());
    post_json(&server, "/v1/queues", json!({"name": "poison"})).await;
    let r = post_json(
        &server,
        "/v1/queues",
        json!({"name": "work", "visibilityTimeout": 0, "deadLetterQueue": "poison", "maxReceiveCount": 2}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let messages: Vec<Value> = ["a", "fail", "b", "c"]
        .iter()
        .map(|b| json!({"body": b}))
        .collect();
    let r = post_json(
        &server,
        "/v1/queues/work/messages",
        json!({"messages": messages}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = client()
        .put(server.url("/v1/queues/work/trigger"))
        .json(&json!({"function": "consumer", "batchSize": 10, "maximumBatchingWindowInSeconds": 0.2}))
        .send()
        .await
        .expect("trigger");
    assert_eq!(r.status(), 200);
    // The three good messages are deleted; "fail" comes back until it has been received twice,
    // then moves to the dead-letter queue.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let work = get_json(&server, "/v1/queues/work").await;
        let poison = get_json(&server, "/v1/queues/poison/messages").await;
        let dead = poison["messages"].as_array().expect("messages");
        if work["messages"] == 0 && work["messagesInFlight"] == 0 && dead.len() == 1 {
            assert_eq!(dead[0]["body"], "fail");
            break;
        }
        assert!(Instant::now() < deadline, "work {work}, poison {poison}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- bad input ----------------------------------------------------------------------------------

#[tokio::test]
async fn bad_async_input_gets_clear_errors() {
    let server = Server::start().await;
    server.deploy("echo", "cgi-c", &[]);
    for (expression, hint) in [
        ("rate(5 minute)", "rate(5 minutes)"),
        ("cron(0 12 * * * *)", "?"),
        ("every 5 minutes", "rate("),
        ("cron(61 * * * ? *)", "minute"),
    ] {
        let r = post_json(
            &server,
            "/v1/schedules",
            json!({"name": "s", "function": "echo", "expression": expression}),
        )
        .await;
        let m = expect_error(r, 400, "InvalidParameterValue").await;
        assert!(m.contains(hint), "{expression}: {m}");
    }
    let r = post_json(
        &server,
        "/v1/schedules",
        json!({"name": "s", "function": "nope", "expression": "rate(1 hour)"}),
    )
    .await;
    expect_error(r, 404, "ResourceNotFound").await;

    let config = |body: Value| {
        client()
            .put(server.url("/v1/functions/echo/event-config"))
            .json(&body)
            .send()
    };
    let m = expect_error(
        config(json!({"onFailure": "queue:missing"}))
            .await
            .expect("send"),
        400,
        "InvalidParameterValue",
    )
    .await;
    assert!(m.contains("missing"), "{m}");
    let m = expect_error(
        config(json!({"onSuccess": "sns:topic"}))
            .await
            .expect("send"),
        400,
        "InvalidParameterValue",
    )
    .await;
    assert!(m.contains("queue:NAME"), "{m}");
    let m = expect_error(
        config(json!({"onFailure": "function:echo"}))
            .await
            .expect("send"),
        400,
        "InvalidParameterValue",
    )
    .await;
    assert!(m.contains("itself"), "{m}");
    expect_error(
        config(json!({"maximumRetryAttempts": 3}))
            .await
            .expect("send"),
        400,
        "InvalidParameterValue",
    )
    .await;
    expect_error(
        config(json!({"maximumEventAgeInSeconds": 59}))
            .await
            .expect("send"),
        400,
        "InvalidParameterValue",
    )
    .await;

    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = client()
        .post(server.url("/v1/functions/echo/events"))
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let r = client()
        .get(server.url("/v1/events/no-such-event"))
        .send()
        .await
        .expect("get");
    let m = expect_error(r, 404, "ResourceNotFound").await;
    assert!(m.contains("no-such-event"));
    let r = client()
        .post(server.url("/v1/functions/nope/events"))
        .body("{}")
        .send()
        .await
        .expect("send");
    expect_error(r, 404, "ResourceNotFound").await;
    let r = client()
        .post(server.url("/v1/functions/echo/events"))
        .header("idempotency-key", "schedule:nightly:0")
        .body("{}")
        .send()
        .await
        .expect("send");
    let m = expect_error(r, 400, "InvalidParameterValue").await;
    assert!(m.contains("schedule:"), "{m}");
    let r = post_json(
        &server,
        "/v1/queues",
        json!({"name": "work", "deadLetterQueue": "absent", "maxReceiveCount": 2}),
    )
    .await;
    let m = expect_error(r, 400, "InvalidParameterValue").await;
    assert!(m.contains("absent"), "{m}");
    let r = client()
        .post(server.url("/v1/queues/none/messages"))
        .body("hello")
        .send()
        .await
        .expect("send");
    expect_error(r, 404, "ResourceNotFound").await;
    let r = client()
        .post(server.url("/v1/debug/clock"))
        .json(&json!({"advanceMs": 1000}))
        .send()
        .await
        .expect("clock");
    if cfg!(feature = "test-clock") {
        // Compiled in, but not turned on.
        let m = expect_error(r, 404, "ResourceNotFound").await;
        assert!(m.contains("--test-clock"));
    } else {
        // Not even compiled in.
        expect_error(r, 404, "RouteNotFound").await;
    }
    // Nothing was half-written.
    let all = get_json(&server, "/v1/events").await;
    assert_eq!(all["events"], json!([]));
    assert_eq!(
        get_json(&server, "/v1/schedules").await["schedules"],
        json!([])
    );
    assert_eq!(get_json(&server, "/v1/queues").await["queues"], json!([]));
}
