//! Client certificates for mutual TLS (RFC 8705): a CA, certificates it issues (or
//! self-signed ones), made at run time with rcgen into a temporary directory, and an
//! HTTP client that presents one to the gateway.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::{Client, Gateway};

/// A certificate authority for client certificates.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }
}

/// A client certificate and its key, as files (for curl and Python) and as DER.
#[derive(Clone)]
pub struct ClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: CertificateDer<'static>,
    pub key_der: Vec<u8>,
}

impl ClientCert {
    /// `subject` as (CN, O); `expired` ends its validity in 2020.
    pub fn make(
        dir: &Path,
        name: &str,
        subject: (&str, &str),
        issuer: Option<&Ca>,
        expired: bool,
    ) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, subject.1);
        params
            .distinguished_name
            .push(DnType::CommonName, subject.0);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2019, 1, 1);
            params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        }
        let cert = match issuer {
            Some(ca) => params.signed_by(&key, &ca.issuer).unwrap(),
            None => params.self_signed(&key).unwrap(),
        };
        let cert_file = dir.join(format!("{name}.crt"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        ClientCert {
            cert_file,
            key_file,
            der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// `x5t#S256` computed here, from the DER rcgen made.
    pub fn x5t(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }
}

/// An HTTP client over TLS presenting `cert` (or none), HTTP/2 or HTTP/1.1.
pub async fn client_with_cert(gw: &Gateway, cert: Option<&ClientCert>, h2: bool) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(gw.pki.ca_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match cert {
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![if h2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let io = TokioIo::new(tls);
    if h2 {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Client::H2(send)
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Client::H1(send)
    }
}
