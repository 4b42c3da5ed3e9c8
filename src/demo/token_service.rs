//! The demo's token service: a legacy server as the gateway expects one to behave. It
//! verifies the internal header on every back-channel request (as a real upstream must,
//! README "Upstream integration") and does the parts of OAuth the gateway leaves to it:
//! - `GET /oauth2/authorize`: issues a single-use code bound to the client, the
//!   redirect URI and the PKCE challenge (S256), and answers 302 to the redirect URI;
//! - `POST /oauth2/token`: `client_credentials`; `authorization_code` (the code is the
//!   client's, for that redirect URI, and SHA-256 of `code_verifier` is the challenge:
//!   the comparison only the token service can make); `refresh_token` (rotated);
//! - `POST /oauth2/revoke`: forgets a refresh token (RFC 7009: 200 whatever it was).
//!
//! Tokens name the client and the method the header says, and the certificate the
//! tokens would be bound to (`cnf`). Everything lives in memory, for the demo's life.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

use crate::verify::{verify_internal_header, Expected, InternalClaims, VerifyKeys};

const HEADER: &str = "x-authenticated-client";

/// What the token service needs to verify headers.
pub struct Trust {
    pub keys: VerifyKeys,
    /// The gateway's `public_url`: `htu` is this and the path.
    pub public_url: String,
    /// The gateway's `internal_header.issuer` and `audience`.
    pub issuer: String,
    pub audience: String,
}

/// A code issued at the authorization endpoint, until it is exchanged.
struct Grant {
    client_id: String,
    redirect_uri: String,
    challenge: String,
}

#[derive(Default)]
struct Store {
    codes: HashMap<String, Grant>,
    /// Refresh token → client id.
    refresh: HashMap<String, String>,
}

struct State {
    trust: Trust,
    store: Mutex<Store>,
}

fn random(n: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), n)
}

/// Serves the token service on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, trust: Trust) {
    let state = Arc::new(State {
        trust,
        store: Mutex::new(Store::default()),
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(req, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    if parts.method == Method::GET && parts.uri.path() == "/oauth2/authorize" {
        return authorize(parts.uri.query().unwrap_or(""), state);
    }
    // The back channel: only what the gateway vouched for.
    let url = format!("{}{}", state.trust.public_url, parts.uri.path());
    let header = parts.headers.get(HEADER).and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no internal header: call the gateway, not the token service",
        );
    };
    let claims = match verify_internal_header(
        header,
        &state.trust.keys,
        &Expected {
            leeway: 5,
            ..Expected::request(
                &state.trust.issuer,
                &state.trust.audience,
                parts.method.as_str(),
                &url,
                parts.uri.query(),
                &body,
            )
        },
    ) {
        Ok(claims) => claims,
        Err(e) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("internal header rejected: {e}"),
            )
        }
    };
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    match parts.uri.path() {
        "/oauth2/revoke" => {
            let mut store = lock(state);
            if let Some(token) = params.get("token") {
                if store.refresh.get(token) == Some(&claims.client_id) {
                    store.refresh.remove(token);
                }
            }
            json(StatusCode::OK, serde_json::json!({}))
        }
        _ => token(&claims, &params, state),
    }
}

fn lock(state: &State) -> std::sync::MutexGuard<'_, Store> {
    state.store.lock().unwrap_or_else(|e| e.into_inner())
}

/// `GET /oauth2/authorize`: a code for the challenge, by redirect.
fn authorize(query: &str, state: &State) -> Response<Full<Bytes>> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let (client_id, redirect_uri, challenge) =
        (get("client_id"), get("redirect_uri"), get("code_challenge"));
    // A demo: any loopback redirect URI is registered for every client.
    let loopback = ["http://127.0.0.1", "http://localhost", "https://localhost"]
        .iter()
        .any(|p| redirect_uri.starts_with(p));
    if get("response_type") != "code" || client_id.is_empty() || !loopback {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this demo wants response_type=code, a client_id and a loopback redirect_uri",
        );
    }
    if get("code_challenge_method") != "S256" || challenge.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "this demo wants an S256 code_challenge",
        );
    }
    let code = random(24);
    lock(state).codes.insert(
        code.clone(),
        Grant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: challenge.to_owned(),
        },
    );
    let mut location = format!("{redirect_uri}?code={code}");
    if !get("state").is_empty() {
        location.push_str("&state=");
        location.push_str(
            &form_urlencoded::byte_serialize(get("state").as_bytes()).collect::<String>(),
        );
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header(http::header::LOCATION, location)
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `POST /oauth2/token`, for the client the header names.
fn token(
    claims: &InternalClaims,
    params: &HashMap<String, String>,
    state: &State,
) -> Response<Full<Bytes>> {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let mut store = lock(state);
    let refresh = match get("grant_type") {
        "client_credentials" => None,
        "authorization_code" => {
            // Single use: the code is gone whatever happens next.
            let Some(grant) = store.codes.remove(get("code")) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown or used code",
                );
            };
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes()));
            if grant.client_id != claims.client_id
                || grant.redirect_uri != get("redirect_uri")
                || computed != grant.challenge
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "the code is another client's, for another redirect_uri, or the verifier does not match its challenge",
                );
            }
            Some(random(32))
        }
        "refresh_token" => {
            if store.refresh.remove(get("refresh_token")).as_deref()
                != Some(claims.client_id.as_str())
            {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "unknown refresh token",
                );
            }
            Some(random(32))
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the demo knows client_credentials, authorization_code and refresh_token",
            )
        }
    };
    if let Some(r) = &refresh {
        store.refresh.insert(r.clone(), claims.client_id.clone());
    }
    let scope = params.get("scope");
    let mut body = serde_json::json!({
            "access_token": format!("demo-{}", random(40)),
            "token_type": "Bearer",
            "expires_in": 300,
            "refresh_token": refresh,
            "scope": scope,
            "client_id": claims.client_id,
            "auth_method": claims.auth_method,
            // RFC 8705 §3.1: a real service would bind the token to this.
            "cnf": claims.cnf,
    });
    if let Some(members) = body.as_object_mut() {
        members.retain(|_, v| !v.is_null());
    }
    json(StatusCode::OK, body)
}

fn error(status: StatusCode, code: &str, description: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"error": code, "error_description": description}),
    )
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}
