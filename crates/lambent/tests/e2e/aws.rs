//! The Lambda-compatible API as AWS's own clients see it: the Python suite in
//! `tests/aws/lambda_api.py` drives the real boto3 and AWS CLI (from PyPI, installed by
//! scripts/test.sh into target/fixtures/aws) against a real `lambent serve`.

use std::path::Path;
use std::process::Command;

use crate::harness::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Server};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures/aws")
}

#[tokio::test]
async fn boto3_and_the_aws_cli_work_unchanged() {
    let aws = fixtures();
    assert!(
        aws.join("boto3").is_dir() && aws.join("awscli").is_dir(),
        "{} lacks boto3 and awscli; scripts/test.sh installs them from PyPI",
        aws.display()
    );
    let s = Server::start().await;
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/aws/lambda_api.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&suite)
            .env("PYTHONPATH", &aws)
            .env("LAMBENT_ENDPOINT", &s.base)
            .env("LAMBENT_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("LAMBENT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("LAMBENT_REGION", "us-east-1")
            .output()
            .map(|o| (o, s))
    })
    .await
    .expect("join")
    .expect("run python3 tests/aws/lambda_api.py");
    let (out, _server) = out;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the boto3 / AWS CLI suite failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // unittest reports on stderr; make sure the suite really ran its tests.
    assert!(
        stderr.contains("Ran ") && stderr.contains("OK"),
        "unexpected suite output: {stderr}"
    );
}
