//! The JWS algorithms secretgate knows (RFC 7518 §3.1, RFC 8037, RFC 9864), by exact,
//! case-sensitive name (`hs256` is not `HS256`). Nothing else, and never `none`.

/// The HMAC algorithms (RFC 7518 §3.2): `client_secret_jwt` assertions and the HS256
/// internal header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Hs256, Algorithm::Hs384, Algorithm::Hs512];

    /// Exact, case-sensitive names (RFC 7518 §3.1): `hs256` is not `HS256`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
        }
    }
}

/// The signature algorithms with a public key: `private_key_jwt` assertions (RS256,
/// PS256, ES256, EdDSA) and the asymmetric internal header (ES256, EdDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AsymmetricAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), keys of at least 2048 bits.
    Rs256,
    /// RSASSA-PSS with SHA-256 (RFC 7518 §3.5), keys of at least 2048 bits.
    Ps256,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), the signature as `r || s`.
    Es256,
    /// Ed25519: `EdDSA` in RFC 8037, `Ed25519` in RFC 9864 (which openid-client v6 sends).
    /// Both names mean this one algorithm.
    EdDsa,
}

/// The kind of public key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    P256,
    Ed25519,
}

impl AsymmetricAlgorithm {
    pub const ALL: [AsymmetricAlgorithm; 4] = [
        AsymmetricAlgorithm::Rs256,
        AsymmetricAlgorithm::Ps256,
        AsymmetricAlgorithm::Es256,
        AsymmetricAlgorithm::EdDsa,
    ];

    /// Exact, case-sensitive names; `EdDSA` and `Ed25519` are the same algorithm.
    pub fn from_name(name: &str) -> Option<AsymmetricAlgorithm> {
        match name {
            "RS256" => Some(AsymmetricAlgorithm::Rs256),
            "PS256" => Some(AsymmetricAlgorithm::Ps256),
            "ES256" => Some(AsymmetricAlgorithm::Es256),
            "EdDSA" | "Ed25519" => Some(AsymmetricAlgorithm::EdDsa),
            _ => None,
        }
    }

    /// The name written in a JWS header this gateway signs, and in a JWK's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            AsymmetricAlgorithm::Rs256 => "RS256",
            AsymmetricAlgorithm::Ps256 => "PS256",
            AsymmetricAlgorithm::Es256 => "ES256",
            AsymmetricAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Every name the algorithm is known by, for discovery metadata.
    pub fn names(self) -> &'static [&'static str] {
        match self {
            AsymmetricAlgorithm::EdDsa => &["EdDSA", "Ed25519"],
            AsymmetricAlgorithm::Rs256 => &["RS256"],
            AsymmetricAlgorithm::Ps256 => &["PS256"],
            AsymmetricAlgorithm::Es256 => &["ES256"],
        }
    }

    pub fn key_type(self) -> KeyType {
        match self {
            AsymmetricAlgorithm::Rs256 | AsymmetricAlgorithm::Ps256 => KeyType::Rsa,
            AsymmetricAlgorithm::Es256 => KeyType::P256,
            AsymmetricAlgorithm::EdDsa => KeyType::Ed25519,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
        }
        for a in AsymmetricAlgorithm::ALL {
            assert_eq!(AsymmetricAlgorithm::from_name(a.name()), Some(a));
            for n in a.names() {
                assert_eq!(AsymmetricAlgorithm::from_name(n), Some(a));
            }
        }
        for bad in ["hs256", "none", "es256", "EDDSA", "RS384", ""] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
            assert_eq!(AsymmetricAlgorithm::from_name(bad), None, "{bad}");
        }
    }
}
