//! Shadow mode (`rollout: shadow`, docs/design.md §10.1): judge a protected request as
//! enforcement would, record the verdict, and forward the request as the client sent it.
//!
//! Which mode a request is in: that of every client it names, read as leniently as any
//! server behind the gateway might read it (the Basic user, `client_id` in the query or
//! the body, the `sub` and `iss` of a `client_assertion`, ids case-folded as lenient.rs
//! does). It is in shadow only if *every* client it names is in shadow (an unregistered id
//! takes the top-level `rollout`); naming none, the top-level `rollout` decides. A request
//! whose names cannot be read (a malformed Basic header or form, two content types) is in
//! shadow only if everything is. So a request for an enforced client never goes upstream
//! unjudged because it also names a client in shadow.
//!
//! Invariants, in shadow:
//! - the verdict comes from the same code as enforcement ([`Authenticator`]), on a copy of
//!   the request made without the peer address, so the brute-force throttle neither
//!   refuses nor counts (a misconfigured client in shadow must not lock out enforced
//!   clients sharing its address);
//! - what cannot be read stays refused: a `Content-Encoding` (415), a body over
//!   `limits.max_body` (413) or too slow (408); everything judged about the credential and
//!   the OAuth request (method, query, content type, one method, the credential, grant
//!   type, PKCE) is recorded and forwarded;
//! - the body goes upstream byte for byte and the credentials with it (only the framing is
//!   redone: `Content-Length` for the bytes read); the signed header is added only when
//!   authentication succeeded, bound to exactly those bytes; [`Shadowed`] tells the signer
//!   that a protected request without an identity may pass unsigned.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Request};

use crate::auth::form::{self, BodyKind};
use crate::auth::{jwt, Authenticated, Authenticator};
use crate::body::{full, Body};
use crate::config::{Rollout, RolloutConfig};
use crate::conn::ClientCertificate;
use crate::error::GatewayError;
use crate::lenient;
use crate::metrics::Outcome;
use crate::oauth::{EndpointKind, CLIENT_ASSERTION, CLIENT_ID};
use crate::trace::Notes;

/// Marks a protected request forwarded in shadow: it may reach the upstream without the
/// internal header (when authentication failed). Set only by the auth layer.
#[derive(Debug, Clone, Copy)]
pub struct Shadowed;

/// Which requests are in shadow, prepared once per config.
#[derive(Debug)]
pub struct ShadowPolicy {
    default: Rollout,
    /// Every client and the default are in shadow: no names need reading.
    all: bool,
    /// Registered ids, case-folded (lenient::identifier), with their mode; two ids folding
    /// alike with different modes count as enforced.
    folded: HashMap<String, Rollout>,
}

impl ShadowPolicy {
    /// `None` when no request can be in shadow (the usual case: nothing to do per request).
    pub fn new(rollout: &RolloutConfig) -> Option<ShadowPolicy> {
        if !rollout.any_shadow() {
            return None;
        }
        let mut folded = HashMap::new();
        for (id, c) in &rollout.clients {
            let mode = folded
                .entry(lenient::identifier(id.as_str()))
                .or_insert(c.mode);
            if c.mode == Rollout::Enforce {
                *mode = Rollout::Enforce;
            }
        }
        Some(ShadowPolicy {
            default: rollout.default_mode,
            all: rollout.all_shadow(),
            folded,
        })
    }

    /// The mode of a request with these headers, query and body.
    pub async fn mode(&self, headers: &HeaderMap, query: Option<&str>, body: &Bytes) -> Rollout {
        if self.all {
            return Rollout::Shadow;
        }
        let mut names = Names::default();
        for value in headers.get_all(AUTHORIZATION) {
            match crate::auth::basic::parse(value.as_bytes()) {
                Ok(basic) => names.id(&basic.client_id),
                Err(_) => names.unreadable = true,
            }
        }
        if let Some(q) = query {
            names.pairs(lenient::param_pairs(q.as_bytes()));
        }
        match form::body_kind(headers) {
            Err(_) => names.unreadable = true,
            Ok(BodyKind::UrlEncoded) => names.pairs(lenient::param_pairs(body)),
            // The strict parse finds the parts; their names are then read leniently. A body
            // it cannot parse is unreadable.
            Ok(kind @ BodyKind::Multipart { .. }) => match form::decode(kind, body).await {
                Ok(Some(params)) => names.pairs(params.into_iter().map(|(n, v)| {
                    (
                        lenient::param_name(n.as_bytes()).into_owned(),
                        v.into_owned(),
                    )
                })),
                _ => names.unreadable = true,
            },
            Ok(BodyKind::Other) => {}
        }
        if names.unreadable {
            return Rollout::Enforce;
        }
        if names.ids.is_empty() {
            return self.default;
        }
        let all_shadow = names.ids.iter().all(|id| {
            self.folded
                .get(&lenient::identifier(id))
                .copied()
                .unwrap_or(self.default)
                == Rollout::Shadow
        });
        if all_shadow {
            Rollout::Shadow
        } else {
            Rollout::Enforce
        }
    }
}

