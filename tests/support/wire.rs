//! Bytes on the wire, for the transport tests: a client that writes its whole request
//! before it reads anything (as simple clients do, and as a refused head must survive),
//! the raw HTTP/1.1 answer it got, and raw HTTP/2 frames for the attacks hyper's client
//! will not send (floods, rapid reset, endless CONTINUATION).
//!
//! Only the gateway's answers are parsed here, and only as far as the tests look at them.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls_connector;

/// A TLS client stream to the gateway.
pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects over TLS (trusting `ca`, SNI `localhost`) offering `alpn`.
pub async fn connect(addr: SocketAddr, ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Tls {
    let tcp = TcpStream::connect(addr).await.expect("TCP connect");
    tls_connector(ca, alpn)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake")
}

/// How the gateway ended the connection, as the client saw it.
#[derive(Debug)]
pub enum End {
    /// TLS close_notify, then the end of the stream: the answer is known to be complete.
    CloseNotify,
    /// The stream ended without close_notify, or was reset.
    Cut(io::Error),
}

/// What a write-everything-then-read client saw.
#[derive(Debug)]
pub struct Exchange {
    /// Whether every byte of the request was written (and flushed) without error.
    pub wrote: io::Result<()>,
    pub received: Vec<u8>,
    pub end: End,
}

/// Writes `request` in full on `tls`, then reads until the gateway closes, within `bound`.
pub async fn write_then_read(mut tls: Tls, request: &[u8], bound: Duration) -> Exchange {
    tokio::time::timeout(bound, async move {
        let wrote = async {
            tls.write_all(request).await?;
            tls.flush().await
        }
        .await;
        let mut received = Vec::new();
        let end = match tls.read_to_end(&mut received).await {
            Ok(_) => End::CloseNotify,
            Err(e) => End::Cut(e),
        };
        Exchange {
            wrote,
            received,
            end,
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the gateway did not answer and close within {bound:?}"))
}

/// An HTTP/1.1 response as the gateway wrote it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Parses one response with a Content-Length, and nothing after it.
    pub fn parse(raw: &[u8]) -> RawResponse {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("an HTTP/1.1 response, got {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.strip_prefix("HTTP/1.1 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("a status line, got {text:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("header {l:?}"));
                (k.to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let response = RawResponse {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        };
        let length: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Content-Length in {text:?}"));
        assert_eq!(
            length,
            response.body.len(),
            "one complete response: {text:?}"
        );
        response
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("a JSON body, got {:?}", self.body))
    }

    /// A gateway-written error: JSON with the no-store headers (docs/design.md §3.1).
    pub fn assert_gateway_error(&self, status: u16, error: &str, description: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("pragma"), Some("no-cache"));
        assert!(self.header("x-request-id").is_some(), "{self:?}");
        let json = self.json();
        assert_eq!(json["error"], error, "{json}");
        assert_eq!(json["error_description"], description, "{json}");
    }
}

// ---------------------------------------------------------------------------------------
// HTTP/2 frames (RFC 9113 §4, §6), written by hand.

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const CONTINUATION: u8 = 0x9;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

/// One frame: 24-bit length, type, flags, stream id, payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in pairs {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), `first` holding the flag bits.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u8, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// A header block of literal fields without indexing and without Huffman coding (RFC 7541
/// §6.2.2), so that the gateway's decoder keeps no state from it.
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        hpack_int(&mut out, 0, 7, name.len());
        out.extend_from_slice(name.as_bytes());
        hpack_int(&mut out, 0, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// The pseudo-header fields of a request to the gateway.
pub fn request_fields<'a>(method: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        (":method", method),
        (":scheme", "https"),
        (":authority", "auth.example.com"),
        (":path", path),
    ]
}
