//! The gateway's answer to a request head refused before it reached the stack
//! (docs/design.md §3.1, §8.7):
//!
//! - HTTP/1: a head hyper refused (it could not parse it, or it is over
//!   `limits.max_header_size`; head.rs keeps hyper's own empty answer off the wire), or one
//!   that did not arrive within `limits.header_read_timeout`. The answer is written as
//!   HTTP/1.1 bytes, with `Connection: close`, just before the connection closes
//!   (linger.rs).
//! - HTTP/2: a header list over `limits.max_header_size` (RFC 9113 §6.5.2 size; h2 itself
//!   decodes up to twice that), answered on its stream; the connection goes on.
//!
//! Either way the answer is the JSON error of the one table in error.rs, with a fresh
//! `x-request-id`, counted and logged like every refusal (trace.rs). Only the gateway's own
//! response is serialised here; no client input is parsed.

use std::time::{Duration, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH, DATE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::Body;
use crate::error::{self, error_chain, GatewayError, HeadRefusal};
use crate::metrics::Metrics;
use crate::trace::{self, MakeId, REQUEST_ID};

/// Where a refusal is recorded, and with what.
pub struct Recorder<'a> {
    pub realm: &'a str,
    pub ids: &'a MakeId,
    pub metrics: &'a Metrics,
    /// The connection's addresses, for the access line.
    pub addresses: Option<trace::Addresses>,
}

impl Recorder<'_> {
    /// The response to `refusal`, counted and logged. `what` is the method and path, `-`
    /// when hyper read none.
    pub fn response(
        &self,
        refusal: HeadRefusal,
        what: (&str, &str),
        latency: Duration,
    ) -> Response<Body> {
        let e = GatewayError::Head(refusal);
        let mut res = error::response(&e, &error::basic_challenge(self.realm));
        let request_id = self.ids.make();
        if let Some(id) = &request_id {
            res.headers_mut().insert(REQUEST_ID, id.clone());
        }
        trace::head_refused(
            self.metrics,
            self.addresses,
            what,
            request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            res.status().as_u16(),
            error_chain(&e),
            latency,
        );
        res
    }

    /// The HTTP/1.1 answer to `refusal`, as bytes to write before the connection closes.
    pub async fn answer(&self, refusal: HeadRefusal, latency: Duration) -> Bytes {
        let (mut parts, body) = self.response(refusal, ("-", "-"), latency).into_parts();
        // The table's bodies are in memory: collecting cannot wait or fail.
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        // RFC 9112 §9.6: the connection closes after this response.
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
        parts.headers.insert(CONTENT_LENGTH, body.len().into());
        if let Ok(date) = HeaderValue::try_from(httpdate::fmt_http_date(SystemTime::now())) {
            parts.headers.insert(DATE, date);
        }
        serialise(parts.status, &parts.headers, &body)
    }
}

/// The size of an HTTP/2 request's header list as RFC 9113 §6.5.2 counts it (and as h2
/// does): name and value octets plus 32 per field, pseudo-header fields included.
pub fn header_list_size<B>(req: &Request<B>) -> usize {
    const FIELD: usize = 32;
    let uri = req.uri();
    let pseudo = [
        (":method".len(), req.method().as_str().len()),
        (":scheme".len(), uri.scheme_str().map_or(0, str::len)),
        (
            ":authority".len(),
            uri.authority().map_or(0, |a| a.as_str().len()),
        ),
        (
            ":path".len(),
            uri.path_and_query().map_or(0, |p| p.as_str().len()),
        ),
    ];
    let pseudo: usize = pseudo
        .iter()
        .filter(|(_, value)| *value > 0)
        .map(|(name, value)| name + value + FIELD)
        .sum();
    let fields: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + FIELD)
        .sum();
    pseudo + fields
}

/// HTTP/1.1 bytes of a response the gateway wrote (RFC 9112 §4, §5).
fn serialise(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    out.put_slice(body);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_answer_is_the_tables_json_with_close_and_an_id() {
        let metrics = Metrics::new();
        let ids = MakeId::default();
        let recorder = Recorder {
            realm: "r",
            ids: &ids,
            metrics: &metrics,
            addresses: None,
        };
        let bytes = recorder.answer(HeadRefusal::TooLarge, Duration::ZERO).await;
        let text = std::str::from_utf8(&bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{head}"
        );
        for line in [
            "content-type: application/json",
            "cache-control: no-store",
            "pragma: no-cache",
            "connection: close",
        ] {
            assert!(head.lines().any(|l| l == line), "{line} in {head}");
        }
        assert!(head.lines().any(|l| l.starts_with("x-request-id: ")));
        assert!(head.lines().any(|l| l.starts_with("date: ")));
        assert!(head
            .lines()
            .any(|l| l == format!("content-length: {}", body.len())));
        assert_eq!(
            body,
            r#"{"error":"invalid_request","error_description":"The request header fields are too large."}"#
        );
    }

    #[test]
    fn header_list_size_counts_as_rfc_9113_does() {
        let req = Request::get("https://a.example/p?q")
            .header("x", "yz")
            .body(())
            .unwrap();
        // :method GET, :scheme https, :authority a.example, :path /p?q, x: yz.
        let want = (7 + 3 + 32) + (7 + 5 + 32) + (10 + 9 + 32) + (5 + 4 + 32) + (1 + 2 + 32);
        assert_eq!(header_list_size(&req), want);
    }
}
