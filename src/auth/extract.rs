//! Finds every client credential in a request and decides which single method it uses.
//!
//! Pure functions over headers, query and decoded form parameters. Rules (docs/design.md §2):
//! exactly one method per request (RFC 6749 §2.3: "MUST NOT use more than one
//! authentication method in each request"); no repeated parameter (RFC 6749 §3.2); no
//! credentials in the query string (RFC 6749 §2.3.1: "MUST NOT be included in the request
//! URI"); a parameter sent without a value counts as omitted (RFC 6749 §3.1).
//! Names are also read as a lenient server would (lenient.rs): two names it would read
//! as one are a repeat, and a name it would read as a credential parameter must be that
//! parameter spelled exactly, so the upstream can never find a credential the gateway
//! did not see.

use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::auth::basic::{self, BasicCredentials};
use crate::auth::form::Params;
use crate::auth::{readings, smuggled};
use crate::error::{AuthFailure, GatewayError, RequestError};
use crate::lenient;
use crate::oauth::{
    ASSERTION_TYPE, CLIENT_ASSERTION, CLIENT_ASSERTION_TYPE, CLIENT_ID, CLIENT_SECRET,
    CREDENTIAL_PARAMS,
};
use crate::secret::Secret;

/// The credential a request presents.
#[derive(Debug)]
pub enum Presented {
    Basic(BasicCredentials),
    Post {
        client_id: String,
        secret: Secret,
    },
    Jwt {
        assertion: String,
    },
    /// `client_id` and nothing else: only a client registered for a certificate method
    /// can authenticate so (RFC 8705 §2: the TLS client certificate is the credential,
    /// the body names the client). For any other client it is an incomplete credential.
    ClientIdOnly {
        client_id: String,
    },
}

#[derive(Debug)]
pub struct Extracted {
    pub presented: Presented,
    /// Non-empty `client_id` from the body, if any.
    pub body_client_id: Option<String>,
}

/// The request body as far as credentials are concerned.
#[derive(Debug)]
pub enum BodyForm<'a> {
    /// urlencoded or multipart, decoded.
    Form(&'a Params<'a>),
    /// Any other content type; it cannot carry credentials.
    Opaque { empty: bool },
}

