//! `listen_proxy_protocol` over real sockets (docs/design.md §8.6): a test client stands in
//! for a TLS-passthrough load balancer, writing a PROXY header, v1 text or v2 binary, built
//! here byte by byte from HAProxy's proxy-protocol.txt (never with the gateway's parser),
//! then the TLS handshake and the request on the same connection.
//!
//! - From a trusted peer the carried address is the client's: `X-Forwarded-For` at the
//!   recording upstream, the throttle's keys, and the access line (`client_addr`, with the
//!   TCP peer as `peer`); v2 LOCAL is the peer itself.
//! - Two clients behind one peer are throttled separately.
//! - A trusted peer without a header, a malformed header, and a header from an untrusted
//!   peer: the connection is closed before TLS, and counted by reason.
//!
//! Loopback is the only network here: "trusted" is `127.0.0.1/32`, "untrusted" is a
//! gateway that trusts only `10.0.0.0/8`.

mod support;

use std::net::{IpAddr, SocketAddr};

use http::StatusCode;
use support::capture::*;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TRUST_LOOPBACK: &str = "listen_proxy_protocol: { trusted: [127.0.0.1/32] }\n";
const TRUST_OTHERS: &str = "listen_proxy_protocol: { trusted: [\"10.0.0.0/8\"] }\n";

/// proxy-protocol.txt §2.1: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
fn v1(client: SocketAddr, gateway: SocketAddr) -> Vec<u8> {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        gateway.ip(),
        client.port(),
        gateway.port()
    )
    .into_bytes()
}

/// proxy-protocol.txt §2.2: the 12-byte signature, version 2 with the command in the low
/// nibble (0 LOCAL, 1 PROXY), family and transport (0x11 TCP over IPv4, 0x21 over IPv6),
/// the length of what follows (big-endian), source and destination addresses, then ports.
fn v2(command: u8, client: SocketAddr, gateway: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    let mut addresses = Vec::new();
    match (client.ip(), gateway.ip()) {
        (IpAddr::V4(c), IpAddr::V4(g)) => {
            h.push(0x11);
            addresses.extend_from_slice(&c.octets());
            addresses.extend_from_slice(&g.octets());
        }
        (IpAddr::V6(c), IpAddr::V6(g)) => {
            h.push(0x21);
            addresses.extend_from_slice(&c.octets());
            addresses.extend_from_slice(&g.octets());
        }
        _ => panic!("one family"),
    }
    addresses.extend_from_slice(&client.port().to_be_bytes());
    addresses.extend_from_slice(&gateway.port().to_be_bytes());
    // A TLV as load balancers add them (PP2_TYPE_NOOP, 3 bytes): skipped by the receiver.
    addresses.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']);
    h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    h.extend_from_slice(&addresses);
    h
}

