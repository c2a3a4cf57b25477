//! `ocipkg.lock`: package references locked to manifest digests.
//!
//! A text file next to the consumer's `Cargo.toml`, one entry per line:
//!
//! ```text
//! # ocipkg.lock: package references locked to manifest digests.
//! ghcr.io/org/libfoo:1.2 sha256:0123…
//! ```
//!
//! When a build links a reference listed there, it fetches the locked digest
//! and never looks the tag up. `ocipkg lock REF…` (or a build with
//! `OCIPKG_UPDATE_LOCK=1`) writes or updates entries.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::digest::hex_part;
use crate::oci::reference::Reference;

/// The lockfile's name.
pub const FILE_NAME: &str = "ocipkg.lock";

const HEADER: &str = "# ocipkg.lock: package references locked to manifest digests.\n\
                      # Written by `ocipkg lock REF...` or a build with OCIPKG_UPDATE_LOCK=1.\n";

/// Lockfiles larger than this are refused (a real one is a few KiB).
const MAX_SIZE: u64 = 1 << 20;

/// The lockfile's text; empty if it does not exist. Anything but a regular
/// file of at most [`MAX_SIZE`] bytes (following a symlink) is an error.
fn read_bounded(path: &Path) -> Result<String> {
    use std::io::Read;
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if !meta.is_file() || meta.len() > MAX_SIZE {
        return Err(Error::config(
            format!("{} is not a regular file of at most 1 MiB", path.display()),
            "replace it with the lockfile `ocipkg lock REF...` writes, or remove it",
        ));
    }
    let mut text = String::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_SIZE).read_to_string(&mut text))
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    Ok(text)
}

/// The entries of one lockfile.
pub(crate) struct Lockfile {
    path: PathBuf,
    entries: BTreeMap<String, String>,
}

impl Lockfile {
    /// `dir/ocipkg.lock`, empty if the file does not exist.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE_NAME);
        let mut entries = BTreeMap::new();
        let text = read_bounded(&path)?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| {
                Error::config(
                    format!("{}:{}: {reason}", path.display(), n + 1),
                    "each line is `registry/repository:tag sha256:<64 hex>`; fix the line or \
                     rewrite the file with `ocipkg lock REF...`",
                )
            };
            let mut words = line.split_whitespace();
            let (Some(reference), Some(digest), None) = (words.next(), words.next(), words.next())
            else {
                return Err(bad("expected a reference and a digest".into()));
            };
            let reference = Reference::parse(reference).map_err(|e| bad(e.to_string()))?;
            hex_part(digest).map_err(|_| {
                bad(format!(
                    "`{digest}` is not a sha256 digest of 64 lower-case hex digits"
                ))
            })?;
            entries.insert(key(&reference), digest.to_string());
        }
        Ok(Lockfile { path, entries })
    }

    /// Whether the file exists on disk.
    pub(crate) fn exists(&self) -> bool {
        self.path.is_file()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The locked digest of a reference.
    pub(crate) fn get(&self, reference: &Reference) -> Option<&str> {
        self.entries.get(&key(reference)).map(String::as_str)
    }

    /// Locks `reference` to `digest`.
    pub(crate) fn set(&mut self, reference: &Reference, digest: &str) {
        self.entries.insert(key(reference), digest.to_string());
    }

    /// Writes the file (write a temp file, then rename over).
    pub(crate) fn save(&self) -> Result<()> {
        let mut text = String::from(HEADER);
        for (reference, digest) in &self.entries {
            text.push_str(&format!("{reference} {digest}\n"));
        }
        crate::files::write_atomic(&self.path, text.as_bytes())
    }
}

/// The normalised reference without digest: `registry/repository:tag`.
fn key(reference: &Reference) -> String {
    format!(
        "{}/{}:{}",
        reference.registry(),
        reference.repository(),
        reference.tag().unwrap_or("latest")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_normalised_keys() {
        let dir = std::env::temp_dir().join(format!("ocipkg-lock-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut lock = Lockfile::load(&dir).unwrap();
        assert!(!lock.exists());
        lock.set(&Reference::parse("ubuntu").unwrap(), D);
        lock.save().unwrap();
        let text = fs::read_to_string(dir.join(FILE_NAME)).unwrap();
        assert!(
            text.ends_with(&format!("docker.io/library/ubuntu:latest {D}\n")),
            "{text}"
        );
        let lock = Lockfile::load(&dir).unwrap();
        assert_eq!(
            lock.get(&Reference::parse("docker.io/library/ubuntu:latest").unwrap()),
            Some(D)
        );
        assert_eq!(lock.get(&Reference::parse("ubuntu:22.04").unwrap()), None);

        fs::write(dir.join(FILE_NAME), "ghcr.io/a/b:1 sha256:nothex\n").unwrap();
        let err = Lockfile::load(&dir).err().unwrap().to_string();
        assert!(
            err.contains("ocipkg.lock:1") && err.contains("ocipkg lock"),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
