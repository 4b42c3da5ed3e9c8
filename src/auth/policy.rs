//! What an authenticated client may do at each kind of endpoint (docs/design.md §2.12).
//!
//! Runs after authentication succeeded, before anything is forwarded, so that an
//! unauthenticated caller learns nothing about a client's registration from it:
//! - token (RFC 6749 §3.2): the `grant_type` must be one of the client's `grant_types`
//!   (→ `400 unauthorized_client`, RFC 6749 §5.2); a public client never gets
//!   `client_credentials` (RFC 6749 §4.4); a client that must use PKCE exchanges an
//!   authorization code only with a well-formed `code_verifier` (RFC 7636 §4.5);
//! - introspection (RFC 7662 §2.1): public clients may not introspect (`401`);
//! - PAR (RFC 9126 §2): a client that must use PKCE pushes a valid challenge (pkce.rs);
//! - revocation (RFC 7009) and device authorization (RFC 8628 §3.1): no further rule.

use crate::auth::form::Params;
use crate::auth::pkce::{self, AuthorizationParams};
use crate::auth::registry::RegisteredClient;
use crate::config::PkceConfig;
use crate::error::{AuthFailure, GatewayError, RequestError};
use crate::oauth::{
    AuthMethod, EndpointKind, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, CODE_VERIFIER, GRANT_TYPE,
};

/// Checks what `client` asks at an endpoint of `kind`. `params` is the decoded form body
/// (`None` for a body that is not a form).
pub fn check(
    kind: EndpointKind,
    client: &RegisteredClient,
    params: Option<&Params>,
    pkce: &PkceConfig,
) -> Result<(), GatewayError> {
    let public = client.method == AuthMethod::None;
    match kind {
        EndpointKind::Token => token(client, params, pkce),
        // RFC 7662 §2.1: the protected resource calling introspection authenticates; a
        // public client cannot, so it may not introspect (as Keycloak refuses it).
        EndpointKind::Introspection if public => Err(GatewayError::auth(
            AuthFailure::PublicClientNotAllowed,
            false,
        )),
        EndpointKind::Par if pkce.required_for(Some(client.method)) => {
            let pairs = params.into_iter().flatten().map(|(n, v)| (&**n, &**v));
            // The pushed parameters are the authorization request (RFC 9126 §2.1), of the
            // authenticated client: a request object naming another is refused.
            let mut pushed = AuthorizationParams::from_pairs(pairs);
            pushed.client_id = Some(client.client_id.to_string());
            pkce::check_authorization(&pushed, &pkce.methods, |_| true).map_err(GatewayError::Pkce)
        }
        EndpointKind::Introspection
        | EndpointKind::Par
        | EndpointKind::Revocation
        | EndpointKind::DeviceAuthorization
        | EndpointKind::Authorization => Ok(()),
    }
}

fn token(
    client: &RegisteredClient,
    params: Option<&Params>,
    pkce: &PkceConfig,
) -> Result<(), GatewayError> {
    let value = |name: &str| {
        params
            .into_iter()
            .flatten()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &**v)
            .filter(|v| !v.is_empty())
    };
    let grant = value(GRANT_TYPE);
    if let Some(allowed) = &client.grant_types {
        let grant = grant.ok_or(RequestError::MissingGrantType)?;
        // RFC 6749 §5.2 unauthorized_client: "not authorized to use this authorization
        // grant type".
        if !allowed.iter().any(|g| g == grant) {
            return Err(GatewayError::UnauthorizedClient);
        }
    }
    // RFC 6749 §4.4: the client credentials grant is for confidential clients only.
    if client.method == AuthMethod::None && grant == Some(CLIENT_CREDENTIALS) {
        return Err(GatewayError::UnauthorizedClient);
    }
    // RFC 7636 §4.5, RFC 9700 §2.1.1: the code exchange of a client that must use PKCE
    // carries the verifier (whether it matches the challenge is the upstream's check).
    if grant == Some(AUTHORIZATION_CODE) && pkce.required_for(Some(client.method)) {
        let verifier = value(CODE_VERIFIER).ok_or(crate::error::PkceError::MissingVerifier)?;
        pkce::check_verifier(verifier)?;
    }
    Ok(())
}
