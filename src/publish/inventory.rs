//! What is where: `ocipkg inspect` (a package's manifest, platforms, files,
//! link metadata), `ocipkg list` and `ocipkg prune` (the local cache).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::files::TempDir;
use crate::link::Linker;
use crate::oci::format::LinkMetadata;
use crate::store::cache::Cache;
use crate::store::session::Session;

/// A package in the local cache.
#[derive(Clone, Debug, Serialize)]
pub struct CachedPackage {
    /// Digest of its manifest.
    pub digest: String,
    /// Bytes on disk.
    pub size: u64,
    /// Recorded tags that resolve to it (directly or through an index).
    pub references: Vec<String>,
    /// Its directory in the cache.
    pub path: PathBuf,
}

/// The packages in the cache (`OCIPKG_CACHE_DIR` or the per-user cache).
pub fn list_cache() -> Result<Vec<CachedPackage>> {
    list_in(Session::process(false).cache()?)
}

fn list_in(cache: &Cache) -> Result<Vec<CachedPackage>> {
    let refs = cache.refs();
    Ok(cache
        .packages()
        .into_iter()
        .map(|(digest, path, size)| {
            let references = refs
                .iter()
                .filter(|(_, d)| cache.manifests_of(d).contains(&digest))
                .map(|(r, _)| r.clone())
                .collect();
            CachedPackage {
                digest,
                size,
                references,
                path,
            }
        })
        .collect())
}

/// What [`prune`] removed.
#[derive(Clone, Debug, Serialize)]
pub struct Pruned {
    /// Digests of the packages removed.
    pub removed: Vec<String>,
    /// Bytes freed (packages and leftovers of interrupted fetches).
    pub freed_bytes: u64,
}

/// Removes leftovers of interrupted fetches and the packages no recorded tag
/// resolves to any more (older versions); with `all`, every package and
/// record. Packages in use by a running fetch are waited for, not broken.
pub fn prune(all: bool) -> Result<Pruned> {
    let session = Session::process(false);
    let cache = session.cache()?;
    let mut freed = cache.remove_leftovers();
    let packages = list_in(cache)?;
    let mut removed = Vec::new();
    for package in packages {
        if all || package.references.is_empty() {
            freed += cache.remove_package(&package.digest)?;
            removed.push(package.digest);
        }
    }
    if all {
        for dir in ["refs", "indexes", "blobs-seen"] {
            let path = cache.root().join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
            }
        }
    }
    Ok(Pruned {
        removed,
        freed_bytes: freed,
    })
}

/// A package described.
#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    /// The reference or path inspected.
    pub source: String,
    /// Digest the reference resolved to (an index for multi-platform packages).
    pub digest: String,
    /// Digest of the manifest described (this machine's, or `--target`'s).
    pub manifest_digest: String,
    /// Platforms of a multi-platform package (`os/arch (triple)`).
    pub platforms: Vec<String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Layers: media type, size and digest.
    pub layers: Vec<String>,
    /// Link metadata from the package's config.
    pub link_metadata: LinkMetadata,
    /// Files of the package tree, relative to its root.
    pub files: Vec<String>,
}

/// Describes a package given by reference, or by the path of an OCI image
/// layout (directory or `.tar`). The package is fetched (verified) into the
/// cache, or for a path into a temporary one.
pub fn inspect(what: &str, target: Option<&str>) -> Result<Inspection> {
    let mut linker = Linker::new();
    if let Some(target) = target {
        linker.target(target);
    }
    let path = Path::new(what);
    let _temporary;
    let (session, fetched) = if path.exists() {
        let tmp = TempDir::new_in(&std::env::temp_dir(), "ocipkg-inspect-")?;
        let session = Session::process(false).with_cache_dir(Some(tmp.path().to_path_buf()));
        let fetched = crate::publish::transfer::load_in(&session, path, None, target)?;
        _temporary = tmp;
        (session, fetched)
    } else {
        let session = Session::process(false);
        let fetched = linker.fetch_in(&session, what)?;
        (session, fetched)
    };
    let cache = session.cache()?;
    let dir = fetched
        .root
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let manifest: serde_json::Value = read_json(&dir.join("manifest.json"))?;
    let annotations = manifest
        .get("annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let layers = manifest
        .get("layers")
        .and_then(|l| l.as_array())
        .map(|layers| {
            layers
                .iter()
                .map(|l| {
                    format!(
                        "{} {} bytes {}",
                        l["mediaType"].as_str().unwrap_or("?"),
                        l["size"].as_u64().unwrap_or(0),
                        l["digest"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let platforms = match cache.index(&fetched.resolved_digest)? {
        Some(bytes) => crate::oci::manifest::parse_index(&bytes, what)?
            .manifests()
            .iter()
            .map(crate::oci::platform::describe)
            .collect(),
        None => Vec::new(),
    };
    let link_metadata = crate::link::read_metadata(&dir)?;
    let mut files = Vec::new();
    collect_files(&fetched.root, &fetched.root, &mut files);
    files.sort();
    Ok(Inspection {
        source: what.to_string(),
        digest: fetched.resolved_digest,
        manifest_digest: fetched.manifest_digest,
        platforms,
        annotations,
        layers,
        link_metadata,
        files,
    })
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Never into a symlink: a package's links may loop (`a -> .`).
        let real_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if real_dir {
            collect_files(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.display().to_string());
        }
    }
}
