//! Running WASI preview1 command modules as CGI programs (RFC 3875): the request body on stdin,
//! the request line and headers in environment variables, and a CGI response (header lines, an
//! empty line, the body) on stdout. stderr is the function's log.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full};
use lambent_core::limits::{
    MAX_LOG_BYTES_PER_INVOCATION, MAX_SYNC_PAYLOAD_BYTES, MAX_SYNC_RESPONSE_BYTES,
};
use wasmtime::{InstancePre, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{I32Exit, WasiCtx};

use crate::http::logs_text;
use crate::limits::{MemoryLimiter, arm_deadline, classify};
use crate::pipe::CapturePipe;
use crate::{
    BodyError, Completion, Failure, Invocation, InvokeContext, InvokeError, OnComplete, WasmEngine,
};

/// Room for the CGI header section on top of the response body limit.
const CGI_HEADER_ROOM: usize = 64 * 1024;

/// Store state of a CGI module instance.
pub struct CgiState {
    pub(crate) wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// The CGI meta-variables for a request (RFC 3875 section 4.1).
pub fn cgi_environment(
    parts: &http::request::Parts,
    body_len: usize,
    ctx: &InvokeContext,
) -> Vec<(String, String)> {
    let mut env = ctx.environment.clone();
    let mut set = |k: &str, v: String| env.push((k.to_owned(), v));
    set("GATEWAY_INTERFACE", "CGI/1.1".into());
    set(
        "SERVER_SOFTWARE",
        concat!("lambent/", env!("CARGO_PKG_VERSION")).into(),
    );
    set("SERVER_PROTOCOL", format!("{:?}", parts.version));
    set("REQUEST_METHOD", parts.method.as_str().into());
    set("SCRIPT_NAME", ctx.script_name.clone());
    let path = parts.uri.path();
    set(
        "PATH_INFO",
        if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    );
    set("QUERY_STRING", parts.uri.query().unwrap_or("").into());
    set(
        "REQUEST_URI",
        format!(
            "{}{}",
            ctx.script_name,
            parts.uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (n, p),
        _ => (host, "80"),
    };
    set("SERVER_NAME", name.into());
    set("SERVER_PORT", port.into());
    if let Some(addr) = ctx.remote_addr {
        set("REMOTE_ADDR", addr.ip().to_string());
        set("REMOTE_PORT", addr.port().to_string());
    }
    if body_len > 0 || parts.headers.contains_key(http::header::CONTENT_LENGTH) {
        set("CONTENT_LENGTH", body_len.to_string());
    }
    if let Some(ct) = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        set("CONTENT_TYPE", ct.into());
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in &parts.headers {
        if name == http::header::CONTENT_TYPE || name == http::header::CONTENT_LENGTH {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        let key = format!(
            "HTTP_{}",
            name.as_str().to_ascii_uppercase().replace('-', "_")
        );
        match headers.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => headers.push((key, value.to_owned())),
        }
    }
    env.extend(headers);
    env
}

/// Parses a CGI response: header lines, an empty line, then the body. Headers the server owns
/// ([`lambent_core::framing`]: `Content-Length`, `Transfer-Encoding`, `Connection`, ...) are
/// dropped; the server frames the body.
pub fn parse_cgi_response(out: &[u8]) -> Result<http::Response<Bytes>, InvokeError> {
    let bad = |m: String| InvokeError::BadCgiResponse(m);
    let (head_len, body_start) = find_header_end(out).ok_or_else(|| {
        bad("no empty line after the header lines; print headers such as 'Content-Type: text/plain', an empty line, then the body".into())
    })?;
    let head = std::str::from_utf8(&out[..head_len])
        .map_err(|_| bad("the header section is not UTF-8".into()))?;
    let mut builder = http::Response::builder();
    let mut status = None;
    let mut location = false;
    for line in head
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
    {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {line:?} has no ':'")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            let parsed = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| bad(format!("status {value:?} is not an HTTP status code")))?;
            status = Some(parsed);
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad(format!("{name:?} is not a valid header name")))?;
        // The framing of the body and the connection are the server's.
        if lambent_core::framing::is_server_owned(name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| bad(format!("the value of header {name} is not valid")))?;
        location |= name == http::header::LOCATION;
        builder = builder.header(name, value);
    }
    let status = status.unwrap_or(if location {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    builder
        .status(status)
        .body(Bytes::copy_from_slice(&out[body_start..]))
        .map_err(|e| bad(e.to_string()))
}

fn find_header_end(out: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'\n' {
            if out.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if out.get(i + 1) == Some(&b'\r') && out.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Reads the whole request body, up to the sync payload limit.
async fn read_body<B>(mut body: B) -> Result<Bytes, InvokeError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    let too_large = InvokeError::PayloadTooLarge {
        limit: MAX_SYNC_PAYLOAD_BYTES,
    };
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.into() {
            BodyError::TooLarge { .. } => too_large.clone(),
            BodyError::Stream(m) => {
                InvokeError::BadRequest(format!("reading the request body: {m}"))
            }
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_SYNC_PAYLOAD_BYTES {
                return Err(too_large);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

impl WasmEngine {
    pub(crate) async fn invoke_cgi<B>(
        &self,
        pre: &InstancePre<CgiState>,
        req: http::Request<B>,
        ctx: &InvokeContext,
        on_complete: OnComplete,
    ) -> Result<Invocation, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<BodyError>,
    {
        let early = |error| Failure {
            error,
            logs: String::new(),
            init: Duration::ZERO,
        };
        let (parts, body) = req.into_parts();
        let body = read_body(body).await.map_err(early)?;

        let stdout = CapturePipe::new(MAX_SYNC_RESPONSE_BYTES + CGI_HEADER_ROOM);
        let stderr = CapturePipe::new(MAX_LOG_BYTES_PER_INVOCATION);
        let env = cgi_environment(&parts, body.len(), ctx);
        let mut wasi = WasiCtx::builder();
        wasi.stdin(MemoryInputPipe::new(body))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&env)
            .args(&[ctx.script_name.as_str()]);
        let state = CgiState {
            wasi: wasi.build_p1(),
            limiter: MemoryLimiter::new(ctx.memory_bytes, ctx.shared_memory.clone()),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        arm_deadline(&mut store, ctx.timeout);

        let pre = pre.clone();
        let timeout = ctx.timeout;
        let task = tokio::spawn(async move {
            let mut init = Duration::ZERO;
            let run = async {
                let started = Instant::now();
                let instance = pre.instantiate_async(&mut store).await?;
                init = started.elapsed();
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            };
            let result = match tokio::time::timeout(timeout, run).await {
                Err(_) => Err(InvokeError::Timeout { timeout }),
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => match e.downcast_ref::<I32Exit>() {
                    Some(I32Exit(0)) => Ok(()),
                    _ => Err(classify(&e, timeout)),
                },
            };
            (result, init)
        });
        let (result, init) = match task.await {
            Ok(r) => r,
            Err(_) => (
                Err(InvokeError::Instantiate(
                    "the instance's task ended unexpectedly".into(),
                )),
                Duration::ZERO,
            ),
        };
        let logs = logs_text(&stderr);
        let failure = |error, logs| Failure { error, logs, init };
        if let Err(e) = result {
            return Err(failure(e, logs));
        }
        let (out, overflowed) = stdout.contents();
        if overflowed {
            return Err(failure(
                InvokeError::ResponseTooLarge {
                    limit: MAX_SYNC_RESPONSE_BYTES,
                },
                logs,
            ));
        }
        let response = match parse_cgi_response(&out) {
            Ok(r) => r,
            Err(e) => return Err(failure(e, logs)),
        };
        on_complete(Completion {
            result: Ok(()),
            logs,
            init,
        });
        Ok(Invocation {
            response: response.map(|b| Full::new(b).map_err(|never| match never {}).boxed_unsync()),
            init,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgi_responses() {
        let r = parse_cgi_response(
            b"Status: 418 I'm a teapot\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\nhello",
        )
        .expect("valid");
        assert_eq!(r.status(), 418);
        assert_eq!(r.headers()["x-a"], "b");
        assert_eq!(r.body().as_ref(), b"hello");
        let r = parse_cgi_response(b"Location: /x\n\n").expect("valid");
        assert_eq!(r.status(), 302);
        let r = parse_cgi_response(b"Content-Type: text/plain\n\nbody\n\nmore").expect("valid");
        assert_eq!(r.status(), 200);
        assert_eq!(r.body().as_ref(), b"body\n\nmore");
        assert!(matches!(
            parse_cgi_response(b"just text"),
            Err(InvokeError::BadCgiResponse(_))
        ));
        assert!(matches!(
            parse_cgi_response(b"no colon\n\n"),
            Err(InvokeError::BadCgiResponse(_))
        ));
        assert!(matches!(
            parse_cgi_response(b"Status: abc\n\n"),
            Err(InvokeError::BadCgiResponse(_))
        ));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Header names a function might try, in any case: the server's own and ordinary ones.
    fn header_name() -> impl Strategy<Value = String> {
        let names = prop::sample::select(vec![
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Trailer",
            "Proxy-Connection",
            "Proxy-Authorization",
            "Content-Type",
            "X-Custom",
            "Set-Cookie",
            "Location",
        ]);
        (names, any::<u64>()).prop_map(|(n, case)| {
            n.chars()
                .enumerate()
                .map(|(i, c)| {
                    if (case >> (i % 64)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn any_output_parses_or_is_refused_without_panicking(out in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_cgi_response(&out);
        }

        #[test]
        fn server_owned_headers_never_survive(
            headers in prop::collection::vec((header_name(), "[ -~]{0,20}"), 0..12),
            crlf in any::<bool>(),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut out = Vec::new();
            for (name, value) in &headers {
                out.extend_from_slice(format!("{name}: {value}{eol}").as_bytes());
            }
            out.extend_from_slice(eol.as_bytes());
            out.extend_from_slice(&body);
            // Without any header line, where the header section ends depends on the body.
            prop_assume!(!headers.is_empty());
            let response = parse_cgi_response(&out);
            prop_assert!(response.is_ok(), "{:?}", response.err());
            let Ok(response) = response else { return Ok(()) };
            for name in response.headers().keys() {
                prop_assert!(!lambent_core::framing::is_server_owned(name.as_str()), "{name} survived");
            }
            for (name, _) in &headers {
                if !lambent_core::framing::is_server_owned(name) {
                    prop_assert!(response.headers().contains_key(name.as_str()), "{name} was lost");
                }
            }
            prop_assert_eq!(response.body().as_ref(), &body[..]);
        }
    }
}
