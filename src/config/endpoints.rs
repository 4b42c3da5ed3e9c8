//! Validation of `endpoints` (which paths are which kind of endpoint) and `pkce`.

use super::raw::*;
use super::renamed::protected_paths_renamed;
use super::validate::Validator;
use super::*;
use crate::oauth::{EndpointKind, PkceMethod};

impl Validator<'_> {
    /// `endpoints`: each listed kind replaces that kind's default paths, an unlisted kind
    /// keeps them, `kind: []` turns it off. A path may be one kind only.
    pub(super) fn endpoints(
        &mut self,
        raw: Option<RawEndpoints>,
        renamed: Option<Vec<String>>,
    ) -> EndpointsConfig {
        if let Some(old) = renamed {
            self.problem("protected_paths", protected_paths_renamed(&old));
        }
        let raw = raw.unwrap_or_default();
        let lists = [
            (EndpointKind::Token, raw.token),
            (EndpointKind::Introspection, raw.introspection),
            (EndpointKind::Revocation, raw.revocation),
            (EndpointKind::Par, raw.par),
            (EndpointKind::DeviceAuthorization, raw.device_authorization),
            (EndpointKind::Authorization, raw.authorization),
        ];
        let mut routes: Vec<(EndpointKind, PathPattern, String)> = Vec::new();
        for (kind, list) in lists {
            let Some(list) = list else {
                if let Ok(p) = PathPattern::parse(kind.default_path()) {
                    routes.push((kind, p, format!("endpoints.{kind} (default)")));
                }
                continue;
            };
            for (i, text) in list.iter().enumerate() {
                let path = format!("endpoints.{kind}[{i}]");
                match PathPattern::parse(text) {
                    Ok(pattern) => routes.push((kind, pattern, path)),
                    Err(e) => self.problem(path, e),
                }
            }
        }
        // One kind per path: the rules differ by kind, so a request that two patterns
        // could claim (read strictly or leniently) would be judged by the wrong ones.
        for (i, (kind, pattern, path)) in routes.iter().enumerate() {
            let Some((other_kind, other, other_path)) = routes[..i]
                .iter()
                .find(|(_, other, _)| pattern.overlaps(other))
            else {
                continue;
            };
            let what = if kind == other_kind {
                "is listed twice as"
            } else {
                "is also"
            };
            let default = [(kind, path), (other_kind, other_path)]
                .into_iter()
                .find(|(_, p)| p.ends_with("(default)"));
            let hint = match default {
                Some((k, _)) => format!(
                    " (`{k}` keeps its default path unless listed: turn it off with `{k}: []`, or list its own path)"
                ),
                None => String::new(),
            };
            self.problem(
                path.trim_end_matches(" (default)"),
                format!(
                    "`{}` {what} `{}` under {}: a path may be one kind of endpoint only{hint}",
                    pattern.as_str(),
                    other.as_str(),
                    other_path.trim_end_matches(" (default)"),
                ),
            );
        }
        let routes: Vec<(EndpointKind, PathPattern)> =
            routes.into_iter().map(|(k, p, _)| (k, p)).collect();
        if !routes.iter().any(|(k, _)| k.authenticates()) {
            self.problem(
                "endpoints",
                "every endpoint that authenticates clients is turned off; keep at least one",
            );
        }
        EndpointsConfig { routes }
    }

    pub(super) fn pkce(&mut self, raw: RawPkce) -> PkceConfig {
        let required = self.choice(
            raw.required,
            "pkce.required",
            &[
                ("public", PkceRequired::Public),
                ("all", PkceRequired::All),
                ("off", PkceRequired::Off),
            ],
            PkceRequired::Public,
        );
        let methods = match raw.methods {
            None => vec![PkceMethod::S256],
            Some(names) => {
                let mut out = Vec::new();
                for (i, name) in names.iter().enumerate() {
                    match PkceMethod::from_name(name) {
                        Some(m) if !out.contains(&m) => out.push(m),
                        Some(_) => self.problem(
                            format!("pkce.methods[{i}]"),
                            format!("`{name}` is listed twice"),
                        ),
                        None => self.problem(
                            format!("pkce.methods[{i}]"),
                            format!("`{name}` is not a code_challenge_method; use S256 (or plain)"),
                        ),
                    }
                }
                if names.is_empty() {
                    self.problem("pkce.methods", "list at least one method (S256)");
                }
                out
            }
        };
        PkceConfig { required, methods }
    }
}
