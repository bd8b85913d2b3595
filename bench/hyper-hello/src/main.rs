//! `hyper-hello`: the native ceiling for `bench/run.sh`.
//!
//! A minimal hyper 1.x HTTP/1.1 server on a tokio multi-thread runtime that answers every request
//! with `200 text/plain` `Hello from lambent!\n`, keeping connections alive. It does no routing,
//! no logging and no Wasm: it measures what the machine and the load generator allow, so that the
//! harness can report how far the Wasm servers are from it.
//!
//! Usage: `hyper-hello 127.0.0.1:9001`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The body every request gets, identical to the `examples/hello-c` component's.
const BODY: &[u8] = b"Hello from lambent!\n";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .ok_or("usage: hyper-hello ADDR (e.g. 127.0.0.1:9001)")?
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("hyper-hello listening on http://{}", listener.local_addr()?);
    loop {
        // Accept errors (a connection reset before accept, out of descriptors) are per-connection:
        // report them and keep serving rather than ending the benchmark.
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                eprintln!("hyper-hello: accept: {err}");
                continue;
            }
        };
        // Small responses on keep-alive connections: do not wait for Nagle. Failing to set it
        // only costs latency, so it is not a reason to drop the connection.
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello));
            // A client that resets its connection mid-request is not the server's failure.
            let _ = conn.await;
        });
    }
}
