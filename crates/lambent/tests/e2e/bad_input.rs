//! Bad input gets the right 4xx with a message that says what is wrong, and a failed deploy
//! stores nothing.

use base64::Engine as _;
use serde_json::json;

use crate::harness::{Server, example, expect_error};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A valid component that exports nothing: a component of another world.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

#[tokio::test]
async fn bad_deploys_are_refused_and_store_nothing() {
    let s = Server::start().await;
    let client = crate::harness::client();
    let hello = std::fs::read(example("hello-c/hello.wasm")).expect("hello.wasm");
    let create = |body: serde_json::Value| client.post(s.url("/v1/functions")).json(&body).send();

    let m = expect_error(
        create(json!({"name": "f", "code": b64(b"not wasm at all")}))
            .await
            .expect("send"),
        400,
        "InvalidCode",
    )
    .await;
    assert!(m.contains("not a WebAssembly binary"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "code": b64(&hello[..hello.len() / 2])}))
            .await
            .expect("send"),
        400,
        "InvalidCode",
    )
    .await;
    assert!(m.contains("not valid WebAssembly"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "code": b64(EMPTY_COMPONENT)}))
            .await
            .expect("send"),
        400,
        "InvalidCode",
    )
    .await;
    assert!(m.contains("wasi:http/incoming-handler"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "code": ""}))
            .await
            .expect("send"),
        400,
        "InvalidCode",
    )
    .await;
    assert!(m.contains("empty"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "runtime": "python9", "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidRuntime",
    )
    .await;
    assert!(m.contains("wasi-http"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "runtime": "wasi-cgi", "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidCode",
    )
    .await;
    assert!(m.contains("needs a WebAssembly core module"), "{m}");
    let m = expect_error(
        create(json!({"name": "bad/name", "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidJson",
    )
    .await;
    assert!(m.contains("'/'"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "memory_mb": 64, "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidConfiguration",
    )
    .await;
    assert!(m.contains("128 to 4096 MB"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "timeout_s": 901, "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidConfiguration",
    )
    .await;
    assert!(m.contains("1 to 900"), "{m}");
    let m = expect_error(
        create(json!({"name": "f", "memory": 128, "code": b64(&hello)}))
            .await
            .expect("send"),
        400,
        "InvalidJson",
    )
    .await;
    assert!(m.contains("unknown field `memory`"), "{m}");
    let r = client
        .post(s.url("/v1/functions"))
        .header("content-type", "application/json")
        .body("{\"name\": \"f\",")
        .send()
        .await
        .expect("send");
    expect_error(r, 400, "InvalidJson").await;
    let m = expect_error(
        create(json!({"name": "f"})).await.expect("send"),
        400,
        "InvalidRequest",
    )
    .await;
    assert!(m.contains("missing 'code'"), "{m}");
    let r = client
        .put(s.url("/v1/functions/bad.name"))
        .body("x")
        .send()
        .await
        .expect("send");
    expect_error(r, 400, "InvalidName").await;

    // Nothing of the failed deploys was stored.
    let list: serde_json::Value = client
        .get(s.url("/v1/functions"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["functions"].as_array().expect("array").len(),
        0,
        "{list}"
    );
    let code_dir = s.data_dir.join("code");
    let stored = walk(&code_dir);
    assert!(stored.is_empty(), "code objects left behind: {stored:?}");

    // A duplicate create is a conflict, and leaves the original alone.
    let r = create(json!({"name": "f", "code": b64(&hello)}))
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let m = expect_error(
        create(json!({"name": "f", "code": b64(&hello)}))
            .await
            .expect("send"),
        409,
        "ResourceConflict",
    )
    .await;
    assert!(m.contains("already exists"), "{m}");

    // A code update of the wrong kind is refused and $LATEST keeps its code.
    let cgi = std::fs::read(example("cgi-c/cgi.wasm")).expect("cgi.wasm");
    let r = client
        .put(s.url("/v1/functions/f/code"))
        .body(cgi)
        .send()
        .await
        .expect("send");
    let m = expect_error(r, 400, "InvalidCode").await;
    assert!(
        m.contains("runtime wasi-http needs a WebAssembly component"),
        "{m}"
    );
    let r = client.get(s.url("/fn/f/")).send().await.expect("call");
    assert_eq!(r.status(), 200);
    assert_eq!(walk(&code_dir).len(), 1);

    let r = client
        .patch(s.url("/v1/functions/f/config"))
        .json(&json!({"timeout_s": 0}))
        .send()
        .await
        .expect("send");
    expect_error(r, 400, "InvalidConfiguration").await;
    let r = client
        .patch(s.url("/v1/functions/f/config"))
        .json(&json!({"runtime": "wasi-cgi"}))
        .send()
        .await
        .expect("send");
    expect_error(r, 400, "InvalidJson").await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn bad_invocations_get_clear_errors() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    s.deploy("cgi", "cgi-c", &[]);
    let client = crate::harness::client();

    let r = client.get(s.url("/fn/nope/")).send().await.expect("call");
    let m = expect_error(r, 404, "ResourceNotFound").await;
    assert!(m.contains("function nope does not exist"), "{m}");
    let r = client
        .get(s.url("/fn/hello:7/"))
        .send()
        .await
        .expect("call");
    let m = expect_error(r, 404, "ResourceNotFound").await;
    assert!(m.contains("version 7 of function hello"), "{m}");
    let r = client
        .get(s.url("/fn/hello:x.y/"))
        .send()
        .await
        .expect("call");
    expect_error(r, 400, "InvalidName").await;
    let r = client
        .get(s.url("/fn/hello:live/"))
        .send()
        .await
        .expect("call");
    let m = expect_error(r, 404, "ResourceNotFound").await;
    assert!(m.contains("alias live of function hello"), "{m}");
    let r = client
        .post(s.url("/v1/functions/nope/invoke"))
        .body("{}")
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "ResourceNotFound").await;
    let r = client
        .get(s.url("/v1/functions/hello?qualifier=0"))
        .send()
        .await
        .expect("call");
    expect_error(r, 400, "InvalidQualifier").await;

    let big = vec![b'x'; 6 * 1024 * 1024 + 1];
    for url in ["/v1/functions/hello/invoke", "/fn/hello/echo", "/fn/cgi/x"] {
        let r = client
            .post(s.url(url))
            .body(big.clone())
            .send()
            .await
            .expect("call");
        let m = expect_error(r, 413, "PayloadTooLarge").await;
        assert!(m.contains("6291456 byte limit"), "{url}: {m}");
    }
    // Exactly at the limit is fine.
    let r = client
        .post(s.url("/fn/cgi/x"))
        .body(vec![b'x'; 6 * 1024 * 1024])
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);

    let r = client
        .get(s.url("/v2/whatever"))
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "RouteNotFound").await;
    let r = client
        .get(s.url("/v1/invocations/unknown"))
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "ResourceNotFound").await;
    let r = client
        .get(s.url("/v1/functions?limit=0"))
        .send()
        .await
        .expect("call");
    expect_error(r, 400, "InvalidRequest").await;
    let r = client
        .delete(s.url("/v1/functions/nope"))
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "ResourceNotFound").await;
}
