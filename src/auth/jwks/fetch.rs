//! One fetch of a client's `jwks_uri` (docs/design.md §2.14): HTTPS only, bounded in time
//! (`jwks_fetch.timeout`, connecting included) and size (`jwks_fetch.max_size`), no
//! redirect followed (the keys must come from the URL registered for the client), a `200`
//! with a JWK Set or nothing. Keys the set holds that cannot verify (private, `use` other
//! than `sig`, another type, a repeated `kid`) are dropped and counted; the rest are the
//! client's keys. The TLS trust anchors are `jwks_fetch.ca_file`, or the system's roots.
//!
//! HTTP is hyper's client, one connection per fetch: fetches are rare (a refresh every few
//! minutes, an unknown `kid` at most once per `min_refetch_interval`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use secretgate_verify::Jwk;
use tokio::net::TcpStream;

use crate::config::JwksFetchConfig;

/// Why a fetch failed. Fixed text: never a body, never a key.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("not an https URL")]
    NotHttps,
    #[error("no trust anchors: {0}")]
    Roots(String),
    #[error("did not complete within jwks_fetch.timeout")]
    Timeout,
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    #[error("TLS handshake failed")]
    Tls(#[source] std::io::Error),
    #[error("HTTP exchange failed")]
    Http(#[source] hyper::Error),
    #[error("answered {0} with a redirect, which is not followed")]
    Redirect(StatusCode),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("larger than jwks_fetch.max_size")]
    TooLarge,
    #[error("not a JWK Set")]
    NotJwks,
}

/// What a fetch brought back.
#[derive(Debug)]
pub struct Fetched {
    pub keys: Vec<Jwk>,
    /// Keys in the set that were dropped (see the module documentation).
    pub ignored: usize,
    /// `Cache-Control: max-age`, if the response had one.
    pub max_age: Option<Duration>,
}

/// The TLS configuration fetches use: `ca_pem`'s anchors, or the system's roots.
pub fn tls_config(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs =
                crate::tls::certificates_from_pem(pem, std::path::Path::new("jwks_fetch.ca_file"))
                    .map_err(|e| FetchError::Roots(e.to_string()))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| FetchError::Roots(e.to_string()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(FetchError::Roots(
                    "the system has no root certificates".into(),
                ));
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| FetchError::Roots(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Fetches and parses the JWK Set at `uri`.
pub async fn fetch(
    uri: &str,
    cfg: &JwksFetchConfig,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Fetched, FetchError> {
    tokio::time::timeout(cfg.timeout, fetch_unbounded(uri, cfg.max_size, tls))
        .await
        .map_err(|_| FetchError::Timeout)?
}

async fn fetch_unbounded(
    uri: &str,
    max_size: usize,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Fetched, FetchError> {
    let uri: http::Uri = uri.parse().map_err(|_| FetchError::NotHttps)?;
    if uri.scheme_str() != Some("https") {
        return Err(FetchError::NotHttps);
    }
    let host = uri.host().ok_or(FetchError::NotHttps)?.to_owned();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| FetchError::NotHttps)?;
    let tcp = TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port))
        .await
        .map_err(FetchError::Connect)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(FetchError::Tls)?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(FetchError::Http)?;
    let conn = tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let req = Request::get(path)
        .header(http::header::HOST, authority)
        .header(
            http::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .header(
            http::header::USER_AGENT,
            concat!("secretgate/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|_| FetchError::NotHttps)?;
    let res = send.send_request(req).await.map_err(FetchError::Http)?;
    let status = res.status();
    // The keys must come from the URL registered for the client: never follow elsewhere.
    if status.is_redirection() {
        conn.abort();
        return Err(FetchError::Redirect(status));
    }
    if status != StatusCode::OK {
        conn.abort();
        return Err(FetchError::Status(status));
    }
    let declared = res
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_size) {
        conn.abort();
        return Err(FetchError::TooLarge);
    }
    let max_age = max_age(res.headers());
    let mut body = res.into_body();
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(FetchError::Http)?;
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
            if read.len() > max_size {
                conn.abort();
                return Err(FetchError::TooLarge);
            }
        }
    }
    conn.abort();
    let parsed = secretgate_verify::jwk::parse_set(&read).map_err(|_| FetchError::NotJwks)?;
    let total = parsed.len();
    let keys: Vec<Jwk> = parsed.into_iter().filter_map(Result::ok).collect();
    Ok(Fetched {
        ignored: total - keys.len(),
        keys,
        max_age,
    })
}

/// `Cache-Control: max-age=N` (RFC 9111 §5.2.2.1), if present and well formed.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|d| {
            let (name, value) = d.trim().split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("max-age")
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        })
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = http::HeaderMap::new();
        assert_eq!(max_age(&h), None);
        h.insert("cache-control", "public, max-age=600".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(600)));
        h.insert("cache-control", "no-cache, MAX-AGE=\"60\"".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(60)));
        h.insert("cache-control", "max-age=x".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }
}
