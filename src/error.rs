//! Errors that end a request, and the one table that turns them into responses.
//!
//! Every response the gateway writes itself comes from [`response`]: JSON
//! `{"error", "error_description"}` with `Cache-Control: no-store` and `Pragma: no-cache`
//! (RFC 6749 §5.1–5.2). Descriptions are fixed text per variant: they never echo input and
//! never say whether a client exists (unknown client and wrong secret share one row).
//! Error `Display` strings are fixed too, so logging an error cannot leak a secret.
//!
//! The payloads of errors raised deeper in the flow (why an assertion was rejected, how
//! long a throttled client must wait) live here too, so that this module depends on
//! nothing but the body type and every other module may depend on it.

use std::time::Duration;

use http::header::{
    HeaderValue, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};

use crate::body::{full, Body, BoxError};

/// Malformed requests: `400 invalid_request` (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("protected endpoint called with a method other than POST")]
    MethodNotPost,
    #[error("body content type cannot carry client credentials")]
    UnsupportedContentType,
    #[error("malformed application/x-www-form-urlencoded body")]
    MalformedForm,
    #[error("malformed multipart/form-data body")]
    MalformedMultipart,
    #[error("a request parameter is repeated")]
    RepeatedParameter,
    #[error("more than one client authentication method in one request")]
    MultipleAuthMethods,
    #[error("client credentials in the query string")]
    CredentialsInQuery,
    #[error("more than one Authorization header")]
    MultipleAuthorizationHeaders,
    #[error("Authorization scheme other than Basic")]
    UnsupportedAuthorizationScheme,
    #[error("malformed HTTP Basic credentials")]
    MalformedBasic,
    #[error("body client_id differs from the authenticated client")]
    ClientIdMismatch,
    #[error("client_assertion_type missing or not jwt-bearer")]
    InvalidAssertionType,
    #[error("client_assertion missing or empty")]
    MissingAssertion,
    #[error("client_assertion is not a well-formed compact JWS")]
    MalformedAssertion,
    #[error("request path is not in canonical form")]
    AmbiguousPath,
    #[error("request path is a lookalike of a protected endpoint")]
    LookalikePath,
    #[error("client credentials sent to a path that does not authenticate clients")]
    CredentialsOnUnprotectedPath,
    #[error("query string on a protected endpoint")]
    QueryNotAllowed,
    #[error("a parameter name is a lookalike of a credential parameter")]
    LookalikeParameter,
    #[error("more than one Content-Type header")]
    MultipleContentTypes,
    #[error("grant_type missing where the client's grant types are restricted")]
    MissingGrantType,
    #[error("Authorization header other than one plain Bearer or DPoP token")]
    UnforwardableAuthorization,
    #[error("userinfo in the request's authority")]
    UserinfoInAuthority,
    #[error("more than one Host, or a Host other than the target's authority")]
    AmbiguousHost,
    #[error("a header name contains an underscore")]
    UnderscoreHeader,
}

/// Why a request was refused for PKCE (RFC 7636): `400 invalid_request`, never a redirect
/// (the gateway cannot check `redirect_uri`, so it must not redirect to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_challenge missing for a client that must use PKCE")]
    MissingChallenge,
    #[error("code_challenge_method not accepted")]
    MethodNotAllowed,
    #[error("code_challenge malformed")]
    MalformedChallenge,
    #[error("code_verifier missing for a client that must use PKCE")]
    MissingVerifier,
    #[error("code_verifier malformed")]
    MalformedVerifier,
    #[error("request object unreadable or naming another client")]
    RequestObject,
}

/// A request head refused before it became a request (docs/design.md §3.1, §8.7): hyper
/// could not parse it (its own `400`, `414` and `431`, replaced by the gateway's), it did
/// not arrive in time, or an HTTP/2 header list is over `limits.max_header_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadRefusal {
    #[error("request head over limits.max_header_size")]
    TooLarge,
    #[error("request target too long")]
    UriTooLong,
    #[error("malformed request head")]
    Malformed,
    #[error("request head not received within limits.header_read_timeout")]
    Timeout,
}

