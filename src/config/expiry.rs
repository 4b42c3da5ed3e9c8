//! When the certificates the config loads stop being valid, noted as they are read, for
//! the `secretgate_certificate_expiry_timestamp_seconds` gauge (docs/design.md §8.4): the
//! server chain, the client CA file, and each `self_signed_tls_client_auth` client's
//! registered certificates. Only times and kinds are kept, never certificate contents.

use crate::oauth::ClientId;

use super::validate::Validator;

/// Which certificates an expiry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    /// `tls.cert_file`: the chain the gateway serves.
    Server,
    /// `tls.client_auth.ca_file`.
    ClientCa,
    /// A `self_signed_tls_client_auth` client's `certificates`.
    ClientCertificate,
}

impl CertificateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateKind::Server => "server",
            CertificateKind::ClientCa => "client_ca",
            CertificateKind::ClientCertificate => "client_certificate",
        }
    }
}

/// The earliest `notAfter` among the certificates of one kind (and client): the first
/// moment something stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    pub kind: CertificateKind,
    /// The registered client, for [`CertificateKind::ClientCertificate`].
    pub client_id: Option<ClientId>,
    /// Unix seconds.
    pub not_after: i64,
}

impl Validator<'_> {
    /// Notes the earliest expiry of `ders` (certificates that do not parse are left to
    /// the checks that read them).
    pub(super) fn note_expiry<'d>(
        &mut self,
        kind: CertificateKind,
        client_id: Option<&str>,
        ders: impl IntoIterator<Item = &'d [u8]>,
    ) {
        let earliest = ders.into_iter().filter_map(crate::x509::not_after).min();
        if let Some(not_after) = earliest {
            self.expiries.push(CertificateExpiry {
                kind,
                client_id: client_id.map(ClientId::new),
                not_after,
            });
        }
    }
}
