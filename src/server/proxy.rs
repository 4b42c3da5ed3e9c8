//! The PROXY protocol header (HAProxy's `proxy-protocol.txt`, v1 text and v2 binary), read
//! before the TLS handshake when `listen_proxy_protocol` is set (docs/design.md §8.6).
//!
//! A load balancer that passes TLS through (an NLB, a passthrough ingress, HAProxy in TCP
//! mode) is the TCP peer of every connection: without the header, every client would share
//! its address for throttling, `X-Forwarded-For` and the logs. The header is trusted only
//! from the peers listed in `trusted`, since anyone else could name any address:
//! - from a trusted peer the header is required (spec §2: "the receiver MUST ... not try to
//!   guess whether the protocol header is present"), and a connection without a valid one
//!   is closed;
//! - from any other peer the connection is a direct client, and one that begins with a
//!   PROXY signature is closed rather than handed to TLS.
//!
//! Framing is done here with exact reads, so that not one byte past the header is taken
//! from the socket (the TLS ClientHello follows it on the same stream), and the header
//! bytes are then parsed by the `ppp` crate. Size is bounded: a v1 header is at most 107
//! bytes (spec §2.1), a v2 one is refused past [`MAX_V2`]. Time is bounded by the caller
//! (`limits.header_read_timeout`, shared with the handshake).

use std::net::SocketAddr;

use ppp::{v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::metrics::ConnectionRefusal;

/// The v2 signature (spec §2.2).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 header's fixed part: signature, version and command, family, length (§2.2).
const V2_FIXED: usize = 16;
/// The v1 prefix (spec §2.1).
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// Longest v1 header, CRLF included (spec §2.1).
const V1_MAX: usize = 107;
/// Shortest v1 header (`PROXY UNKNOWN\r\n`): reading this much never takes a byte of what
/// follows any header.
const V1_MIN: usize = 15;
/// Longest v2 header accepted: the 16 fixed bytes, the largest addresses (216 bytes, UNIX)
/// and room for the TLVs load balancers add (AWS, GCP and Azure send well under 1 KiB).
pub const MAX_V2: usize = 4096;

/// Where a connection came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client: the address a header carried, else the TCP peer.
    pub client: SocketAddr,
    /// Whether `client` came from a header (then the TCP peer is a proxy).
    pub carried: bool,
}

impl Origin {
    fn direct(peer: SocketAddr) -> Origin {
        Origin {
            client: peer,
            carried: false,
        }
    }
}

/// Why a connection was closed here; each is a `secretgate_connections_refused_total`
/// reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// A trusted peer closed the connection without sending a byte: a TCP health check
    /// of the load balancer's, not a refusal (not counted).
    Empty,
    /// A trusted peer's connection did not start with a PROXY signature.
    Missing,
    /// It started with one, but the header is not valid (or too long).
    Invalid,
    /// An untrusted peer's connection started with a PROXY signature.
    Untrusted,
}

impl ProxyRefusal {
    /// The `secretgate_connections_refused_total` reason, if it is counted.
    pub fn metric(self) -> Option<ConnectionRefusal> {
        match self {
            ProxyRefusal::Empty => None,
            ProxyRefusal::Missing => Some(ConnectionRefusal::proxy_header_missing),
            ProxyRefusal::Invalid => Some(ConnectionRefusal::proxy_header_invalid),
            ProxyRefusal::Untrusted => Some(ConnectionRefusal::proxy_header_untrusted),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProxyRefusal::Empty => "a trusted peer closed without sending anything",
            ProxyRefusal::Missing => "a trusted peer sent no PROXY header",
            ProxyRefusal::Invalid => "invalid PROXY header",
            ProxyRefusal::Untrusted => {
                "PROXY header from a peer not in listen_proxy_protocol.trusted"
            }
        }
    }
}

/// Reads what the connection says about its origin: the header from a `trusted` peer,
/// nothing (a look at the first bytes only) from any other.
pub async fn origin(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    trusted: bool,
) -> Result<Origin, ProxyRefusal> {
    if trusted {
        read_header(tcp, peer).await
    } else {
        refuse_signature(tcp, peer).await
    }
}

/// An untrusted peer: the connection is served as sent, unless it starts like a PROXY
/// header (a TLS record never starts with `P` or CR, so nothing valid is turned away).
async fn refuse_signature(tcp: &mut TcpStream, peer: SocketAddr) -> Result<Origin, ProxyRefusal> {
    let mut first = [0u8; 12];
    // A failed read is the TLS handshake's to report, as on any connection.
    let Ok(n) = tcp.peek(&mut first).await else {
        return Ok(Origin::direct(peer));
    };
    let seen = &first[..n];
    let starts = |sig: &[u8]| n > 0 && sig.starts_with(&seen[..n.min(sig.len())]);
    if starts(V1_PREFIX) || starts(V2_SIGNATURE) {
        return Err(ProxyRefusal::Untrusted);
    }
    Ok(Origin::direct(peer))
}

