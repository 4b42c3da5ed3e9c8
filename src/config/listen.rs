//! Validation of `listen_proxy_protocol` (docs/design.md §8.6): the peers whose
//! connections start with a PROXY protocol header (HAProxy's, v1 or v2) naming the real
//! client. A peer is trusted only by address, so the list is written as CIDR blocks and
//! checked here: a block with host bits set (`10.0.0.1/8`) is refused, since it most
//! likely means something other than what it says.

use std::net::IpAddr;

use serde::Deserialize;

use super::validate::Validator;

/// `listen_proxy_protocol` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyProtocol {
    pub trusted: Option<Vec<String>>,
}

/// `listen_proxy_protocol`: connections from `trusted` peers must start with a PROXY
/// header, whose address is then the client's; every other connection is a direct client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocolConfig {
    pub trusted: Vec<Cidr>,
}

impl ProxyProtocolConfig {
    /// Whether `peer` (the TCP peer of a connection) is a trusted proxy. An IPv4 peer seen
    /// on an IPv6 socket (`::ffff:a.b.c.d`) is compared as the IPv4 address it is.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|c| c.contains(peer))
    }
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/len`, or a bare address as a block of one.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an address block; use e.g. 10.0.0.0/8"))?;
        let network = network.to_canonical();
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{text}`: the prefix length must be 0 to {max}")),
            },
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "`{text}` has bits set past the prefix; the block is {}/{prefix}",
                cidr.masked(network)
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is inside the block (IPv4 and IPv6 never match each other).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.network
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Validator<'_> {
    pub(super) fn proxy_protocol(
        &mut self,
        raw: Option<RawProxyProtocol>,
    ) -> Option<ProxyProtocolConfig> {
        const PATH: &str = "listen_proxy_protocol.trusted";
        let raw = raw?;
        let Some(list) = raw.trusted.filter(|l| !l.is_empty()) else {
            // An empty list would accept the key and change nothing: most likely the
            // addresses were forgotten.
            self.problem(
                PATH,
                "list the address blocks of the proxies or load balancers that send the PROXY header",
            );
            return None;
        };
        let mut trusted = Vec::with_capacity(list.len());
        for (i, text) in list.iter().enumerate() {
            match Cidr::parse(text.trim()) {
                Ok(c) => trusted.push(c),
                Err(e) => self.problem(format!("{PATH}[{i}]"), e),
            }
        }
        Some(ProxyProtocolConfig { trusted })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::validate::tests::validator;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_what_their_prefix_says() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(
            !c.contains(ip("::ffff:10.0.0.1")),
            "compared after to_canonical only"
        );
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("::1")), "an IPv4 block never holds IPv6");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::7")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert_eq!(v6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn a_mapped_ipv4_peer_is_trusted_as_ipv4() {
        let pp = ProxyProtocolConfig {
            trusted: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        assert!(pp.trusts(ip("::ffff:10.1.2.3")));
        assert!(pp.trusts(ip("10.1.2.3")));
        assert!(!pp.trusts(ip("192.0.2.1")));
    }

    #[test]
    fn bad_blocks_are_refused_with_their_index() {
        let mut v = validator(Path::new("."));
        let pp = v.proxy_protocol(Some(RawProxyProtocol {
            trusted: Some(vec![
                "10.0.0.0/8".into(),
                "10.0.0.1/8".into(),
                "10.0.0.0/33".into(),
                "lb.internal".into(),
            ]),
        }));
        assert_eq!(pp.unwrap().trusted.len(), 1);
        let texts: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "listen_proxy_protocol.trusted[1]: `10.0.0.1/8` has bits set past the prefix; the block is 10.0.0.0/8",
                "listen_proxy_protocol.trusted[2]: `10.0.0.0/33`: the prefix length must be 0 to 32",
                "listen_proxy_protocol.trusted[3]: `lb.internal` is not an address block; use e.g. 10.0.0.0/8",
            ]
        );
    }

    #[test]
    fn an_empty_list_is_a_problem_and_absence_is_off() {
        let mut v = validator(Path::new("."));
        assert!(v.proxy_protocol(None).is_none());
        assert!(v.problems.is_empty());
        v.proxy_protocol(Some(RawProxyProtocol {
            trusted: Some(vec![]),
        }));
        assert_eq!(v.problems.len(), 1);
        assert!(v.problems[0]
            .to_string()
            .starts_with("listen_proxy_protocol.trusted: list the address blocks"));
    }
}
