//! Where the files a configuration names are read from: the file system when the gateway
//! runs ([`FileSystem`]), a map of path to bytes in the config fuzz target and in unit
//! tests ([`MemoryFiles`]), so that validation runs without a disk.
//!
//! Invariant: validation (validate.rs and the sections it calls) reaches files only
//! through [`Files`]: reading one, and asking whether a path names one. Paths are the ones
//! validation resolves (the config's directory joined with what the config says).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The files a configuration may name.
pub trait Files {
    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` names a regular file (following symbolic links).
    fn is_file(&self, path: &Path) -> bool;
    /// Whether `path` names a directory (following symbolic links): where a file the
    /// gateway writes (`internal_header.jwks_file`) will go.
    fn is_dir(&self, path: &Path) -> bool;
    /// Whether this source reads nothing at all (`check --skip-files`): environment
    /// variables are then not read either.
    fn skips(&self) -> bool {
        false
    }
}

/// What [`SkipFiles`] answers every read with; a problem whose message carries it is not a
/// problem of the config but a file that was not read.
const SKIPPED: &str = "not read (--skip-files)";

/// Whether a problem message comes from a read that [`SkipFiles`] skipped.
pub(super) fn is_skipped(message: &str) -> bool {
    message.contains(SKIPPED)
}

/// `check --skip-files`: every named file exists and none is read, so that a config can
/// be validated in CI without the secrets, keys and certificates it names. Whatever
/// depends on a file's content (a certificate parses, a secret is long enough) is then
/// not checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipFiles;

impl Files for SkipFiles {
    fn read(&self, _: &Path) -> io::Result<Vec<u8>> {
        Err(io::Error::other(SKIPPED))
    }

    fn is_file(&self, _: &Path) -> bool {
        true
    }

    fn is_dir(&self, _: &Path) -> bool {
        true
    }

    fn skips(&self) -> bool {
        true
    }
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileSystem;

impl Files for FileSystem {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// Files held in memory, by path. A path not in the map does not exist.
#[derive(Clone, Default)]
pub struct MemoryFiles(HashMap<PathBuf, Vec<u8>>);

impl MemoryFiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the file at `path`.
    pub fn insert(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) {
        self.0.insert(path.into(), bytes.into());
    }

    /// [`MemoryFiles::insert`], for building a set in one expression.
    pub fn with(mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) -> Self {
        self.insert(path, bytes);
        self
    }
}

impl Files for MemoryFiles {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn is_file(&self, path: &Path) -> bool {
        self.0.contains_key(path)
    }

    /// A directory holds a file of the map.
    fn is_dir(&self, path: &Path) -> bool {
        self.0.keys().any(|p| p.parent() == Some(path))
    }
}

impl fmt::Debug for MemoryFiles {
    /// The paths only: the contents are keys and secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_are_what_was_put_in_and_nothing_else() {
        let files = MemoryFiles::new().with("/etc/sg/s1", "secret\n");
        assert_eq!(files.read(Path::new("/etc/sg/s1")).unwrap(), b"secret\n");
        // The validator joins a base with what the config says: `./s1` is the same path.
        assert!(files.is_file(&Path::new("/etc/sg").join("./s1")));
        assert!(!files.is_file(Path::new("/etc/sg/s2")));
        assert_eq!(
            files.read(Path::new("/etc/sg")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(format!("{files:?}"), r#"{"/etc/sg/s1"}"#);
    }
}
