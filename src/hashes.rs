//! Stored hashes of client secrets (`secrets: [{ hash: … }]`, docs/design.md §2.7): the
//! formats accepted, the parameter floors enforced, verification, and making hashes and
//! new secrets (the `hash-secret` and `new-secret` commands).
//!
//! Formats, as other tools write them:
//! - argon2id, PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`: argon2-cffi, passlib);
//! - bcrypt, `$2a$`, `$2b$` or `$2y$` (`htpasswd -B`, Python's bcrypt, passlib);
//! - PBKDF2-HMAC-SHA256, PHC string (`$pbkdf2-sha256$i=…,l=…$salt$hash`) or passlib's
//!   variant (`$pbkdf2-sha256$<rounds>$<salt>$<hash>`, "adapted" base64), for shops that
//!   need FIPS-approved primitives.
//!
//! Floors (OWASP Password Storage Cheat Sheet): argon2id with at least one of (m, t) =
//! (47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5), p ≥ 1, version 0x13; bcrypt
//! cost ≥ 10; PBKDF2-SHA256 ≥ 600,000 iterations. Anything else is a config error naming
//! the floor. Ceilings, because every request with a wrong secret pays one verification
//! (and the decoys copy the first hash's cost): argon2id m ≤ 262,144 KiB (256 MiB), t ≤ 10,
//! p ≤ 16; bcrypt cost ≤ 14; PBKDF2-SHA256 ≤ 5,000,000 iterations. Above one, the hash is a
//! config error naming the ceiling. Verification is slow on purpose (tens to hundreds of ms): callers run it off
//! the event loops (auth/hashing.rs). bcrypt reads only 72 bytes: a longer presented
//! secret never matches, rather than matching on its first 72 bytes.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;

/// OWASP's argon2id configurations, (memory KiB, iterations): a hash must meet one.
const ARGON2_FLOORS: [(u32, u32); 5] = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)];
const BCRYPT_MIN_COST: u32 = 10;
const PBKDF2_MIN_ROUNDS: u32 = 600_000;

/// Ceilings: what one verification may cost. Each wrong secret pays a verification per
/// hash, so a hash past these would let one request pin hundreds of MiB or seconds of CPU.
/// argon2id memory in KiB (256 MiB), iterations and lanes.
const ARGON2_MAX_M: u32 = 262_144;
const ARGON2_MAX_T: u32 = 10;
const ARGON2_MAX_P: u32 = 16;
/// bcrypt's work doubles with each step: 14 is 16 times OWASP's floor of 10.
const BCRYPT_MAX_COST: u32 = 14;
const PBKDF2_MAX_ROUNDS: u32 = 5_000_000;

/// Parameters `hash-secret` and `new-secret --hash` use: OWASP's recommended ones.
pub const ARGON2_DEFAULT: (u32, u32, u32) = (19456, 2, 1);
pub const BCRYPT_DEFAULT_COST: u32 = 12;
pub const PBKDF2_DEFAULT_ROUNDS: u32 = 600_000;

/// The hash algorithms accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    Argon2id,
    Bcrypt,
    Pbkdf2Sha256,
}

impl HashAlgorithm {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "argon2id" => Some(Self::Argon2id),
            "bcrypt" => Some(Self::Bcrypt),
            "pbkdf2-sha256" => Some(Self::Pbkdf2Sha256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Argon2id => "argon2id",
            Self::Bcrypt => "bcrypt",
            Self::Pbkdf2Sha256 => "pbkdf2-sha256",
        }
    }
}

/// A stored hash, parsed and checked against the floors.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash {
    text: String,
    kind: Kind,
}

/// How the text is verified: argon2id and PBKDF2 as PHC strings by the RustCrypto
/// crates, bcrypt by the bcrypt crate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Argon2id,
    Pbkdf2,
    Bcrypt,
}

impl fmt::Debug for StoredHash {
    /// Only the algorithm: a hash is not a secret, but it is what an offline guesser
    /// needs, so it is not printed either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredHash({}, ***)", self.algorithm().as_str())
    }
}