/// Connects, writes `header` (if any), then sends one request over TLS on the same
/// connection; `None` if the gateway closed the connection instead.
async fn send_behind(
    gw: &Gateway,
    header: Option<&[u8]>,
    req: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Option<Reply> {
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    if let Some(h) = header {
        tcp.write_all(h).await.unwrap();
    }
    let tls = tls_connector(&gw.pki.ca_der, &[b"http/1.1"])
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    let mut req = req;
    req.headers_mut()
        .insert(http::header::HOST, "auth.example.com".parse().unwrap());
    let res = send.send_request(req).await.ok()?;
    let (parts, body) = res.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .ok()?
        .to_bytes();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

fn token_request(secret: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    post(
        TOKEN_PATH,
        Some("application/x-www-form-urlencoded"),
        &[("authorization", &basic(BASIC_ID, secret))],
        "grant_type=client_credentials",
    )
}

fn xff(upstream: &RecordingUpstream) -> String {
    upstream
        .last()
        .headers
        .get("x-forwarded-for")
        .expect("X-Forwarded-For set")
        .to_str()
        .unwrap()
        .to_owned()
}

/// The value of one series in the Prometheus text, 0 if absent.
fn series(metrics: &str, name_and_labels: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_from_a_trusted_peer_name_the_client() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, TRUST_LOOPBACK).await;

    let from = capture.end();
    let client: SocketAddr = "198.51.100.7:40001".parse().unwrap();
    let r = send_behind(&gw, Some(&v1(client, gw.addr)), token_request(BASIC_SECRET))
        .await
        .expect("served");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(xff(&upstream), "198.51.100.7");
    let line = capture
        .wait_for_access(from, "the v1 request", |l| l["fields"]["status"] == 200)
        .await;
    assert_eq!(line["fields"]["client_addr"], "198.51.100.7", "{line}");
    assert_eq!(line["fields"]["peer"], "127.0.0.1", "{line}");

    let from = capture.end();
    let client: SocketAddr = "[2001:db8::42]:40002".parse().unwrap();
    let gateway6: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
    let r = send_behind(
        &gw,
        Some(&v2(1, client, gateway6)),
        token_request(BASIC_SECRET),
    )
    .await
    .expect("served");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(xff(&upstream), "2001:db8::42");
    let line = capture
        .wait_for_access(from, "the v2 request", |l| l["fields"]["status"] == 200)
        .await;
    assert_eq!(line["fields"]["client_addr"], "2001:db8::42", "{line}");
    assert_eq!(line["fields"]["peer"], "127.0.0.1", "{line}");

    // LOCAL: the proxy's own connection (a health check); the addresses are ignored.
    let from = capture.end();
    let r = send_behind(
        &gw,
        Some(&v2(0, "203.0.113.9:1".parse().unwrap(), gw.addr)),
        token_request(BASIC_SECRET),
    )
    .await
    .expect("served");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(xff(&upstream), "127.0.0.1");
    let line = capture
        .wait_for_access(from, "the LOCAL request", |l| l["fields"]["status"] == 200)
        .await;
    assert_eq!(line["fields"]["client_addr"], "127.0.0.1", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_behind_one_peer_are_throttled_separately() {
    // Every test here takes its turn: the access lines of one must not be read as another's.
    let _turn = one_at_a_time().await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let extra =
        format!("{TRUST_LOOPBACK}throttle: {{ max_failures: 2, max_failures_per_address: 2 }}\n");
    let gw = Gateway::start_with(upstream.addr, &extra).await;
    let a: SocketAddr = "198.51.100.10:5000".parse().unwrap();
    let b: SocketAddr = "198.51.100.11:5000".parse().unwrap();
    for _ in 0..2 {
        let r = send_behind(
            &gw,
            Some(&v1(a, gw.addr)),
            token_request("wrong-secret-0000"),
        )
        .await
        .expect("served");
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // A's address has used its failures: even the right secret waits.
    let r = send_behind(&gw, Some(&v1(a, gw.addr)), token_request(BASIC_SECRET))
        .await
        .expect("served");
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.error());
    // B, through the same TCP peer, has its own counters.
    let r = send_behind(&gw, Some(&v2(1, b, gw.addr)), token_request(BASIC_SECRET))
        .await
        .expect("served");
    assert_eq!(r.status, StatusCode::OK, "{}", r.error());
    assert_eq!(xff(&upstream), "198.51.100.11");
    let r = send_behind(
        &gw,
        Some(&v1(b, gw.addr)),
        token_request("wrong-secret-0000"),
    )
    .await
    .expect("served");
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "B's first failure, not A's 429"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_peer_without_a_valid_header_is_closed() {
    // Every test here takes its turn: the access lines of one must not be read as another's.
    let _turn = one_at_a_time().await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, TRUST_LOOPBACK).await;
    // A direct TLS client from the trusted address: no header, closed.
    assert!(send_behind(&gw, None, token_request(BASIC_SECRET))
        .await
        .is_none());
    // Malformed: a v1 header missing its ports; v2 with a version nibble of 3.
    let bad_v1 = b"PROXY TCP4 198.51.100.7 127.0.0.1\r\n".to_vec();
    assert!(send_behind(&gw, Some(&bad_v1), token_request(BASIC_SECRET))
        .await
        .is_none());
    let mut bad_v2 = v2(1, "198.51.100.7:1".parse().unwrap(), gw.addr);
    bad_v2[12] = 0x31;
    assert!(send_behind(&gw, Some(&bad_v2), token_request(BASIC_SECRET))
        .await
        .is_none());
    assert!(
        upstream.records().is_empty(),
        "nothing reached the upstream"
    );
    let m = gw.metrics().await;
    let refused = "secretgate_connections_refused_total{reason=";
    assert_eq!(
        series(&m, &format!("{refused}\"proxy_header_missing\"}}")),
        1,
        "{m}"
    );
    assert_eq!(
        series(&m, &format!("{refused}\"proxy_header_invalid\"}}")),
        2,
        "{m}"
    );
    // The header's own bytes are not a handshake failure.
    assert_eq!(
        series(
            &m,
            "secretgate_tls_handshake_failures_total{reason=\"error\"}"
        ),
        0,
        "{m}"
    );
    // A well-formed header still works on this gateway.
    let r = send_behind(
        &gw,
        Some(&v1("198.51.100.7:1".parse().unwrap(), gw.addr)),
        token_request(BASIC_SECRET),
    )
    .await
    .expect("served");
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_is_a_direct_client_and_may_not_send_a_header() {
    let capture = capture();
    let _turn = one_at_a_time().await;
    let upstream = RecordingUpstream::start(Behaviour::Token).await;
    let gw = Gateway::start_with(upstream.addr, TRUST_OTHERS).await;
    let from = capture.end();
    let r = send_behind(&gw, None, token_request(BASIC_SECRET))
        .await
        .expect("served as a direct client");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(xff(&upstream), "127.0.0.1");
    let line = capture
        .wait_for_access(from, "the direct request", |l| l["fields"]["status"] == 200)
        .await;
    assert_eq!(line["fields"]["client_addr"], "127.0.0.1", "{line}");
    assert_eq!(line["fields"]["peer"], "127.0.0.1", "{line}");

    let spoofed: SocketAddr = "198.51.100.99:1".parse().unwrap();
    assert!(send_behind(
        &gw,
        Some(&v1(spoofed, gw.addr)),
        token_request(BASIC_SECRET)
    )
    .await
    .is_none());
    assert!(send_behind(
        &gw,
        Some(&v2(1, spoofed, gw.addr)),
        token_request(BASIC_SECRET)
    )
    .await
    .is_none());
    assert_eq!(
        upstream.records().len(),
        1,
        "only the direct request got through"
    );
    let m = gw.metrics().await;
    assert_eq!(
        series(
            &m,
            "secretgate_connections_refused_total{reason=\"proxy_header_untrusted\"}"
        ),
        2,
        "{m}"
    );
}
