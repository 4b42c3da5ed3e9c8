//! The TLS listener and connection handling, and [`serve`], the entry point used by the
//! binary and the tests.
//!
//! Accept → TLS handshake (bounded by `limits.header_read_timeout`) → hyper-util `auto`
//! connection (HTTP/1.1 or HTTP/2 as ALPN chose; HTTP/1 header reads bounded too) → the
//! stack. On shutdown: stop accepting, mark not-ready, ask every connection to finish
//! gracefully (HTTP/1 closes after the in-flight response, HTTP/2 sends GOAWAY) and wait up
//! to `shutdown_grace`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::replay::{MokaReplayStore, ReplayStore};
use crate::auth::Authenticator;
use crate::config::Config;
use crate::shutdown::Lifecycle;
use crate::sign::Signer;
use crate::stack;
use crate::tls::{self, CertResolver, TlsError};
use crate::upstream::{ClientAddr, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS setup failed")]
    Tls(#[from] TlsError),
    #[error("internal_header.keys is empty")]
    NoSigningKey,
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A gateway ready to serve: certificates loaded, registry and keys prepared.
pub struct Gateway {
    config: Config,
    tls: TlsAcceptor,
    authenticator: Arc<Authenticator>,
    signer: Arc<Signer>,
    lifecycle: Arc<Lifecycle>,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Gateway, ServeError> {
        let key = tls::load_certified_key(&config.tls.cert_file, &config.tls.key_file)?;
        let resolver = Arc::new(CertResolver::new(key));
        let tls = TlsAcceptor::from(tls::server_config(resolver)?);
        let replay: Arc<dyn ReplayStore> =
            Arc::new(MokaReplayStore::new(config.assertion.replay_capacity));
        let authenticator = Arc::new(Authenticator::new(&config, replay));
        let signer = Arc::new(
            Signer::new(&config.internal_header, &config.public_url)
                .ok_or(ServeError::NoSigningKey)?,
        );
        Ok(Gateway {
            config,
            tls,
            authenticator,
            signer,
            lifecycle: Arc::new(Lifecycle::default()),
        })
    }

    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.lifecycle.clone()
    }

    /// Serves TLS connections from `listener` (and admin requests from `admin`, if given)
    /// until `shutdown` resolves, then drains.
    pub async fn serve(
        self,
        listener: TcpListener,
        admin: Option<TcpListener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let config = &self.config;
        let svc = stack::build(
            config,
            stack::Parts {
                authenticator: self.authenticator.clone(),
                signer: self.signer.clone(),
                upstream: Upstream::new(&config.upstream),
            },
        );
        let admin_task = admin.map(|l| crate::admin::spawn(l, self.lifecycle.clone()));

        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let builder = Arc::new(builder);
        let handshake_timeout = config.limits.header_read_timeout;

        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        self.lifecycle.set_ready();
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "listening (TLS, h2 + http/1.1)");
        }
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and friends: keep serving what we have; retry shortly
                        // instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.tls.clone();
            let builder = builder.clone();
            let svc = svc.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let mut req = req.map(|b| b.map_err(crate::BodyError::new).boxed_unsync());
                    req.extensions_mut().insert(ClientAddr(peer));
                    svc.clone().oneshot(req)
                });
                let conn = builder
                    .serve_connection(TokioIo::new(tls), hyper_svc)
                    .into_owned();
                if let Err(e) = watcher.watch(conn).await {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }

        drop(listener);
        self.lifecycle.start_draining();
        tracing::info!(grace = ?config.shutdown_grace, "draining in-flight requests");
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("shutdown_grace elapsed with connections still open");
        }
        if let Some(task) = admin_task {
            task.abort();
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Serves `config` on `listener` until `shutdown` resolves, then drains and returns.
/// The admin listener, if configured, is bound here.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let admin = match &config.admin {
        Some(a) => Some(
            TcpListener::bind(a.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: a.listen,
                    source,
                })?,
        ),
        None => None,
    };
    Gateway::new(config)?.serve(listener, admin, shutdown).await
}
