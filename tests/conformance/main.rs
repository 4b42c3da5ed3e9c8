//! Every case of docs/conformance.md as an integration test: one test per row, each over
//! real TLS against the recording upstream. Accepted requests are checked end to end (what
//! the upstream got, no secret anywhere, Content-Length, the signed internal header);
//! rejected ones for status, `error`, `WWW-Authenticate`, the no-store JSON headers, and
//! that nothing was forwarded. One module per section of the table, named after it; `rig`
//! holds what the sections share.

#[path = "../support/mod.rs"]
mod support;

mod rig;

mod basic;
mod forwarding;
mod jwt;
mod post;
mod transport;
