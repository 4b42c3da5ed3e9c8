//! Validation of `containment` (docs/design.md §4.1, §4.3, §6.2): what the gateway does with
//! requests that a server behind it could read differently.
//!
//! `allow_authorization_schemes` names schemes forwarded on paths that do not authenticate
//! clients. Each must be an HTTP token (RFC 9110 §11.1); `Basic` can never be allowed:
//! it carries the credential itself (RFC 7617), so a Basic header on such a path would
//! reach the upstream secret and all.

use super::raw::RawContainment;
use super::validate::Validator;
use super::{ContainmentConfig, UnderscoreHeaders};

impl Validator<'_> {
    pub(super) fn containment(&mut self, raw: RawContainment) -> ContainmentConfig {
        let underscore_headers = self.choice(
            raw.underscore_headers,
            "containment.underscore_headers",
            &[
                ("drop", UnderscoreHeaders::Drop),
                ("refuse", UnderscoreHeaders::Refuse),
            ],
            UnderscoreHeaders::Drop,
        );
        let mut schemes = Vec::new();
        for (i, scheme) in raw
            .allow_authorization_schemes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let path = format!("containment.allow_authorization_schemes[{i}]");
            let token = !scheme.is_empty() && scheme.bytes().all(is_tchar);
            if !token {
                self.problem(path, format!("`{scheme}` is not an HTTP scheme name"));
            } else if scheme.eq_ignore_ascii_case("basic") {
                self.problem(
                    path,
                    "Basic carries a client secret (RFC 7617) and is never forwarded on a \
                     path that does not authenticate clients",
                );
            } else {
                let lower = scheme.to_ascii_lowercase();
                if !schemes.contains(&lower) {
                    schemes.push(lower);
                }
            }
        }
        ContainmentConfig {
            underscore_headers,
            allow_authorization_schemes: schemes,
        }
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use crate::config::{ContainmentConfig, UnderscoreHeaders};

    fn containment(yaml: &str) -> ContainmentConfig {
        crate::testing::config(yaml).0.containment
    }

    /// Every problem `check` lists for `yaml` (other keys missing too).
    fn problems(yaml: &str) -> String {
        match crate::config::Config::from_yaml(yaml, std::path::Path::new(".")) {
            Ok(_) => String::new(),
            Err(e) => e.problems().join("\n"),
        }
    }

    #[test]
    fn defaults_drop_and_allow_nothing_more() {
        let c = containment("");
        assert_eq!(c.underscore_headers, UnderscoreHeaders::Drop);
        assert!(c.allow_authorization_schemes.is_empty());
        let c = containment(
            "containment: { underscore_headers: refuse, \
             allow_authorization_schemes: [Digest, HOBA, digest] }\n",
        );
        assert_eq!(c.underscore_headers, UnderscoreHeaders::Refuse);
        assert_eq!(c.allow_authorization_schemes, ["digest", "hoba"]);
    }

    #[test]
    fn basic_and_non_tokens_are_refused_with_their_key() {
        let e = problems(
            "containment: { underscore_headers: keep, \
             allow_authorization_schemes: [Digest, bAsIc, \"a b\"] }\n",
        );
        assert!(e.contains("containment.underscore_headers: `keep`"), "{e}");
        assert!(
            e.contains("containment.allow_authorization_schemes[1]: Basic carries"),
            "{e}"
        );
        assert!(
            e.contains("containment.allow_authorization_schemes[2]: `a b`"),
            "{e}"
        );
        let e = problems("containment: { underscores: drop }\n");
        assert!(e.contains("underscores"), "{e}");
    }
}
