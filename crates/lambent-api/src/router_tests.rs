//! The routers called in process with `oneshot`, no socket: a [`Platform`] over a temporary
//! data directory, requests built by hand, answers checked for their status and error body.

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use lambent_control::{EventsConfig, Platform, PlatformConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY_ID: &str = "AKIDROUTERTESTS0001";
const SECRET: &str = "router-tests-secret-0123456789abcdef";

struct Api {
    router: axum::Router,
    platform: Arc<Platform>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let platform = Platform::open(&PlatformConfig {
            data_dir: dir.path().to_owned(),
            max_instances: 4,
            sandbox_helper: None,
            keep_alive: std::time::Duration::from_secs(1),
            adaptive_keep_alive: false,
            max_sandboxes: 1,
            sandbox_uid_base: 200_000,
            freeze_idle: false,
            memory_budget_mb: 1024,
            region: "us-east-1".into(),
            account_concurrency: 10,
            admission_wait: std::time::Duration::ZERO,
            initial_key: Some((KEY_ID.into(), SECRET.into())),
            events: EventsConfig {
                pollers: 0,
                ..EventsConfig::default()
            },
        })
        .await
        .expect("platform");
        let platform = Arc::new(platform);
        Self {
            router: crate::router(platform.clone()),
            platform,
            _dir: dir,
        }
    }

    /// Sends a request with the admin key (or none); the status and the body as JSON.
    async fn send(
        &self,
        method: &str,
        uri: &str,
        body: Option<Vec<u8>>,
        key: bool,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if key {
            req = req.header("authorization", format!("Bearer {KEY_ID}:{SECRET}"));
        }
        if let Some(b) = &body {
            req = req
                .header("content-type", "application/json")
                .header("content-length", b.len());
        }
        let req = req
            .body(body.map_or_else(Body::empty, Body::from))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        Self::read(resp).await
    }

    /// Sends a request through the front end's own dispatch, as the server does: function URLs
    /// by the direct door, the rest through the router. The status, headers and raw body.
    async fn send_front(
        &self,
        method: &str,
        uri: &str,
        key: bool,
    ) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
        let mut req = Request::builder().method(method).uri(uri);
        if key {
            req = req.header("authorization", format!("Bearer {KEY_ID}:{SECRET}"));
        }
        let front = crate::FrontEnd {
            router: self.router.clone(),
            platform: self.platform.clone(),
        };
        let resp = front
            .respond(req.body(Body::empty()).expect("request"))
            .await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, bytes)
    }

    async fn read(resp: axum::response::Response) -> (StatusCode, http::HeaderMap, Value) {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).expect("json"));
        let (status, _, v) = self.send(method, uri, body, true).await;
        (status, v)
    }
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

fn message_of(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_bad_function_name_is_a_400_that_says_why() {
    let api = Api::new().await;
    let (status, v) = api.call("GET", "/v1/functions/no%20spaces", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code_of(&v), "InvalidName", "{v}");
    assert!(message_of(&v).contains("no spaces"), "{v}");
    // The same on a route with a body and on one with a second segment.
    let (status, v) = api
        .call(
            "PATCH",
            "/v1/functions/bad.name/config",
            Some(json!({"memory": 128})),
        )
        .await;
    assert_eq!(
        (status, code_of(&v)),
        (StatusCode::BAD_REQUEST, "InvalidName")
    );
    let (status, v) = api
        .call("GET", "/v1/functions/bad.name/aliases/live", None)
        .await;
    assert_eq!(
        (status, code_of(&v)),
        (StatusCode::BAD_REQUEST, "InvalidName")
    );
}

#[tokio::test]
async fn a_missing_function_is_a_404() {
    let api = Api::new().await;
    for (method, uri) in [
        ("GET", "/v1/functions/absent"),
        ("GET", "/v1/functions/absent/versions"),
        ("DELETE", "/v1/functions/absent"),
    ] {
        let (status, v) = api.call(method, uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {uri}: {v}");
        assert_eq!(code_of(&v), "ResourceNotFound", "{method} {uri}: {v}");
        assert!(message_of(&v).contains("absent"), "{v}");
    }
    // The Lambda API says it in Lambda's words.
    let (status, headers, _) = api
        .send("GET", "/2015-03-31/functions/absent", None, true)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok()),
        Some("ResourceNotFoundException")
    );
}

#[tokio::test]
async fn an_oversized_json_body_is_a_413() {
    let api = Api::new().await;
    let big = vec![b' '; crate::body::MAX_JSON_BODY_BYTES + 1];
    let (status, _, v) = api
        .send("PATCH", "/v1/functions/f/config", Some(big), true)
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(code_of(&v), "PayloadTooLarge");
    assert!(message_of(&v).contains("1048576 byte limit (1 MB)"), "{v}");
}

