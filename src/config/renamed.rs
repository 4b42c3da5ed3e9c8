//! Keys that were renamed: the `check` message says how to write the new form.

use crate::oauth::EndpointKind;

/// The `check` message for a config that still has `protected_paths`: the same paths
/// written as `endpoints`, each under the kind its last segment suggests.
pub(super) fn protected_paths_renamed(old: &[String]) -> String {
    let mut by_kind: Vec<(EndpointKind, Vec<&str>)> = Vec::new();
    for path in old {
        let last = path.rsplit('/').next().unwrap_or("");
        let kind = match last {
            "introspect" | "introspection" => EndpointKind::Introspection,
            "revoke" | "revocation" => EndpointKind::Revocation,
            "par" => EndpointKind::Par,
            "device_authorization" | "device" => EndpointKind::DeviceAuthorization,
            _ => EndpointKind::Token,
        };
        match by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, paths)) => paths.push(path),
            None => by_kind.push((kind, vec![path])),
        }
    }
    by_kind.sort_by_key(|(k, _)| *k);
    let mut out = String::from(
        "was replaced by `endpoints`, which says which kind of endpoint each path is \
         (token, introspection, revocation, par, device_authorization, authorization; \
         a kind left out keeps its default path, `kind: []` turns it off). Write:\n  endpoints:",
    );
    for (kind, paths) in by_kind {
        out.push_str(&format!("\n    {kind}: [{}]", paths.join(", ")));
    }
    out
}
