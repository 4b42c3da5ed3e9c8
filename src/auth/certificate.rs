//! Client certificates as credentials (RFC 8705 §2) and as the key tokens are bound to
//! (RFC 8705 §3), decided per request: the TLS handshake only proved that the client
//! holds the key of the certificate it presented (tls.rs).
//!
//! - `tls_client_auth` (§2.1): the chain the client sent is validated against
//!   `tls.client_auth.ca_file` by rustls-webpki at the gateway's clock (validity period,
//!   signatures, basic constraints, and an extended key usage that, if present, includes
//!   TLS client authentication, as rustls' own client verifier requires), then the
//!   client's one registered name must be in the leaf (x509.rs).
//! - `self_signed_tls_client_auth` (§2.2): no chain validation; the leaf must be one of
//!   the client's registered certificates, compared as SHA-256 of the DER, in constant
//!   time, every registered certificate compared.
//! - Binding (§3): a certificate that authenticated the client, or, for a client using a
//!   secret, one that chains to `ca_file`, goes into the internal header as
//!   `cnf.x5t#S256`. A certificate nothing vouches for binds nothing.
//!
//! Built once per config generation, so a CA rotation applies to the next request.
//!
//! A chain is validated once per connection and configuration, not per request: the
//! signature checks cost tens of µs (about 40 µs for a P-256 leaf, BENCHMARKS.md) and a
//! connection's chain cannot change. The outcome is kept with the connection
//! ([`ChainMemo`]): a valid chain until the earliest `notAfter` in it (so expiry still
//! applies to the very second), a refused one for [`REFUSAL_MEMO_SECS`], except "not yet
//! valid", which time can change. A reload makes a new check, whose requests validate
//! again. The leaf's subject and subjectAltNames are parsed once per connection too, by
//! its first request that compares a registered name (conn.rs), and kept next to the
//! verdict: a request of a kept-alive connection compares, it never parses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{TrustAnchor, UnixTime};
use subtle::{Choice, ConstantTimeEq};

use crate::auth::registry::RegisteredClient;
use crate::config::Config;
use crate::conn::{ChainMemo, ClientCertificate};
use crate::error::CertificateRejection;
use crate::oauth::AuthMethod;
use crate::x509::Thumbprint;

/// How long a refused chain's verdict is kept for its connection: a client that keeps
/// sending a certificate nothing here vouches for (a mesh certificate next to its secret,
/// say) costs one validation per connection and minute, not one per request.
pub const REFUSAL_MEMO_SECS: i64 = 60;

/// Tells one configuration's checks from the next (a memo is only read by the check that
/// made it).
static NEXT_CHECK_ID: AtomicU64 = AtomicU64::new(1);

/// What a certificate is checked against, for one configuration.
pub struct CertificateCheck {
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
    id: u64,
    /// Chain validations actually made (memo misses).
    validations: AtomicU64,
}

impl std::fmt::Debug for CertificateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateCheck")
            .field("anchors", &self.anchors.len())
            .finish()
    }
}

impl CertificateCheck {
    pub fn new(config: &Config) -> Self {
        let anchors = config
            .tls
            .client_auth
            .as_ref()
            .map(|c| c.trust_anchors.to_vec())
            .unwrap_or_default();
        Self::with_anchors(anchors)
    }

    fn with_anchors(anchors: Vec<TrustAnchor<'static>>) -> Self {
        Self {
            anchors,
            algorithms: crate::tls::signature_algorithms(),
            id: NEXT_CHECK_ID.fetch_add(1, Ordering::Relaxed),
            validations: AtomicU64::new(0),
        }
    }

    /// How many chains this check has validated (not answered from a connection's memo).
    pub fn validations(&self) -> u64 {
        self.validations.load(Ordering::Relaxed)
    }

    /// Whether the presented chain validates against `ca_file` for TLS client
    /// authentication at `now` (Unix seconds): from the connection's memo when this check
    /// already validated it and the verdict still holds at `now`.
    pub fn validate_chain(
        &self,
        cert: &ClientCertificate,
        now: i64,
    ) -> Result<(), CertificateRejection> {
        if self.anchors.is_empty() {
            return Err(CertificateRejection::NoTrustAnchors);
        }
        if let Some(result) = cert.recall(self.id, now) {
            return result;
        }
        self.validations.fetch_add(1, Ordering::Relaxed);
        let result = self.validate_now(cert, now);
        let until = match result {
            // Valid until the first certificate in the chain expires (webpki refuses a
            // certificate after its notAfter second); a chain that does not parse for
            // that is not remembered past this second.
            Ok(()) => std::iter::once(cert.leaf())
                .chain(cert.intermediates())
                .map(|der| crate::x509::not_after(der).unwrap_or(now))
                .min()
                .unwrap_or(now),
            Err(CertificateRejection::NotYetValid) => return result,
            Err(_) => now.saturating_add(REFUSAL_MEMO_SECS),
        };
        cert.remember(ChainMemo {
            check: self.id,
            from: now,
            until,
            result,
        });
        result
    }

