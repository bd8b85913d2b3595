//! Hostile: authz (see docs/sandbox.md, threat model). Callers with a key of the wrong role, or
//! with no valid key at all: keys carry a role enforced on every route of both APIs, unknown key
//! ids and wrong secrets get one answer, and a caller without a valid key cannot make lambent
//! hold its request body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambent_core::sigv4;
use serde_json::{Value, json};

use crate::harness::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Server, client, memory_of};

/// A key made through the API.
struct Key {
    id: String,
    secret: String,
}

impl Key {
    fn admin() -> Key {
        Key {
            id: ACCESS_KEY_ID.to_owned(),
            secret: SECRET_ACCESS_KEY.to_owned(),
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}:{}", self.id, self.secret)
    }
}

async fn create_key(s: &Server, role: &str) -> Key {
    let r = client()
        .post(s.url("/v1/keys"))
        .json(&json!({ "description": role, "role": role }))
        .send()
        .await
        .expect("create key");
    assert_eq!(r.status(), 201, "creating a {role} key");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["role"], role, "{v}");
    Key {
        id: v["access_key_id"].as_str().expect("id").to_owned(),
        secret: v["secret_access_key"].as_str().expect("secret").to_owned(),
    }
}

/// Status, `x-amzn-errortype` and body of a response.
struct Answer {
    status: u16,
    error_type: String,
    body: String,
}

impl Answer {
    async fn of(r: reqwest::Response) -> Answer {
        Answer {
            status: r.status().as_u16(),
            error_type: r
                .headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: r.text().await.expect("body"),
        }
    }

    fn message(&self) -> String {
        let v: Value = serde_json::from_str(&self.body).unwrap_or(Value::Null);
        v["error"]["message"]
            .as_str()
            .or_else(|| v["message"].as_str())
            .unwrap_or("")
            .to_owned()
    }
}

async fn bearer_call(
    s: &Server,
    key: &Key,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let mut r = reqwest::Client::new()
        .request(method, s.url(path))
        .header("authorization", key.bearer());
    if let Some(body) = body {
        r = r.json(&body);
    }
    Answer::of(r.send().await.expect("request")).await
}

fn now_unix() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(secs).expect("time")
}

/// How a SigV4 request carries its body hash.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Signing {
    /// In `X-Amz-Content-SHA256`, signed (what lambent's CLI sends).
    HashHeader,
    /// Only inside the signature (what boto3 sends for Lambda).
    BodyOnly,
}

/// The headers of a SigV4 request (service lambda, us-east-1) by `key_id` with `secret`.
fn sigv4_headers(
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
    key_id: &str,
    secret: &str,
    signing: Signing,
) -> Vec<(String, String)> {
    let hash = sigv4::sha256_hex(body);
    let base = [("host", host), ("content-type", "application/json")];
    let req = sigv4::RequestParts {
        method,
        raw_path: path,
        raw_query: None,
        headers: &base,
        payload_sha256_hex: &hash,
    };
    let now = now_unix();
    match signing {
        Signing::HashHeader => {
            let mut h = sigv4::sign(&req, key_id, secret, "us-east-1", "lambda", now);
            h.push(("content-type".into(), "application/json".into()));
            h
        }
        Signing::BodyOnly => {
            let amz_date = sigv4::format_amz_date(now);
            let date = &amz_date[..8];
            let mut all: Vec<(&str, &str)> = base.to_vec();
            all.push(("x-amz-date", &amz_date));
            let req = sigv4::RequestParts {
                headers: &all,
                ..req
            };
            let names: Vec<String> = ["content-type", "host", "x-amz-date"]
                .map(String::from)
                .to_vec();
            let canonical = sigv4::canonical_request(&req, &names).expect("canonical");
            let scope = sigv4::credential_scope(date, "us-east-1", "lambda");
            let to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical);
            let key = sigv4::signing_key(secret, date, "us-east-1", "lambda");
            let auth = sigv4::Authorization {
                access_key_id: key_id.to_owned(),
                date: date.to_owned(),
                region: "us-east-1".into(),
                service: "lambda".into(),
                signed_headers: names,
                signature: sigv4::signature(&key, &to_sign),
            };
            vec![
                ("authorization".into(), auth.to_string()),
                ("x-amz-date".into(), amz_date.clone()),
                ("content-type".into(), "application/json".into()),
            ]
        }
    }
}

