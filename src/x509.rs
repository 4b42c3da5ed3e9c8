//! What the gateway reads from X.509 client certificates (RFC 8705): the SHA-256
//! thumbprint of a certificate's DER (`x5t#S256`, RFC 8705 §3.1), and the one name a
//! `tls_client_auth` client is registered with (RFC 8705 §2.1.2): a subject DN written as
//! RFC 4514 text, or a dNSName, uniformResourceIdentifier, iPAddress or rfc822Name
//! subjectAltName entry.
//!
//! Parsing of certificates is x509-parser's; this module parses the configured text and
//! compares. Rules (docs/design.md §2.11):
//! - Subject DN: the configured string is parsed per RFC 4514 (RDNs separated by `,`,
//!   multi-valued RDNs joined by `+`, `\`-escapes of specials and `\XX` hex pairs,
//!   attribute types as short names, case-insensitive, or dotted OIDs) and compared RDN
//!   by RDN with the certificate's subject, in order (RFC 4514 writes the last RDN of the
//!   DER sequence first), with the same number of RDNs; the attributes of a multi-valued
//!   RDN compare as a set. Values compare as RFC 4517 caseIgnoreMatch simplified: leading
//!   and trailing whitespace removed, inner whitespace runs collapsed to one space,
//!   Unicode lower-cased; no NFKC normalisation. A certificate value that is not a
//!   PrintableString, UTF8String, IA5String or NumericString never matches.
//! - dNSName: ASCII case-insensitive; URI: exact; iPAddress: the same address (4 or 16
//!   bytes); rfc822Name: local part exact, domain ASCII case-insensitive. Any SAN entry of
//!   the type may match.
//!
//! This module uses nothing of the crate: config (to parse) and auth (to match) use it.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// SHA-256 of a certificate's DER encoding. Not secret (anyone who saw the handshake has
/// the certificate), but compared in constant time all the same.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint(pub [u8; 32]);

impl Thumbprint {
    pub fn of(der: &[u8]) -> Thumbprint {
        Thumbprint(Sha256::digest(der).into())
    }

    /// The `x5t#S256` value: base64url without padding (RFC 8705 §3.1, RFC 7515 §2).
    pub fn x5t_s256(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.x5t_s256())
    }
}

/// The name a `tls_client_auth` client is registered with (RFC 8705 §2.1.2): exactly one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateName {
    SubjectDn(DistinguishedName),
    SanDns(String),
    SanUri(String),
    SanIp(IpAddr),
    SanEmail(String),
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the certificate cannot be parsed")]
pub struct UnparsableCertificate;

impl CertificateName {
    /// Whether the certificate (DER) carries this name.
    pub fn matches(&self, der: &[u8]) -> Result<bool, UnparsableCertificate> {
        LeafNames::parse(der).map(|names| self.matched_by(&names))
    }

    /// Whether a certificate with these names carries this name.
    pub fn matched_by(&self, names: &LeafNames) -> bool {
        match self {
            CertificateName::SubjectDn(dn) => dn.matched_by(&names.subject),
            other => names.sans.iter().any(|san| other.matches_san(san)),
        }
    }