/// Why a hash is not accepted (config errors; fixed text, never the hash).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("not a hash secretgate reads: use argon2id (PHC `$argon2id$…`), bcrypt (`$2a$`, `$2b$`, `$2y$`) or PBKDF2-SHA256 (`$pbkdf2-sha256$…`)")]
    Unknown,
    #[error("{0} is not accepted: use argon2id, not argon2i or argon2d")]
    WrongArgon2Variant(&'static str),
    #[error("malformed {0} hash")]
    Malformed(&'static str),
    #[error("argon2id parameters m={m},t={t},p={p} are below OWASP's minimums (one of m=47104,t=1; m=19456,t=2; m=12288,t=3; m=9216,t=4; m=7168,t=5; p≥1)")]
    WeakArgon2 { m: u32, t: u32, p: u32 },
    #[error("bcrypt cost {0} is below the minimum of {BCRYPT_MIN_COST}")]
    WeakBcrypt(u32),
    #[error("PBKDF2-SHA256 with {0} iterations is below the minimum of {PBKDF2_MIN_ROUNDS}")]
    WeakPbkdf2(u32),
    #[error("argon2id parameters m={m},t={t},p={p} are above the ceilings (m ≤ {ARGON2_MAX_M} KiB, i.e. 256 MiB; t ≤ {ARGON2_MAX_T}; p ≤ {ARGON2_MAX_P}): each request with a wrong secret would pin that much memory and CPU")]
    CostlyArgon2 { m: u32, t: u32, p: u32 },
    #[error("bcrypt cost {0} is above the ceiling of {BCRYPT_MAX_COST}: each request with a wrong secret would pin a CPU that long")]
    CostlyBcrypt(u32),
    #[error("PBKDF2-SHA256 with {0} iterations is above the ceiling of {PBKDF2_MAX_ROUNDS}: each request with a wrong secret would pin a CPU that long")]
    CostlyPbkdf2(u32),
}

/// passlib's "adapted base64": the standard alphabet with `.` for `+`, no padding.
fn ab64_decode(text: &str) -> Option<Vec<u8>> {
    let standard = text.replace('.', "+");
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(standard)
        .ok()
}

impl StoredHash {
    /// Parses a stored hash and checks it against the floors.
    pub fn parse(text: &str) -> Result<StoredHash, HashError> {
        let text = text.trim();
        let kind = if text.starts_with("$argon2id$") {
            let phc = PasswordHash::new(text).map_err(|_| HashError::Malformed("argon2id"))?;
            // argon2 0.5 computes `p * 8` before it checks p's range, which overflows (a
            // panic where overflow checks are on) from p = 2^29: p is checked here first.
            // Found by fuzz/hash with `$argon2id$p=787714951`.
            if phc
                .params
                .get_decimal("p")
                .is_some_and(|p| p > argon2::Params::MAX_P_COST)
            {
                return Err(HashError::Malformed("argon2id"));
            }
            let params =
                argon2::Params::try_from(&phc).map_err(|_| HashError::Malformed("argon2id"))?;
            let version = phc.version.unwrap_or(0x10);
            if version != 0x13 || phc.hash.is_none() {
                return Err(HashError::Malformed("argon2id"));
            }
            let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
            if p < 1 || !ARGON2_FLOORS.iter().any(|&(fm, ft)| m >= fm && t >= ft) {
                return Err(HashError::WeakArgon2 { m, t, p });
            }
            // docs/design.md §2.7: a wrong secret must not buy more than the ceilings.
            if m > ARGON2_MAX_M || t > ARGON2_MAX_T || p > ARGON2_MAX_P {
                return Err(HashError::CostlyArgon2 { m, t, p });
            }
            Kind::Argon2id
        } else if text.starts_with("$argon2i$") {
            return Err(HashError::WrongArgon2Variant("argon2i"));
        } else if text.starts_with("$argon2d$") {
            return Err(HashError::WrongArgon2Variant("argon2d"));
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            let parts: bcrypt::HashParts =
                text.parse().map_err(|_| HashError::Malformed("bcrypt"))?;
            // The salt (22) and hash (31) of bcrypt's own base64: 60 characters in all.
            if text.len() != 60 {
                return Err(HashError::Malformed("bcrypt"));
            }
            if parts.get_cost() < BCRYPT_MIN_COST {
                return Err(HashError::WeakBcrypt(parts.get_cost()));
            }
            // docs/design.md §2.7: a wrong secret must not buy more than the ceiling.
            if parts.get_cost() > BCRYPT_MAX_COST {
                return Err(HashError::CostlyBcrypt(parts.get_cost()));
            }
            Kind::Bcrypt
        } else if let Some(rest) = text.strip_prefix("$pbkdf2-sha256$") {
            let mut fields = rest.split('$');
            let (params, salt, hash) =
                match (fields.next(), fields.next(), fields.next(), fields.next()) {
                    (Some(p), Some(s), Some(h), None) => (p, s, h),
                    _ => return Err(HashError::Malformed("PBKDF2-SHA256")),
                };
            // passlib writes the rounds alone and "adapted" base64 (`.` for `+`); rewritten
            // as the PHC string it stands for, it is verified like one.
            let phc_text = match params.parse::<u32>() {
                Ok(rounds) if !params.starts_with('0') => {
                    let salt = ab64_decode(salt).ok_or(HashError::Malformed("PBKDF2-SHA256"))?;
                    let hash = ab64_decode(hash).ok_or(HashError::Malformed("PBKDF2-SHA256"))?;
                    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
                    format!(
                        "$pbkdf2-sha256$i={rounds},l={}${}${}",
                        hash.len(),
                        b64.encode(salt),
                        b64.encode(hash)
                    )
                }
                _ => text.to_owned(),
            };
            let phc =
                PasswordHash::new(&phc_text).map_err(|_| HashError::Malformed("PBKDF2-SHA256"))?;
            let params = pbkdf2::Params::try_from(&phc)
                .map_err(|_| HashError::Malformed("PBKDF2-SHA256"))?;
            if phc.hash.is_none_or(|h| h.len() < 16) || phc.salt.is_none() {
                return Err(HashError::Malformed("PBKDF2-SHA256"));
            }
            if params.rounds < PBKDF2_MIN_ROUNDS {
                return Err(HashError::WeakPbkdf2(params.rounds));
            }
            // docs/design.md §2.7: a wrong secret must not buy more than the ceiling.
            if params.rounds > PBKDF2_MAX_ROUNDS {
                return Err(HashError::CostlyPbkdf2(params.rounds));
            }
            return Ok(StoredHash {
                text: phc_text,
                kind: Kind::Pbkdf2,
            });
        } else {
            return Err(HashError::Unknown);
        };
        Ok(StoredHash {
            text: text.to_owned(),
            kind,
        })
    }

    pub fn algorithm(&self) -> HashAlgorithm {
        match self.kind {
            Kind::Argon2id => HashAlgorithm::Argon2id,
            Kind::Bcrypt => HashAlgorithm::Bcrypt,
            Kind::Pbkdf2 => HashAlgorithm::Pbkdf2Sha256,
        }
    }

    /// The hash as stored (passlib's PBKDF2 as the PHC string it stands for): what the
    /// verify cache is keyed with, so that a changed hash never matches an earlier
    /// verification.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `secret` is the one hashed. Slow by design; constant time in the secret.
    pub fn verify(&self, secret: &[u8]) -> bool {
        match &self.kind {
            Kind::Argon2id => PasswordHash::new(&self.text).is_ok_and(|h| {
                argon2::Argon2::default()
                    .verify_password(secret, &h)
                    .is_ok()
            }),
            Kind::Pbkdf2 => PasswordHash::new(&self.text)
                .is_ok_and(|h| pbkdf2::Pbkdf2.verify_password(secret, &h).is_ok()),
            // Refuses (errs on) secrets over 72 bytes instead of reading their start only.
            Kind::Bcrypt => bcrypt::non_truncating_verify(secret, &self.text).unwrap_or(false),
        }
    }

    /// A hash of random bytes with the same algorithm and cost: verifying anything against
    /// it costs what verifying against `self` costs (the decoy for unknown clients).
    pub fn decoy(&self) -> StoredHash {
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let params = match &self.kind {
            Kind::Argon2id => PasswordHash::new(&self.text)
                .ok()
                .and_then(|h| argon2::Params::try_from(&h).ok())
                .map(|p| HashParams::Argon2id(p.m_cost(), p.t_cost(), p.p_cost())),
            Kind::Bcrypt => self
                .text
                .parse::<bcrypt::HashParts>()
                .ok()
                .map(|p| HashParams::Bcrypt(p.get_cost())),
            Kind::Pbkdf2 => PasswordHash::new(&self.text)
                .ok()
                .and_then(|h| pbkdf2::Params::try_from(&h).ok())
                .map(|p| HashParams::Pbkdf2(p.rounds)),
        };
        params
            .and_then(|p| make_hash(&random, p).ok())
            .and_then(|text| StoredHash::parse(&text).ok())
            .unwrap_or_else(|| self.clone())
    }
}

/// What to hash with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashParams {
    /// m (KiB), t, p.
    Argon2id(u32, u32, u32),
    Bcrypt(u32),
    Pbkdf2(u32),
}