/// A trusted peer: exactly the header is read, then parsed.
async fn read_header(tcp: &mut TcpStream, peer: SocketAddr) -> Result<Origin, ProxyRefusal> {
    let mut first = [0u8; 1];
    if tcp
        .peek(&mut first)
        .await
        .map_err(|_| ProxyRefusal::Missing)?
        == 0
    {
        return Err(ProxyRefusal::Empty);
    }
    let mut buf = vec![0u8; V1_MIN];
    tcp.read_exact(&mut buf)
        .await
        .map_err(|_| ProxyRefusal::Missing)?;
    if buf.starts_with(V2_SIGNATURE) {
        read_v2(tcp, buf, peer).await
    } else if buf.starts_with(V1_PREFIX) {
        read_v1(tcp, buf, peer).await
    } else {
        Err(ProxyRefusal::Missing)
    }
}

/// v2: 16 fixed bytes, the last two the length of the rest (spec §2.2).
async fn read_v2(
    tcp: &mut TcpStream,
    mut buf: Vec<u8>,
    peer: SocketAddr,
) -> Result<Origin, ProxyRefusal> {
    let mut last = [0u8; 1];
    tcp.read_exact(&mut last)
        .await
        .map_err(|_| ProxyRefusal::Invalid)?;
    buf.push(last[0]);
    let rest = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if V2_FIXED + rest > MAX_V2 {
        return Err(ProxyRefusal::Invalid);
    }
    buf.resize(V2_FIXED + rest, 0);
    tcp.read_exact(&mut buf[V2_FIXED..])
        .await
        .map_err(|_| ProxyRefusal::Invalid)?;
    let header = v2::Header::try_from(&buf[..]).map_err(|_| ProxyRefusal::Invalid)?;
    Ok(from_v2(&header, peer))
}

/// What a parsed v2 header says. LOCAL: the proxy's own connection (a health check), so
/// the peer itself (spec §2.2). PROXY with addresses the gateway cannot use as a client
/// address (UNSPEC, UNIX): the peer, as the spec asks of a receiver that does not support
/// the family.
fn from_v2(header: &v2::Header<'_>, peer: SocketAddr) -> Origin {
    if header.command == v2::Command::Local {
        return Origin::direct(peer);
    }
    let client = match header.addresses {
        v2::Addresses::IPv4(a) => SocketAddr::from((a.source_address, a.source_port)),
        v2::Addresses::IPv6(a) => SocketAddr::from((a.source_address, a.source_port)),
        v2::Addresses::Unspecified | v2::Addresses::Unix(_) => return Origin::direct(peer),
    };
    carried(client)
}

/// v1: text up to CRLF, at most 107 bytes. What is already in the socket is looked at
/// first, then read up to the first LF; a header split over several segments costs one
/// more round, never a byte past it.
async fn read_v1(
    tcp: &mut TcpStream,
    mut buf: Vec<u8>,
    peer: SocketAddr,
) -> Result<Origin, ProxyRefusal> {
    let mut window = [0u8; V1_MAX];
    while !buf.ends_with(b"\n") {
        let room = V1_MAX - buf.len();
        if room == 0 || buf.contains(&b'\n') {
            return Err(ProxyRefusal::Invalid);
        }
        let n = tcp
            .peek(&mut window[..room])
            .await
            .map_err(|_| ProxyRefusal::Invalid)?;
        if n == 0 {
            return Err(ProxyRefusal::Invalid);
        }
        let take = match window[..n].iter().position(|&b| b == b'\n') {
            Some(lf) => lf + 1,
            None => n,
        };
        let start = buf.len();
        buf.resize(start + take, 0);
        tcp.read_exact(&mut buf[start..])
            .await
            .map_err(|_| ProxyRefusal::Invalid)?;
    }
    let header = v1::Header::try_from(&buf[..]).map_err(|_| ProxyRefusal::Invalid)?;
    // The parser stops at the first CR: the header must be exactly what was read.
    if header.header.len() != buf.len() {
        return Err(ProxyRefusal::Invalid);
    }
    Ok(match header.addresses {
        v1::Addresses::Tcp4(a) => carried(SocketAddr::from((a.source_address, a.source_port))),
        v1::Addresses::Tcp6(a) => carried(SocketAddr::from((a.source_address, a.source_port))),
        // UNKNOWN: the proxy could not tell; the spec asks for the real endpoints.
        v1::Addresses::Unknown => Origin::direct(peer),
    })
}

