//! The per-user, content-addressed package cache.
//!
//! Layout under the cache root:
//! - `pkgs/sha256/<manifest hex>/` one complete package: `manifest.json`,
//!   `config.json` and `root/` (the unpacked tree, files read-only). A
//!   directory here only appears by `rename` of a staging dir after every
//!   digest matched, and is checked on every use (its `manifest.json` must
//!   hash to its name).
//! - `refs/<registry>/<repository>/_tags/<tag>` the manifest digest the tag
//!   had when last fetched, for offline builds and outages.
//! - `blobs-seen/<registry>/<blob hex>` a repository known to hold the
//!   blob, for cross-repository mounts when pushing.
//! - `indexes/sha256/<hex>.json` multi-platform indexes, to choose a
//!   target's manifest without network.
//! - `tmp/<manifest hex>.<pid>-<random>-<n>/` staging directories of
//!   fetches in progress (removed on failure; leftovers of killed processes
//!   are removed by later fetches).
//! - `locks/<manifest hex>.lock` files locked while one process fetches that
//!   package, so concurrent builds download it once.

use std::fs::{self, File};
use std::path::PathBuf;

use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::files::{create_dir_all, write_atomic, TempDir};
use crate::oci::digest::hex_part;
use crate::oci::reference::Reference;
use crate::store::unpack::Limits;

/// The cache at one root directory, and the limits on what a package
/// may unpack to in it.
pub(crate) struct Cache {
    root: PathBuf,
    limits: Limits,
}

impl Cache {
    /// The cache at `root`, unpacking within `limits`.
    pub(crate) fn new(root: PathBuf, limits: Limits) -> Self {
        Cache { root, limits }
    }

    /// `OCIPKG_CACHE_DIR`, else the per-user cache directory.
    pub(crate) fn from_env(env: &Env) -> Result<Self> {
        if let Some(dir) = env.get(env::CACHE_DIR) {
            // Said now, naming the variable, rather than as a failure deep
            // inside a fetch.
            if let Err(e) = fs::create_dir_all(&dir) {
                return Err(Error::config(
                    format!(
                        "the cache directory {dir} (from {}) cannot be created: {e}",
                        env::CACHE_DIR
                    ),
                    format!(
                        "point {} at a writable directory, or unset it to use the per-user \
                         cache directory",
                        env::CACHE_DIR
                    ),
                ));
            }
            return Ok(Cache::new(PathBuf::from(dir), Limits::from_env(env)?));
        }
        match directories::ProjectDirs::from("", "", "ocipkg") {
            Some(dirs) => Ok(Cache::new(
                dirs.cache_dir().to_path_buf(),
                Limits::from_env(env)?,
            )),
            None => Err(Error::config(
                "cannot find a per-user cache directory (no home directory is known)",
                format!("set {} to a writable directory", env::CACHE_DIR),
            )),
        }
    }

    /// What a package may unpack to.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// The directory of a complete package, if it is cached: one whose
    /// `manifest.json` still has the digest it is filed under (anything else
    /// was not put there by a verified fetch, and is fetched anew).
    pub(crate) fn lookup(&self, manifest_digest: &str) -> Result<Option<PathBuf>> {
        let dir = self.package_dir(manifest_digest)?;
        let intact = fs::symlink_metadata(dir.join("root")).is_ok_and(|m| m.is_dir())
            && read_small(&dir.join("manifest.json"))
                .is_some_and(|bytes| crate::oci::digest::sha256(&bytes) == manifest_digest);
        Ok(intact.then_some(dir))
    }

