//! The label values and label sets of every series: closed sets chosen here, never
//! request data (see mod.rs). How an error or a rejection maps to its label is here too.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};

use crate::error::{AuthFailure, CertificateRejection, GatewayError, PkceError};
use crate::oauth::{AuthMethod, EndpointKind};

/// What the router made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RouteClass {
    /// A protected endpoint: authenticated, then forwarded with the internal header.
    protected,
    /// The authorization endpoint: PKCE checked, then forwarded.
    authorization,
    /// Any other path, forwarded as is.
    unprotected,
    /// Any other path, refused because `unprotected: deny`.
    denied,
    /// A path refused before routing (ambiguous encoding).
    invalid,
}

impl RouteClass {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::protected => "protected",
            RouteClass::authorization => "authorization",
            RouteClass::unprotected => "unprotected",
            RouteClass::denied => "denied",
            RouteClass::invalid => "invalid",
        }
    }
}

/// The result of one client authentication, as counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    ok,
    /// 401: unknown client, wrong secret, bad assertion.
    invalid_client,
    /// 400/408/413: malformed request, body limits.
    invalid_request,
    /// 401: the assertion's jti was already used.
    replay,
    /// 400 `unauthorized_client`: authenticated, but not allowed this grant type.
    unauthorized_client,
    /// 429: too many failures from this address.
    throttled,
    /// 503: the replay store is full (fail closed).
    unavailable,
}

impl Outcome {
    /// The outcome of an authentication that ended in `e`.
    pub fn of(e: &GatewayError) -> Outcome {
        match e {
            GatewayError::Authentication {
                reason: AuthFailure::ReplayedAssertion,
                ..
            } => Outcome::replay,
            GatewayError::Authentication { .. } => Outcome::invalid_client,
            GatewayError::Throttled(_) | GatewayError::RateLimited(_) => Outcome::throttled,
            GatewayError::UnauthorizedClient => Outcome::unauthorized_client,
            GatewayError::ReplayStoreFull
            | GatewayError::KeysUnavailable
            | GatewayError::StateUnavailable
            | GatewayError::HashingSaturated => Outcome::unavailable,
            GatewayError::Request(_)
            | GatewayError::Pkce(_)
            | GatewayError::BodyTooLarge
            | GatewayError::UnsupportedContentEncoding
            | GatewayError::UnsupportedMediaType
            | GatewayError::BodyReadTimeout
            | GatewayError::BodyRead(_)
            | GatewayError::UnprotectedDenied
            | GatewayError::Head(_) => Outcome::invalid_request,
            GatewayError::NotAuthenticated
            | GatewayError::Sign(_)
            | GatewayError::UpstreamUnavailable(_)
            | GatewayError::UpstreamTimeout(_) => Outcome::unavailable,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::ok => "ok",
            Outcome::invalid_client => "invalid_client",
            Outcome::invalid_request => "invalid_request",
            Outcome::replay => "replay",
            Outcome::unauthorized_client => "unauthorized_client",
            Outcome::throttled => "throttled",
            Outcome::unavailable => "unavailable",
        }
    }
}

/// The method label: the methods (`none`: a public client), or `unknown` when the request
/// was refused before a method could be told (malformed body, two methods at once, no
/// credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MethodLabel {
    client_secret_basic,
    client_secret_post,
    client_secret_jwt,
    private_key_jwt,
    tls_client_auth,
    self_signed_tls_client_auth,
    none,
    unknown,
}

impl From<Option<AuthMethod>> for MethodLabel {
    fn from(m: Option<AuthMethod>) -> Self {
        match m {
            Some(AuthMethod::ClientSecretBasic) => MethodLabel::client_secret_basic,
            Some(AuthMethod::ClientSecretPost) => MethodLabel::client_secret_post,
            Some(AuthMethod::ClientSecretJwt) => MethodLabel::client_secret_jwt,
            Some(AuthMethod::PrivateKeyJwt) => MethodLabel::private_key_jwt,
            Some(AuthMethod::TlsClientAuth) => MethodLabel::tls_client_auth,
            Some(AuthMethod::SelfSignedTlsClientAuth) => MethodLabel::self_signed_tls_client_auth,
            Some(AuthMethod::None) => MethodLabel::none,
            None => MethodLabel::unknown,
        }
    }
}

/// How a client certificate fared as a `tls_client_auth` or `self_signed_tls_client_auth`
/// credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CertificateOutcome {
    ok,
    /// The client authenticates with a certificate and the connection presented none.
    missing,
    /// Expired or not yet valid at the gateway's clock.
    expired,
    /// Not issued by `tls.client_auth.ca_file`, a broken chain, an EKU without client
    /// authentication, or unparsable.
    untrusted,
    /// Trusted, but without the client's registered name.
    name_mismatch,
    /// Not one of the client's registered self-signed certificates.
    not_registered,
}