/// Extracts the one credential in a request, or says why there is none.
pub fn extract(
    headers: &HeaderMap,
    query: Option<&str>,
    body: &BodyForm<'_>,
) -> Result<Extracted, GatewayError> {
    if let Some(q) = query {
        if lenient::param_names(q.as_bytes()).any(|name| CREDENTIAL_PARAMS.contains(&&*name))
            || readings::pair_names(q.as_bytes()).any(names_credential)
        {
            return Err(RequestError::CredentialsInQuery.into());
        }
    }
    // RFC 6749 §2.3: one method. A header or cookie named after a credential is one more
    // place a framework reads it from (smuggled.rs), whatever the request authenticates with.
    if smuggled::in_headers_or_cookies(headers) {
        return Err(RequestError::MultipleAuthMethods.into());
    }

    let mut auth_headers = headers.get_all(AUTHORIZATION).iter();
    let basic = match (auth_headers.next(), auth_headers.next()) {
        (None, _) => None,
        (Some(v), None) => Some(basic::parse(v.as_bytes())?),
        (Some(_), Some(_)) => return Err(RequestError::MultipleAuthorizationHeaders.into()),
    };

    let (client_id, secret, assertion, assertion_type) = match body {
        BodyForm::Form(params) => {
            reject_repeats(params)?;
            (
                value(params, CLIENT_ID),
                value(params, CLIENT_SECRET),
                value(params, CLIENT_ASSERTION),
                value(params, CLIENT_ASSERTION_TYPE),
            )
        }
        BodyForm::Opaque { empty } => {
            // Only Basic can authenticate a body that is not a form.
            if basic.is_none() {
                return Err(if *empty {
                    GatewayError::auth(AuthFailure::NoCredentials, false)
                } else {
                    RequestError::UnsupportedContentType.into()
                });
            }
            (None, None, None, None)
        }
    };
    let body_client_id = client_id.map(str::to_owned);
    let uses_assertion = assertion.is_some() || assertion_type.is_some();

    // RFC 6749 §2.3: one method per request.
    if (basic.is_some() && (secret.is_some() || uses_assertion))
        || (secret.is_some() && uses_assertion)
    {
        return Err(RequestError::MultipleAuthMethods.into());
    }

    if let Some(basic) = basic {
        if body_client_id
            .as_ref()
            .is_some_and(|id| *id != basic.client_id)
        {
            return Err(RequestError::ClientIdMismatch.into());
        }
        return Ok(Extracted {
            presented: Presented::Basic(basic),
            body_client_id,
        });
    }

    if uses_assertion {
        // RFC 7521 §4.2: client_assertion_type is exactly the jwt-bearer URN.
        if assertion_type != Some(ASSERTION_TYPE) {
            return Err(RequestError::InvalidAssertionType.into());
        }
        let assertion = assertion.ok_or(RequestError::MissingAssertion)?;
        return Ok(Extracted {
            presented: Presented::Jwt {
                assertion: assertion.to_owned(),
            },
            body_client_id,
        });
    }

    match (body_client_id, secret) {
        (Some(client_id), Some(secret)) => Ok(Extracted {
            presented: Presented::Post {
                client_id: client_id.clone(),
                secret: Secret::new(secret.as_bytes().to_vec()),
            },
            body_client_id: Some(client_id),
        }),
        (Some(client_id), None) => Ok(Extracted {
            presented: Presented::ClientIdOnly {
                client_id: client_id.clone(),
            },
            body_client_id: Some(client_id),
        }),
        (None, None) => Err(GatewayError::auth(AuthFailure::NoCredentials, false)),
        (None, Some(_)) => Err(GatewayError::auth(
            AuthFailure::IncompleteCredentials,
            false,
        )),
    }
}

/// RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once",
/// with names compared as a lenient server compares them (`scope` and `Scope` are one).
/// A name such a server reads as a credential parameter must be spelled exactly: it would
/// otherwise reach the upstream, which might act on it.
fn reject_repeats(params: &Params) -> Result<(), RequestError> {
    // A token request has a handful of parameters: compared pairwise, without hashing,
    // up to this many; a set beyond (a form may have up to 256).
    const SCAN: usize = 16;
    let mut few: Vec<std::borrow::Cow<'_, str>> = Vec::new();
    let mut many = std::collections::HashSet::new();
    for (name, _) in params {
        // The name is already decoded once; reading it leniently decodes it again, as a
        // server that decodes twice would.
        let loose = lenient::param_name(name.as_bytes());
        if CREDENTIAL_PARAMS.contains(&&*loose) && loose != **name {
            return Err(RequestError::LookalikeParameter);
        }
        // The other readings too (decoded again, cut at NUL, PHP's `[` as `_`): a second
        // spelling of a credential parameter. A name of only `a-z`, `0-9` and `_` (every
        // OAuth parameter) has no reading but itself.
        let other_spelling = !lenient::is_plain_name(name.as_bytes())
            && lenient::credential_readings(name.as_bytes())
                .iter()
                .any(|r| CREDENTIAL_PARAMS.contains(&r.as_str()) && r != name);
        if other_spelling {
            return Err(RequestError::LookalikeParameter);
        }
        let repeated = if params.len() <= SCAN {
            let seen = few.contains(&loose);
            few.push(loose);
            seen
        } else {
            !many.insert(loose)
        };
        if repeated {
            return Err(RequestError::RepeatedParameter);
        }
    }
    Ok(())
}

