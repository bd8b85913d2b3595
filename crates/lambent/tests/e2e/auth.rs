//! Access keys: every call but /healthz needs one (bearer or SigV4), function URLs can be made
//! public, keys are created and revoked through the API and the CLI, and the CLI finds its
//! credentials in a profile.

use crate::harness::{ACCESS_KEY_ID, BIN, Server, expect_error};

#[tokio::test]
async fn calls_without_a_valid_key_are_refused() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &[]);
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(s.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200, "health needs no key");
    for path in ["/v1/functions", "/metrics", "/fn/hello/", "/v1/keys"] {
        let r = anonymous.get(s.url(path)).send().await.expect("call");
        let m = expect_error(r, 403, "AccessDenied").await;
        assert!(m.contains("no credentials"), "{path}: {m}");
    }
    let wrong = format!("Bearer {ACCESS_KEY_ID}:not-the-secret");
    let r = anonymous
        .get(s.url("/v1/functions"))
        .header("authorization", &wrong)
        .send()
        .await
        .expect("call");
    expect_error(r, 403, "AccessDenied").await;
    let r = anonymous
        .get(s.url("/v1/functions"))
        .header("authorization", "Bearer no-colon")
        .send()
        .await
        .expect("call");
    let m = expect_error(r, 403, "AccessDenied").await;
    assert!(m.contains("ACCESS_KEY_ID:SECRET"), "{m}");
    let r = anonymous
        .get(s.url("/v1/functions"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .expect("call");
    let m = expect_error(r, 403, "AccessDenied").await;
    assert!(
        m.contains("\"Basic\" is not supported") && !m.contains("dXNlcjpwYXNz"),
        "{m}"
    );
    // The Lambda API answers in Lambda's error shape.
    let r = anonymous
        .get(s.url("/2015-03-31/functions/"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-amzn-errortype"], "AccessDeniedException");

    // `deploy --public` opens the function URL, and only it.
    s.deploy("hello", "hello-c", &["--public"]);
    let r = anonymous
        .get(s.url("/fn/hello/"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let r = anonymous
        .get(s.url("/v1/functions/hello"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 403);
    s.deploy("hello", "hello-c", &["--private"]);
    let r = anonymous
        .get(s.url("/fn/hello/"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn keys_are_created_used_and_revoked_from_the_cli() {
    let s = Server::start().await;
    let out = s.cli_ok(&["--json", "keys", "create", "--description", "ci"]);
    let key: serde_json::Value = serde_json::from_str(&out).expect("json");
    let id = key["access_key_id"].as_str().expect("id").to_owned();
    let secret = key["secret_access_key"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert!(id.starts_with("LK") && secret.len() >= 40, "{key}");

    // The new key works through a profile file, with SigV4 signing by the CLI.
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("config/lambent");
    std::fs::create_dir_all(&config).expect("mkdir");
    std::fs::write(
        config.join("credentials"),
        format!("[ci]\naccess_key_id = {id}\nsecret_access_key = {secret}\n"),
    )
    .expect("write profile");
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("LAMBENT_ENDPOINT", &s.base)
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("HOME", home.path())
            .env_remove("LAMBENT_ACCESS_KEY_ID")
            .env_remove("LAMBENT_SECRET_ACCESS_KEY")
            .output()
            .expect("run the CLI")
    };
    let out = cli(&[
        "--profile",
        "ci",
        "deploy",
        "signed",
        crate::harness::example("hello-c").to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A key made without --role is a deploy key: it deploys but does not manage keys.
    assert_eq!(key["role"], "deploy", "{key}");
    let out = cli(&["--profile", "ci", "keys", "ls"]);
    assert!(!out.status.success(), "a deploy key listed the keys");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs role admin"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = s.cli_ok(&["keys", "ls"]);
    assert!(
        listed.contains(&id) && listed.contains(ACCESS_KEY_ID) && listed.contains("deploy"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "secrets are never listed");
    // Without credentials the CLI says where to put them.
    let out = cli(&["ls"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Revoked keys stop working at once; the last key cannot be revoked.
    s.cli_ok(&["keys", "revoke", &id]);
    let out = cli(&["--profile", "ci", "ls"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("was refused"));
    let out = s.cli(&["keys", "revoke", ACCESS_KEY_ID]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("last one"));
    let r = crate::harness::get(s.url("/v1/functions/signed"))
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        200,
        "the function deployed with the revoked key stays"
    );
}

#[tokio::test]
async fn a_first_start_generates_an_admin_key_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("LAMBENT_ACCESS_KEY_ID")
        .env_remove("LAMBENT_SECRET_ACCESS_KEY")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut lines = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut out, &mut lines).expect("read");
    }
    let file = dir.path().join("admin-credentials");
    assert!(lines.contains(file.to_str().expect("utf-8")), "{lines}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).expect("read");
    let value = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .expect("line")
            .to_owned()
    };
    let (id, secret) = (
        value("aws_access_key_id = "),
        value("aws_secret_access_key = "),
    );
    let base = lines
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address")
        .to_owned();
    let r = reqwest::Client::new()
        .get(format!("{base}/v1/functions"))
        .header("authorization", format!("Bearer {id}:{secret}"))
        .send()
        .await
        .expect("call");
    assert_eq!(r.status(), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn aliases_split_traffic_and_reservations_throttle_through_the_native_api() {
    let s = Server::start().await;
    s.deploy("hello", "hello-c", &["--env", "ROUND=1"]);
    s.cli_ok(&["publish", "hello"]);
    s.deploy("hello", "hello-c", &["--env", "ROUND=2"]);
    s.cli_ok(&["publish", "hello"]);
    let out = s.cli_ok(&["alias", "hello", "live", "1", "--weight", "2=0.5"]);
    assert!(out.contains("live") && out.contains("2=0.5"), "{out}");
    let client = crate::harness::client();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..60 {
        let r = client
            .get(s.url("/fn/hello:live/"))
            .send()
            .await
            .expect("call");
        assert_eq!(r.status(), 200);
        let v = r.headers()["x-lambent-version"]
            .to_str()
            .expect("text")
            .to_owned();
        *seen.entry(v).or_insert(0) += 1;
    }
    assert_eq!(
        seen.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1", "2"],
        "both versions take calls: {seen:?}"
    );
    // A version an alias routes to stays; bad weights are refused.
    let out = s.cli(&["alias", "hello", "live", "1", "--weight", "2=1.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
    let out = s.cli(&["alias", "hello", "live", "1", "--weight", "1=0.5"]);
    assert!(!out.status.success());
    s.cli_ok(&["alias", "hello", "live", "2"]);
    let r = client
        .post(s.url("/v1/functions/hello/invoke?qualifier=live"))
        .body("{}")
        .send()
        .await
        .expect("call");
    assert_eq!(r.headers()["x-lambent-version"], "2");
    assert!(s.cli_ok(&["aliases", "hello"]).contains("live"));
    s.cli_ok(&["unalias", "hello", "live"]);
    let r = client
        .get(s.url("/fn/hello:live/"))
        .send()
        .await
        .expect("call");
    expect_error(r, 404, "ResourceNotFound").await;

    // Reserved concurrency 0 stops the function with 429 and Retry-After; clearing restores it.
    assert!(
        s.cli_ok(&["concurrency", "hello", "0"])
            .contains("0 reserved")
    );
    let r = client.get(s.url("/fn/hello/")).send().await.expect("call");
    assert_eq!(r.headers()["retry-after"], "1");
    let m = expect_error(r, 429, "TooManyRequests").await;
    assert!(m.contains("reserved concurrency of 0"), "{m}");
    let out = s.cli(&["concurrency", "hello", "950"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 100 must stay unreserved"));
    assert!(
        s.cli_ok(&["concurrency", "hello", "--clear"])
            .contains("no reservation")
    );
    let r = client.get(s.url("/fn/hello/")).send().await.expect("call");
    assert_eq!(r.status(), 200);
    assert!(s.metric("lambent_throttles_total").await >= 1);
}