/// Why authentication failed. Logged (fixed text), never sent: the client always sees the
/// same `401 invalid_client` whatever the reason (RFC 6749 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("no client credentials")]
    NoCredentials,
    #[error("client_id without a secret, or a secret without client_id")]
    IncompleteCredentials,
    #[error("unknown client")]
    UnknownClient,
    #[error("wrong secret")]
    WrongSecret,
    #[error("client is registered for another authentication method")]
    WrongMethod,
    #[error("assertion rejected: {0}")]
    Assertion(#[from] AssertionRejection),
    #[error("assertion jti already used")]
    ReplayedAssertion,
    #[error("client authenticates with a TLS certificate and presented none")]
    NoCertificate,
    #[error("client certificate rejected: {0}")]
    Certificate(#[from] CertificateRejection),
    #[error("public clients may not use this endpoint")]
    PublicClientNotAllowed,
}

/// Why a client certificate did not authenticate a `tls_client_auth` or
/// `self_signed_tls_client_auth` client (→ `401 invalid_client`). Fixed text only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRejection {
    #[error("no tls.client_auth.ca_file to validate it against")]
    NoTrustAnchors,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("not issued by a CA in tls.client_auth.ca_file")]
    UnknownIssuer,
    #[error("its extended key usage excludes TLS client authentication")]
    NotForClientAuth,
    #[error("the chain does not validate")]
    InvalidChain,
    #[error("cannot be parsed")]
    Unparsable,
    #[error("does not carry the client's registered name")]
    NameMismatch,
    #[error("is not one of the client's registered certificates")]
    NotRegistered,
}

/// Why a well-formed assertion was refused (→ `401 invalid_client`). Fixed text only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionRejection {
    #[error("alg is not HS256, HS384, HS512, RS256, PS256, ES256 or EdDSA")]
    UnsupportedAlgorithm,
    #[error("alg is not allowed for this client")]
    AlgorithmNotAllowed,
    #[error("crit header present")]
    CriticalHeader,
    #[error("sub missing or not a string")]
    MissingSubject,
    #[error("iss differs from sub")]
    IssuerMismatch,
    #[error("signature does not verify")]
    BadSignature,
    #[error("no key of the client fits its kid and alg")]
    UnknownKey,
    #[error("aud missing")]
    MissingAudience,
    #[error("aud does not name this server")]
    AudienceMismatch,
    #[error("exp missing or not a number")]
    MissingExpiry,
    #[error("expired")]
    Expired,
    #[error("nbf in the future")]
    NotYetValid,
    #[error("iat in the future")]
    IssuedInFuture,
    #[error("iat older than max_age")]
    TooOld,
    #[error("no iat and exp further ahead than max_age")]
    LifetimeTooLong,
    #[error("nbf or iat is not a number")]
    BadTimeClaim,
    #[error("jti missing, empty, too long or not a string")]
    MissingJti,
}

/// A signature could not be made (the provider refused; not expected to happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signing failed")]
pub struct SignFailed;

