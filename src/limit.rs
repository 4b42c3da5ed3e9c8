//! The body limit for protected requests: they are small forms, so they are buffered, but
//! never beyond `limits.max_body` and never for longer than `limits.body_read_timeout`.
//!
//! The declared `Content-Length` is checked before a byte is read (so an oversized upload
//! is refused at once); the stream is then read through `http_body_util::Limited`, which
//! catches chunked bodies and lying lengths. Unprotected requests never come here: they
//! are streamed to the upstream untouched.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::GatewayError;
use crate::Body;

/// Reads a whole protected request body.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, GatewayError> {
    if let Some(declared) = headers.get(CONTENT_LENGTH) {
        let declared: u64 = declared
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or(GatewayError::BodyTooLarge)?;
        if declared > max as u64 {
            return Err(GatewayError::BodyTooLarge);
        }
    }
    let collected = tokio::time::timeout(timeout, Limited::new(body, max).collect())
        .await
        .map_err(|_| GatewayError::BodyReadTimeout)?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(GatewayError::BodyTooLarge),
        Err(e) => Err(GatewayError::BodyRead(e)),
    }
}