    fn validate_now(&self, cert: &ClientCertificate, now: i64) -> Result<(), CertificateRejection> {
        let leaf = webpki::EndEntityCert::try_from(cert.leaf())
            .map_err(|_| CertificateRejection::Unparsable)?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now.max(0) as u64));
        leaf.verify_for_usage(
            self.algorithms.all,
            &self.anchors,
            cert.intermediates(),
            time,
            // RFC 5280 §4.2.1.12: an EKU, if present, must allow TLS client authentication.
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(rejection)
    }

    /// Whether `cert` authenticates `client`, registered with a certificate method.
    /// Returns the thumbprint to bind tokens to.
    pub fn authenticate(
        &self,
        client: &RegisteredClient,
        cert: &ClientCertificate,
        now: i64,
    ) -> Result<Thumbprint, CertificateRejection> {
        match client.method {
            AuthMethod::TlsClientAuth => {
                self.validate_chain(cert, now)?;
                let name = client
                    .tls_name
                    .as_ref()
                    .ok_or(CertificateRejection::NameMismatch)?;
                // RFC 8705 §2.1.2: the certificate must carry the registered name, compared
                // with the leaf's names as the connection parsed them once.
                match cert.names() {
                    Ok(names) if name.matched_by(names) => Ok(cert.thumbprint()),
                    Ok(names) => {
                        // What the certificate carried (public, it was in the handshake),
                        // so that a name written in the wrong order can be seen and fixed.
                        tracing::info!(
                            client_id = %client.client_id,
                            certificate_subject = names.subject_text(),
                            "the client certificate does not carry the registered name"
                        );
                        Err(CertificateRejection::NameMismatch)
                    }
                    Err(_) => Err(CertificateRejection::Unparsable),
                }
            }
            AuthMethod::SelfSignedTlsClientAuth => {
                let presented = cert.thumbprint();
                // RFC 8705 §2.2: the very certificate registered; all compared, no early exit.
                let known = client
                    .certificates
                    .iter()
                    .fold(Choice::from(0), |acc, t| acc | t.0.ct_eq(&presented.0));
                if bool::from(known) {
                    Ok(presented)
                } else {
                    Err(CertificateRejection::NotRegistered)
                }
            }
            AuthMethod::ClientSecretBasic
            | AuthMethod::ClientSecretPost
            | AuthMethod::ClientSecretJwt
            | AuthMethod::PrivateKeyJwt
            | AuthMethod::None => Err(CertificateRejection::NotRegistered),
        }
    }

    /// The thumbprint to bind a secret-authenticated client's tokens to: only for a
    /// certificate that chains to `ca_file` (RFC 8705 §3 allows binding whatever the
    /// authentication method; an unvouched certificate is ignored).
    pub fn binding(&self, cert: Option<&ClientCertificate>, now: i64) -> Option<Thumbprint> {
        let cert = cert?;
        self.validate_chain(cert, now)
            .ok()
            .map(|()| cert.thumbprint())
    }
}