/// A client over its `rate_limit` (auth/rate_limit.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("client over its rate limit; retry after {retry_after:?}")]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// Too many failed authentications (RFC 6749 §2.3.1 brute-force protection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed authentications; retry after {retry_after:?}")]
pub struct Throttled {
    pub retry_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid request: {0}")]
    Request(#[from] RequestError),
    #[error("client authentication failed: {reason}")]
    Authentication {
        reason: AuthFailure,
        /// The client tried HTTP Basic: answer with `WWW-Authenticate` (RFC 6749 §5.2).
        basic: bool,
    },
    #[error("request body exceeds limits.max_body")]
    BodyTooLarge,
    #[error("request body has a Content-Encoding the gateway does not read")]
    UnsupportedContentEncoding,
    #[error("protected request body is not exactly a form type")]
    UnsupportedMediaType,
    #[error("request body not received within limits.body_read_timeout")]
    BodyReadTimeout,
    #[error("reading the request body failed")]
    BodyRead(#[source] BoxError),
    #[error("path is not protected and `unprotected: deny` is set")]
    UnprotectedDenied,
    #[error("PKCE: {0}")]
    Pkce(#[from] PkceError),
    #[error("the client may not use this grant type")]
    UnauthorizedClient,
    #[error("too many failed authentications from this address")]
    Throttled(#[source] Throttled),
    #[error("too many requests from this client (rate_limit)")]
    RateLimited(#[source] RateLimited),
    #[error("replay store is full")]
    ReplayStoreFull,
    #[error("the client's jwks_uri keys were never fetched")]
    KeysUnavailable,
    #[error("the shared state (Redis) could not record the assertion")]
    StateUnavailable,
    #[error("hash verifications at hashing.max_concurrent + max_queued")]
    HashingSaturated,
    #[error("protected request reached signing without an authenticated client")]
    NotAuthenticated,
    #[error("signing the internal header failed")]
    Sign(#[source] SignFailed),
    #[error("upstream unreachable or failed")]
    UpstreamUnavailable(#[source] BoxError),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("request head refused")]
    Head(#[source] HeadRefusal),
}

impl GatewayError {
    pub fn auth(reason: AuthFailure, basic: bool) -> Self {
        GatewayError::Authentication { reason, basic }
    }
}

/// One row of the error table.
struct Row {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

const fn row(status: StatusCode, error: &'static str, description: &'static str) -> Row {
    Row {
        status,
        error,
        description,
    }
}

const INVALID_REQUEST: &str = "invalid_request";
const INVALID_CLIENT: &str = "invalid_client";
const UNAVAILABLE: &str = "temporarily_unavailable";

fn request_row(e: RequestError) -> Row {
    use RequestError::*;
    let d = match e {
        MethodNotPost => "The endpoint accepts only POST.",
        UnsupportedContentType => "Send the body as application/x-www-form-urlencoded.",
        MalformedForm => "The form body is malformed.",
        MalformedMultipart => "The multipart body is malformed.",
        RepeatedParameter => "A request parameter is repeated.",
        MultipleAuthMethods => "Use exactly one client authentication method.",
        CredentialsInQuery => "Client credentials are not accepted in the query string.",
        MultipleAuthorizationHeaders => "Send at most one Authorization header.",
        UnsupportedAuthorizationScheme => "Only the Basic authorization scheme is accepted here.",
        MalformedBasic => "The HTTP Basic credentials are malformed.",
        ClientIdMismatch => "client_id does not match the authenticated client.",
        InvalidAssertionType => {
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer."
        }
        MissingAssertion => "client_assertion is missing.",
        MalformedAssertion => "client_assertion is not a compact JWS.",
        AmbiguousPath | LookalikePath => "The request path is not in canonical form.",
        CredentialsOnUnprotectedPath => {
            "Client credentials are accepted only by the endpoints that authenticate clients."
        }
        QueryNotAllowed => "This endpoint does not accept a query string.",
        LookalikeParameter => {
            "Spell client_id, client_secret, client_assertion and client_assertion_type exactly."
        }
        MultipleContentTypes => "Send one Content-Type header.",
        MissingGrantType => "grant_type is missing.",
        UnforwardableAuthorization => {
            "Only one Bearer or DPoP token is accepted in Authorization on this path."
        }
        UserinfoInAuthority => "The request authority must not contain userinfo.",
        AmbiguousHost => "Send one Host header, equal to the request authority.",
        UnderscoreHeader => "Header names must not contain underscores.",
    };
    row(StatusCode::BAD_REQUEST, INVALID_REQUEST, d)
}

fn pkce_row(e: PkceError) -> Row {
    use PkceError::*;
    let d = match e {
        MissingChallenge => "This client must send a code_challenge (PKCE, RFC 7636).",
        MethodNotAllowed => "The code_challenge_method is not accepted; use S256.",
        MalformedChallenge => "The code_challenge is malformed (RFC 7636 section 4.2).",
        MissingVerifier => "This client must send a code_verifier (PKCE, RFC 7636).",
        MalformedVerifier => "The code_verifier is malformed (RFC 7636 section 4.1).",
        RequestObject => "The request object cannot be read or names another client.",
    };
    row(StatusCode::BAD_REQUEST, INVALID_REQUEST, d)
}

fn head_row(e: HeadRefusal) -> Row {
    match e {
        // RFC 6585 §5.
        HeadRefusal::TooLarge => row(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            INVALID_REQUEST,
            "The request header fields are too large.",
        ),
        HeadRefusal::UriTooLong => row(
            StatusCode::URI_TOO_LONG,
            INVALID_REQUEST,
            "The request target is too long.",
        ),
        HeadRefusal::Malformed => row(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "The request head is malformed.",
        ),
        HeadRefusal::Timeout => row(
            StatusCode::REQUEST_TIMEOUT,
            INVALID_REQUEST,
            "The request head was not received in time.",
        ),
    }
}

/// The error table (docs/design.md §3). No catch-all arm: a new variant must be placed here.
fn table(e: &GatewayError) -> Row {
    match e {
        GatewayError::Request(r) => request_row(*r),
        GatewayError::Authentication { .. } => row(
            StatusCode::UNAUTHORIZED,
            INVALID_CLIENT,
            "Client authentication failed.",
        ),
        GatewayError::Pkce(p) => pkce_row(*p),
        GatewayError::UnauthorizedClient => row(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The client is not allowed to use this grant type.",
        ),
        GatewayError::BodyTooLarge => row(
            StatusCode::PAYLOAD_TOO_LARGE,
            INVALID_REQUEST,
            "The request body is too large.",
        ),
        GatewayError::UnsupportedContentEncoding => row(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Send the body without Content-Encoding.",
        ),
        // RFC 9110 §15.5.16; RFC 6749 §3.2: token requests are form-encoded.
        GatewayError::UnsupportedMediaType => row(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            INVALID_REQUEST,
            "Send the body as application/x-www-form-urlencoded or multipart/form-data.",
        ),
        GatewayError::BodyReadTimeout => row(
            StatusCode::REQUEST_TIMEOUT,
            INVALID_REQUEST,
            "The request body was not received in time.",
        ),
        GatewayError::BodyRead(_) => row(
            StatusCode::BAD_REQUEST,
            INVALID_REQUEST,
            "The request body could not be read.",
        ),
        GatewayError::UnprotectedDenied => row(
            StatusCode::NOT_FOUND,
            INVALID_REQUEST,
            "This gateway does not serve that path.",
        ),
        GatewayError::Throttled(_) => row(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Too many failed authentication attempts; retry later.",
        ),
        GatewayError::RateLimited(_) => row(
            StatusCode::TOO_MANY_REQUESTS,
            "slow_down",
            "Too many requests from this client; retry later.",
        ),
        GatewayError::ReplayStoreFull => row(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "The service is overloaded; retry later.",
        ),
        GatewayError::HashingSaturated => row(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "The service is overloaded; retry later.",
        ),
        GatewayError::KeysUnavailable => row(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "The client's keys are not available yet; retry later.",
        ),
        GatewayError::StateUnavailable => row(
            StatusCode::SERVICE_UNAVAILABLE,
            UNAVAILABLE,
            "The service is temporarily unavailable; retry later.",
        ),
        GatewayError::NotAuthenticated | GatewayError::Sign(_) => row(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The gateway failed to process the request.",
        ),
        GatewayError::UpstreamUnavailable(_) => row(
            StatusCode::BAD_GATEWAY,
            UNAVAILABLE,
            "The token service is unavailable.",
        ),
        GatewayError::UpstreamTimeout(_) => row(
            StatusCode::GATEWAY_TIMEOUT,
            UNAVAILABLE,
            "The token service did not answer in time.",
        ),
        GatewayError::Head(h) => head_row(*h),
    }
}

/// Builds the response for `e`. `realm` is the configured Basic realm.
pub fn response(e: &GatewayError, realm: &HeaderValue) -> Response<Body> {
    let row = table(e);
    let body = format!(
        "{{\"error\":\"{}\",\"error_description\":\"{}\"}}",
        row.error, row.description
    );
    let mut res = json_response(row.status, body);
    match e {
        // RFC 6749 §5.2: a 401 after an Authorization header attempt carries
        // WWW-Authenticate with the scheme the client used.
        GatewayError::Authentication { basic: true, .. } => {
            res.headers_mut().insert(WWW_AUTHENTICATE, realm.clone());
        }
        GatewayError::ReplayStoreFull
        | GatewayError::StateUnavailable
        | GatewayError::KeysUnavailable
        | GatewayError::HashingSaturated => {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        GatewayError::Throttled(Throttled { retry_after })
        | GatewayError::RateLimited(RateLimited { retry_after }) => {
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
        }
        _ => {}
    }
    res
}

/// `WWW-Authenticate` value for a realm validated at config load.
pub fn basic_challenge(realm: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"secretgate\""))
}

/// A JSON response with the no-store headers every gateway-written response carries.
pub fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// An error and its sources on one line, for logs and problem messages. Every error type
/// in the crate has fixed text, so the chain never carries request data.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_client_and_wrong_secret_look_the_same() {
        let realm = basic_challenge("r");
        let a = response(
            &GatewayError::auth(AuthFailure::UnknownClient, true),
            &realm,
        );
        let b = response(&GatewayError::auth(AuthFailure::WrongSecret, true), &realm);
        assert_eq!(a.status(), b.status());
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.headers()[WWW_AUTHENTICATE], "Basic realm=\"r\"");
        let c = response(
            &GatewayError::auth(AuthFailure::UnknownClient, false),
            &realm,
        );
        assert!(c.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn descriptions_are_json_safe() {
        // Descriptions are spliced into JSON without escaping: keep them free of `"` and `\`.
        use RequestError::*;
        for e in [
            MethodNotPost,
            UnsupportedContentType,
            MalformedForm,
            MalformedMultipart,
            RepeatedParameter,
            MultipleAuthMethods,
            CredentialsInQuery,
            MultipleAuthorizationHeaders,
            UnsupportedAuthorizationScheme,
            MalformedBasic,
            ClientIdMismatch,
            InvalidAssertionType,
            MissingAssertion,
            MalformedAssertion,
            AmbiguousPath,
            LookalikePath,
            CredentialsOnUnprotectedPath,
            QueryNotAllowed,
            LookalikeParameter,
            MultipleContentTypes,
            MissingGrantType,
            UnforwardableAuthorization,
            UserinfoInAuthority,
            AmbiguousHost,
            UnderscoreHeader,
        ] {
            let r = request_row(e);
            assert!(!r.description.contains(['"', '\\']));
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
        }
        use PkceError::*;
        for e in [
            MissingChallenge,
            MethodNotAllowed,
            MalformedChallenge,
            MissingVerifier,
            MalformedVerifier,
            RequestObject,
        ] {
            let r = pkce_row(e);
            assert!(!r.description.contains(['"', '\\']));
            assert_eq!(
                (r.status, r.error),
                (StatusCode::BAD_REQUEST, INVALID_REQUEST)
            );
        }
    }

    #[test]
    fn head_refusals_have_their_status_and_json_safe_text() {
        use HeadRefusal::*;
        for (e, status) in [
            (TooLarge, 431),
            (UriTooLong, 414),
            (Malformed, 400),
            (Timeout, 408),
        ] {
            let r = head_row(e);
            assert_eq!(r.status.as_u16(), status, "{e:?}");
            assert_eq!(r.error, INVALID_REQUEST);
            assert!(!r.description.contains(['"', '\\']));
        }
    }
}