/// The client ids a request names.
#[derive(Default)]
struct Names {
    ids: Vec<String>,
    unreadable: bool,
}

impl Names {
    fn id(&mut self, id: &str) {
        if !id.is_empty() {
            self.ids.push(id.to_owned());
        }
    }

    fn pairs<N: AsRef<str>>(&mut self, pairs: impl Iterator<Item = (N, String)>) {
        for (name, value) in pairs {
            match name.as_ref() {
                CLIENT_ID => self.id(&value),
                CLIENT_ASSERTION => match jwt::decode(&value) {
                    Some(c) => {
                        for claim in [&c.claims.sub, &c.claims.iss].into_iter().flatten() {
                            if let Some(s) = claim.as_str() {
                                self.id(s);
                            }
                        }
                    }
                    None => self.unreadable = true,
                },
                _ => {}
            }
        }
    }
}

impl Authenticator {
    /// A protected request when some client is in shadow: read the body (under the same
    /// limits), pick the mode, then enforce as usual or judge and forward as sent.
    pub(super) async fn authenticate_rollout(
        &self,
        policy: &ShadowPolicy,
        req: Request<Body>,
        kind: EndpointKind,
        notes: Option<Arc<Notes>>,
    ) -> Result<Request<Body>, GatewayError> {
        // What the gateway cannot read is refused in either mode (RFC 9110 §8.4).
        if crate::auth::contain::has_content_coding(req.headers()) {
            crate::limit::drain(req.into_body()).await;
            return Err(GatewayError::UnsupportedContentEncoding);
        }
        let (mut parts, body) = req.into_parts();
        let limits = self.limits();
        let bytes = crate::limit::read_body(
            &parts.headers,
            body,
            limits.max_body,
            limits.body_read_timeout,
        )
        .await?;
        if policy.mode(&parts.headers, parts.uri.query(), &bytes).await == Rollout::Enforce {
            return self
                .authenticate_enforced(Request::from_parts(parts, full(bytes)), kind, notes)
                .await;
        }
        // The copy that is judged: no peer address, so the throttle stays out of it.
        let mut judged = Request::new(full(bytes.clone()));
        *judged.method_mut() = parts.method.clone();
        *judged.uri_mut() = parts.uri.clone();
        *judged.version_mut() = parts.version;
        *judged.headers_mut() = parts.headers.clone();
        if let Some(cert) = parts.extensions.get::<ClientCertificate>() {
            judged.extensions_mut().insert(cert.clone());
        }
        let verdict = self
            .authenticate_noted(judged, kind, notes.as_deref())
            .await;
        if let Some(notes) = &notes {
            notes.shadow(match &verdict {
                Ok(_) => Outcome::ok,
                Err(e) => Outcome::of(e),
            });
        }
        if let Ok(mut judged) = verdict {
            if let Some(who) = judged.extensions_mut().remove::<Authenticated>() {
                // The header binds the bytes that go upstream: the client's own.
                parts.extensions.insert(Authenticated {
                    body: bytes.clone(),
                    ..who
                });
            }
        }
        parts.extensions.insert(Shadowed);
        // The bytes were read whole: framing them is the gateway's job (hop-by-hop).
        let framed = parts.headers.remove(TRANSFER_ENCODING).is_some()
            || parts.headers.contains_key(CONTENT_LENGTH);
        if framed || !bytes.is_empty() {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        }
        Ok(Request::from_parts(parts, full(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use http::header::{AUTHORIZATION, CONTENT_TYPE};

    use super::*;
    use crate::testing::{self, BASIC_ID, POST_ID};

    /// Default enforce; `trial` in shadow.
    fn policy() -> (ShadowPolicy, tempfile::TempDir) {
        let (config, dir) = testing::config(
            "  - { client_id: trial, auth_method: client_secret_basic, secrets: [{ value: trial-secret-0123 }], rollout: shadow }\n",
        );
        (
            ShadowPolicy::new(&config.rollout).expect("a client in shadow"),
            dir,
        )
    }

    fn headers(pairs: &[(http::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), v.parse().unwrap());
        }
        h
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    async fn mode(h: &HeaderMap, query: Option<&str>, body: &str) -> Rollout {
        let (p, _dir) = policy();
        p.mode(h, query, &Bytes::from(body.to_owned())).await
    }

    #[tokio::test]
    async fn a_request_is_in_shadow_only_if_every_client_it_names_is() {
        let form = headers(&[(CONTENT_TYPE, FORM)]);
        let basic = |id: &str| {
            headers(&[
                (CONTENT_TYPE, FORM),
                (AUTHORIZATION, &crate::auth::basic::encode(id, "x")),
            ])
        };
        assert_eq!(mode(&basic("trial"), None, "").await, Rollout::Shadow);
        assert_eq!(mode(&basic(BASIC_ID), None, "").await, Rollout::Enforce);
        assert_eq!(mode(&form, None, "client_id=trial").await, Rollout::Shadow);
        // Unknown ids and requests naming nobody take the default (enforce here).
        assert_eq!(
            mode(&form, None, "client_id=nobody").await,
            Rollout::Enforce
        );
        assert_eq!(mode(&form, None, "grant_type=x").await, Rollout::Enforce);
        // A second name, however a lenient server would spell it, enforces.
        for body in [
            format!("client_id=trial&client_id={POST_ID}"),
            format!("client_id=trial&Client_Id={POST_ID}"),
            format!("client_id=trial&client.id={POST_ID}"),
            format!("client_id=trial;client_id={POST_ID}"),
            "client_id=trial&client_id=TRIAL".replace("TRIAL", BASIC_ID),
        ] {
            assert_eq!(mode(&form, None, &body).await, Rollout::Enforce, "{body}");
        }
        assert_eq!(
            mode(&basic("trial"), Some(&format!("client_id={BASIC_ID}")), "").await,
            Rollout::Enforce
        );
        // Case-folded ids count as the registered one.
        assert_eq!(mode(&form, None, "client_id=TRIAL").await, Rollout::Shadow);
        // An assertion names its sub and iss.
        let jwt = |sub: &str, iss: &str| {
            let claims = serde_json::json!({ "sub": sub, "iss": iss });
            crate::jws::sign(
                br#"{"alg":"HS256"}"#,
                claims.to_string().as_bytes(),
                &crate::jws::HmacKey::new(crate::oauth::Algorithm::Hs256, b"k"),
            )
        };
        let body = |a: String| format!("client_assertion={a}");
        assert_eq!(
            mode(&form, None, &body(jwt("trial", "trial"))).await,
            Rollout::Shadow
        );
        assert_eq!(
            mode(&form, None, &body(jwt("trial", BASIC_ID))).await,
            Rollout::Enforce
        );
        // Unreadable names: enforced unless everything is in shadow.
        assert_eq!(
            mode(&form, None, "client_id=trial&client_assertion=garbage").await,
            Rollout::Enforce
        );
        let bad_basic = headers(&[(AUTHORIZATION, "Basic !!!")]);
        assert_eq!(mode(&bad_basic, None, "").await, Rollout::Enforce);
        let multipart = headers(&[(CONTENT_TYPE, "multipart/form-data; boundary=b")]);
        let part = |name: &str, value: &str| {
            format!("--b\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        };
        let mp = format!("{}--b--\r\n", part("client_id", "trial"));
        assert_eq!(mode(&multipart, None, &mp).await, Rollout::Shadow);
        let mp = format!(
            "{}{}--b--\r\n",
            part("client_id", "trial"),
            part("CLIENT_ID", BASIC_ID)
        );
        assert_eq!(mode(&multipart, None, &mp).await, Rollout::Enforce);
        assert_eq!(
            mode(&multipart, None, "not multipart").await,
            Rollout::Enforce
        );
    }

    #[tokio::test]
    async fn everything_in_shadow_needs_no_names() {
        let (config, _dir) = testing::config("rollout: shadow\n");
        let p = ShadowPolicy::new(&config.rollout).unwrap();
        let bad_basic = headers(&[(AUTHORIZATION, "Basic !!!")]);
        assert_eq!(
            p.mode(&bad_basic, None, &Bytes::new()).await,
            Rollout::Shadow
        );
        let (config, _dir) = testing::config("");
        assert!(
            ShadowPolicy::new(&config.rollout).is_none(),
            "nothing to do per request"
        );
    }
}