    fn matches_san(&self, entry: &San) -> bool {
        match (self, entry) {
            // DNS names are case-insensitive (RFC 4343).
            (CertificateName::SanDns(want), San::Dns(got)) => want.eq_ignore_ascii_case(got),
            (CertificateName::SanUri(want), San::Uri(got)) => want == got,
            (CertificateName::SanIp(want), San::Ip(got)) => match want {
                IpAddr::V4(v4) => got[..] == v4.octets()[..],
                IpAddr::V6(v6) => got[..] == v6.octets()[..],
            },
            // RFC 5280 §7.5: the local part is case-sensitive, the domain is not.
            (CertificateName::SanEmail(want), San::Email(got)) => {
                match (want.rsplit_once('@'), got.rsplit_once('@')) {
                    (Some((wl, wd)), Some((gl, gd))) => wl == gl && wd.eq_ignore_ascii_case(gd),
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// What a registered name is compared with, read from a certificate once: its subject,
/// RDN by RDN, and its subjectAltName entries of the four types a name can be. A
/// connection keeps its leaf's (conn.rs), so a request compares and never parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafNames {
    /// The subject's RDNs in DER order, each its attributes as (OID, normalised value),
    /// sorted; `None` for an RDN holding a value that is not one of the string types
    /// (PrintableString, UTF8String, IA5String, NumericString), which never matches.
    subject: Vec<Option<Vec<(String, String)>>>,
    /// The subjectAltName entries; none when the extension is absent or unreadable
    /// (twice present, say).
    sans: Vec<San>,
    /// The subject as RFC 4514 text (most specific RDN first), for the log line of a
    /// name mismatch: what the certificate carried, in the order the config is written.
    subject_text: String,
}

/// A subjectAltName entry of a type a `tls_client_auth` name can be (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
enum San {
    Dns(String),
    Uri(String),
    /// 4 or 16 bytes, as in the certificate.
    Ip(Vec<u8>),
    Email(String),
}

impl LeafNames {
    /// Reads the names of a certificate (DER).
    pub fn parse(der: &[u8]) -> Result<LeafNames, UnparsableCertificate> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|_| UnparsableCertificate)?;
        let subject = cert
            .subject()
            .iter()
            .map(|rdn| {
                let mut attrs = Vec::new();
                for attr in rdn.iter() {
                    // Another string type (a BMPString, say) is not compared at all.
                    let value = attr.as_str().ok()?;
                    attrs.push((attr.attr_type().to_id_string(), normalise(value)));
                }
                attrs.sort();
                Some(attrs)
            })
            .collect();
        let sans = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|g| match g {
                    GeneralName::DNSName(n) => Some(San::Dns((*n).to_owned())),
                    GeneralName::URI(u) => Some(San::Uri((*u).to_owned())),
                    GeneralName::IPAddress(ip) => Some(San::Ip(ip.to_vec())),
                    GeneralName::RFC822Name(e) => Some(San::Email((*e).to_owned())),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let subject_text = rfc4514(cert.subject());
        Ok(LeafNames {
            subject,
            sans,
            subject_text,
        })
    }

    /// The subject as RFC 4514 text: what a `tls_client_auth_subject_dn` is compared with.
    pub fn subject_text(&self) -> &str {
        &self.subject_text
    }
}

/// `name` as RFC 4514 text: RDNs from the last of the DER sequence to the first, short
/// names where RFC 4514 §3 has them, specials escaped; a value that is not a string shows
/// as `#` (it never matches anyway).
fn rfc4514(name: &x509_parser::x509::X509Name<'_>) -> String {
    let mut rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            let attrs: Vec<String> = rdn
                .iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let short = SHORT_NAMES
                        .iter()
                        .find(|(_, o)| *o == oid)
                        .map_or(oid.clone(), |(n, _)| n.to_uppercase());
                    let value = attr.as_str().map_or_else(|_| "#".to_owned(), escape_4514);
                    format!("{short}={value}")
                })
                .collect();
            attrs.join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// RFC 4514 §2.4: the specials escaped with `\`.
fn escape_4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        if leading || matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    if out.ends_with(' ') {
        out.insert(out.len() - 1, '\\');
    }
    out
}

/// A distinguished name parsed from RFC 4514 text, in DER order (the reverse of the text),
/// with values normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Rdn>,
}

/// One relative distinguished name: its attributes, sorted (a multi-valued RDN is a set).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rdn(Vec<(String, String)>);

