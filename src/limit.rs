//! The body limit for protected requests: they are small forms, so they are buffered, but
//! never beyond `limits.max_body` and never for longer than `limits.body_read_timeout`.
//!
//! The declared `Content-Length` is checked before a byte is read (so an oversized upload
//! is refused at once); the stream is then read with a running count, which catches
//! chunked bodies and lying lengths. Unprotected requests never come here: they are
//! streamed to the upstream untouched.
//!
//! A refused body that the client is already sending is read and thrown away, up to
//! [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`], before the error is answered: closing a
//! socket that still holds unread data makes the kernel send a reset, and a client still
//! writing its body would then see "connection reset" instead of the `413`. A client that
//! sent `Expect: 100-continue` is not waiting to send, so it is answered at once.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, EXPECT};
use http::HeaderMap;
use http_body_util::BodyExt;

use crate::body::Body;
use crate::error::GatewayError;

/// Most bytes of an unwanted body read (and discarded) before answering.
pub const DRAIN_LIMIT: u64 = 1024 * 1024;
/// Longest wait for an unwanted body before answering anyway.
pub const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads a whole protected request body.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, GatewayError> {
    if let Some(declared) = headers.get(CONTENT_LENGTH) {
        // hyper has already refused a malformed Content-Length; this is belt and braces.
        let declared: u64 = declared
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(GatewayError::BodyTooLarge)?;
        if declared > max as u64 {
            if declared <= DRAIN_LIMIT && !headers.contains_key(EXPECT) {
                drain(body).await;
            }
            return Err(GatewayError::BodyTooLarge);
        }
    }
    tokio::time::timeout(timeout, collect(body, max))
        .await
        .map_err(|_| GatewayError::BodyReadTimeout)?
}

/// Collects at most `max` bytes; one chunk (the usual case) is returned without a copy.
async fn collect(mut body: Body, max: usize) -> Result<Bytes, GatewayError> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::BodyRead(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we forward
        };
        len += data.len();
        if len > max {
            drain(body).await;
            return Err(GatewayError::BodyTooLarge);
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            previous => {
                if let Some(p) = previous {
                    joined.extend_from_slice(&p);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

/// Reads and discards what is left of `body`, within [`DRAIN_LIMIT`] and [`DRAIN_TIME`].
pub async fn drain(mut body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIME, async move {
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > DRAIN_LIMIT {
                    break;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use http_body::Frame;
    use http_body_util::StreamBody;

    fn chunked(chunks: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, crate::body::BodyError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        StreamBody::new(stream::iter(frames)).boxed_unsync()
    }

    #[tokio::test]
    async fn collects_one_or_many_chunks_up_to_the_limit() {
        let none = HeaderMap::new();
        let t = Duration::from_secs(5);
        let one = read_body(&none, chunked(&["a=1&b=2"]), 7, t).await.unwrap();
        assert_eq!(one, "a=1&b=2");
        let many = read_body(&none, chunked(&["a=", "1&", "b=2"]), 7, t)
            .await
            .unwrap();
        assert_eq!(many, "a=1&b=2");
        assert_eq!(read_body(&none, chunked(&[]), 7, t).await.unwrap(), "");
        let over = read_body(&none, chunked(&["a=1&", "b=22"]), 7, t).await;
        assert!(matches!(over, Err(GatewayError::BodyTooLarge)));
    }
}