    fn package_dir(&self, manifest_digest: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("pkgs")
            .join("sha256")
            .join(hex_part(manifest_digest)?))
    }

    /// Where the digest a tag had when last fetched is recorded:
    /// `refs/<registry>/<repository>/_tags/<tag>`. No repository component
    /// starts with `_`, so `r/x:y` and `r/x/y:1` cannot collide.
    fn ref_file(&self, reference: &Reference) -> PathBuf {
        // `:` (a port) is not allowed in Windows file names.
        let registry = reference.registry().replace([':', '[', ']'], "_");
        let mut path = self.root.join("refs").join(registry);
        path.extend(reference.repository().split('/'));
        path.join(TAGS_DIR)
            .join(reference.tag().unwrap_or("latest"))
    }

    /// Records that `reference`'s tag pointed at `manifest_digest`.
    pub(crate) fn record_ref(&self, reference: &Reference, manifest_digest: &str) -> Result<()> {
        let path = self.ref_file(reference);
        // The warm path: the tag has not moved, nothing to write.
        if fs::read_to_string(&path).is_ok_and(|d| d.trim() == manifest_digest) {
            return Ok(());
        }
        write_atomic(&path, manifest_digest.as_bytes())
    }

    /// The digest `reference` resolves to in the cache, without network: the
    /// pinned digest, or the one its tag had when last fetched.
    pub(crate) fn resolve_offline(&self, reference: &Reference) -> Option<String> {
        if let Some(digest) = reference.digest() {
            return Some(digest.to_string());
        }
        let digest = String::from_utf8(read_small(&self.ref_file(reference))?).ok()?;
        hex_part(digest.trim()).ok()?;
        Some(digest.trim().to_string())
    }

    /// Every complete package: manifest digest, directory and size in bytes.
    #[cfg(feature = "producer")]
    pub(crate) fn packages(&self) -> Vec<(String, PathBuf, u64)> {
        let dir = self.root.join("pkgs").join("sha256");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found: Vec<(String, PathBuf, u64)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("root").is_dir())
            .map(|e| {
                let digest = format!("sha256:{}", e.file_name().to_string_lossy());
                (digest, e.path(), tree_size(&e.path()))
            })
            .collect();
        found.sort();
        found
    }

    /// Every recorded tag (`registry/repository:tag`) with its digest.
    #[cfg(feature = "producer")]
    pub(crate) fn refs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let root = self.root.join("refs");
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&root) else {
                    continue;
                };
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                let (Some((tag, repo)), Some(registry)) = (parts[1..].split_last(), parts.first())
                else {
                    continue;
                };
                let Some((TAGS_DIR, repo)) = repo.split_last().map(|(t, r)| (t.as_str(), r)) else {
                    continue;
                };
                if tag.starts_with('.') {
                    continue; // a write in progress
                }
                if let Ok(digest) = fs::read_to_string(&path) {
                    // `_` stands for `:` (a port) in the registry's directory name.
                    let registry = registry.replacen('_', ":", 1);
                    out.push((
                        format!("{registry}/{}:{tag}", repo.join("/")),
                        digest.trim().to_string(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// The manifest digests an index digest stands for (itself if it is no index).
    #[cfg(feature = "producer")]
    pub(crate) fn manifests_of(&self, digest: &str) -> Vec<String> {
        match self
            .index(digest)
            .ok()
            .flatten()
            .and_then(|bytes| oci_spec::image::ImageIndex::from_reader(&bytes[..]).ok())
        {
            Some(index) => index
                .manifests()
                .iter()
                .map(|e| e.digest().to_string())
                .collect(),
            None => vec![digest.to_string()],
        }
    }

    /// Removes a package (under its lock, so no build is using it midway).
    #[cfg(feature = "producer")]
    pub(crate) fn remove_package(&self, digest: &str) -> Result<u64> {
        let _lock = self.lock(digest)?;
        let dir = self.package_dir(digest)?;
        let size = tree_size(&dir);
        // Rename first: the package disappears at once, then is deleted.
        let doomed = self
            .root
            .join("tmp")
            .join(format!("{}.removing", hex_part(digest)?));
        create_dir_all(&self.root.join("tmp"))?;
        fs::rename(&dir, &doomed)
            .and_then(|()| fs::remove_dir_all(&doomed))
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        Ok(size)
    }

    /// Removes leftovers of fetches no process is running any more (their
    /// package's lock is free); returns the bytes freed.
    #[cfg(feature = "producer")]
    pub(crate) fn remove_leftovers(&self) -> u64 {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return 0;
        };
        let mut freed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let hex = name.split('.').next().unwrap_or_default();
            let lock = self.root.join("locks").join(format!("{hex}.lock"));
            let free = fs::File::open(&lock)
                .map(|f| f.try_lock().is_ok())
                .unwrap_or(true);
            if free {
                freed += tree_size(&entry.path());
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        freed
    }

    /// The cache root.
    #[cfg(feature = "producer")]
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Remembers that `repository` of `registry` holds blob `digest`, so a
    /// later push to another repository can mount it instead of uploading.
    pub(crate) fn record_blob(&self, registry: &str, digest: &str, repository: &str) -> Result<()> {
        write_atomic(&self.blob_record(registry, digest)?, repository.as_bytes())
    }

    /// A repository of `registry` known to hold blob `digest`.
    #[cfg(feature = "producer")]
    pub(crate) fn blob_seen_in(&self, registry: &str, digest: &str) -> Option<String> {
        let text = fs::read_to_string(self.blob_record(registry, digest).ok()?).ok()?;
        Some(text.trim().to_string()).filter(|r| !r.is_empty())
    }

    fn blob_record(&self, registry: &str, digest: &str) -> Result<PathBuf> {
        Ok(self
            .root
            .join("blobs-seen")
            .join(registry.replace([':', '[', ']'], "_"))
            .join(hex_part(digest)?))
    }

    /// Keeps a multi-platform index (for offline and pinned lookups).
    pub(crate) fn store_index(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        let path = self
            .root
            .join("indexes")
            .join("sha256")
            .join(format!("{}.json", hex_part(digest)?));
        write_atomic(&path, bytes)
    }

    /// A kept index, checked against its digest.
    pub(crate) fn index(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let path = self
            .root
            .join("indexes")
            .join("sha256")
            .join(format!("{}.json", hex_part(digest)?));
        match fs::read(&path) {
            Ok(bytes) if crate::oci::digest::sha256(&bytes) == digest => Ok(Some(bytes)),
            _ => Ok(None),
        }
    }

    /// Takes the lock of one package (blocking while another process holds it).
    pub(crate) fn lock(&self, manifest_digest: &str) -> Result<File> {
        let dir = self.root.join("locks");
        create_dir_all(&dir)?;
        let path = dir.join(format!("{}.lock", hex_part(manifest_digest)?));
        let file = File::create(&path)
            .map_err(|e| Error::io(format!("creating lock file {}", path.display()), e))?;
        file.lock()
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(file)
    }

    /// A fresh staging directory inside the cache for a package (so the final
    /// rename stays on one file system). It is removed when dropped unless
    /// committed. Call it holding the package's [`Cache::lock`]: leftovers of
    /// killed processes staging the same package are removed first.
    pub(crate) fn staging(&self, manifest_digest: &str) -> Result<TempDir> {
        // A package directory that did not pass `lookup` was not made by a
        // verified fetch: it goes, so the rename into place can succeed.
        let dir = self.package_dir(manifest_digest)?;
        if fs::symlink_metadata(&dir).is_ok() && self.lookup(manifest_digest)?.is_none() {
            let _ = fs::remove_dir_all(&dir).or_else(|_| fs::remove_file(&dir));
        }
        let tmp = self.root.join("tmp");
        let prefix = format!("{}.", hex_part(manifest_digest)?);
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        TempDir::new_in(&tmp, &prefix)
    }

    /// Makes a staged package visible under its digest.
    pub(crate) fn commit(&self, staging: TempDir, manifest_digest: &str) -> Result<PathBuf> {
        let dest = self.package_dir(manifest_digest)?;
        if let Some(parent) = dest.parent() {
            create_dir_all(parent)?;
        }
        let src = staging.keep();
        match fs::rename(&src, &dest) {
            Ok(()) => Ok(dest),
            // Someone else committed the same content first: theirs is as good.
            Err(_) if self.lookup(manifest_digest)?.is_some() => {
                let _ = fs::remove_dir_all(&src);
                Ok(dest)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&src);
                Err(Error::io(
                    format!("moving the package into {}", dest.display()),
                    e,
                ))
            }
        }
    }
}

/// The directory of tag records inside a repository's `refs/` directory.
const TAGS_DIR: &str = "_tags";

/// A small regular file's bytes (not a symlink, at most 64 KiB).
fn read_small(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let meta = fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 64 << 10 {
        return None;
    }
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// Bytes of all files under `path`.
#[cfg(feature = "producer")]
fn tree_size(path: &std::path::Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}
