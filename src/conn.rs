//! What the server knows about the connection a request came on, attached to each request
//! as an extension before the stack sees it. Only the server inserts these; nothing in a
//! request can set them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls_pki_types::CertificateDer;

use crate::error::CertificateRejection;
use crate::x509::{LeafNames, Thumbprint, UnparsableCertificate};

/// The client's address: the TCP peer of the connection a request came on, or, from a
/// peer in `listen_proxy_protocol.trusted`, the address its PROXY header carried.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The TCP peer of a connection whose PROXY header named the client: the proxy or load
/// balancer in front. Absent on direct connections (there the peer is [`ClientAddr`]).
#[derive(Debug, Clone, Copy)]
pub struct ProxyAddr(pub SocketAddr);

/// An address as text, written into a stack buffer: an IPv4 address digit by digit
/// (through `Display` it cost ~1.3k instructions, once for `X-Forwarded-For` and twice on
/// every access line), an IPv6 one through `Display` (rare on this path). Its `Display` is
/// the address's own.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; 45],
    len: u8,
}

impl IpText {
    pub fn new(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write as _;
                let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
                // An IPv6 address is at most 45 characters (`ffff:…:255.255.255.255`).
                let _ = write!(cursor, "{v6}");
                t.len = cursor.position() as u8;
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        self.buf[usize::from(self.len)] = b;
        self.len += 1;
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, hex digits and colons were written.
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The certificate chain the client presented in the TLS handshake (leaf first), whose
/// signature over the handshake rustls verified, so the client holds the leaf's private
/// key. Nothing else about it is known yet: whether it authenticates anyone is decided by
/// the auth layer (docs/design.md §2.11). Shared by every request of the connection.
#[derive(Clone)]
pub struct ClientCertificate(Arc<Presented>);

struct Presented {
    chain: Vec<CertificateDer<'static>>,
    thumbprint: Thumbprint,
    /// The last validation of this chain (auth/certificate.rs): a signature check per
    /// certificate, tens of µs each, for a chain that cannot change within the connection.
    validation: Mutex<Option<ChainMemo>>,
    /// The leaf's subject and subjectAltNames, parsed on the first request that compares
    /// a registered name with them: they cannot change within the connection either.
    names: OnceLock<Result<LeafNames, UnparsableCertificate>>,
}

/// What validating a connection's chain concluded, kept with the connection
/// ([`ClientCertificate::recall`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainMemo {
    /// The trust configuration it was made under: another one (a reload) validates again.
    pub check: u64,
    /// It holds for requests at `from <= now <= until` (Unix seconds, the gateway's clock).
    pub from: i64,
    pub until: i64,
    pub result: Result<(), CertificateRejection>,
}

impl ClientCertificate {
    /// The chain a TLS connection's peer presented, if it presented one.
    pub fn from_chain(chain: Option<&[CertificateDer<'static>]>) -> Option<ClientCertificate> {
        let chain = chain.filter(|c| !c.is_empty())?.to_vec();
        let thumbprint = Thumbprint::of(&chain[0]);
        Some(ClientCertificate(Arc::new(Presented {
            chain,
            thumbprint,
            validation: Mutex::new(None),
            names: OnceLock::new(),
        })))
    }

    /// The remembered validation, if one was made under `check` and holds at `now`.
    pub fn recall(&self, check: u64, now: i64) -> Option<Result<(), CertificateRejection>> {
        let memo = (*self
            .0
            .validation
            .lock()
            .unwrap_or_else(PoisonError::into_inner))?;
        (memo.check == check && memo.from <= now && now <= memo.until).then_some(memo.result)
    }

    /// Keeps a validation for the connection's next requests (replacing the last one).
    pub fn remember(&self, memo: ChainMemo) {
        *self
            .0
            .validation
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(memo);
    }

    /// The leaf's names (subject, subjectAltNames), parsed once per connection.
    pub fn names(&self) -> Result<&LeafNames, UnparsableCertificate> {
        self.0
            .names
            .get_or_init(|| LeafNames::parse(&self.0.chain[0]))
            .as_ref()
            .map_err(|e| *e)
    }

    /// Whether [`ClientCertificate::names`] has parsed the leaf yet.
    pub fn names_parsed(&self) -> bool {
        self.0.names.get().is_some()
    }

    /// The end-entity certificate (DER).
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.0.chain[0]
    }

    /// The certificates the client sent after its leaf, to build a path with.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.0.chain[1..]
    }

    /// SHA-256 of the leaf's DER (RFC 8705 §3.1 `x5t#S256`).
    pub fn thumbprint(&self) -> Thumbprint {
        self.0.thumbprint
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .field("chain", &self.0.chain.len())
            .finish()
    }
}

#[cfg(test)]
mod ip_text_tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut ips: Vec<IpAddr> = [[0, 0, 0, 0], [255, 255, 255, 255], [10, 9, 99, 100]]
            .into_iter()
            .map(IpAddr::from)
            .collect();
        // Every octet value in every position.
        ips.extend((0..=255u8).map(|b| IpAddr::from([b, 255 - b, b / 3, b.wrapping_mul(7)])));
        for v6 in [
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "0:0:0:0:0:ffff:255.255.255.255",
            "1:0:0:0:0:ffff:ffff:ffff",
        ] {
            ips.push(v6.parse().unwrap());
        }
        for ip in ips {
            assert_eq!(IpText::new(ip).as_str(), ip.to_string(), "{ip}");
            assert_eq!(IpText::new(ip).to_string(), ip.to_string(), "{ip}");
        }
    }
}
