//! TLS termination: certificates from PEM files (rustls-pki-types), a rustls server config
//! with TLS 1.2 and 1.3 only and ALPN `h2` / `http/1.1`, a certificate resolver whose
//! key can be swapped atomically (for reloads) without touching live connections, and the
//! client-certificate verifier (RFC 8705).
//!
//! Client certificates (docs/design.md §2.11): when `tls.client_auth` is set, the server
//! asks for one in every handshake but never requires it, so secret-based clients keep
//! working on the same listener. The handshake accepts any certificate whose holder proves
//! possession of its key (the CertificateVerify signature is checked with the provider's
//! algorithms); chain validation against `tls.client_auth.ca_file`, names and registered
//! self-signed certificates are decided per request by the auth layer, against the
//! configuration of that request and the injected clock. So a `ca_file` and self-signed
//! clients can coexist (the handshake cannot know which client is calling), and a CA
//! rotation applies to the very next request. Whether certificates are requested follows
//! reloads too ([`ClientCertRequest::set`]).
//!
//! Invariant: a bad certificate or key is an error naming the file, never a panic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;

use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::UnixTime;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read certificates from {path}")]
    ReadCertificates {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot read a private key from {path}")]
    ReadKey {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("private key in {path} is not usable")]
    UnusableKey {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the first certificate in {path} cannot be parsed")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("private key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS configuration rejected")]
    Config(#[source] rustls::Error),
    #[error("a certificate in {path} is not usable as a trust anchor")]
    BadTrustAnchor {
        path: PathBuf,
        #[source]
        source: webpki::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The signature algorithms certificates and handshakes are verified with: the provider's.
pub fn signature_algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms
}

/// Every certificate in PEM text read from `path` (at least one).
pub fn certificates_from_pem(
    pem: &[u8],
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::ReadCertificates {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Trust anchors (a CA file) from PEM text read from `path`.
pub fn trust_anchors_from_pem(
    pem: &[u8],
    path: &Path,
) -> Result<Vec<TrustAnchor<'static>>, TlsError> {
    certificates_from_pem(pem, path)?
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map(|a| a.to_owned())
                .map_err(|source| TlsError::BadTrustAnchor {
                    path: path.to_path_buf(),
                    source,
                })
        })
        .collect()
}

/// Loads a certificate chain and its private key, checking that they belong together.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    certified_key_from_pem(&read(cert_path)?, &read(key_path)?, cert_path, key_path)
}

/// Parses a PEM certificate chain and PEM private key already read from the named files.
pub fn certified_key_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let certs = certificates_from_pem(cert_pem, cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::ReadKey {
        path: key_path.to_path_buf(),
        source,
    })?;
    certified_key(certs, key, cert_path, key_path)
}

/// Builds a [`CertifiedKey`] from DER parts (also used by the demo's generated certificate).
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnusableKey {
            path: key_path.to_path_buf(),
            source,
        })?;
    let ck = CertifiedKey::new(certs, signing_key);
    match ck.keys_match() {
        Ok(()) => Ok(ck),
        // The key could not be compared (unknown SPKI encoding): rustls will still refuse
        // a mismatched pair at handshake; do not block start-up on it.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(ck),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_path_buf(),
                key: key_path.to_path_buf(),
            })
        }
        Err(source) => Err(TlsError::BadCertificate {
            path: cert_path.to_path_buf(),
            source,
        }),
    }
}

/// Serves the current certificate; [`CertResolver::set`] swaps it atomically for the
/// handshakes that follow (established connections keep theirs). Lock-free on the
/// handshake path.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<CertifiedKey>,
}

impl CertResolver {
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwap::new(key),
        }
    }

    pub fn set(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Asks for a client certificate when `tls.client_auth` is set, never requires one, and
/// accepts any certificate whose holder signed the handshake with its key; what the
/// certificate is worth is decided per request (module docs).
#[derive(Debug)]
pub struct ClientCertRequest {
    requested: AtomicBool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertRequest {
    pub fn new(requested: bool) -> Self {
        Self {
            requested: AtomicBool::new(requested),
            algorithms: signature_algorithms(),
        }
    }

    /// Whether handshakes from now on ask for a certificate (on reload).
    pub fn set(&self, requested: bool) {
        self.requested.store(requested, Ordering::Relaxed);
    }
}

impl ClientCertVerifier for ClientCertRequest {
    fn offer_client_auth(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    // RFC 8705 §2: the certificate is optional at the handshake, so that clients using
    // secrets keep working on the same listener.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No CA names are sent (RFC 8446 §4.2.4 makes them optional): a self-signed client
    /// certificate is as welcome as one from `ca_file`, and the list would not follow a
    /// reload. Clients configured with one certificate send it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    /// Deferred: chain, expiry, key usage and registration are checked per request by
    /// the auth layer (auth/certificate.rs), against that request's configuration.
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    // Proof of possession: the client signed the handshake with the certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A server config: TLS 1.3 and 1.2 only, ALPN h2 then http/1.1, client certificates as
/// `client_certs` says.
pub fn server_config(
    resolver: Arc<CertResolver>,
    client_certs: Arc<ClientCertRequest>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(client_certs)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