/// Why a configured subject DN was refused. Messages are fixed text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("the subject DN is empty")]
    Empty,
    #[error("an attribute has no `=`")]
    MissingEquals,
    #[error("attribute type `{0}` is not a known short name (CN, O, OU, C, L, ST, STREET, DC, UID, emailAddress, serialNumber, title, GN, SN, …) or a dotted OID")]
    UnknownType(String),
    #[error("an attribute value is empty")]
    EmptyValue,
    #[error("a `\\` escape must be followed by a special character or two hex digits")]
    BadEscape,
    #[error("an escaped value is not UTF-8")]
    NotUtf8,
    #[error("hex-encoded values (`#…`) are not supported; write the value as text")]
    HexValue,
}

/// RFC 4514 §3 short names, and those OpenSSL and Java print, to dotted OIDs.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("cn", "2.5.4.3"),
    ("commonname", "2.5.4.3"),
    ("sn", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("serialnumber", "2.5.4.5"),
    ("c", "2.5.4.6"),
    ("countryname", "2.5.4.6"),
    ("l", "2.5.4.7"),
    ("localityname", "2.5.4.7"),
    ("st", "2.5.4.8"),
    ("s", "2.5.4.8"),
    ("stateorprovincename", "2.5.4.8"),
    ("street", "2.5.4.9"),
    ("streetaddress", "2.5.4.9"),
    ("o", "2.5.4.10"),
    ("organizationname", "2.5.4.10"),
    ("ou", "2.5.4.11"),
    ("organizationalunitname", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("businesscategory", "2.5.4.15"),
    ("postalcode", "2.5.4.17"),
    ("gn", "2.5.4.42"),
    ("givenname", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationqualifier", "2.5.4.44"),
    ("dnqualifier", "2.5.4.46"),
    ("pseudonym", "2.5.4.65"),
    ("organizationidentifier", "2.5.4.97"),
    ("dc", "0.9.2342.19200300.100.1.25"),
    ("domaincomponent", "0.9.2342.19200300.100.1.25"),
    ("uid", "0.9.2342.19200300.100.1.1"),
    ("userid", "0.9.2342.19200300.100.1.1"),
    ("emailaddress", "1.2.840.113549.1.9.1"),
    ("email", "1.2.840.113549.1.9.1"),
];

fn attribute_oid(name: &str) -> Result<String, DnError> {
    let lower = name.to_ascii_lowercase();
    let numeric = lower.strip_prefix("oid.").unwrap_or(&lower);
    let is_oid = !numeric.is_empty()
        && numeric
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()))
        && numeric.contains('.');
    if is_oid {
        return Ok(numeric.to_owned());
    }
    SHORT_NAMES
        .iter()
        .find(|(short, _)| *short == lower)
        .map(|(_, oid)| (*oid).to_owned())
        .ok_or_else(|| DnError::UnknownType(name.to_owned()))
}