impl CertificateOutcome {
    pub fn of(r: CertificateRejection) -> CertificateOutcome {
        match r {
            CertificateRejection::Expired | CertificateRejection::NotYetValid => {
                CertificateOutcome::expired
            }
            CertificateRejection::NoTrustAnchors
            | CertificateRejection::UnknownIssuer
            | CertificateRejection::NotForClientAuth
            | CertificateRejection::InvalidChain
            | CertificateRejection::Unparsable => CertificateOutcome::untrusted,
            CertificateRejection::NameMismatch => CertificateOutcome::name_mismatch,
            CertificateRejection::NotRegistered => CertificateOutcome::not_registered,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CertificateLabels {
    pub(super) method: MethodLabel,
    pub(super) outcome: CertificateOutcome,
}

/// What happened to an authorization server metadata document (200 from the upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum MetadataOutcome {
    /// Rewritten to state what the gateway enforces.
    rewritten,
    /// Passed through unchanged: not a JSON object (or content-encoded).
    not_json,
    /// Passed through unchanged: larger than `discovery.max_size`.
    too_large,
    /// The upstream's body failed while being read; the client gets the failure.
    unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct MetadataLabels {
    pub(super) outcome: MetadataOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) route: RouteClass,
    pub(super) status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct AuthLabels {
    pub(super) method: MethodLabel,
    pub(super) outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ClientAuthLabels {
    pub(super) client_id: String,
    pub(super) method: MethodLabel,
    pub(super) outcome: Outcome,
}

/// Why the upstream hop failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum UpstreamError {
    /// Refused, reset, or broken before response headers (502).
    unavailable,
    /// No response headers within `upstream.timeout` (504).
    timeout,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct UpstreamErrorLabels {
    pub(super) kind: UpstreamError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReloadOutcome {
    ok,
    failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    pub(super) outcome: ReloadOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HandshakeFailure {
    error,
    timeout,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct HandshakeLabels {
    pub(super) reason: HandshakeFailure,
}

/// An operation on the shared state (Redis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum StateOp {
    /// Recording an assertion's jti (`SET NX EXAT`).
    replay,
    /// Reading failure counters before a credential is checked.
    throttle_check,
    /// Counting a failed authentication.
    throttle_record,
    /// The pub/sub subscription that keeps the throttle's local view current.
    subscribe,
    /// Taking a token from a client's rate-limit bucket.
    rate_limit,
}

impl StateOp {
    pub const COUNT: usize = 5;

    pub fn as_str(self) -> &'static str {
        match self {
            StateOp::replay => "replay",
            StateOp::throttle_check => "throttle_check",
            StateOp::throttle_record => "throttle_record",
            StateOp::subscribe => "subscribe",
            StateOp::rate_limit => "rate_limit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct StateLabels {
    pub(super) op: StateOp,
}

/// How one verification of a hashed client secret ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum HashOutcome {
    /// The secret matched one of the client's hashes.
    matched,
    /// It matched none (or it was the decoy of an unknown client).
    mismatched,
    /// Refused before hashing: `hashing.max_concurrent` running and `max_queued` waiting.
    saturated,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct HashLabels {
    pub(super) outcome: HashOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CacheResult {
    hit,
    miss,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct CacheLabels {
    pub(super) result: CacheResult,
}

/// Why a connection was closed before its TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ConnectionRefusal {
    /// `limits.max_connections` were open.
    limit,
    /// A peer in `listen_proxy_protocol.trusted` sent no PROXY header, or not in time.
    proxy_header_missing,
    /// A PROXY header that is not valid, or too long.
    proxy_header_invalid,
    /// A PROXY header from a peer not in `listen_proxy_protocol.trusted`.
    proxy_header_untrusted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RefusalLabels {
    pub(super) reason: ConnectionRefusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ReplayRejection {
    /// The (client_id, jti) pair was seen before.
    replayed,
    /// The store is at `assertion.replay_capacity`; the assertion was refused (503).
    full,
    /// Redis could not record it; the assertion was refused (503, fail closed).
    unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReplayLabels {
    pub(super) reason: ReplayRejection,
}

/// Why a request was refused for PKCE (RFC 7636), at the authorization endpoint, PAR or
/// the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum PkceRefusal {
    /// No `code_challenge` where one is required.
    missing_challenge,
    /// A `code_challenge_method` not in `pkce.methods` (absent means `plain`).
    method_not_allowed,
    /// A challenge that is not what its method produces (S256: 43 base64url characters).
    malformed_challenge,
    /// No `code_verifier` in an authorization code exchange that needs one.
    missing_verifier,
    /// A verifier that is not 43–128 characters of `[A-Za-z0-9-._~]`.
    malformed_verifier,
    /// A request object (RFC 9101) whose payload cannot be read, or whose `client_id`
    /// differs from the request's.
    unreadable_request_object,
}

impl PkceRefusal {
    pub fn of(e: PkceError) -> PkceRefusal {
        match e {
            PkceError::MissingChallenge => PkceRefusal::missing_challenge,
            PkceError::MethodNotAllowed => PkceRefusal::method_not_allowed,
            PkceError::MalformedChallenge => PkceRefusal::malformed_challenge,
            PkceError::MissingVerifier => PkceRefusal::missing_verifier,
            PkceError::MalformedVerifier => PkceRefusal::malformed_verifier,
            PkceError::RequestObject => PkceRefusal::unreadable_request_object,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct PkceLabels {
    pub(super) endpoint: EndpointLabel,
    pub(super) reason: PkceRefusal,
}

/// The endpoint kind, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum EndpointLabel {
    token,
    introspection,
    revocation,
    par,
    device_authorization,
    authorization,
}

impl From<EndpointKind> for EndpointLabel {
    fn from(k: EndpointKind) -> Self {
        match k {
            EndpointKind::Token => EndpointLabel::token,
            EndpointKind::Introspection => EndpointLabel::introspection,
            EndpointKind::Revocation => EndpointLabel::revocation,
            EndpointKind::Par => EndpointLabel::par,
            EndpointKind::DeviceAuthorization => EndpointLabel::device_authorization,
            EndpointKind::Authorization => EndpointLabel::authorization,
        }
    }
}

/// How one fetch of a client's `jwks_uri` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum JwksFetchOutcome {
    ok,
    /// Connect, TLS, HTTP or timeout failure.
    unreachable,
    /// A status other than 200.
    status,
    /// A redirect, which is not followed.
    redirect,
    /// Over `jwks_fetch.max_size`.
    too_large,
    /// Not a JWK Set.
    invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct JwksFetchLabels {
    pub(super) outcome: JwksFetchOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct JwksKeysLabels {
    pub(super) client_id: String,
}