impl HashParams {
    /// OWASP's recommended parameters for `alg`.
    pub fn recommended(alg: HashAlgorithm) -> HashParams {
        match alg {
            HashAlgorithm::Argon2id => {
                let (m, t, p) = ARGON2_DEFAULT;
                HashParams::Argon2id(m, t, p)
            }
            HashAlgorithm::Bcrypt => HashParams::Bcrypt(BCRYPT_DEFAULT_COST),
            HashAlgorithm::Pbkdf2Sha256 => HashParams::Pbkdf2(PBKDF2_DEFAULT_ROUNDS),
        }
    }
}

/// Why a hash could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MakeHashError {
    #[error("bcrypt reads at most 72 bytes of a secret; this one is {0} bytes")]
    TooLongForBcrypt(usize),
    #[error("the hash function failed")]
    Failed,
}

/// Hashes `secret` with a fresh random salt.
pub fn make_hash(secret: &[u8], params: HashParams) -> Result<String, MakeHashError> {
    match params {
        HashParams::Argon2id(m, t, p) => {
            let params = argon2::Params::new(m, t, p, None).map_err(|_| MakeHashError::Failed)?;
            let argon =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let salt = salt_string();
            argon
                .hash_password(secret, &salt)
                .map(|h| h.to_string())
                .map_err(|_| MakeHashError::Failed)
        }
        HashParams::Bcrypt(cost) => {
            if secret.len() > 71 {
                return Err(MakeHashError::TooLongForBcrypt(secret.len()));
            }
            bcrypt::non_truncating_hash(secret, cost).map_err(|_| MakeHashError::Failed)
        }
        HashParams::Pbkdf2(rounds) => {
            let params = pbkdf2::Params {
                rounds,
                output_length: 32,
            };
            pbkdf2::Pbkdf2
                .hash_password_customized(secret, None, None, params, &salt_string())
                .map(|h| h.to_string())
                .map_err(|_| MakeHashError::Failed)
        }
    }
}