#[tokio::test]
async fn an_unknown_json_field_is_a_400_naming_it() {
    let api = Api::new().await;
    let (status, v) = api
        .call(
            "PUT",
            "/v1/functions/f/aliases/live",
            Some(json!({"functionVersion": "1", "colour": "blue"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(code_of(&v), "InvalidJson", "{v}");
    assert!(message_of(&v).contains("colour"), "{v}");
    // An empty body where one is needed.
    let (status, _, v) = api
        .send("PUT", "/v1/functions/f/concurrency", Some(Vec::new()), true)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(message_of(&v).contains("empty"), "{v}");
}

#[tokio::test]
async fn a_request_without_a_key_is_refused() {
    let api = Api::new().await;
    let (status, _, v) = api.send("GET", "/v1/functions", None, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(code_of(&v), "AccessDenied", "{v}");
    let (status, headers, _) = api.send("GET", "/2015-03-31/functions/", None, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        headers.contains_key("x-amzn-errortype"),
        "a Lambda-style refusal: {headers:?}"
    );
    // With the key it gets through.
    let (status, v) = api.call("GET", "/v1/functions", None).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["functions"], json!([]));
}

#[tokio::test]
async fn the_test_clock_exists_only_with_its_feature() {
    let api = Api::new().await;
    let (status, v) = api.call("GET", "/v1/debug/clock", None).await;
    if cfg!(feature = "test-clock") {
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(v["nowMs"].is_i64(), "{v}");
        // Compiled in but not turned on: moving it is refused.
        let (status, v) = api
            .call("POST", "/v1/debug/clock", Some(json!({"advanceMs": 1})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        assert!(message_of(&v).contains("--test-clock"), "{v}");
    } else {
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(code_of(&v), "RouteNotFound", "{v}");
        let (status, v) = api
            .call("POST", "/v1/debug/clock", Some(json!({"advanceMs": 1})))
            .await;
        assert_eq!(
            (status, code_of(&v)),
            (StatusCode::NOT_FOUND, "RouteNotFound")
        );
    }
}

#[tokio::test]
async fn function_urls_answer_alike_by_the_direct_door_and_through_the_router() {
    let api = Api::new().await;
    let code = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/hello-c/hello.wasm"
    ))
    .expect("examples/hello-c/hello.wasm");
    let name = lambent_core::FunctionName::new("hello").expect("name");
    api.platform
        .create(
            name.clone(),
            lambent_core::FunctionCreate::default(),
            code.into(),
        )
        .await
        .expect("create");
    api.platform
        .put_url(
            &name,
            None,
            Some(lambent_core::UrlAuthType::AwsIam),
            None,
            false,
        )
        .await
        .expect("url");
    let cases = [
        ("GET", "/fn/hello/", false),
        ("GET", "/fn/hello/", true),
        ("GET", "/fn/hello", true),
        ("POST", "/fn/hello/echo?x=1", true),
        ("GET", "/fn/nope/", true),
        ("GET", "/fn/nope/", false),
        ("GET", "/fn/bad%20name/", true),
        ("GET", "/fn/", true),
        ("GET", "/fn//x", true),
        ("HEAD", "/fn/hello/", true),
    ];
    for (method, uri, key) in cases {
        let (router_status, _, router_body) = api.send(method, uri, None, key).await;
        let (front_status, _, front_body) = api.send_front(method, uri, key).await;
        assert_eq!(front_status, router_status, "{method} {uri} key={key}");
        if router_status.is_client_error() {
            let front_body: Value = serde_json::from_slice(&front_body).expect("json error");
            assert_eq!(front_body, router_body, "{method} {uri} key={key}");
        }
    }
    let (status, _, _) = api.send_front("GET", "/fn/hello/", false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an AWS_IAM URL needs a key");
    let (status, _, body) = api.send_front("GET", "/fn/hello/", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.is_empty(), "GET has the function's body");
    // HEAD: no body by either way (hyper would not strip it over HTTP/2), and the same length
    // header, which the streamed body of a component leaves unknown.
    let (status, headers, body) = api.send_front("HEAD", "/fn/hello/", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty(), "a HEAD response has no body: {body:?}");
    let (_, router_headers, _) = api.send("HEAD", "/fn/hello/", None, true).await;
    assert_eq!(
        headers.get(http::header::CONTENT_LENGTH),
        router_headers.get(http::header::CONTENT_LENGTH)
    );
}
