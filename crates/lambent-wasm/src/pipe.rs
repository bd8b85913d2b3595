//! A bounded in-memory capture for a guest's stdout and stderr.
//!
//! Unlike wasmtime's `MemoryOutputPipe`, which traps the guest when full, this one keeps the first
//! `capacity` bytes, drops the rest and remembers that it did: a chatty function must not fail
//! because of its logs, and a CGI response that is too large gets a clear error from the caller.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Captured {
    bytes: BytesMut,
    overflowed: bool,
}

/// A cloneable handle to one bounded capture buffer.
#[derive(Debug, Clone)]
pub struct CapturePipe {
    capacity: usize,
    inner: Arc<Mutex<Captured>>,
}

impl CapturePipe {
    /// A capture that keeps at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        // A poisoned lock only means another writer panicked mid-append; the bytes are still
        // usable, so carry on with them.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, data: &[u8]) {
        let mut c = self.lock();
        let room = self.capacity.saturating_sub(c.bytes.len());
        if data.len() > room {
            c.overflowed = true;
        }
        let keep = data.len().min(room);
        c.bytes.extend_from_slice(&data[..keep]);
    }

    /// What was captured so far, and whether anything was dropped.
    pub fn contents(&self) -> (Bytes, bool) {
        let c = self.lock();
        (c.bytes.clone().freeze(), c.overflowed)
    }
}

impl IsTerminal for CapturePipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturePipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturePipe {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CapturePipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept writes; what does not fit is dropped and flagged.
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CapturePipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_flags_overflow() {
        let mut p = CapturePipe::new(5);
        OutputStream::write(&mut p, Bytes::from_static(b"abc")).expect("write");
        assert_eq!(p.contents(), (Bytes::from_static(b"abc"), false));
        OutputStream::write(&mut p, Bytes::from_static(b"defg")).expect("write");
        assert_eq!(p.contents(), (Bytes::from_static(b"abcde"), true));
    }
}