/// The recognisable start of every secret `new-secret` makes, for secret scanners.
pub const SECRET_PREFIX: &str = "sgcs_";

/// A fresh client secret: [`SECRET_PREFIX`], 256 random bits in base64url (43 characters),
/// then a 6-character checksum (base64url of the first 4 bytes of SHA-256 of everything
/// before it), so that a scanner can tell a leaked secret from a look-alike without asking
/// anyone. URL-safe and VSCHAR (RFC 6749 Appendix A.2), 54 characters: under bcrypt's 72.
pub fn new_secret() -> String {
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let mut secret = String::from(SECRET_PREFIX);
    crate::jws::encode_into(random, &mut secret);
    let checksum = checksum(&secret);
    secret.push_str(&checksum);
    secret
}

fn checksum(text: &str) -> String {
    use sha2::Digest;
    crate::jws::encode(&sha2::Sha256::digest(text.as_bytes())[..4])
}

/// Whether `text` has the shape and checksum of a secret `new-secret` made.
pub fn is_new_secret(text: &str) -> bool {
    text.len() == SECRET_PREFIX.len() + 43 + 6
        && text.starts_with(SECRET_PREFIX)
        && text.is_char_boundary(text.len() - 6)
        && checksum(&text[..text.len() - 6]) == text[text.len() - 6..]
}

