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

/// Fetches and parses the JWK Set at `uri` (HTTPS only: a client's keys).
pub async fn fetch(
    uri: &str,
    cfg: &JwksFetchConfig,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Fetched, FetchError> {
    let (body, max_age) =
        tokio::time::timeout(cfg.timeout, fetch_unbounded(uri, cfg.max_size, Some(tls)))
            .await
            .map_err(|_| FetchError::Timeout)??;
    parse(&body, max_age)
}

/// The body of a JWK Set URL for the `verify-header --jwks-url` diagnostic, which also
/// reads the admin listener's set over plain HTTP (an `https://` URL uses `ca_pem` or the
/// system's roots).
pub async fn fetch_any(uri: &str, cfg: &JwksFetchConfig) -> Result<Bytes, FetchError> {
    let tls = if uri.starts_with("https://") {
        Some(tls_config(cfg.ca_pem.as_deref())?)
    } else {
        None
    };
    tokio::time::timeout(cfg.timeout, fetch_unbounded(uri, cfg.max_size, tls))
        .await
        .map_err(|_| FetchError::Timeout)?
        .map(|(body, _)| body)
}

/// One exchange: over TLS with `tls`, or over plain HTTP when `tls` is `None` (only what
/// [`fetch_any`] allows).
async fn fetch_unbounded(
    uri: &str,
    max_size: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(Bytes, Option<Duration>), FetchError> {
    let uri: http::Uri = uri.parse().map_err(|_| FetchError::NotHttps)?;
    let default_port = match (uri.scheme_str(), &tls) {
        (Some("https"), Some(_)) => 443,
        (Some("http"), None) => 80,
        _ => return Err(FetchError::NotHttps),
    };
    let host = uri.host().ok_or(FetchError::NotHttps)?.to_owned();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(default_port);
    let tcp = TcpStream::connect((bare.as_str(), port))
        .await
        .map_err(FetchError::Connect)?;
    let (mut send, conn) = match tls {
        Some(tls) => {
            let name = ServerName::try_from(bare).map_err(|_| FetchError::NotHttps)?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(FetchError::Tls)?;
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(FetchError::Http)?;
            (send, tokio::spawn(async move { conn.await.map(|_| ()) }))
        }
        None => {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(FetchError::Http)?;
            (send, tokio::spawn(async move { conn.await.map(|_| ()) }))
        }
    };
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
    Ok((read.freeze(), max_age))
}

/// The keys of a fetched set: those that verify, and how many were dropped.
fn parse(body: &[u8], max_age: Option<Duration>) -> Result<Fetched, FetchError> {
    let parsed = secretgate_verify::jwk::parse_set(body).map_err(|_| FetchError::NotJwks)?;
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
