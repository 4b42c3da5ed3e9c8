//! What the server knows about the connection a request came on, attached to each request
//! as an extension before the stack sees it. Only the server inserts these; nothing in a
//! request can set them.

use std::net::SocketAddr;

/// The peer address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);
