//! Hostile: data at rest (threat model "data at rest", `docs/sandbox.md`). Another local user
//! tries to read the data directory; a deployer uploads a zip whose links chain out of the code
//! root, or an empty zip; a crash leaves temporary files behind.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::harness::{Server, expect_error};

/// uid and gid of `nobody`: a local user that is not lambent's.
const OTHER_USER: u32 = 65534;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777
}

/// Runs `argv` as another local user; returns whether it succeeded and what it printed.
fn as_other_user(argv: &[&str]) -> (bool, String) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .uid(OTHER_USER)
        .gid(OTHER_USER)
        .output()
        .expect("run as another user");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn b64_zip(build: impl FnOnce(&mut zip::ZipWriter<&mut std::io::Cursor<Vec<u8>>>)) -> String {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        build(&mut w);
        w.finish().expect("finish");
    }
    base64::engine::general_purpose::STANDARD.encode(out.into_inner())
}

#[tokio::test]
async fn another_local_user_cannot_read_the_data_directory() {
    // A parent everybody may enter, and a data dir an older lambent left world-readable.
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let stray = data.join("notes.txt");
    std::fs::write(&stray, "secret").expect("write");
    std::fs::set_permissions(&stray, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let server = Server::start_in(&data).await;
    server.deploy("hello", "hello-c", &[]);
    assert_eq!(mode(&data), 0o700, "the data dir is narrowed");
    assert_eq!(
        mode(&stray),
        0o600,
        "a wide file found at start is narrowed"
    );
    let mut files = 0;
    for path in walk(&data) {
        let rel = path.strip_prefix(&data).expect("inside");
        let top = rel.components().next().map(|c| c.as_os_str().to_owned());
        if top.is_some_and(|t| t == "packages" || t == "runtimes" || t == "sandbox-root") {
            continue;
        }
        let m = mode(&path);
        if path.is_dir() {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", path.display());
        } else if path.is_file() {
            assert_eq!(m & 0o077, 0, "{} is {m:o}", path.display());
            files += 1;
        }
    }
    assert!(
        files >= 3,
        "the databases and the code object were checked: {files}"
    );

    let db = data.join("metadata.db");
    assert!(db.is_file());
    let (ok, said) = as_other_user(&["/bin/cat", db.to_str().expect("utf-8")]);
    assert!(!ok, "another user read the metadata database: {said}");
    assert!(said.contains("Permission denied"), "{said}");
    let (ok, said) = as_other_user(&["/bin/ls", data.to_str().expect("utf-8")]);
    assert!(!ok, "another user listed the data dir: {said}");
    // The same user can read what is outside the data dir: the test itself is sound.
    let (ok, said) = as_other_user(&["/bin/ls", tmp.path().to_str().expect("utf-8")]);
    assert!(ok && said.contains("data"), "{said}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("ls").flatten() {
        let p = entry.path();
        out.push(p.clone());
        if entry.file_type().expect("type").is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

#[tokio::test]
async fn a_zip_whose_links_chain_out_of_the_code_root_is_refused() {
    let server = Server::start().await;
    let client = crate::harness::client();
    // `x -> .` makes `x/x/..` the root, so `l` points at the code root's parent: on the host,
    // the data directory's `packages/`.
    let chained = b64_zip(|w| {
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("app.py", opts).expect("start");
        std::io::Write::write_all(w, b"def handler(e, c):\n    return e\n").expect("write");
        w.add_symlink("x", ".", opts).expect("link");
        w.add_symlink("l", "x/x/../..", opts).expect("link");
    });
    let resp = client
        .post(server.url("/v1/functions"))
        .json(&json!({"name": "chain", "runtime": "python3.12", "handler": "app.handler", "code": chained}))
        .send()
        .await
        .expect("post");
    let message = expect_error(resp, 400, "InvalidCode").await;
    assert!(
        message.contains("\"l\"") && message.contains("outside the code root"),
        "{message}"
    );
    // A loop of links is refused too, and so is an archive with no file (Lambda refuses both).
    let looping = b64_zip(|w| {
        let opts = zip::write::SimpleFileOptions::default();
        w.start_file("app.py", opts).expect("start");
        w.add_symlink("p", "q", opts).expect("link");
        w.add_symlink("q", "p/..", opts).expect("link");
    });
    let empty = b64_zip(|_| {});
    for (name, code, needle) in [("loop", looping, "loop"), ("empty", empty, "no files")] {
        let resp = client
            .post(server.url("/v1/functions"))
            .json(&json!({"name": name, "runtime": "python3.12", "handler": "app.handler", "code": code}))
            .send()
            .await
            .expect("post");
        let message = expect_error(resp, 400, "InvalidCode").await;
        assert!(message.contains(needle), "{name}: {message}");
    }
    let listed: Value = crate::harness::get_json(&server, "/v1/functions").await;
    assert_eq!(listed["functions"], json!([]), "nothing was stored");
    let unpacked = std::fs::read_dir(server.data_dir.join("packages"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(unpacked, 0, "nothing was unpacked");
}

#[tokio::test]
async fn temporary_files_a_crash_left_are_removed_at_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path();
    let shard = data.join("code/ab");
    std::fs::create_dir_all(&shard).expect("mkdir");
    let half_object = shard.join(format!(".{}.77.0.tmp", "ab".repeat(32)));
    std::fs::write(&half_object, b"half").expect("write");
    let half_package = data.join("packages/.unpack-0123456789abcdef/lib");
    std::fs::create_dir_all(&half_package).expect("mkdir");
    let server = Server::start_in(data).await;
    assert!(!half_object.exists(), "a half-written code object is left");
    assert!(
        !data.join("packages/.unpack-0123456789abcdef").exists(),
        "a half-unpacked package is left"
    );
    drop(server);
}
