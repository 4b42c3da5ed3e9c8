//! Endpoint path patterns (`endpoints`): `/oauth2/token`, `/{tid}/{aid}/oauth2/token`,
//! where `{name}` matches exactly one non-empty segment. Parsed and checked here, at load;
//! matched by the router (route.rs) against the decoded segments of a request path.

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

/// One path pattern from `endpoints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<PathPattern, String> {
        if !text.starts_with('/') {
            return Err(format!("`{text}` must start with `/`"));
        }
        if text.contains(['?', '#', '%']) {
            return Err(format!(
                "`{text}` must be a plain path, without query, fragment or escapes"
            ));
        }
        // What the router refuses in a request path could never match.
        if text.contains(['\\', ';']) || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "`{text}` has a backslash, `;`, white space or a control character"
            ));
        }
        let mut segments = Vec::new();
        for seg in text[1..].split('/') {
            // The router refuses these in a request path, so such a pattern could never
            // match: `..`, `x::` (IIS reads it as `x`), `..::y`, `. `.
            if crate::lenient::ambiguous_segment(seg) {
                return Err(format!(
                    "`{text}` has a segment `{seg}` that some server reads as empty or as a dot segment"
                ));
            }
            if seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2 {
                if seg[1..seg.len() - 1].contains(['{', '}']) {
                    return Err(format!("`{text}` has a malformed placeholder `{seg}`"));
                }
                segments.push(Segment::Any);
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "`{text}`: a placeholder must be a whole segment, like /{{tenant}}/oauth2/token"
                ));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        Ok(PathPattern {
            text: text.to_owned(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the decoded segments of a request path match, segment for segment.
    pub fn matches<S: AsRef<str>>(&self, decoded_segments: &[S]) -> bool {
        self.matches_by(decoded_segments, |literal, segment| literal == segment)
    }

    /// Whether some request path could be read as both patterns, by the router or by a
    /// lenient server (literal segments compared as lenient.rs reads them): two endpoint
    /// kinds must never claim one path.
    pub fn overlaps(&self, other: &PathPattern) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => {
                        crate::lenient::path_segment(a) == crate::lenient::path_segment(b)
                    }
                    _ => true,
                })
    }

    /// [`PathPattern::matches`] with another comparison of literal segments (`{name}`
    /// still matches any non-empty segment): the router uses it to find paths another
    /// server would read as this endpoint.
    pub fn matches_by<S: AsRef<str>>(
        &self,
        segments: &[S],
        literal_eq: impl Fn(&str, &str) -> bool,
    ) -> bool {
        self.segments.len() == segments.len()
            && self
                .segments
                .iter()
                .zip(segments)
                .all(|(pat, seg)| match pat {
                    Segment::Any => !seg.as_ref().is_empty(),
                    Segment::Literal(lit) => literal_eq(lit, seg.as_ref()),
                })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_patterns_are_rejected() {
        for bad in [
            "oauth2/token",
            "/a//b",
            "/a/{x",
            "/a/b{x}",
            "/a/?q",
            "/a/../b",
            "/{}",
            "/a/.../b",
            // Found by fuzz/path: IIS reads `..::…` as `..`, so the router refuses the
            // segment and this pattern could never match its own text.
            "/..::::::::r]1.",
            "/a/.::x",
            "/a/::x",
            "/a;x/b",
            "/a\\b",
            "/a b",
            "/o\u{1}auth2/token",
        ] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn placeholders_match_one_segment() {
        let p = PathPattern::parse("/{tid}/oauth2/token").unwrap();
        assert!(p.matches(&["acme", "oauth2", "token"]));
        assert!(!p.matches(&["oauth2", "token"]));
        assert!(!p.matches(&["a", "b", "oauth2", "token"]));
    }

    #[test]
    fn overlaps_are_read_leniently() {
        let p = |t| PathPattern::parse(t).unwrap();
        assert!(p("/oauth2/token").overlaps(&p("/oauth2/token")));
        assert!(p("/oauth2/token").overlaps(&p("/OAuth2/Token")));
        assert!(p("/{tid}/token").overlaps(&p("/oauth2/token")));
        assert!(p("/oauth2/token").overlaps(&p("/oauth2/{x}")));
        assert!(!p("/oauth2/token").overlaps(&p("/oauth2/revoke")));
        assert!(!p("/oauth2/token").overlaps(&p("/{a}/oauth2/token")));
    }
}
