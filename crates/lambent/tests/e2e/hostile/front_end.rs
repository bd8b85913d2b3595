//! Hostile: front_end (see docs/sandbox.md, threat model). A caller that sends half a header and
//! waits, opens more connections than the server may hold, sends bodies larger than the operation
//! takes, or floods a public function URL with stalled uploads.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Server, client, expect_error};

/// Longest a test waits for something the server should do within a few seconds.
const PATIENCE: Duration = Duration::from_secs(30);

/// The server's `host:port`.
pub fn authority(server: &Server) -> &str {
    server.base.trim_start_matches("http://")
}

/// A fresh TCP connection to the server.
pub async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(authority(server))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (EOF or reset) and returns what it sent; panics if
/// it has not closed it within [`PATIENCE`].
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    let mut buf = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open for {PATIENCE:?}; it sent {:?}",
                String::from_utf8_lossy(&seen)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head (up to the empty line), or says why there is none.
async fn try_read_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .map_err(|_| format!("no response head within {PATIENCE:?}"))?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!(
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&seen)
            ));
        }
        seen.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

/// Reads one response head; panics if there is none.
async fn read_head(stream: &mut TcpStream) -> String {
    try_read_head(stream)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The value of `Content-Length` in a response head.
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"))
}

/// Sends `GET /healthz` on `stream` and insists on a 200 (the connection stays open).
async fn healthz_on(stream: &mut TcpStream) -> Result<(), String> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: lambent\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let head = try_read_head(stream).await?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head);
    }
    let mut body = vec![0u8; content_length(&head)];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn start(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(tmp.path(), extra).await;
    (server, tmp)
}

#[tokio::test]
async fn a_half_sent_header_is_cut_off_after_the_header_timeout_and_an_idle_one_after_the_idle_timeout()
 {
    let (server, _tmp) = start(&["--header-timeout", "1", "--idle-timeout", "2"]).await;

    // Half a request head, then nothing: the server hangs up on its own.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: lambent\r\nX-Slow: ")
        .await
        .expect("write");
    let said = read_until_closed(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&said).contains(" 200 "),
        "a half header was answered: {}",
        String::from_utf8_lossy(&said)
    );

    // A connection that says nothing at all gets the same treatment.
    let mut silent = connect(&server).await;
    read_until_closed(&mut silent).await;

    // A keep-alive connection that finished its request and went quiet is closed too (after the
    // idle timeout), and answered requests until then.
    let mut idle = connect(&server).await;
    healthz_on(&mut idle)
        .await
        .expect("healthz on a fresh connection");
    let said = read_until_closed(&mut idle).await;
    assert!(said.is_empty(), "{}", String::from_utf8_lossy(&said));

    // Meanwhile the server answers whole requests.
    let r = client()
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_at_once_and_the_server_recovers() {
    const CAP: usize = 6;
    const EXCESS: usize = 4;
    let cap = CAP.to_string();
    let (server, _tmp) = start(&["--max-connections", &cap]).await;

    // Fill every slot with a connection that is open and answered (so it surely holds a slot).
    // The health poll that saw the server start may still hold a slot for a moment: a refused
    // connection here is tried again.
    let mut held = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while held.len() < CAP {
        let mut c = connect(&server).await;
        match healthz_on(&mut c).await {
            Ok(()) => held.push(c),
            Err(why) => {
                assert!(
                    !why.starts_with("HTTP/") || why.contains(" 503 "),
                    "unexpected answer {why}"
                );
                assert!(Instant::now() < deadline, "slots never freed up: {why}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    // Every further connection is answered 503 with Retry-After and closed, without waiting.
    for _ in 0..EXCESS {
        let mut c = connect(&server).await;
        let said = String::from_utf8_lossy(&read_until_closed(&mut c).await).into_owned();
        if !said.is_empty() {
            assert!(said.starts_with("HTTP/1.1 503 "), "{said}");
            assert!(
                said.to_ascii_lowercase().contains("retry-after: 1"),
                "{said}"
            );
            assert!(said.contains("--max-connections"), "{said}");
        }
    }
    // The held connections still work.
    for c in &mut held {
        healthz_on(c)
            .await
            .expect("a held connection still answers");
    }

    // Once they go, the server takes new connections again.
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut c = connect(&server).await;
        if healthz_on(&mut c).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never took connections again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bodies_over_an_operations_limit_get_a_413_that_names_it() {
    let server = Server::start().await;
    server.deploy("hello", "hello-c", &[]);
    let client = client();

    // A synchronous invocation takes 6 MB, as on Lambda (native and Lambda API).
    let sync = vec![b'x'; 6 * 1024 * 1024 + 1];
    let r = client
        .post(server.url("/v1/functions/hello/invoke"))
        .body(sync.clone())
        .send()
        .await
        .expect("invoke");
    let m = expect_error(r, 413, "PayloadTooLarge").await;
    assert!(m.contains("6291456 byte limit (6 MB)"), "{m}");
    let r = client
        .post(server.url("/2015-03-31/functions/hello/invocations"))
        .body(sync)
        .send()
        .await
        .expect("invoke");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["x-amzn-errortype"], "RequestTooLargeException");
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("6291456")),
        "{v}"
    );

    // An event takes 1 MB: Lambda's Event invocation type, native events, queue messages.
    let event = vec![b'x'; 1024 * 1024 + 1];
    let r = client
        .post(server.url("/2015-03-31/functions/hello/invocations"))
        .header("x-amz-invocation-type", "Event")
        .body(event.clone())
        .send()
        .await
        .expect("event");
    assert_eq!(r.status(), 413);
    assert_eq!(r.headers()["x-amzn-errortype"], "RequestTooLargeException");
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("1048576 byte limit (1 MB)")),
        "{v}"
    );
    let r = client
        .post(server.url("/v1/functions/hello/events"))
        .body(event.clone())
        .send()
        .await
        .expect("event");
    let m = expect_error(r, 413, "PayloadTooLarge").await;
    assert!(m.contains("1048576"), "{m}");
    let r = client
        .post(server.url("/v1/queues"))
        .json(&json!({"name": "work"}))
        .send()
        .await
        .expect("queue");
    assert!(r.status().is_success(), "{}", r.status());
    let r = client
        .post(server.url("/v1/queues/work/messages"))
        .body(event)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);

    // A code upload takes 50 MB of zip, base64 in JSON: a caller that declares more is refused
    // before it sends a byte of it.
    let mut c = connect(&server).await;
    let head = format!(
        "POST /2015-03-31/functions HTTP/1.1\r\nHost: lambent\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        crate::harness::bearer(),
        80 * 1024 * 1024
    );
    c.write_all(head.as_bytes()).await.expect("write");
    let said = String::from_utf8_lossy(&read_until_closed(&mut c).await).into_owned();
    assert!(said.starts_with("HTTP/1.1 413 "), "{said}");
    assert!(said.contains("RequestEntityTooLargeException"), "{said}");
    assert!(said.contains("for the CreateFunction operation"), "{said}");
    let mut c = connect(&server).await;
    let head = format!(
        "PUT /v1/functions/hello/code HTTP/1.1\r\nHost: lambent\r\nAuthorization: {}\r\nContent-Type: application/wasm\r\nContent-Length: {}\r\n\r\n",
        crate::harness::bearer(),
        50 * 1024 * 1024 + 1
    );
    c.write_all(head.as_bytes()).await.expect("write");
    let said = String::from_utf8_lossy(&read_until_closed(&mut c).await).into_owned();
    assert!(said.starts_with("HTTP/1.1 413 "), "{said}");
    assert!(said.contains("52428800 byte limit (50 MB)"), "{said}");
}