/// Whether some lenient reading of `raw` is a credential parameter (lenient.rs).
fn names_credential(raw: &[u8]) -> bool {
    lenient::credential_readings(raw)
        .iter()
        .any(|n| CREDENTIAL_PARAMS.contains(&n.as_str()))
}

/// The value of `name`, treating an empty value as absent (RFC 6749 §3.1).
fn value<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| &**v)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn params(list: &[(&str, &str)]) -> Params<'static> {
        list.iter()
            .map(|(a, b)| (a.to_string().into(), b.to_string().into()))
            .collect()
    }

    fn headers(auth: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    const BASIC: &str = "Basic czZCaGRSa3F0Mzo3RmpmcDBaQnIxS3REUmJuZlZkbUl3";

    fn request_error(r: Result<Extracted, GatewayError>) -> RequestError {
        match r {
            Err(GatewayError::Request(e)) => e,
            other => panic!("expected a request error, got {other:?}"),
        }
    }

    fn auth_failure(r: Result<Extracted, GatewayError>) -> AuthFailure {
        match r {
            Err(GatewayError::Authentication { reason, .. }) => reason,
            other => panic!("expected an authentication failure, got {other:?}"),
        }
    }

    #[test]
    fn basic_with_body_secret_is_two_methods_b14() {
        let p = params(&[("grant_type", "x"), ("client_secret", "s")]);
        assert_eq!(
            request_error(extract(&headers(&[BASIC]), None, &BodyForm::Form(&p))),
            RequestError::MultipleAuthMethods
        );
    }

    #[test]
    fn basic_with_matching_or_other_client_id_b15_b16() {
        let same = params(&[("client_id", "s6BhdRkqt3")]);
        assert!(extract(&headers(&[BASIC]), None, &BodyForm::Form(&same)).is_ok());
        let other = params(&[("client_id", "someone-else")]);
        assert_eq!(
            request_error(extract(&headers(&[BASIC]), None, &BodyForm::Form(&other))),
            RequestError::ClientIdMismatch
        );
    }

    #[test]
    fn repeats_are_found_pairwise_and_through_the_set() {
        // Up to 16 parameters are compared pairwise, more through a hash set: both refuse
        // a repeat, including one read leniently (`Scope` is `scope`).
        for n in [3, 16, 17, 40] {
            let names: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
            let mut list: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
            assert!(reject_repeats(&params(&list)).is_ok(), "{n} distinct");
            list[n - 1] = ("P0", "v");
            assert_eq!(
                reject_repeats(&params(&list)),
                Err(RequestError::RepeatedParameter),
                "{n} with a repeat"
            );
        }
    }

    #[test]
    fn repeats_and_query_credentials_p3() {
        let p = params(&[
            ("client_id", "a"),
            ("client_secret", "s"),
            ("client_id", "a"),
        ]);
        assert_eq!(
            request_error(extract(&headers(&[]), None, &BodyForm::Form(&p))),
            RequestError::RepeatedParameter
        );
        let p = params(&[("grant_type", "x")]);
        assert_eq!(
            request_error(extract(
                &headers(&[]),
                Some("client_secret=s"),
                &BodyForm::Form(&p)
            )),
            RequestError::CredentialsInQuery
        );
        for q in ["client%5Fid=a", "Client_Secret=s", "client.assertion=x"] {
            assert_eq!(
                request_error(extract(&headers(&[]), Some(q), &BodyForm::Form(&p))),
                RequestError::CredentialsInQuery,
                "{q}"
            );
        }
        let loose_repeat = params(&[("scope", "a"), ("Scope", "b")]);
        assert_eq!(
            request_error(extract(
                &headers(&[BASIC]),
                None,
                &BodyForm::Form(&loose_repeat)
            )),
            RequestError::RepeatedParameter
        );
        for lookalike in [
            "Client_Secret",
            "client.secret",
            "CLIENT_ID",
            "client%5Fassertion",
        ] {
            let p = params(&[("grant_type", "x"), (lookalike, "s")]);
            assert_eq!(
                request_error(extract(&headers(&[BASIC]), None, &BodyForm::Form(&p))),
                RequestError::LookalikeParameter,
                "{lookalike}"
            );
        }
    }

    #[test]
    fn post_needs_both_values_p4_p5() {
        let p = params(&[("client_id", "a"), ("client_secret", "")]);
        assert!(matches!(
            extract(&headers(&[]), None, &BodyForm::Form(&p))
                .unwrap()
                .presented,
            Presented::ClientIdOnly { .. }
        ));
        // client_id alone names a client that may use its TLS certificate (RFC 8705 §2);
        // the authenticator refuses it for any other client.
        let p = params(&[("client_id", "a")]);
        assert!(matches!(
            extract(&headers(&[]), None, &BodyForm::Form(&p)).unwrap().presented,
            Presented::ClientIdOnly { client_id } if client_id == "a"
        ));
        let p = params(&[("client_secret", "s")]);
        assert_eq!(
            auth_failure(extract(&headers(&[]), None, &BodyForm::Form(&p))),
            AuthFailure::IncompleteCredentials
        );
        let p = params(&[("grant_type", "client_credentials")]);
        assert_eq!(
            auth_failure(extract(&headers(&[]), None, &BodyForm::Form(&p))),
            AuthFailure::NoCredentials
        );
        let p = params(&[("client_id", "a"), ("client_secret", "s")]);
        assert!(matches!(
            extract(&headers(&[]), None, &BodyForm::Form(&p))
                .unwrap()
                .presented,
            Presented::Post { .. }
        ));
    }

    #[test]
    fn assertion_rules_j27_j28() {
        let h = headers(&[]);
        let missing_type = params(&[("client_assertion", "a.b.c")]);
        let wrong_type = params(&[
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", "jwt"),
        ]);
        let empty = params(&[
            ("client_assertion", ""),
            ("client_assertion_type", ASSERTION_TYPE),
        ]);
        let with_secret = params(&[
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_id", "a"),
            ("client_secret", "s"),
        ]);
        assert_eq!(
            request_error(extract(&h, None, &BodyForm::Form(&missing_type))),
            RequestError::InvalidAssertionType
        );
        assert_eq!(
            request_error(extract(&h, None, &BodyForm::Form(&wrong_type))),
            RequestError::InvalidAssertionType
        );
        assert_eq!(
            request_error(extract(&h, None, &BodyForm::Form(&empty))),
            RequestError::MissingAssertion
        );
        assert_eq!(
            request_error(extract(&h, None, &BodyForm::Form(&with_secret))),
            RequestError::MultipleAuthMethods
        );
        let ok = params(&[
            ("client_assertion", "a.b.c"),
            ("client_assertion_type", ASSERTION_TYPE),
        ]);
        assert_eq!(
            request_error(extract(&headers(&[BASIC]), None, &BodyForm::Form(&ok))),
            RequestError::MultipleAuthMethods
        );
        assert!(matches!(
            extract(&h, None, &BodyForm::Form(&ok)).unwrap().presented,
            Presented::Jwt { .. }
        ));
    }

    #[test]
    fn opaque_bodies_need_basic_t3() {
        assert!(extract(&headers(&[BASIC]), None, &BodyForm::Opaque { empty: false }).is_ok());
        assert_eq!(
            request_error(extract(
                &headers(&[]),
                None,
                &BodyForm::Opaque { empty: false }
            )),
            RequestError::UnsupportedContentType
        );
        assert_eq!(
            auth_failure(extract(
                &headers(&[]),
                None,
                &BodyForm::Opaque { empty: true }
            )),
            AuthFailure::NoCredentials
        );
        assert_eq!(
            request_error(extract(
                &headers(&[BASIC, BASIC]),
                None,
                &BodyForm::Opaque { empty: true }
            )),
            RequestError::MultipleAuthorizationHeaders
        );
    }
}