fn rejection(e: webpki::Error) -> CertificateRejection {
    match e {
        webpki::Error::CertExpired { .. } => CertificateRejection::Expired,
        webpki::Error::CertNotValidYet { .. } => CertificateRejection::NotYetValid,
        webpki::Error::UnknownIssuer => CertificateRejection::UnknownIssuer,
        webpki::Error::RequiredEkuNotFoundContext(_) => CertificateRejection::NotForClientAuth,
        webpki::Error::BadDer | webpki::Error::BadDerTime => CertificateRejection::Unparsable,
        _ => CertificateRejection::InvalidChain,
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use rustls_pki_types::CertificateDer;

    use super::*;
    use crate::auth::registry::Registry;
    use crate::config::ClientConfig;
    use crate::oauth::ClientId;
    use crate::x509::{CertificateName, DistinguishedName};

    /// 2025-06-01, inside the client certificates' validity (2025 to 2026).
    const JUNE_2025: i64 = 1_748_736_000;

    fn ca(name: &str) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        (Issuer::new(params, key), cert.der().clone())
    }

    fn leaf(
        cn: &str,
        eku: ExtendedKeyUsagePurpose,
        issuer: Option<&Issuer<'static, KeyPair>>,
    ) -> ClientCertificate {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 1);
        let cert = match issuer {
            Some(i) => params.signed_by(&key, i).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        ClientCertificate::from_chain(Some(&[cert.der().clone()])).unwrap()
    }

    fn client(method: AuthMethod, certificates: Vec<Thumbprint>) -> ClientConfig {
        ClientConfig {
            client_id: ClientId::new("c"),
            auth_method: method,
            algorithms: Vec::new(),
            secrets: Vec::new(),
            tls_name: (method == AuthMethod::TlsClientAuth).then(|| {
                CertificateName::SubjectDn(DistinguishedName::parse("CN=payments").unwrap())
            }),
            certificates,
            grant_types: None,
            key_set: None,
            asymmetric_algorithms: Vec::new(),
        }
    }

    #[test]
    fn tls_client_auth_needs_a_valid_chain_and_the_registered_name() {
        let (issuer, ca_der) = ca("client CA");
        let (other_issuer, _) = ca("another CA");
        let check = CertificateCheck::with_anchors(vec![webpki::anchor_from_trusted_cert(&ca_der)
            .unwrap()
            .to_owned()]);
        let registry = Registry::new(&[client(AuthMethod::TlsClientAuth, Vec::new())]);
        let c = registry.get("c").unwrap();
        let client_auth = ExtendedKeyUsagePurpose::ClientAuth;
        let good = leaf("payments", client_auth.clone(), Some(&issuer));
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025),
            Ok(good.thumbprint())
        );
        // Time is the gateway's clock, not the wall clock.
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025 + 365 * 86_400),
            Err(CertificateRejection::Expired)
        );
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025 - 365 * 86_400),
            Err(CertificateRejection::NotYetValid)
        );
        for (cert, why) in [
            (
                leaf("payments", client_auth.clone(), Some(&other_issuer)),
                CertificateRejection::UnknownIssuer,
            ),
            (
                leaf("payments", client_auth.clone(), None),
                CertificateRejection::UnknownIssuer,
            ),
            (
                leaf(
                    "payments",
                    ExtendedKeyUsagePurpose::ServerAuth,
                    Some(&issuer),
                ),
                CertificateRejection::NotForClientAuth,
            ),
            (
                leaf("someone", client_auth.clone(), Some(&issuer)),
                CertificateRejection::NameMismatch,
            ),
        ] {
            assert_eq!(check.authenticate(c, &cert, JUNE_2025), Err(why));
        }
        // Binding: a certificate chaining to ca_file, for any client; nothing else.
        assert_eq!(
            check.binding(Some(&good), JUNE_2025),
            Some(good.thumbprint())
        );
        let stranger = leaf("payments", client_auth, None);
        assert_eq!(check.binding(Some(&stranger), JUNE_2025), None);
        assert_eq!(check.binding(None, JUNE_2025), None);
        // Without a CA file, nothing chains.
        let no_ca = CertificateCheck::with_anchors(Vec::new());
        assert_eq!(
            no_ca.authenticate(c, &good, JUNE_2025),
            Err(CertificateRejection::NoTrustAnchors)
        );
        assert_eq!(no_ca.binding(Some(&good), JUNE_2025), None);
    }

    #[test]
    fn a_connections_chain_is_validated_once_per_configuration_while_the_verdict_holds() {
        let (issuer, ca_der) = ca("client CA");
        let anchors = || {
            vec![webpki::anchor_from_trusted_cert(&ca_der)
                .unwrap()
                .to_owned()]
        };
        let check = CertificateCheck::with_anchors(anchors());
        let registry = Registry::new(&[client(AuthMethod::TlsClientAuth, Vec::new())]);
        let c = registry.get("c").unwrap();
        let client_auth = ExtendedKeyUsagePurpose::ClientAuth;
        let good = leaf("payments", client_auth.clone(), Some(&issuer));
        // 2026-01-01T00:00:00Z, the leaf's notAfter.
        let not_after = 1_767_225_600;
        assert_eq!(crate::x509::not_after(good.leaf()), Some(not_after));

        // Every request of the connection, and the binding, after one validation.
        for now in [JUNE_2025, JUNE_2025 + 1, not_after] {
            assert_eq!(check.authenticate(c, &good, now), Ok(good.thumbprint()));
            assert_eq!(check.binding(Some(&good), now), Some(good.thumbprint()));
        }
        assert_eq!(check.validations(), 1);
        // Past notAfter the memo no longer holds: validated again, and expired.
        assert_eq!(
            check.authenticate(c, &good, not_after + 1),
            Err(CertificateRejection::Expired)
        );
        assert_eq!(check.validations(), 2);
        // An earlier time than the verdict's is not covered by it either.
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025 - 365 * 86_400),
            Err(CertificateRejection::NotYetValid)
        );
        assert_eq!(check.validations(), 3);
        // "Not yet valid" is never remembered: time can change it.
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025 - 365 * 86_400),
            Err(CertificateRejection::NotYetValid)
        );
        assert_eq!(check.validations(), 4);
        assert_eq!(
            check.authenticate(c, &good, JUNE_2025),
            Ok(good.thumbprint())
        );
        assert_eq!(check.validations(), 5);

        // Another configuration (a reload) never reads this one's memo.
        let reloaded = CertificateCheck::with_anchors(anchors());
        assert_eq!(
            reloaded.authenticate(c, &good, JUNE_2025),
            Ok(good.thumbprint())
        );
        assert_eq!(reloaded.validations(), 1);
        let no_ca = CertificateCheck::with_anchors(Vec::new());
        assert_eq!(
            no_ca.authenticate(c, &good, JUNE_2025),
            Err(CertificateRejection::NoTrustAnchors)
        );

        // A refused chain: remembered for REFUSAL_MEMO_SECS, then validated again.
        let stranger = leaf("payments", client_auth, None);
        let before = check.validations();
        for now in [JUNE_2025, JUNE_2025 + REFUSAL_MEMO_SECS] {
            assert_eq!(check.binding(Some(&stranger), now), None);
            assert_eq!(
                check.validate_chain(&stranger, now),
                Err(CertificateRejection::UnknownIssuer)
            );
        }
        assert_eq!(check.validations(), before + 1);
        assert_eq!(
            check.validate_chain(&stranger, JUNE_2025 + REFUSAL_MEMO_SECS + 1),
            Err(CertificateRejection::UnknownIssuer)
        );
        assert_eq!(check.validations(), before + 2);
    }

    /// The leaf's subject and SANs are parsed by the connection's first request that
    /// compares a name, and every later request of the connection (a clone of the same
    /// extension) compares with that parse; expiry and reloads are judged as before.
    #[test]
    fn a_connections_leaf_names_are_parsed_once_and_kept() {
        let (issuer, ca_der) = ca("client CA");
        let anchors = || {
            vec![webpki::anchor_from_trusted_cert(&ca_der)
                .unwrap()
                .to_owned()]
        };
        let check = CertificateCheck::with_anchors(anchors());
        let registry = Registry::new(&[client(AuthMethod::TlsClientAuth, Vec::new())]);
        let c = registry.get("c").unwrap();
        let first = leaf(
            "payments",
            ExtendedKeyUsagePurpose::ClientAuth,
            Some(&issuer),
        );
        // Binding a secret client's tokens validates the chain and reads no name.
        assert_eq!(
            check.binding(Some(&first), JUNE_2025),
            Some(first.thumbprint())
        );
        assert!(!first.names_parsed());
        assert_eq!(
            check.authenticate(c, &first, JUNE_2025),
            Ok(first.thumbprint())
        );
        assert!(first.names_parsed());
        assert_eq!(
            first.names(),
            crate::x509::LeafNames::parse(first.leaf())
                .as_ref()
                .map_err(|e| *e)
        );
        // The connection's next request: the same names, already parsed.
        let next = first.clone();
        assert!(next.names_parsed());
        assert_eq!(
            check.authenticate(c, &next, JUNE_2025),
            Ok(next.thumbprint())
        );
        // Expiry at the injected clock, as before.
        let not_after = 1_767_225_600;
        assert_eq!(
            check.authenticate(c, &next, not_after + 1),
            Err(CertificateRejection::Expired)
        );
        // A reload registering another name: validated again, compared with the kept parse.
        let reloaded = CertificateCheck::with_anchors(anchors());
        let mut renamed = client(AuthMethod::TlsClientAuth, Vec::new());
        renamed.tls_name = Some(CertificateName::SubjectDn(
            DistinguishedName::parse("CN=someone").unwrap(),
        ));
        let renamed = Registry::new(&[renamed]);
        assert_eq!(
            reloaded.authenticate(renamed.get("c").unwrap(), &next, JUNE_2025),
            Err(CertificateRejection::NameMismatch)
        );
        assert_eq!(reloaded.validations(), 1);
        assert_eq!(
            reloaded.authenticate(c, &next, JUNE_2025),
            Ok(next.thumbprint())
        );
        assert_eq!(reloaded.validations(), 1);
    }

    #[test]
    fn self_signed_clients_present_a_registered_certificate() {
        let client_auth = ExtendedKeyUsagePurpose::ClientAuth;
        let old = leaf("device", client_auth.clone(), None);
        let new = leaf("device", client_auth.clone(), None);
        let other = leaf("device", client_auth, None);
        let registry = Registry::new(&[client(
            AuthMethod::SelfSignedTlsClientAuth,
            vec![old.thumbprint(), new.thumbprint()],
        )]);
        let c = registry.get("c").unwrap();
        let check = CertificateCheck::with_anchors(Vec::new());
        // Rotation: both registered certificates; no chain and no expiry checked.
        for cert in [&old, &new] {
            assert_eq!(
                check.authenticate(c, cert, i64::MAX / 2),
                Ok(cert.thumbprint())
            );
        }
        assert_eq!(
            check.authenticate(c, &other, JUNE_2025),
            Err(CertificateRejection::NotRegistered)
        );
    }
}