fn carried(client: SocketAddr) -> Origin {
    Origin {
        client: SocketAddr::new(client.ip().to_canonical(), client.port()),
        carried: true,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Writes `bytes` then `after` to a fresh connection, and reads the origin on the
    /// server side; returns it and the bytes left on the stream.
    async fn exchange(bytes: &[u8], trusted: bool) -> (Result<Origin, ProxyRefusal>, Vec<u8>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        client.write_all(bytes).await.unwrap();
        client.write_all(b"\x16TLS").await.unwrap();
        client.shutdown().await.unwrap();
        let origin = origin(&mut server, peer, trusted).await;
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).await.unwrap();
        (origin, rest)
    }

    fn v2_ipv4(command: u8, src: [u8; 4], port: u16) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(0x11); // AF_INET, STREAM
        h.extend_from_slice(&12u16.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&[127, 0, 0, 1]);
        h.extend_from_slice(&port.to_be_bytes());
        h.extend_from_slice(&8443u16.to_be_bytes());
        h
    }

    #[tokio::test]
    async fn v1_and_v2_carry_the_client_and_leave_the_rest_unread() {
        let (o, rest) = exchange(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 8443\r\n", true).await;
        assert_eq!(o.unwrap().client, "198.51.100.7:40000".parse().unwrap());
        assert_eq!(rest, b"\x16TLS");
        let (o, rest) = exchange(b"PROXY TCP6 2001:db8::9 ::1 40001 8443\r\n", true).await;
        assert_eq!(o.unwrap().client, "[2001:db8::9]:40001".parse().unwrap());
        assert_eq!(rest, b"\x16TLS");
        let (o, rest) = exchange(&v2_ipv4(1, [203, 0, 113, 5], 5555), true).await;
        let o = o.unwrap();
        assert!(o.carried);
        assert_eq!(o.client, "203.0.113.5:5555".parse().unwrap());
        assert_eq!(rest, b"\x16TLS");
    }

    #[tokio::test]
    async fn v2_local_and_v1_unknown_mean_the_peer_itself() {
        let (o, rest) = exchange(&v2_ipv4(0, [203, 0, 113, 5], 5555), true).await;
        let o = o.unwrap();
        assert!(!o.carried);
        assert!(o.client.ip().is_loopback());
        assert_eq!(rest, b"\x16TLS");
        let (o, rest) = exchange(b"PROXY UNKNOWN\r\n", true).await;
        assert!(!o.unwrap().carried);
        assert_eq!(rest, b"\x16TLS");
    }

    #[tokio::test]
    async fn trusted_peers_must_send_a_valid_header() {
        let (o, _) = exchange(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdef", true).await;
        assert_eq!(o, Err(ProxyRefusal::Missing));
        let (o, _) = exchange(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000\r\n", true).await;
        assert_eq!(o, Err(ProxyRefusal::Invalid));
        let (o, _) = exchange(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", true).await;
        assert_eq!(o, Err(ProxyRefusal::Invalid));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(120));
        let (o, _) = exchange(long.as_bytes(), true).await;
        assert_eq!(o, Err(ProxyRefusal::Invalid));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let (o, _) = exchange(&big, true).await;
        assert_eq!(o, Err(ProxyRefusal::Invalid), "over MAX_V2");
        let mut bad_version = v2_ipv4(1, [1, 2, 3, 4], 1);
        bad_version[12] = 0x31;
        let (o, _) = exchange(&bad_version, true).await;
        assert_eq!(o, Err(ProxyRefusal::Invalid));
    }

    #[tokio::test]
    async fn a_trusted_peer_closing_at_once_is_a_health_check() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut server, peer) = listener.accept().await.unwrap();
        drop(client);
        let refused = origin(&mut server, peer, true).await.unwrap_err();
        assert_eq!(refused, ProxyRefusal::Empty);
        assert_eq!(refused.metric(), None, "not counted");
        assert!(ProxyRefusal::Missing.metric().is_some());
    }

    #[tokio::test]
    async fn untrusted_peers_are_served_direct_unless_they_send_a_header() {
        let (o, rest) = exchange(b"", false).await;
        assert!(!o.unwrap().carried);
        assert_eq!(rest, b"\x16TLS", "nothing consumed");
        let (o, _) = exchange(b"PROXY TCP4 198.51.100.7 127.0.0.1 1 2\r\n", false).await;
        assert_eq!(o, Err(ProxyRefusal::Untrusted));
        let (o, _) = exchange(&v2_ipv4(1, [1, 2, 3, 4], 1), false).await;
        assert_eq!(o, Err(ProxyRefusal::Untrusted));
    }
}
