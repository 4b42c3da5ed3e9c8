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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    /// `upstream.url`'s host and port (configuration, not request data).
    upstream: String,
}

/// The operations series.
#[derive(Debug, Default)]
pub struct Operations {
    certificate_expiry: Family<ExpiryLabels, Gauge>,
    /// Absent until the first probe, so that a gateway without `readiness.upstream` never
    /// reports a down upstream it does not probe.
    upstream_up: Family<UpstreamLabels, Gauge>,
    /// The upstream of the last probe: another one (a reload) replaces the series.
    probed: std::sync::Mutex<String>,
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
            "1 if the last readiness probe of the upstream succeeded, else 0 (only with readiness.upstream), by upstream host:port",
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
    pub fn upstream_probe(&self, upstream: &str, up: bool) {
        let mut probed = self
            .probed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *probed != upstream {
            self.upstream_up.clear();
            upstream.clone_into(&mut probed);
        }
        self.upstream_up
            .get_or_create(&UpstreamLabels {
                upstream: upstream.to_owned(),
            })
            .set(i64::from(up));
    }
}