const PY_COUNT: &str = r#"
def handler(event, context):
    return {"statusCode": 200, "body": "got %d bytes" % len(event.get("body", ""))}
"#;

/// Writes `files` into a fresh directory.
pub fn function_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, contents) in files {
        let p = dir.path().join(path);
        std::fs::write(&p, contents).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    dir
}

/// Deploys `dir` as a Python function with a public URL.
pub fn deploy_public_python(server: &Server, name: &str, dir: &Path) {
    server.deploy_python(name, dir, &["--public"]);
}

#[tokio::test]
async fn a_public_url_admits_a_call_before_it_reads_the_body() {
    let server = Server::start().await;
    let dir = function_dir(&[("app.py", PY_COUNT)]);
    deploy_public_python(&server, "count", dir.path());
    server.cli_ok(&["concurrency", "count", "1"]);
    const LENGTH: usize = 100_000;
    let upload_head = format!(
        "POST /fn/count/ HTTP/1.1\r\nHost: lambent\r\nContent-Type: text/plain\r\nContent-Length: {LENGTH}\r\n\r\n"
    );

    // A stalled upload takes the function's only seat.
    let mut stalled = connect(&server).await;
    stalled
        .write_all(upload_head.as_bytes())
        .await
        .expect("write");
    stalled.write_all(b"first bytes").await.expect("write");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = crate::harness::get(server.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        if metrics
            .lines()
            .any(|l| l == "lambent_function_concurrent_executions{function=\"count\"} 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the upload never took its seat");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A second upload is refused at once, before it has sent a byte of its body.
    let mut second = connect(&server).await;
    second
        .write_all(upload_head.as_bytes())
        .await
        .expect("write");
    let head = read_head(&mut second).await;
    assert!(head.starts_with("HTTP/1.1 429 "), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");

    // The stalled upload, once finished, is served.
    stalled
        .write_all(&vec![b'y'; LENGTH - "first bytes".len()])
        .await
        .expect("write");
    let head = read_head(&mut stalled).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let mut body = vec![0u8; content_length(&head)];
    stalled.read_exact(&mut body).await.expect("body");
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("got {LENGTH} bytes")
    );
}