fn salt_string() -> SaltString {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    SaltString::encode_b64(&salt).unwrap_or_else(|_| unreachable!("16 bytes is a valid salt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters for tests only: below the floors, so made with `make_hash` and
    /// checked through `verify` on the parsed kind directly.
    fn cheap(secret: &[u8], params: HashParams) -> StoredHash {
        let text = make_hash(secret, params).unwrap();
        let kind = match params {
            HashParams::Argon2id(..) => Kind::Argon2id,
            HashParams::Bcrypt(_) => Kind::Bcrypt,
            HashParams::Pbkdf2(_) => Kind::Pbkdf2,
        };
        StoredHash { text, kind }
    }

    #[test]
    fn every_format_verifies_what_it_hashed() {
        for params in [
            HashParams::Argon2id(64, 1, 1),
            HashParams::Bcrypt(4),
            HashParams::Pbkdf2(1000),
        ] {
            let h = cheap(b"s3cret-value", params);
            assert!(h.verify(b"s3cret-value"), "{params:?}");
            assert!(!h.verify(b"s3cret-valuE"), "{params:?}");
            assert!(!h.verify(b""), "{params:?}");
        }
    }

    /// `$2y$` (what `htpasswd -B` and PHP write) and `$2a$` name the same algorithm as
    /// `$2b$`: one hash in each spelling parses at the floor cost, verifies its secret and
    /// refuses another. `$2x$` (the buggy pre-2011 crypt_blowfish) stays refused.
    #[test]
    fn bcrypt_2a_2b_and_2y_spellings_all_verify() {
        let parts = bcrypt::hash_with_result("s3cret-value", BCRYPT_MIN_COST).unwrap();
        for (version, prefix) in [
            (bcrypt::Version::TwoA, "$2a$10$"),
            (bcrypt::Version::TwoB, "$2b$10$"),
            (bcrypt::Version::TwoY, "$2y$10$"),
        ] {
            let text = parts.format_for_version(version);
            assert!(text.starts_with(prefix), "{text}");
            let h = StoredHash::parse(&text).unwrap_or_else(|e| panic!("{prefix}: {e}"));
            assert_eq!(h.algorithm(), HashAlgorithm::Bcrypt);
            assert!(h.verify(b"s3cret-value"), "{prefix}");
            assert!(!h.verify(b"s3cret-valuE"), "{prefix}");
            // The decoy for unknown clients is made with the same cost, read from this
            // spelling (were it not read, the decoy would be this very hash).
            let decoy = h.decoy();
            assert!(decoy.text().starts_with("$2b$10$"), "{prefix}");
            assert!(!decoy.verify(b"s3cret-value"), "{prefix}");
        }
        let x = parts.format_for_version(bcrypt::Version::TwoX);
        assert_eq!(StoredHash::parse(&x), Err(HashError::Unknown), "{x}");
    }

    #[test]
    fn an_out_of_range_argon2_parallelism_is_malformed_not_a_panic() {
        // fuzz/hash: argon2 multiplies p by 8 before checking its range.
        for text in [
            " $argon2id$p=787714951",
            "$argon2id$v=19$m=19456,t=2,p=536870912$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
            "$argon2id$v=19$m=4294967295,t=2,p=16777216$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
        ] {
            assert_eq!(
                StoredHash::parse(text).map(|_| ()),
                Err(HashError::Malformed("argon2id")),
                "{text}"
            );
        }
    }

    #[test]
    fn floors_are_enforced_with_the_reason() {
        let weak_argon = make_hash(b"x", HashParams::Argon2id(4096, 3, 1)).unwrap();
        assert!(matches!(
            StoredHash::parse(&weak_argon),
            Err(HashError::WeakArgon2 {
                m: 4096,
                t: 3,
                p: 1
            })
        ));
        let weak_bcrypt = make_hash(b"x", HashParams::Bcrypt(8)).unwrap();
        assert_eq!(
            StoredHash::parse(&weak_bcrypt),
            Err(HashError::WeakBcrypt(8))
        );
        let weak_pbkdf2 = make_hash(b"x", HashParams::Pbkdf2(1000)).unwrap();
        assert_eq!(
            StoredHash::parse(&weak_pbkdf2),
            Err(HashError::WeakPbkdf2(1000))
        );
        // passlib's default rounds (29000) are below OWASP's floor too.
        assert_eq!(
            StoredHash::parse("$pbkdf2-sha256$29000$N2YMIWQsBWBMae09x1jrPQ$1t8iyB2A.WF/Z5JZv.lfCIhXXN33N23OSgQYThBYRfk"),
            Err(HashError::WeakPbkdf2(29000))
        );
        for (text, err) in [
            ("plaintext", HashError::Unknown),
            ("$1$abc$def", HashError::Unknown),
            (
                "$2x$12$abcdefghijklmnopqrstuu5Ws7XWZIvFv5jdEUt7XgRr2ncQYyb.y",
                HashError::Unknown,
            ),
            (
                "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaA",
                HashError::WrongArgon2Variant("argon2i"),
            ),
            (
                "$argon2id$v=19$m=65536,t=2$bad",
                HashError::Malformed("argon2id"),
            ),
            ("$2b$12$short", HashError::Malformed("bcrypt")),
            (
                "$pbkdf2-sha256$i=600000$x",
                HashError::Malformed("PBKDF2-SHA256"),
            ),
        ] {
            assert_eq!(StoredHash::parse(text), Err(err), "{text}");
        }
    }

    /// Each ceiling at its value parses, one over it is refused with the parameters. The
    /// texts are written, not made: parsing never verifies, and making a hash at the
    /// ceilings would cost what the ceilings are there to bound.
    #[test]
    fn ceilings_are_enforced_at_the_limit_and_just_over() {
        const SALT_AND_HASH: &str = "c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        let argon = |m: u32, t: u32, p: u32| {
            StoredHash::parse(&format!("$argon2id$v=19$m={m},t={t},p={p}${SALT_AND_HASH}"))
                .map(|h| h.algorithm())
        };
        assert_eq!(argon(262_144, 10, 16), Ok(HashAlgorithm::Argon2id));
        for (m, t, p) in [(262_145, 2, 1), (19456, 11, 1), (19456, 2, 17)] {
            assert_eq!(
                argon(m, t, p),
                Err(HashError::CostlyArgon2 { m, t, p }),
                "m={m},t={t},p={p}"
            );
        }

        let cost10 = bcrypt::hash_with_result("s3cret-value", BCRYPT_MIN_COST)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let bcrypt = |cost: &str| {
            StoredHash::parse(&cost10.replacen("$10$", &format!("${cost}$"), 1))
                .map(|h| h.algorithm())
        };
        assert_eq!(bcrypt("14"), Ok(HashAlgorithm::Bcrypt));
        assert_eq!(bcrypt("15"), Err(HashError::CostlyBcrypt(15)));

        // Both spellings: PHC, and passlib's rounds-only one.
        let phc = |i: u32| {
            StoredHash::parse(&format!("$pbkdf2-sha256$i={i},l=32${SALT_AND_HASH}"))
                .map(|h| h.algorithm())
        };
        let passlib = |i: u32| {
            StoredHash::parse(&format!(
                "$pbkdf2-sha256${i}$MDEyMzQ1Njc4OWFiY2RlZg$mW18kPdKShac963vQrBoSPfRusPlaNHMlNT3m.HuAmM"
            ))
            .map(|h| h.algorithm())
        };
        for parse in [phc, passlib] {
            assert_eq!(parse(5_000_000), Ok(HashAlgorithm::Pbkdf2Sha256));
            assert_eq!(parse(5_000_001), Err(HashError::CostlyPbkdf2(5_000_001)));
        }
        let message = HashError::CostlyArgon2 {
            m: 262_145,
            t: 2,
            p: 1,
        }
        .to_string();
        assert!(message.contains("m ≤ 262144 KiB"), "{message}");
    }

    #[test]
    fn recommended_parameters_pass_the_floors_and_debug_hides_the_hash() {
        // argon2id only: the others cost seconds in a debug build.
        let text = make_hash(b"secret", HashParams::recommended(HashAlgorithm::Argon2id)).unwrap();
        let h = StoredHash::parse(&text).unwrap();
        assert!(h.verify(b"secret"));
        assert_eq!(format!("{h:?}"), "StoredHash(argon2id, ***)");
        let decoy = h.decoy();
        assert_eq!(decoy.algorithm(), HashAlgorithm::Argon2id);
        assert_ne!(decoy.text(), h.text());
        assert!(!decoy.verify(b"secret"));
    }

    #[test]
    fn new_secrets_are_random_recognisable_and_checksummed() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 54);
        assert!(a.starts_with("sgcs_"));
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert!(is_new_secret(&a) && is_new_secret(&b));
        // One character changed: the checksum no longer holds.
        let mut flipped = a.clone().into_bytes();
        flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
        assert!(!is_new_secret(&String::from_utf8(flipped).unwrap()));
        assert!(!is_new_secret("sgcs_short"));
    }

    #[test]
    fn passlib_pbkdf2_is_read() {
        // Made outside: Python's hashlib.pbkdf2_hmac("sha256", b"password",
        // b"0123456789abcdef", 600000), written in passlib's format.
        let passlib = "$pbkdf2-sha256$600000$MDEyMzQ1Njc4OWFiY2RlZg$mW18kPdKShac963vQrBoSPfRusPlaNHMlNT3m.HuAmM";
        let h = StoredHash::parse(passlib).unwrap();
        assert_eq!(h.algorithm(), HashAlgorithm::Pbkdf2Sha256);
        assert!(
            h.text().starts_with("$pbkdf2-sha256$i=600000,l=32$"),
            "{}",
            h.text()
        );
        // One verification only: 600,000 rounds take seconds in a debug build.
        assert!(h.verify(b"password"));
    }
}