/// RFC 4517 caseIgnoreMatch, simplified (see the module docs).
fn normalise(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl DistinguishedName {
    /// Whether the text was written most general RDN first (`C=…, O=…, CN=…`), as
    /// `openssl x509 -subject` prints a subject, rather than RFC 4514's most specific
    /// first. Such a name only matches a certificate whose subject is stored reversed,
    /// which is almost never what was meant: `check` warns.
    pub fn looks_most_general_first(&self) -> bool {
        const CN: &str = "2.5.4.3";
        const GENERAL: [&str; 2] = ["2.5.4.6", "0.9.2342.19200300.100.1.25"];
        let has = |rdn: Option<&Rdn>, oids: &[&str]| {
            rdn.is_some_and(|r| r.0.iter().any(|(oid, _)| oids.contains(&oid.as_str())))
        };
        // `rdns` is in DER order: the text's first RDN is the last here.
        self.rdns.len() >= 2 && has(self.rdns.last(), &GENERAL) && has(self.rdns.first(), &[CN])
    }

    /// Parses RFC 4514 text such as `CN=payments,O=Example Corp`. Whitespace around `,`,
    /// `+` and `=` is ignored, as RFC 2253 printers (Java's `X500Principal`) emit it.
    pub fn parse(text: &str) -> Result<DistinguishedName, DnError> {
        if text.trim().is_empty() {
            return Err(DnError::Empty);
        }
        let mut rdns = Vec::new();
        let mut attrs: Vec<(String, String)> = Vec::new();
        let mut chars = text.chars().peekable();
        loop {
            // attributeType
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('=') => break,
                    Some(c) => name.push(c),
                    None => return Err(DnError::MissingEquals),
                }
            }
            let oid = attribute_oid(name.trim())?;
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'#') {
                return Err(DnError::HexValue);
            }
            // attributeValue, up to an unescaped `,` `+` or the end.
            let mut bytes = Vec::new();
            let mut separator = None;
            while let Some(c) = chars.next() {
                match c {
                    ',' | '+' => {
                        separator = Some(c);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some(s @ ('"' | '+' | ',' | ';' | '<' | '>' | '\\' | ' ' | '#' | '=')) => {
                            bytes.push(s as u8)
                        }
                        Some(h) if h.is_ascii_hexdigit() => {
                            let l = chars.next().filter(char::is_ascii_hexdigit);
                            let (Some(hi), Some(lo)) =
                                (h.to_digit(16), l.and_then(|l| l.to_digit(16)))
                            else {
                                return Err(DnError::BadEscape);
                            };
                            bytes.push((hi * 16 + lo) as u8);
                        }
                        _ => return Err(DnError::BadEscape),
                    },
                    c => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            let value = String::from_utf8(bytes).map_err(|_| DnError::NotUtf8)?;
            let value = normalise(&value);
            if value.is_empty() {
                return Err(DnError::EmptyValue);
            }
            attrs.push((oid, value));
            match separator {
                Some('+') => continue,
                _ => {
                    attrs.sort();
                    rdns.push(Rdn(std::mem::take(&mut attrs)));
                }
            }
            if separator.is_none() {
                break;
            }
        }
        // RFC 4514 §2.1: the text starts with the last RDN of the sequence.
        rdns.reverse();
        Ok(DistinguishedName { rdns })
    }

    fn matched_by(&self, subject: &[Option<Vec<(String, String)>>]) -> bool {
        subject.len() == self.rdns.len()
            && subject
                .iter()
                .zip(&self.rdns)
                .all(|(got, want)| got.as_ref() == Some(&want.0))
    }
}