fn host(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// A SigV4-signed request to the Lambda API (or any path).
async fn signed_call(
    s: &Server,
    key_id: &str,
    secret: &str,
    signing: Signing,
    method: &str,
    path: &str,
    body: &[u8],
) -> Answer {
    let headers = sigv4_headers(&host(s), method, path, body, key_id, secret, signing);
    let mut r = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        s.url(path),
    );
    for (n, v) in &headers {
        r = r.header(n, v);
    }
    Answer::of(r.body(body.to_vec()).send().await.expect("request")).await
}

async fn key_ids(s: &Server) -> Vec<(String, String)> {
    let v = crate::harness::get_json(s, "/v1/keys").await;
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["access_key_id"].as_str().expect("id").to_owned(),
                k["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect()
}

/// Class: authorization. Deploy and invoke keys cannot create, list or revoke keys; nothing
/// changes when they try.
#[tokio::test]
async fn non_admin_keys_cannot_manage_keys() {
    let s = Server::start().await;
    let deploy = create_key(&s, "deploy").await;
    let invoke = create_key(&s, "invoke").await;
    let before = key_ids(&s).await;
    assert_eq!(before.len(), 3, "{before:?}");
    for key in [&deploy, &invoke] {
        let attempts = [
            (
                reqwest::Method::POST,
                "/v1/keys".to_owned(),
                Some(json!({"role": "admin"})),
            ),
            (
                reqwest::Method::POST,
                "/v1/keys".to_owned(),
                Some(json!({})),
            ),
            (reqwest::Method::GET, "/v1/keys".to_owned(), None),
            (
                reqwest::Method::DELETE,
                format!("/v1/keys/{ACCESS_KEY_ID}"),
                None,
            ),
            (
                reqwest::Method::DELETE,
                format!("/v1/keys/{}", key.id),
                None,
            ),
        ];
        for (method, path, body) in attempts {
            let a = bearer_call(&s, key, method.clone(), &path, body).await;
            assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
            assert!(
                a.message().contains("needs role admin"),
                "{method} {path}: {}",
                a.body
            );
        }
        // Signed requests are held to the same rule.
        let a = signed_call(
            &s,
            &key.id,
            &key.secret,
            Signing::HashHeader,
            "POST",
            "/v1/keys",
            b"{}",
        )
        .await;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    assert_eq!(key_ids(&s).await, before, "no key was made or revoked");
    // The CLI shows each key's role, and refuses unknown roles before asking.
    let listed = s.cli_ok(&["keys", "ls"]);
    assert!(
        listed.contains("ROLE") && listed.contains("invoke") && listed.contains("deploy"),
        "{listed}"
    );
    let out = s.cli(&["keys", "create", "--role", "root"]);
    assert!(!out.status.success());
    // And the API says which roles there are.
    let a = bearer_call(
        &s,
        &Key::admin(),
        reqwest::Method::POST,
        "/v1/keys",
        Some(json!({"role": "root"})),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.message().contains("admin, deploy or invoke"),
        "{}",
        a.body
    );
    // The CLI makes keys of each role.
    let out = s.cli_ok(&["--json", "keys", "create", "--role", "invoke"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["role"], "invoke");
}

/// Class: authorization. An invoke key invokes and reads but cannot deploy or delete; a deploy
/// key deploys; both through the native API, function URLs and the CLI.
#[tokio::test]
async fn invoke_keys_invoke_and_deploy_keys_deploy() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    let deploy = create_key(&s, "deploy").await;
    let invoke = create_key(&s, "invoke").await;
    let cli_as = |key: &Key, args: &[&str]| {
        s.cli_command(args)
            .env("LAMBENT_ACCESS_KEY_ID", &key.id)
            .env("LAMBENT_SECRET_ACCESS_KEY", &key.secret)
            .output()
            .expect("run the CLI")
    };
    let code = crate::harness::example("hello-c");
    let code = code.to_str().expect("utf-8");

    let out = cli_as(&invoke, &["deploy", "by-invoke", code]);
    assert!(!out.status.success(), "an invoke key deployed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs role deploy"), "{stderr}");
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/functions/hello"),
        (reqwest::Method::DELETE, "/v1/functions/hello/url"),
        (reqwest::Method::PUT, "/v1/functions/hello/concurrency"),
        (reqwest::Method::POST, "/v1/functions/hello/versions"),
        (reqwest::Method::POST, "/v1/queues"),
    ] {
        let a = bearer_call(&s, &invoke, method.clone(), path, Some(json!({}))).await;
        assert_eq!(a.status, 403, "{method} {path}: {}", a.body);
        assert!(a.message().contains("needs role deploy"), "{}", a.body);
    }
    let a = bearer_call(
        &s,
        &invoke,
        reqwest::Method::GET,
        "/v1/functions/hello",
        None,
    )
    .await;
    assert_eq!(
        a.status, 200,
        "the function is still there and readable: {}",
        a.body
    );
    let a = bearer_call(
        &s,
        &invoke,
        reqwest::Method::POST,
        "/v1/functions/hello/invoke",
        Some(json!({"x": 1})),
    )
    .await;
    assert_eq!(a.status, 200, "invoke: {}", a.body);
    // The function URL (AWS_IAM) takes the invoke key.
    let a = bearer_call(&s, &invoke, reqwest::Method::GET, "/fn/hello/", None).await;
    assert_eq!(a.status, 200, "URL: {}", a.body);
    let out = cli_as(&invoke, &["ls"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cli_as(&deploy, &["deploy", "by-deploy", code]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = bearer_call(
        &s,
        &deploy,
        reqwest::Method::POST,
        "/v1/functions/by-deploy/invoke",
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = bearer_call(
        &s,
        &deploy,
        reqwest::Method::DELETE,
        "/v1/functions/by-deploy",
        None,
    )
    .await;
    assert!(a.status == 200 || a.status == 204, "{}", a.body);
    let a = bearer_call(
        &s,
        &Key::admin(),
        reqwest::Method::GET,
        "/v1/functions/by-invoke",
        None,
    )
    .await;
    assert_eq!(
        a.status, 404,
        "the invoke key's deploy left nothing: {}",
        a.body
    );
}

/// Class: authorization, through the Lambda REST API with real SigV4 signatures of both kinds
/// (hash header as lambent's CLI signs, body only as boto3 signs).
#[tokio::test]
async fn the_lambda_api_enforces_roles() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    s.deploy("doomed", "hello-c", &[]);
    let deploy = create_key(&s, "deploy").await;
    let invoke = create_key(&s, "invoke").await;
    let server = &s;
    for signing in [Signing::HashHeader, Signing::BodyOnly] {
        let call =
            move |key: &Key, method: &'static str, path: &'static str, body: &'static [u8]| {
                let (id, secret) = (key.id.clone(), key.secret.clone());
                async move { signed_call(server, &id, &secret, signing, method, path, body).await }
            };
        let a = call(&invoke, "GET", "/2015-03-31/functions/", b"").await;
        assert_eq!(a.status, 200, "{signing:?} list: {}", a.body);
        let a = call(
            &invoke,
            "POST",
            "/2015-03-31/functions/hello/invocations",
            b"{\"a\":1}",
        )
        .await;
        assert_eq!(a.status, 200, "{signing:?} invoke: {}", a.body);
        for (method, path, body) in [
            ("DELETE", "/2015-03-31/functions/doomed", &b""[..]),
            (
                "PUT",
                "/2015-03-31/functions/hello/configuration",
                &b"{\"Description\":\"by invoke\"}"[..],
            ),
            (
                "POST",
                "/2021-10-31/functions/hello/url",
                &b"{\"AuthType\":\"NONE\"}"[..],
            ),
        ] {
            let a = call(&invoke, method, path, body).await;
            assert_eq!(a.status, 403, "{signing:?} {method} {path}: {}", a.body);
            assert_eq!(a.error_type, "AccessDeniedException", "{}", a.body);
            assert!(a.message().contains("needs role deploy"), "{}", a.body);
        }
        let a = call(
            &deploy,
            "PUT",
            "/2015-03-31/functions/hello/configuration",
            b"{\"Description\":\"by deploy\"}",
        )
        .await;
        assert_eq!(a.status, 200, "{signing:?} deploy configures: {}", a.body);
    }
    let a = signed_call(
        &s,
        &deploy.id,
        &deploy.secret,
        Signing::BodyOnly,
        "DELETE",
        "/2015-03-31/functions/doomed",
        b"",
    )
    .await;
    assert_eq!(a.status, 204, "deploy deletes: {}", a.body);
    let v = crate::harness::get_json(&s, "/v1/functions/hello").await;
    assert!(v.to_string().contains("by deploy"), "{v}");
}

/// Class: key-id oracle. An unknown access key id and a known one with a wrong secret get the
/// same status and the same body, for bearer tokens and both kinds of SigV4 request.
#[tokio::test]
async fn unknown_key_ids_and_wrong_secrets_look_the_same() {
    let s = Server::start().await;
    let unknown = Key {
        id: "LKNOSUCHKEY0000000001".into(),
        secret: SECRET_ACCESS_KEY.into(),
    };
    let wrong = Key {
        id: ACCESS_KEY_ID.into(),
        secret: "not-the-secret-at-all-0123456789".into(),
    };
    for path in ["/v1/functions", "/2015-03-31/functions/"] {
        let a = bearer_call(&s, &unknown, reqwest::Method::GET, path, None).await;
        let b = bearer_call(&s, &wrong, reqwest::Method::GET, path, None).await;
        assert_eq!(a.status, 403);
        assert_eq!(
            (a.status, &a.error_type, &a.body),
            (b.status, &b.error_type, &b.body),
            "{path}"
        );
        for signing in [Signing::HashHeader, Signing::BodyOnly] {
            for (method, body) in [("GET", &b""[..]), ("POST", &b"{\"x\":1}"[..])] {
                let a = signed_call(
                    &s,
                    &unknown.id,
                    &unknown.secret,
                    signing,
                    method,
                    path,
                    body,
                )
                .await;
                let b =
                    signed_call(&s, &wrong.id, &wrong.secret, signing, method, path, body).await;
                assert_eq!(a.status, 403, "{signing:?} {method} {path}: {}", a.body);
                assert_eq!(
                    (a.status, &a.error_type, &a.body),
                    (b.status, &b.error_type, &b.body),
                    "{signing:?} {method} {path}"
                );
                assert!(!a.body.contains(&unknown.id), "the answer names no key id");
            }
        }
    }
}

/// What one attacker saw.
#[derive(Debug)]
struct Outcome {
    status: u16,
    retry_after: bool,
    connection_close: bool,
    body_bytes_sent: u64,
}

const FLOOD_BODY_BYTES: u64 = 200 * 1024 * 1024;

/// Sends a request head, then streams up to `FLOOD_BODY_BYTES` of body (chunked when `length` is
/// `None`) while reading the answer; returns what the server answered and how much of the body it
/// took before answering and closing.
fn attack(addr: &str, head: String, length: Option<u64>) -> Outcome {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let framing = match length {
        Some(n) => format!("content-length: {n}\r\n"),
        None => "transfer-encoding: chunked\r\n".to_owned(),
    };
    stream
        .write_all(format!("{head}{framing}\r\n").as_bytes())
        .expect("write head");
    let mut writer = stream.try_clone().expect("clone");
    let total = length.unwrap_or(FLOOD_BODY_BYTES);
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        while sent < total {
            let ok = if length.is_some() {
                writer.write_all(&chunk)
            } else {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| writer.write_all(&chunk))
                    .and_then(|()| writer.write_all(b"\r\n"))
            };
            if ok.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived: the server closed with the body unread.
            Err(e) if !answer.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                break;
            }
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let body_bytes_sent = sender.join().expect("sender");
    let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    Outcome {
        status,
        retry_after: text.contains("\r\nretry-after: "),
        connection_close: text.contains("\r\nconnection: close"),
        body_bytes_sent,
    }
}

/// Class: pre-authentication buffering. Parallel 150-200 MB uploads without a valid key (none,
/// a bad bearer token, bad signatures with and without a declared body hash, chunked or not) are
/// each answered and closed with their body unread, or read only within the pre-authentication
/// budget; lambent's memory stays within a resource bound, and valid calls keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_uploads_are_not_buffered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start_with(dir.path(), &["--preauth-buffer-mb", "16"]).await;
    s.deploy("hello", "hello-c", &[]);
    let pid = s.pid();
    let idle_rss = memory_of(pid, "VmRSS");
    let addr = host(&s);
    let path = "/2015-03-31/functions/hello/invocations";
    let bad_signature = |signing: Signing| {
        sigv4_headers(
            &addr,
            "POST",
            path,
            b"not the body",
            ACCESS_KEY_ID,
            "wrong-secret-123",
            signing,
        )
        .into_iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect::<String>()
    };
    let request = |extra: String| format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\n{extra}");
    let big = FLOOD_BODY_BYTES;
    // Over the 16 MB budget, under the upload limit (a 50 MB zip as base64 JSON).
    let under_upload_limit = 40 * 1024 * 1024;
    // (name, head, length, statuses accepted)
    let attacks: Vec<(&str, String, Option<u64>, &[u16])> = vec![
        (
            "no credentials",
            request(String::new()),
            Some(big),
            &[403][..],
        ),
        (
            "no credentials, chunked",
            request(String::new()),
            None,
            &[403][..],
        ),
        (
            "bad bearer",
            request(format!(
                "authorization: Bearer {ACCESS_KEY_ID}:wrong-secret\r\n"
            )),
            Some(big),
            &[403][..],
        ),
        (
            "bad signature with a body hash",
            request(bad_signature(Signing::HashHeader)),
            Some(big),
            &[403][..],
        ),
        (
            "bad signature, body only, over the upload limit",
            request(bad_signature(Signing::BodyOnly)),
            Some(big),
            &[413][..],
        ),
        (
            "bad signature, body only, over the budget",
            request(bad_signature(Signing::BodyOnly)),
            Some(under_upload_limit),
            &[503][..],
        ),
        (
            "bad signature, body only, chunked",
            request(bad_signature(Signing::BodyOnly)),
            None,
            &[503][..],
        ),
        (
            "bad signature, body only, chunked (2)",
            request(bad_signature(Signing::BodyOnly)),
            None,
            &[503][..],
        ),
    ];
    let threads: Vec<_> = attacks
        .into_iter()
        .map(|(name, head, length, want)| {
            let addr = addr.clone();
            std::thread::spawn(move || (name, want, length, attack(&addr, head, length)))
        })
        .collect();
    for t in threads {
        let (name, want, length, outcome) = t.join().expect("attacker");
        assert!(want.contains(&outcome.status), "{name}: {outcome:?}");
        assert!(
            outcome.connection_close,
            "{name}: the connection is closed: {outcome:?}"
        );
        let sent_limit = length.unwrap_or(big);
        assert!(
            outcome.body_bytes_sent < sent_limit,
            "{name}: the whole body was taken: {outcome:?}"
        );
        if outcome.status == 503 {
            assert!(outcome.retry_after, "{name}: 503 without Retry-After");
        }
        eprintln!("{name}: {outcome:?}");
    }
    let peak = memory_of(pid, "VmHWM");
    eprintln!(
        "lambent RSS idle {} MB, peak during the flood {} MB",
        idle_rss >> 20,
        peak >> 20
    );
    let bound = 100 * 1024 * 1024;
    assert!(
        peak < idle_rss + bound,
        "lambent grew from {} MB to {} MB during the flood",
        idle_rss >> 20,
        peak >> 20
    );
    // The budget was given back: a signed call whose body is read before authentication works.
    let a = signed_call(
        &s,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        Signing::BodyOnly,
        "POST",
        path,
        b"{\"after\":\"flood\"}",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
}
