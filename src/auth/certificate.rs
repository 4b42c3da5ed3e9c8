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

use std::time::Duration;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{TrustAnchor, UnixTime};
use subtle::{Choice, ConstantTimeEq};

use crate::auth::registry::RegisteredClient;
use crate::config::Config;
use crate::conn::ClientCertificate;
use crate::error::CertificateRejection;
use crate::oauth::AuthMethod;
use crate::x509::Thumbprint;

/// What a certificate is checked against, for one configuration.
pub struct CertificateCheck {
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
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
        Self {
            anchors,
            algorithms: crate::tls::signature_algorithms(),
        }
    }

    /// Whether the presented chain validates against `ca_file` for TLS client
    /// authentication at `now` (Unix seconds).
    pub fn validate_chain(
        &self,
        cert: &ClientCertificate,
        now: i64,
    ) -> Result<(), CertificateRejection> {
        if self.anchors.is_empty() {
            return Err(CertificateRejection::NoTrustAnchors);
        }
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
                // RFC 8705 §2.1.2: the certificate must carry the registered name.
                match name.matches(cert.leaf()) {
                    Ok(true) => Ok(cert.thumbprint()),
                    Ok(false) => Err(CertificateRejection::NameMismatch),
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
            | AuthMethod::ClientSecretJwt => Err(CertificateRejection::NotRegistered),
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
