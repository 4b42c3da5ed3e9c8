//! The authorization endpoint (RFC 6749 §3.1), the front channel: nothing authenticates
//! here, but the gateway is where PKCE is enforced (pkce.rs, docs/design.md §2.13).
//!
//! A request to an `authorization` path is first contained like any request to a path
//! that does not authenticate (contain.rs: no Basic, no secret in the query or a form
//! body). Its parameters — the query, and for a POST the form body (OpenID Connect Core
//! §3.1.2.1) — are read as the most lenient server behind the gateway reads them
//! (lenient.rs), so that the parameters checked are the ones the upstream acts on: a
//! name repeated under that reading is refused (RFC 6749 §3.1: parameters "MUST NOT be
//! included more than once"), `Client_Id` is `client_id`. A request for a client that
//! must use PKCE without a valid challenge gets `400 invalid_request` as JSON from the
//! gateway, never a redirect: the gateway cannot check `redirect_uri`, so it must not
//! redirect to it. Everything else, and every response (the 302 with the code), passes
//! untouched.

use std::borrow::Cow;

use http::Request;

use crate::auth::contain::{self, Head};
use crate::auth::pkce::{self, AuthorizationParams};
use crate::auth::{form, Authenticator};
use crate::body::{full, Body};
use crate::error::{GatewayError, RequestError};
use crate::lenient;
use crate::metrics::PkceRefusal;
use crate::oauth::EndpointKind;

/// Checks a request to the authorization endpoint; returns it, with its body as read.
pub async fn check(
    authenticator: &Authenticator,
    req: Request<Body>,
) -> Result<Request<Body>, GatewayError> {
    let head = match contain::check_head(
        req.headers(),
        req.uri().query(),
        authenticator.allowed_schemes(),
    ) {
        Ok(head) => head,
        Err(e) => {
            // The body the client may still be sending is read and dropped first, so it
            // reads the answer, not a reset.
            crate::limit::drain(req.into_body()).await;
            return Err(e);
        }
    };
    let query: Vec<(Cow<'_, str>, String)> = req
        .uri()
        .query()
        .map(|q| lenient::param_pairs(q.as_bytes()).collect())
        .unwrap_or_default();
    let mut pairs: Vec<(String, String)> = query
        .into_iter()
        .map(|(n, v)| (n.into_owned(), v))
        .collect();
    let req = match head {
        Head::FormBody(readings) => {
            let boundary = contain::strict_boundary(req.headers());
            let (parts, bytes) = contain::read_form(req, &readings, authenticator.limits()).await?;
            if readings.urlencoded {
                pairs.extend(lenient::param_pairs(&bytes).map(|(n, v)| (n.into_owned(), v)));
            }
            if !readings.boundaries.is_empty() {
                let boundary = boundary.ok_or(RequestError::MalformedMultipart)?;
                let params = form::parse_multipart(bytes.clone(), boundary).await?;
                pairs.extend(params.into_iter().map(|(n, v)| {
                    (
                        lenient::param_name(n.as_bytes()).into_owned(),
                        v.into_owned(),
                    )
                }));
            }
            Request::from_parts(parts, full(bytes))
        }
        // Not a form: its parameters are not read here, only checked for credentials.
        head => contain::check_body(req, head, authenticator.limits()).await?,
    };
    // RFC 6749 §3.1: no parameter twice, across the query and the body, as a lenient
    // server would merge them: otherwise the challenge checked may not be the one used.
    if pkce::first_repeat(pairs.iter().map(|(n, _)| Cow::Borrowed(n.as_str()))).is_some() {
        return Err(RequestError::RepeatedParameter.into());
    }
    let params =
        AuthorizationParams::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let pkce = authenticator.pkce();
    let registry = authenticator.registry();
    pkce::check_authorization(&params, &pkce.methods, |id| {
        registry.must_use_pkce(id, pkce)
    })
    .map_err(|e| {
        authenticator
            .metrics()
            .pkce_refused(EndpointKind::Authorization, PkceRefusal::of(e));
        GatewayError::Pkce(e)
    })?;
    Ok(req)
}
