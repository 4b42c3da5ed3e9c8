//! Validation of `readiness` (docs/design.md §8.1): whether the admin `/readyz` also
//! follows the upstream, how recent its last sign of life must be, and what that sign is
//! (a TCP connection accepted, or `path` answered with a 2xx).

use std::time::Duration;

use serde::Deserialize;

use super::validate::{secs, Validator};

/// `readiness` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReadiness {
    pub upstream: Option<bool>,
    pub window: Option<String>,
    pub path: Option<String>,
}

/// `readiness`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessConfig {
    /// `/readyz` fails unless the upstream answered a probe within `window`.
    pub upstream: bool,
    /// How old the last successful probe may be; probes run every `window / 2`.
    pub window: Duration,
    /// Probe with `GET path` (a 2xx passes) instead of a TCP connection.
    pub path: Option<String>,
}

impl Default for ReadinessConfig {
    fn default() -> Self {
        ReadinessConfig {
            upstream: false,
            window: secs(5),
            path: None,
        }
    }
}

/// Shortest `readiness.window`: probes every half window, and a probe gets the upstream's
/// connect timeout, so a window below this would keep the upstream busy answering probes.
const MIN_WINDOW: Duration = Duration::from_millis(200);

impl Validator<'_> {
    pub(super) fn readiness(&mut self, raw: Option<RawReadiness>) -> ReadinessConfig {
        let Some(raw) = raw else {
            return ReadinessConfig::default();
        };
        let window = self.duration(raw.window, "readiness.window", secs(5));
        if window < MIN_WINDOW {
            self.problem("readiness.window", "must be at least 200ms");
        }
        let path = raw.path.filter(|p| {
            // The probe's request target (RFC 9112 §3.2.1 origin-form): a path, with no
            // scheme or authority that could send it elsewhere.
            let ok = p.starts_with('/')
                && !p.starts_with("//")
                && p.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                self.problem(
                    "readiness.path",
                    format!("`{p}` must be a path starting with `/`, such as /healthz"),
                );
            }
            ok
        });
        ReadinessConfig {
            upstream: raw.upstream.unwrap_or(false),
            window,
            path,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::validate::tests::validator;
    use super::*;

    #[test]
    fn readiness_defaults_and_checks() {
        let mut v = validator(Path::new("."));
        assert_eq!(v.readiness(None), ReadinessConfig::default());
        let r = v.readiness(Some(RawReadiness {
            upstream: Some(true),
            window: Some("10s".into()),
            path: Some("/healthz".into()),
        }));
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(
            r,
            ReadinessConfig {
                upstream: true,
                window: secs(10),
                path: Some("/healthz".into()),
            }
        );
        v.readiness(Some(RawReadiness {
            upstream: Some(true),
            window: Some("100ms".into()),
            path: Some("http://elsewhere/".into()),
        }));
        v.readiness(Some(RawReadiness {
            path: Some("//elsewhere/x".into()),
            ..RawReadiness::default()
        }));
        let texts: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "readiness.window: must be at least 200ms",
                "readiness.path: `http://elsewhere/` must be a path starting with `/`, such as /healthz",
                "readiness.path: `//elsewhere/x` must be a path starting with `/`, such as /healthz",
            ]
        );
    }
}
