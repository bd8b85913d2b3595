//! The CLI's forms that scripts rely on.

use crate::harness::{Server, example};

#[tokio::test]
async fn cli_deploys_lists_invokes_and_removes() {
    let s = Server::start().await;
    // A .wasm file: the runtime is detected from the binary.
    let wasm = example("cgi-c/cgi.wasm");
    let out = s.cli_ok(&[
        "--json",
        "deploy",
        "echo",
        wasm.to_str().expect("utf-8"),
        "--memory",
        "256",
        "--timeout",
        "5",
        "--env",
        "A=1",
        "--env",
        "B=x=y",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["runtime"], "wasi-cgi");
    assert_eq!(v["memory_mb"], 256);
    assert_eq!(v["timeout_s"], 5);
    assert_eq!(v["environment"]["B"], "x=y");

    // A directory with a manifest; deploying again updates.
    s.deploy("hello", "hello-c", &[]);
    s.deploy("hello", "hello-c", &["--memory", "512"]);
    let v: serde_json::Value =
        serde_json::from_str(&s.cli_ok(&["--json", "get", "hello"])).expect("json");
    assert_eq!(v["runtime"], "wasi-http");
    assert_eq!(v["memory_mb"], 512);
    assert_eq!(v["environment"]["GREETING"], "hi");

    let table = s.cli_ok(&["ls"]);
    assert!(table.contains("hello") && table.contains("echo"), "{table}");
    let list: serde_json::Value = serde_json::from_str(&s.cli_ok(&["--json", "ls"])).expect("json");
    assert_eq!(list.as_array().expect("array").len(), 2);

    let out = s.cli_ok(&["invoke", "echo", "--data", r#"{"k":"v"}"#]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json output");
    assert_eq!(v["body"], r#"{"k":"v"}"#);
    let file = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(file.path(), "from a file").expect("write");
    let arg = format!("@{}", file.path().display());
    let out = s.cli_ok(&["invoke", "echo", "--data", &arg]);
    assert!(out.contains("from a file"), "{out}");

    s.cli_ok(&["publish", "hello"]);
    let out = s.cli_ok(&["versions", "hello"]);
    assert!(out.contains("$LATEST") && out.contains(" 1 "), "{out}");
    let out = s.cli_ok(&["invoke", "hello:1"]);
    assert_eq!(out, "Hello from lambent!\n");

    assert!(s.cli_ok(&["rm", "echo"]).contains("deleted echo"));
    let out = s.cli(&["get", "echo"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("function echo does not exist"), "{err}");
}

#[tokio::test]
async fn cli_failures_exit_non_zero_with_a_message() {
    let s = Server::start().await;
    let out = s.cli(&["deploy", "x", "/nonexistent/file.wasm"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/file.wasm"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("lambent.toml"),
        "code = \"x.wasm\"\nmemroy = 5\n",
    )
    .expect("write");
    let out = s.cli(&["deploy", "x", dir.path().to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("memroy"));

    let out = s.cli(&[
        "deploy",
        "bad name",
        example("hello-c").to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidName"));

    let out = s.cli(&["invoke", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));

    let out = std::process::Command::new(crate::harness::BIN)
        .args(["--endpoint", "http://127.0.0.1:9", "ls"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach lambent"));
}
