//! Secret sources: where a client secret or an internal-header key comes from. Exactly one
//! of `file: PATH` (one trailing newline ignored), `env: VAR` or `value: "…"` (inline,
//! accepted with a warning: meant for demos), and for the secrets of Basic and post
//! clients also `hash: "…"` or `hash_file: PATH` (only a hash is kept; hashes.rs checks
//! the format and the parameter floors). Read once per load, never per request.

use super::raw::RawSecretSource;
use super::validate::Validator;
use super::ClientSecret;
use crate::error::error_chain;
use crate::hashes::StoredHash;
use crate::secret::Secret;

/// Kubernetes Secret files made with `echo` end in a newline that is not part of the secret.
fn strip_one_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    bytes
}

impl Validator<'_> {
    /// A client secret: the secret (`file`, `env`, `value`) or its hash (`hash`,
    /// `hash_file`), exactly one. A refused hash is a problem naming the client (`who`)
    /// and the floor or ceiling it misses.
    pub(super) fn client_secret(
        &mut self,
        mut source: RawSecretSource,
        path: &str,
        who: &str,
    ) -> Option<ClientSecret> {
        let hash = source.hash.take();
        let hash_file = source.hash_file.take();
        if hash.is_none() && hash_file.is_none() {
            return self.secret(source, path).map(ClientSecret::Plain);
        }
        let (kind, given) = self.exactly_one(
            path,
            vec![
                ("file", source.file),
                ("env", source.env),
                ("value", source.value),
                ("hash", hash),
                ("hash_file", hash_file),
            ],
        )?;
        let text = if kind == "hash_file" {
            let resolved = self.base_dir.join(&given);
            match self.read(&resolved) {
                Ok(bytes) => String::from_utf8(strip_one_newline(bytes)).unwrap_or_default(),
                Err(e) => {
                    self.problem(
                        format!("{path}.hash_file"),
                        format!("cannot read {}: {e}", resolved.display()),
                    );
                    return None;
                }
            }
        } else {
            given
        };
        match StoredHash::parse(&text) {
            Ok(hash) => Some(ClientSecret::Hashed(hash)),
            Err(e) => {
                self.problem(
                    format!("{path}.{kind}"),
                    format!("client `{who}`: {}", error_chain(&e)),
                );
                None
            }
        }
    }

    /// Reads secret material from exactly one of `file`, `env` or `value`.
    pub(super) fn secret(&mut self, source: RawSecretSource, path: &str) -> Option<Secret> {
        self.material(source, path, true).map(Secret::new)
    }

    /// Reads public material (a JWK Set) the same way; inline is fine, it is no secret.
    pub(super) fn public_material(
        &mut self,
        source: RawSecretSource,
        path: &str,
    ) -> Option<Vec<u8>> {
        self.material(source, path, false)
    }

    fn material(&mut self, source: RawSecretSource, path: &str, secret: bool) -> Option<Vec<u8>> {
        if source.hash.is_some() || source.hash_file.is_some() {
            self.problem(
                path,
                "a hash is not usable here: the secret itself is needed (give `file`, `env` or `value`)",
            );
            return None;
        }
        let (kind, given) = self.exactly_one(
            path,
            vec![
                ("file", source.file),
                ("env", source.env),
                ("value", source.value),
            ],
        )?;
        let bytes = match kind {
            "file" => {
                let resolved = self.base_dir.join(&given);
                match self.read(&resolved) {
                    Ok(bytes) => {
                        let bytes = strip_one_newline(bytes);
                        // Only one trailing newline is taken off; anything else is part
                        // of the secret, which an editor's stray space makes silently wrong.
                        if secret && bytes.last().is_some_and(u8::is_ascii_whitespace) {
                            self.warnings.push(format!(
                                "{path}.file: {} ends with white space after the secret (a space, tab, CR or a second newline); it is kept as part of the secret",
                                resolved.display()
                            ));
                        }
                        bytes
                    }
                    Err(e) => {
                        self.problem(
                            format!("{path}.file"),
                            format!("cannot read {}: {e}", resolved.display()),
                        );
                        return None;
                    }
                }
            }
            "env" if self.files.skips() => {
                self.skipped.push(format!("{path}.env"));
                return None;
            }
            "env" => match std::env::var_os(&given) {
                Some(value) => value.into_encoded_bytes(),
                None => {
                    self.problem(
                        format!("{path}.env"),
                        format!("environment variable {given} is not set"),
                    );
                    return None;
                }
            },
            _ => {
                if secret {
                    self.warnings.push(format!(
                        "{path}.value: inline secret in the config file; use `file` or `env` outside demos"
                    ));
                }
                given.into_bytes()
            }
        };
        if bytes.is_empty() {
            self.problem(path, if secret { "secret is empty" } else { "empty" });
            return None;
        }
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MemoryFiles;

    #[test]
    fn secrets_from_file_env_and_value() {
        let files = MemoryFiles::new()
            .with("/cfg/s", "from-file\n")
            .with("/cfg/crlf", "crlf\r\n");
        let mut v = Validator {
            base_dir: std::path::Path::new("/cfg"),
            files: &files,
            problems: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            sources: Vec::new(),
            expiries: Vec::new(),
        };
        let file = v.secret(
            RawSecretSource {
                file: Some("s".into()),
                ..Default::default()
            },
            "x",
        );
        assert_eq!(file.unwrap().expose(), b"from-file");
        let crlf = v.secret(
            RawSecretSource {
                file: Some("crlf".into()),
                ..Default::default()
            },
            "x",
        );
        assert_eq!(crlf.unwrap().expose(), b"crlf");
        assert_eq!(
            v.sources.len(),
            2,
            "files read are recorded for the watcher"
        );
        std::env::set_var("SECRETGATE_UNIT_TEST_SECRET", "from-env");
        let env = v.secret(
            RawSecretSource {
                env: Some("SECRETGATE_UNIT_TEST_SECRET".into()),
                ..Default::default()
            },
            "y",
        );
        assert_eq!(env.unwrap().expose(), b"from-env");
        let both = v.secret(
            RawSecretSource {
                env: Some("A".into()),
                value: Some("b".into()),
                ..Default::default()
            },
            "z",
        );
        assert!(both.is_none());
        assert_eq!(v.problems.len(), 1);
        assert_eq!(v.problems[0].path, "z");
        assert!(v.problems[0].message.contains("`file`, `env` or `value`"));
        let _ = v.secret(
            RawSecretSource {
                value: Some("inline".into()),
                ..Default::default()
            },
            "w",
        );
        assert!(v.warnings[0].contains("inline secret"));
        let missing = v.secret(
            RawSecretSource {
                file: Some("nope".into()),
                ..Default::default()
            },
            "m",
        );
        assert!(missing.is_none());
        assert_eq!(v.problems[1].path, "m.file");
    }
}
