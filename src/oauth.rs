//! The protocol's words: client authentication methods, assertion algorithms, parameter
//! names and the client identifier. Everything else in the crate may use these; this
//! module uses nothing of the crate, so it sits at the bottom of the module graph.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

/// The client authentication methods the gateway enforces (RFC 7591 §2
/// `token_endpoint_auth_method` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    /// RFC 8705 §2.1: a certificate chaining to a trusted CA, with a registered name.
    TlsClientAuth,
    /// RFC 8705 §2.2: a registered (self-signed) certificate.
    SelfSignedTlsClientAuth,
    /// RFC 7523 §2.2, OpenID Connect Core §9: an assertion signed with the client's
    /// private key, verified with its registered public keys (a JWK Set, or `jwks_uri`).
    PrivateKeyJwt,
    /// A public client (RFC 6749 §2.1, RFC 7591 §2 `none`): no credential at all, the
    /// body names it with `client_id`; PKCE (RFC 7636) stands in for the secret.
    None,
}

impl AuthMethod {
    /// Every method, in the order documentation lists them.
    pub const ALL: [AuthMethod; 7] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::ClientSecretJwt,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::None,
    ];

    /// Whether the client authenticates with its TLS client certificate (RFC 8705 §2), not
    /// with a secret.
    pub fn uses_certificate(self) -> bool {
        matches!(
            self,
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
        )
    }

    /// Whether the client is public (RFC 6749 §2.1): it holds no credential.
    pub fn is_public(self) -> bool {
        self == AuthMethod::None
    }

    pub fn from_name(name: &str) -> Option<AuthMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::ClientSecretJwt => "client_secret_jwt",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::None => "none",
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HMAC algorithms a `client_secret_jwt` assertion may use (RFC 7518 §3.2), and the
/// algorithms with a public key (`private_key_jwt`, the asymmetric internal header): the
/// verifier crate's names, so both sides spell them alike.
pub use secretgate_verify::{Algorithm, AsymmetricAlgorithm};

/// The kinds of endpoint the gateway tells apart, because the rules differ (`endpoints`):
/// every kind but `Authorization` authenticates clients; the authorization endpoint is
/// the front channel, where only PKCE is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointKind {
    /// RFC 6749 §3.2.
    Token,
    /// RFC 7662.
    Introspection,
    /// RFC 7009.
    Revocation,
    /// Pushed authorization requests, RFC 9126.
    Par,
    /// RFC 8628 §3.1.
    DeviceAuthorization,
    /// RFC 6749 §3.1: the front channel, not authenticated.
    Authorization,
}

impl EndpointKind {
    pub const ALL: [EndpointKind; 6] = [
        EndpointKind::Token,
        EndpointKind::Introspection,
        EndpointKind::Revocation,
        EndpointKind::Par,
        EndpointKind::DeviceAuthorization,
        EndpointKind::Authorization,
    ];

    /// The key under `endpoints`, and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Token => "token",
            EndpointKind::Introspection => "introspection",
            EndpointKind::Revocation => "revocation",
            EndpointKind::Par => "par",
            EndpointKind::DeviceAuthorization => "device_authorization",
            EndpointKind::Authorization => "authorization",
        }
    }

    /// Where the endpoint is unless `endpoints` says otherwise.
    pub fn default_path(self) -> &'static str {
        match self {
            EndpointKind::Token => "/oauth2/token",
            EndpointKind::Introspection => "/oauth2/introspect",
            EndpointKind::Revocation => "/oauth2/revoke",
            EndpointKind::Par => "/oauth2/par",
            EndpointKind::DeviceAuthorization => "/oauth2/device_authorization",
            EndpointKind::Authorization => "/oauth2/authorize",
        }
    }

    /// Whether requests to it authenticate the client (all but the front channel).
    pub fn authenticates(self) -> bool {
        self != EndpointKind::Authorization
    }
}

impl fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `code_challenge_method` values (RFC 7636 §4.2, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PkceMethod {
    S256,
    Plain,
}

impl PkceMethod {
    pub const ALL: [PkceMethod; 2] = [PkceMethod::S256, PkceMethod::Plain];

    /// Exact, case-sensitive names (RFC 7636 §4.3: `S256`, `plain`).
    pub fn from_name(name: &str) -> Option<PkceMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PkceMethod::S256 => "S256",
            PkceMethod::Plain => "plain",
        }
    }
}

/// `grant_type` values with a rule of their own (RFC 6749 §4, RFC 8628 §3.4).
pub const AUTHORIZATION_CODE: &str = "authorization_code";
pub const REFRESH_TOKEN: &str = "refresh_token";
pub const CLIENT_CREDENTIALS: &str = "client_credentials";
pub const PASSWORD: &str = "password";
pub const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 7523 §2.1 and RFC 8693: accepted in `grant_types` like the others.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The grant types a public client may use unless `grant_types` says otherwise: not
/// `client_credentials`, which needs a confidential client (RFC 6749 §4.4).
pub const PUBLIC_CLIENT_GRANTS: [&str; 3] = [AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE];

pub const GRANT_TYPE: &str = "grant_type";
pub const CODE_VERIFIER: &str = "code_verifier";
pub const CODE_CHALLENGE: &str = "code_challenge";
pub const CODE_CHALLENGE_METHOD: &str = "code_challenge_method";
/// RFC 9101: a request object, by value.
pub const REQUEST: &str = "request";
/// RFC 9126 §4 / RFC 9101: a request object by reference (a PAR `request_uri`).
pub const REQUEST_URI: &str = "request_uri";

pub const CLIENT_ID: &str = "client_id";
pub const CLIENT_SECRET: &str = "client_secret";
pub const CLIENT_ASSERTION: &str = "client_assertion";
pub const CLIENT_ASSERTION_TYPE: &str = "client_assertion_type";

/// Parameters that carry client credentials (RFC 6749 §2.3.1, RFC 7521 §4.2).
pub const CREDENTIAL_PARAMS: [&str; 4] = [
    CLIENT_ID,
    CLIENT_SECRET,
    CLIENT_ASSERTION,
    CLIENT_ASSERTION_TYPE,
];

/// Whether a parameter is secret material, never forwarded (docs/design.md §4).
pub fn is_secret_param(name: &str) -> bool {
    matches!(
        name,
        CLIENT_SECRET | CLIENT_ASSERTION | CLIENT_ASSERTION_TYPE
    )
}

/// RFC 7523 §2.2: the only `client_assertion_type` accepted.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// RFC 6749 Appendix A: VSCHAR = %x20-7E.
pub fn is_vschar(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// A client identifier as registered (RFC 6749 §2.2; VSCHAR per Appendix A.1, checked when
/// the registry is loaded). Cheap to clone: requests carry it from authentication to the
/// signer, the access log and the metrics.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Arc<str>);

impl ClientId {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ClientId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for ClientId {
    fn from(id: String) -> Self {
        Self::new(id)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for ClientId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ClientId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ClientId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for ClientId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::from_name(m.as_str()), Some(m));
        }
        assert_eq!(AuthMethod::from_name("Client_Secret_Basic"), None);
    }

    #[test]
    fn only_secret_material_is_secret() {
        assert!(is_secret_param(CLIENT_SECRET));
        assert!(is_secret_param(CLIENT_ASSERTION));
        assert!(is_secret_param(CLIENT_ASSERTION_TYPE));
        assert!(!is_secret_param(CLIENT_ID));
        assert!(!is_secret_param("grant_type"));
    }
}
