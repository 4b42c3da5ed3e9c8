//! A client's `jwks_uri` for the `private_key_jwt` tests: HTTPS on 127.0.0.1:0 with a
//! certificate from a CA of its own (a second [`Pki`], made at run time), so the gateway
//! trusts it only through `jwks_fetch.ca_file`. It answers `GET /jwks.json` as the test
//! says ([`Serve`]), and `GET /moved.json` with the current set (the target of its
//! redirect: a request there means the redirect was followed). Every request is counted by
//! path; [`JwksServer::stop`] closes the port (connections are refused from then on).

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::support::Pki;

/// What `GET /jwks.json` answers.
#[derive(Clone, Debug)]
pub enum Serve {
    /// `200` with the set (and `Cache-Control: max-age=N` when given).
    Set(String, Option<u64>),
    /// `302` to `/moved.json` on this server, which serves the last [`Serve::Set`].
    Redirect,
    /// `200` with the last set padded with spaces to `size` bytes (still a valid JWK Set),
    /// with a `Content-Length` when `declared`, else chunked in 1 KiB pieces.
    Oversized { size: usize, declared: bool },
}

struct State {
    serve: Serve,
    /// The last set served, for the redirect target and the padded body.
    set: String,
    /// Every request's path, in order.
    paths: Vec<String>,
}

pub struct JwksServer {
    /// The server's own CA (`pki.ca_file` goes in `jwks_fetch.ca_file`).
    pub pki: Pki,
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(serve: Serve) -> JwksServer {
        let pki = Pki::generate();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.cert_file)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&pki.key_file).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let set = match &serve {
            Serve::Set(s, _) => s.clone(),
            _ => r#"{"keys":[]}"#.to_owned(),
        };
        let state = Arc::new(Mutex::new(State {
            serve,
            set,
            paths: Vec::new(),
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let res = answer(&state, req.uri().path());
                        async move { Ok::<_, Infallible>(res) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        JwksServer {
            pki,
            port,
            state,
            task,
        }
    }

    /// The URL to register as the client's `jwks_uri`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/jwks.json", self.port)
    }

    /// What `/jwks.json` answers from now on.
    pub fn serve(&self, serve: Serve) {
        let mut state = self.state.lock().unwrap();
        if let Serve::Set(s, _) = &serve {
            state.set = s.clone();
        }
        state.serve = serve;
    }

    /// How many requests reached `path` so far.
    pub fn fetches(&self, path: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.paths.iter().filter(|p| *p == path).count()
    }

    /// Closes the listening socket: fetches are refused from now on.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(state: &Mutex<State>, path: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let mut state = state.lock().unwrap();
    state.paths.push(path.to_owned());
    let json = |body: String, max_age: Option<u64>| {
        let mut b = Response::builder()
            .status(200)
            .header("content-type", "application/jwk-set+json");
        if let Some(age) = max_age {
            b = b.header("cache-control", format!("max-age={age}"));
        }
        b.body(Full::new(Bytes::from(body)).boxed()).unwrap()
    };
    match (path, &state.serve) {
        ("/moved.json", _) => json(state.set.clone(), None),
        ("/jwks.json", Serve::Set(set, max_age)) => json(set.clone(), *max_age),
        ("/jwks.json", Serve::Redirect) => Response::builder()
            .status(302)
            .header("location", "/moved.json")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
        ("/jwks.json", Serve::Oversized { size, declared }) => {
            let mut body = state.set.clone().into_bytes();
            body.resize((*size).max(body.len()), b' ');
            if *declared {
                return json(String::from_utf8(body).unwrap(), None);
            }
            let chunks: Vec<Result<Frame<Bytes>, Infallible>> = body
                .chunks(1024)
                .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                .collect();
            Response::builder()
                .status(200)
                .header("content-type", "application/jwk-set+json")
                .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
                .unwrap()
        }
        _ => Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap(),
    }
}
