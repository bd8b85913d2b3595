//! Hostile: framing (see docs/sandbox.md, threat model). A function answers with headers that
//! would reframe its body or take over the caller's connection (`Content-Length: 1`,
//! `Transfer-Encoding: chunked`, `Connection: close`, the other hop-by-hop headers); the caller
//! still gets the whole body, framed by the server, and its keep-alive connection goes on.

use base64::Engine as _;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::front_end::{connect, deploy_public_python, function_dir, read_until_closed};
use crate::harness::{Server, put_json};

/// The body each hostile function sends.
const BODY: &str = "the whole body, framed by the server";

/// The headers each hostile function sets, besides `x-kept: yes` (which must arrive).
const HOSTILE_HEADERS: [(&str, &str); 9] = [
    ("Content-Length", "1"),
    ("Transfer-Encoding", "chunked"),
    ("Connection", "close"),
    ("Keep-Alive", "timeout=1"),
    ("Upgrade", "h2c"),
    ("TE", "trailers"),
    ("Trailer", "X-Forged"),
    ("Proxy-Connection", "close"),
    ("Proxy-Authenticate", "Basic"),
];

fn uleb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, contents: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    uleb(contents.len(), out);
    out.extend_from_slice(contents);
}

fn name(s: &str, out: &mut Vec<u8>) {
    uleb(s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

/// A WASI preview1 command module whose `_start` writes `stdout` to fd 1 with one `fd_write`:
/// memory holds an iovec at 0 (pointer 16, length), the count written at 8, the bytes at 16.
fn cgi_module(stdout: &[u8]) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    // Types: 0 = fd_write (i32 i32 i32 i32) -> i32, 1 = _start () -> ().
    section(
        1,
        &[2, 0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f, 0x60, 0, 0],
        &mut m,
    );
    let mut imports = vec![1];
    name("wasi_snapshot_preview1", &mut imports);
    name("fd_write", &mut imports);
    imports.extend_from_slice(&[0x00, 0]);
    section(2, &imports, &mut m);
    section(3, &[1, 1], &mut m);
    // One memory of 1 page (64 KiB).
    section(5, &[1, 0x00, 1], &mut m);
    let mut exports = vec![2];
    name("memory", &mut exports);
    exports.extend_from_slice(&[0x02, 0]);
    name("_start", &mut exports);
    exports.extend_from_slice(&[0x00, 1]);
    section(7, &exports, &mut m);
    // fd_write(1, 0, 1, 8); drop the errno.
    let body = [
        0x00, 0x41, 1, 0x41, 0, 0x41, 1, 0x41, 8, 0x10, 0, 0x1a, 0x0b,
    ];
    let mut code = vec![1];
    uleb(body.len(), &mut code);
    code.extend_from_slice(&body);
    section(10, &code, &mut m);
    let mut memory = Vec::new();
    memory.extend_from_slice(&16u32.to_le_bytes());
    memory.extend_from_slice(&u32::try_from(stdout.len()).expect("small").to_le_bytes());
    memory.extend_from_slice(&[0; 8]);
    memory.extend_from_slice(stdout);
    let mut data = vec![1, 0x00, 0x41, 0, 0x0b];
    uleb(memory.len(), &mut data);
    data.extend_from_slice(&memory);
    section(11, &data, &mut m);
    m
}

/// Calls `path` twice on one keep-alive connection (the second asks to close) and checks that
/// both answers carry exactly [`BODY`], framed by `Content-Length`, with none of the hostile
/// headers and with `x-kept`.
async fn assert_framed_by_the_server(server: &Server, path: &str) {
    let mut c = connect(server).await;
    let requests = format!(
        "GET {path} HTTP/1.1\r\nHost: lambent\r\n\r\nGET {path} HTTP/1.1\r\nHost: lambent\r\nConnection: close\r\n\r\n"
    );
    c.write_all(requests.as_bytes()).await.expect("write");
    let all = read_until_closed(&mut c).await;
    let mut rest = &all[..];
    for n in 0..2 {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| {
                panic!(
                    "answer {n} of {path} has no whole head: {:?}",
                    String::from_utf8_lossy(&all)
                )
            });
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        let headers: Vec<(&str, &str)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let lengths: Vec<&str> = headers
            .iter()
            .filter(|(k, _)| *k == "content-length")
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            lengths,
            [BODY.len().to_string()],
            "{path}: answer {n} is not framed by its true length: {head}"
        );
        for (hostile, value) in HOSTILE_HEADERS {
            let hostile = hostile.to_ascii_lowercase();
            let value = value.to_ascii_lowercase();
            if n == 1 && hostile == "connection" && value == "close" {
                // The caller asked to close this time; the server says so itself.
                continue;
            }
            assert!(
                !headers.iter().any(|(k, v)| *k == hostile && *v == value),
                "{path}: the function's {hostile}: {value} reached the caller: {head}"
            );
        }
        assert!(
            headers.contains(&("x-kept", "yes")),
            "{path}: the function's own header is lost: {head}"
        );
        let body_start = end + 4;
        let body = rest
            .get(body_start..body_start + BODY.len())
            .unwrap_or_else(|| {
                panic!(
                    "{path}: answer {n} is cut short: {:?}",
                    String::from_utf8_lossy(&all)
                )
            });
        assert_eq!(String::from_utf8_lossy(body), BODY, "{path}");
        rest = &rest[body_start + BODY.len()..];
    }
    assert!(
        rest.is_empty(),
        "{path}: bytes after the two answers: {:?}",
        String::from_utf8_lossy(rest)
    );
}

#[tokio::test]
async fn a_cgi_function_cannot_set_framing_or_connection_headers() {
    let server = Server::start().await;
    let mut out = String::from("Content-Type: text/plain\r\nX-Kept: yes\r\n");
    for (k, v) in HOSTILE_HEADERS {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(BODY);
    let code = base64::engine::general_purpose::STANDARD.encode(cgi_module(out.as_bytes()));
    let r = put_json(
        &server,
        "/v1/functions/framer",
        json!({"runtime": "wasi-cgi", "code": code}),
    )
    .await;
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    let r = put_json(
        &server,
        "/v1/functions/framer/url",
        json!({"auth_type": "NONE"}),
    )
    .await;
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
    assert_framed_by_the_server(&server, "/fn/framer/").await;
}

#[tokio::test]
async fn a_process_function_behind_a_url_cannot_set_framing_or_connection_headers() {
    let server = Server::start().await;
    let mut headers = serde_json::Map::new();
    headers.insert("Content-Type".into(), "text/plain".into());
    headers.insert("X-Kept".into(), "yes".into());
    for (k, v) in HOSTILE_HEADERS {
        headers.insert(k.into(), v.into());
    }
    let answer = json!({"statusCode": 200, "headers": headers, "body": BODY});
    let app = format!(
        "import json\nANSWER = json.loads({:?})\n\ndef handler(event, context):\n    return ANSWER\n",
        answer.to_string()
    );
    let dir = function_dir(&[("app.py", &app)]);
    deploy_public_python(&server, "framer", dir.path());
    assert_framed_by_the_server(&server, "/fn/framer/").await;
}
