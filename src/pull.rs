//! Brings a reference into the cache: resolve → verified stream → cache.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::cache::Cache;
use crate::client::{Client, FetchedManifest};
use crate::digest::{self, VerifyingReader};
use crate::error::{Error, NetworkKind, Result};
use crate::format;
use crate::layout::Layout;
use crate::platform::{self, Target};
use crate::reference::Reference;
use crate::stream;
use crate::unpack::{UnpackError, Unpacker};

/// Where manifests and blobs come from: a registry, or an OCI image layout.
pub(crate) trait Source {
    /// A manifest or index by tag or digest.
    fn manifest(&mut self, reference: &str) -> Result<FetchedManifest>;
    /// A blob's bytes, to be verified by the caller.
    fn blob(&mut self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>>;
}

impl Source for Client {
    fn manifest(&mut self, reference: &str) -> Result<FetchedManifest> {
        self.get_manifest(reference)
    }
    fn blob(&mut self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>> {
        self.get_blob(digest, size)
    }
}

impl Source for Layout {
    fn manifest(&mut self, reference: &str) -> Result<FetchedManifest> {
        let index = self.read_index()?;
        let by_digest = reference.starts_with("sha256:");
        let entry = index.manifests().iter().find(|e| {
            if by_digest {
                e.digest().as_ref() == reference
            } else {
                e.annotations()
                    .as_ref()
                    .and_then(|a| a.get(format::REF_NAME_ANNOTATION))
                    .is_some_and(|name| name == reference)
            }
        });
        let entry = match (entry, index.manifests().as_slice()) {
            (Some(entry), _) => Some(entry),
            (None, [only]) if !by_digest => Some(only),
            _ => None,
        };
        let (digest, media_type) = match entry {
            Some(e) => (e.digest().to_string(), Some(e.media_type().to_string())),
            // A digest not listed in index.json may still be a blob (an
            // index's platform manifest).
            None if by_digest => (reference.to_string(), None),
            None => {
                return Err(Error::invalid(
                    format!("the layout {}", self.dir().display()),
                    format!("it has no manifest tagged `{reference}`"),
                ))
            }
        };
        Ok(FetchedManifest {
            bytes: self.read_blob(&digest)?,
            media_type,
            digest_header: None,
        })
    }
    fn blob(&mut self, digest: &str, _size: u64) -> Result<Box<dyn Read + Send>> {
        let path = self.blob_path(digest)?;
        let file = crate::tempdir::open_regular(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Box::new(file))
    }
}

/// A package present in the cache.
pub(crate) struct Cached {
    /// `pkgs/sha256/<hex>` (holds `root/`, `manifest.json`, `config.json`).
    pub dir: PathBuf,
    /// Digest of the target's manifest.
    pub digest: String,
    /// Digest the reference resolved to: the manifest's, or the index's for
    /// a multi-platform package (what a lockfile records).
    pub resolved: String,
}

/// The cached package for `digest` (a manifest, or an index whose entry
/// for `target` is cached), without network.
fn cached(digest: &str, target: &Target, cache: &Cache) -> Result<Option<Cached>> {
    if let Some(dir) = cache.lookup(digest)? {
        return Ok(Some(Cached {
            dir,
            digest: digest.to_string(),
            resolved: digest.to_string(),
        }));
    }
    let Some(bytes) = cache.index(digest)? else {
        return Ok(None);
    };
    let index = parse_index(&bytes, digest)?;
    let entry = platform::select(index.manifests(), target, &format!("package {digest}"))?;
    let entry_digest = entry.digest().to_string();
    Ok(cache.lookup(&entry_digest)?.map(|dir| Cached {
        dir,
        digest: entry_digest,
        resolved: digest.to_string(),
    }))
}

/// Returns the cached package for `reference` without any network access.
pub(crate) fn from_cache(reference: &Reference, target: &Target, cache: &Cache) -> Result<Cached> {
    let found = match cache.resolve_offline(reference) {
        Some(digest) => cached(&digest, target, cache)?,
        None => None,
    };
    found.ok_or_else(|| Error::Offline {
        reference: reference.to_string(),
    })
}

/// Returns the cached package for `reference` and `target`, downloading it
/// if needed.
pub(crate) fn pull(
    reference: &Reference,
    target: &Target,
    client: &mut dyn Source,
    cache: &Cache,
) -> Result<Cached> {
    // A digest-pinned reference that is cached needs no network at all.
    if let Some(pinned) = reference.digest() {
        if let Some(found) = cached(pinned, target, cache)? {
            return Ok(found);
        }
    }
    let (fetched, resolved) = resolve(reference, client)?;
    let what = format!("the manifest of {reference}");
    let (manifest_bytes, digest) = if is_index(&fetched.bytes, fetched.media_type.as_deref()) {
        let index = parse_index(&fetched.bytes, &what)?;
        cache.store_index(&resolved, &fetched.bytes)?;
        let entry = platform::select(index.manifests(), target, &format!("package {reference}"))?;
        let entry_digest = entry.digest().to_string();
        if let Some(dir) = cache.lookup(&entry_digest)? {
            if reference.digest().is_none() {
                cache.record_ref(reference, &resolved)?;
            }
            return Ok(Cached {
                dir,
                digest: entry_digest,
                resolved,
            });
        }
        (
            entry_manifest(client, entry, &reference.to_string())?,
            entry_digest,
        )
    } else {
        (fetched.bytes, resolved.clone())
    };
    let manifest = parse_manifest(reference, &manifest_bytes)?;
    let dir = match cache.lookup(&digest)? {
        Some(dir) => dir,
        None => fetch_blobs(
            reference,
            &manifest,
            &manifest_bytes,
            &digest,
            client,
            cache,
        )?,
    };
    if reference.digest().is_none() {
        cache.record_ref(reference, &resolved)?;
    }
    Ok(Cached {
        dir,
        digest,
        resolved,
    })
}

/// The manifest (or index) `reference` names, checked against the pinned
/// digest or the registry's `Docker-Content-Digest`; and its digest.
pub(crate) fn resolve(
    reference: &Reference,
    source: &mut dyn Source,
) -> Result<(FetchedManifest, String)> {
    let fetched = source.manifest(reference.manifest_reference())?;
    let digest = digest::sha256(&fetched.bytes);
    let what = format!("the manifest of {reference}");
    if let Some(pinned) = reference.digest() {
        digest::verify_bytes(&what, &fetched.bytes, pinned, None)?;
    } else if let Some(header) = fetched.digest_header.as_deref() {
        if header.starts_with("sha256:") {
            digest::verify_bytes(&what, &fetched.bytes, header, None)?;
        }
    }
    Ok((fetched, digest))
}

/// A platform manifest named by an index entry, verified.
pub(crate) fn entry_manifest(
    source: &mut dyn Source,
    entry: &oci_spec::image::Descriptor,
    what: &str,
) -> Result<Vec<u8>> {
    let digest = entry.digest().to_string();
    let fetched = source.manifest(&digest)?;
    digest::verify_bytes(
        &format!("the {} manifest of {what}", platform::describe(entry)),
        &fetched.bytes,
        &digest,
        Some(entry.size()),
    )?;
    Ok(fetched.bytes)
}

pub(crate) fn is_index(bytes: &[u8], media_type: Option<&str>) -> bool {
    let declared = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|json| {
            if json.get("manifests").is_some() {
                return Some(format::INDEX_MEDIA_TYPE.to_string());
            }
            json.get("mediaType")?.as_str().map(str::to_string)
        })
        .or(media_type.map(str::to_string))
        .unwrap_or_default();
    declared == format::INDEX_MEDIA_TYPE
        || declared == "application/vnd.docker.distribution.manifest.list.v2+json"
}

pub(crate) fn parse_index(bytes: &[u8], what: &str) -> Result<ImageIndex> {
    ImageIndex::from_reader(bytes)
        .map_err(|e| Error::invalid(what, format!("it is not an OCI image index: {e}")))
}

/// Downloads config and layers of a manifest into the cache, verified.
fn fetch_blobs(
    reference: &Reference,
    manifest: &ImageManifest,
    manifest_bytes: &[u8],
    digest: &str,
    client: &mut dyn Source,
    cache: &Cache,
) -> Result<PathBuf> {
    let _lock = cache.lock(digest)?;
    // Another process may have finished it while we waited for the lock.
    if let Some(dir) = cache.lookup(digest)? {
        return Ok(dir);
    }
    let staging = cache.staging(digest)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = staging.path().join(name);
        fs::write(&path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
    };
    write("manifest.json", manifest_bytes)?;

    let config = manifest.config();
    let config_bytes = fetch_small_blob(
        client,
        config.digest().as_ref(),
        config.size(),
        &format!("the config of {reference}"),
    )?;
    write("config.json", &config_bytes)?;

    let root = staging.path().join("root");
    fs::create_dir(&root).map_err(|e| Error::io(format!("creating {}", root.display()), e))?;
    let mut unpacker = Unpacker::new(&root, cache.limits());
    for (i, layer) in manifest.layers().iter().enumerate() {
        let media_type = layer.media_type().to_string();
        let layer_digest = layer.digest().to_string();
        let what = format!("layer {i} ({layer_digest}) of {reference}");
        let ours = manifest
            .artifact_type()
            .as_ref()
            .map(|t| t.to_string())
            .as_deref()
            == Some(format::ARTIFACT_TYPE);
        let Some(kind) = format::layer_kind(&media_type, layer.annotations().as_ref(), ours) else {
            return Err(Error::invalid(
                what,
                format!(
                    "layer media type `{media_type}` is not supported (use tar, tar+gzip or \
                     tar+zstd layers, or a file layer with an org.opencontainers.image.title)"
                ),
            ));
        };
        digest::hex_part(&layer_digest)?;
        let body = crate::progress::reader(
            client.blob(&layer_digest, layer.size())?,
            format!("layer {}", &layer_digest[..19.min(layer_digest.len())]),
            layer.size(),
        );
        let (stream, verdict) = stream::verified(body, layer.size(), what.clone(), layer_digest);
        let unpacked = unpacker.layer(stream, &kind);
        // Verify first: a digest mismatch or broken download explains a broken
        // archive better than the archive error does.
        verdict.wait()?;
        unpacked.map_err(|e| match e {
            UnpackError::Io(e) => Error::invalid(&what, format!("unpacking failed: {e}")),
            UnpackError::Refused { reason, help } => Error::refused(&what, reason, help),
        })?;
    }
    let dir = cache.commit(staging, digest)?;
    for blob in std::iter::once(manifest.config()).chain(manifest.layers().iter()) {
        // Remembered for mounts when pushing; a failure only costs a mount.
        let _ = cache.record_blob(
            reference.registry(),
            blob.digest().as_ref(),
            reference.repository(),
        );
    }
    Ok(dir)
}

pub(crate) fn parse_manifest(reference: &Reference, bytes: &[u8]) -> Result<ImageManifest> {
    ImageManifest::from_reader(bytes).map_err(|e| {
        Error::invalid(
            format!("the manifest of {reference}"),
            format!("it is not an OCI image manifest: {e}"),
        )
    })
}

/// Downloads and verifies a small blob (a config) into memory.
pub(crate) fn fetch_small_blob(
    client: &mut dyn Source,
    digest: &str,
    size: u64,
    what: &str,
) -> Result<Vec<u8>> {
    digest::hex_part(digest)?;
    if size > (4 << 20) {
        return Err(Error::invalid(
            what,
            format!("it is {size} bytes; at most 4 MiB is accepted"),
        ));
    }
    let body = client.blob(digest, size)?;
    let mut bytes = Vec::new();
    let mut verifying = VerifyingReader::new(body, size);
    std::io::Read::read_to_end(&mut verifying, &mut bytes).map_err(|e| {
        Error::network(
            format!("reading {what}"),
            NetworkKind::Transfer,
            e.to_string(),
        )
    })?;
    verifying.finish(what, digest)?;
    Ok(bytes)
}
