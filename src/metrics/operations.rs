//! Series for running the gateway rather than for its requests: when the certificates it
//! loaded expire, and whether the upstream answered the readiness probe. Set when a config
//! is loaded (start and every reload) and by the probe (readiness.rs), never per request.
//!
//! Labels: `kind` is a closed set; `client_id` only names a registered
//! `self_signed_tls_client_auth` client, whose set is bounded by the config. No
//! certificate content (subject, serial) becomes a label.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::config::{CertificateExpiry, CertificateKind};

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExpiryLabels {
    kind: &'static str,
    /// Empty (so absent in PromQL) for the server chain and the client CA.
    client_id: String,
}

/// The operations series.
#[derive(Debug, Default)]
pub struct Operations {
    certificate_expiry: Family<ExpiryLabels, Gauge>,
    upstream_up: Gauge,
}

impl Operations {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Earliest notAfter (Unix time) of the certificates loaded, by kind (server, client_ca, client_certificate: a registered self-signed client's)",
            self.certificate_expiry.clone(),
        );
        registry.register(
            "upstream_up",
            "1 if the last readiness probe of the upstream succeeded, else 0 (only with readiness.upstream)",
            self.upstream_up.clone(),
        );
    }

    /// Replaces the expiry series with those of the config just loaded: a certificate no
    /// longer configured stops being reported.
    pub fn certificates_loaded(&self, expiries: &[CertificateExpiry]) {
        self.certificate_expiry.clear();
        for e in expiries {
            let labels = ExpiryLabels {
                kind: e.kind.as_str(),
                client_id: match e.kind {
                    CertificateKind::ClientCertificate => e
                        .client_id
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    CertificateKind::Server | CertificateKind::ClientCa => String::new(),
                },
            };
            let gauge = self.certificate_expiry.get_or_create(&labels);
            // Two entries under one label set (cannot happen today): the earlier counts.
            let current = gauge.get();
            if current == 0 || e.not_after < current {
                gauge.set(e.not_after);
            }
        }
    }

    /// The outcome of one readiness probe of the upstream.
    pub fn upstream_probe(&self, up: bool) {
        self.upstream_up.set(i64::from(up));
    }
}
