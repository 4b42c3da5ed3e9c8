//! How a client connection is closed, so that the client reads what was last written to it:
//! the gateway's answer to a refused head (refusal.rs), a 413 or 408 hyper closes the
//! connection after, an HTTP/2 GOAWAY.
//!
//! Closing a socket that still holds unread input makes the kernel send a reset, and a
//! client still sending (a large head, a body) then loses the answer it had not read yet.
//! So, as nginx's lingering close does (`lingering_time`, `lingering_timeout`): the last
//! bytes are written, the write side is closed (TLS `close_notify`, then a TCP FIN), and
//! what the client still sends is read and thrown away, without decrypting it, until it
//! closes its side, for at most [`LINGER_TIME`] and [`LINGER_BYTES`] (the whole close,
//! writing included); then the socket is closed.

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

/// Longest a closing connection is kept, from the start of its close.
pub const LINGER_TIME: Duration = Duration::from_secs(2);
/// Most input read and discarded while closing: more than the largest head a client may
/// be sending (`limits.max_header_size` is at most 1 MiB) when it is refused.
pub const LINGER_BYTES: u64 = 2 * 1024 * 1024;

/// Writes `last` (if any), closes the write side, drains the input within the bounds
/// above, and closes the connection.
pub async fn close(mut tls: TlsStream<TcpStream>, last: Option<Bytes>) {
    let deadline = Instant::now() + LINGER_TIME;
    let closed = tokio::time::timeout_at(deadline, async {
        if let Some(bytes) = last {
            tls.write_all(&bytes).await?;
        }
        // close_notify (RFC 8446 §6.1), then the TCP write side: the client sees the end
        // of the answer whatever it does next.
        tls.shutdown().await
    })
    .await;
    if !matches!(closed, Ok(Ok(()))) {
        // The client does not read (or is gone): nothing more is owed to it.
        return;
    }
    let (mut tcp, session) = tls.into_inner();
    drop(session);
    let _ = tokio::time::timeout_at(
        deadline,
        tokio::io::copy(&mut (&mut tcp).take(LINGER_BYTES), &mut tokio::io::sink()),
    )
    .await;
}