/// The end of a certificate's validity period (`notAfter`), in Unix seconds; `None` if
/// the DER does not parse.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(dn: &[(DnType, &str)], sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn dn(text: &str) -> CertificateName {
        CertificateName::SubjectDn(DistinguishedName::parse(text).unwrap())
    }

    #[test]
    fn a_subject_reads_back_as_the_rfc4514_text_that_matches_it() {
        let der = cert(
            &[
                (DnType::CountryName, "DE"),
                (DnType::OrganizationName, "Example, Corp"),
                (DnType::CommonName, "payments"),
            ],
            vec![],
        );
        let names = LeafNames::parse(&der).unwrap();
        assert_eq!(names.subject_text(), "CN=payments,O=Example\\, Corp,C=DE");
        // What the log shows is what the config can be written as.
        assert!(dn(names.subject_text()).matches(&der).unwrap());
        assert!(!DistinguishedName::parse(names.subject_text())
            .unwrap()
            .looks_most_general_first());
        assert!(
            DistinguishedName::parse("C=DE, O=Example Corp, CN=payments")
                .unwrap()
                .looks_most_general_first()
        );
        assert!(DistinguishedName::parse("DC=com,DC=example,CN=payments")
            .unwrap()
            .looks_most_general_first());
        assert!(!DistinguishedName::parse("CN=payments")
            .unwrap()
            .looks_most_general_first());
        assert!(!DistinguishedName::parse("O=Example Corp,CN=payments")
            .unwrap()
            .looks_most_general_first());
    }

    #[test]
    fn subject_dn_is_compared_per_rfc4514_not_as_text() {
        // rcgen writes the RDNs in push order: O first, then CN.
        let der = cert(
            &[
                (DnType::OrganizationName, "Example Corp"),
                (DnType::CommonName, "payments"),
            ],
            vec![],
        );
        for same in [
            "CN=payments,O=Example Corp",
            "cn=payments, o=Example Corp",
            "CN=PAYMENTS,O=example  corp",
            "2.5.4.3=payments,OID.2.5.4.10=Example Corp",
            "CN=pay\\6dents,O=Example\\20Corp",
            " CN = payments , O = Example Corp ",
        ] {
            assert!(dn(same).matches(&der).unwrap(), "{same}");
        }
        for other in [
            "O=Example Corp,CN=payments",
            "CN=payments",
            "CN=payments,O=Example Corp,C=DE",
            "CN=payment,O=Example Corp",
            "CN=payments+O=Example Corp",
        ] {
            assert!(!dn(other).matches(&der).unwrap(), "{other}");
        }
    }

    #[test]
    fn multi_valued_rdns_and_escapes() {
        let parsed = DistinguishedName::parse("CN=a\\,b+UID=7,O=x\\+y").unwrap();
        assert_eq!(parsed.rdns.len(), 2);
        assert_eq!(parsed.rdns[0].0, vec![("2.5.4.10".into(), "x+y".into())]);
        assert_eq!(parsed.rdns[1].0.len(), 2);
        assert!(parsed.rdns[1]
            .0
            .contains(&("2.5.4.3".to_owned(), "a,b".to_owned())));
        assert_eq!(
            DistinguishedName::parse("CN=\\c3\\a9"),
            DistinguishedName::parse("CN=é")
        );
        for (bad, error) in [
            ("", DnError::Empty),
            ("CN", DnError::MissingEquals),
            ("XYZ=1", DnError::UnknownType("XYZ".into())),
            ("CN=", DnError::EmptyValue),
            ("CN=a\\q", DnError::BadEscape),
            ("CN=a\\4", DnError::BadEscape),
            ("CN=\\ff", DnError::NotUtf8),
            ("CN=#04024869", DnError::HexValue),
        ] {
            assert_eq!(DistinguishedName::parse(bad), Err(error), "{bad}");
        }
    }

    #[test]
    fn subject_alternative_names() {
        let der = cert(
            &[(DnType::CommonName, "x")],
            vec![
                SanType::DnsName("Device-1.example.com".try_into().unwrap()),
                SanType::URI("spiffe://example.com/payments".try_into().unwrap()),
                SanType::IpAddress("10.0.0.7".parse().unwrap()),
                SanType::Rfc822Name("Ops@Example.com".try_into().unwrap()),
            ],
        );
        let yes = [
            CertificateName::SanDns("device-1.EXAMPLE.com".into()),
            CertificateName::SanUri("spiffe://example.com/payments".into()),
            CertificateName::SanIp("10.0.0.7".parse().unwrap()),
            CertificateName::SanEmail("Ops@example.COM".into()),
        ];
        let no = [
            CertificateName::SanDns("device-2.example.com".into()),
            CertificateName::SanUri("spiffe://example.com/Payments".into()),
            CertificateName::SanIp("::ffff:10.0.0.7".parse().unwrap()),
            CertificateName::SanEmail("ops@example.com".into()),
            // The CN is not a SAN.
            CertificateName::SanDns("x".into()),
        ];
        for name in yes {
            assert!(name.matches(&der).unwrap(), "{name:?}");
        }
        for name in no {
            assert!(!name.matches(&der).unwrap(), "{name:?}");
        }
        assert_eq!(
            CertificateName::SanDns("x".into()).matches(b"not a certificate"),
            Err(UnparsableCertificate)
        );
    }

    #[test]
    fn thumbprint_is_base64url_sha256() {
        // SHA-256("") is e3b0c442…
        assert_eq!(
            Thumbprint::of(b"").x5t_s256(),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
