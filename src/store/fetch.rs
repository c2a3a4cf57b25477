//! Brings a reference into the cache: resolve → verified stream → cache.
//!
//! [`fetch`] is the whole story for a build: offline from the cache, or
//! online (the lockfile's digest when one is locked; mirrors asked only for
//! digests; the tag's cached package when the registry is out of reach);
//! [`pull`] brings one reference from one [`Source`] into the cache.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;

use crate::env;
use crate::error::{Error, Result};
use crate::oci::digest;
use crate::oci::format;
use crate::oci::manifest::{
    entry_manifest, fetch_small_blob, is_index, parse_index, parse_manifest, resolve, Source,
};
use crate::oci::platform::{self, Target};
use crate::oci::reference::Reference;
use crate::store::cache::Cache;
use crate::store::lockfile::Lockfile;
use crate::store::session::Session;
use crate::store::stream;
use crate::store::unpack::{UnpackError, Unpacker};

/// A package fetched into the cache (see [`crate::Linker::fetch`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Fetched {
    /// The unpacked package tree.
    pub root: PathBuf,
    /// Digest of the manifest for the target.
    pub manifest_digest: String,
    /// Digest the reference resolved to: the manifest's, or the
    /// multi-platform index's (what a lockfile records).
    pub resolved_digest: String,
    /// What went wrong on the way without stopping the fetch (a mirror that
    /// failed, an unreachable registry whose cached package was used), one
    /// line each.
    pub warnings: Vec<String>,
}

impl Fetched {
    fn new(dir: PathBuf, manifest_digest: String, resolved_digest: String) -> Self {
        Fetched {
            root: dir.join("root"),
            manifest_digest,
            resolved_digest,
            warnings: Vec::new(),
        }
    }

    /// `pkgs/sha256/<hex>` (holds `root/`, `manifest.json`, `config.json`).
    pub(crate) fn dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }
}

/// Fetches `reference` for `target` as a build would: from the cache alone
/// when `offline` (default: `OCIPKG_OFFLINE`/`CARGO_NET_OFFLINE`), else
/// online, falling back to the tag's cached package when the registry
/// cannot be reached (with a warning).
pub(crate) fn fetch(
    session: &Session,
    reference: &Reference,
    target: &Target,
    offline: Option<bool>,
) -> Result<Fetched> {
    let cache = session.cache()?;
    if offline.unwrap_or_else(|| env::is_offline(session.env())) {
        return from_cache(reference, target, cache);
    }
    match fetch_online(session, reference, target) {
        // An outage does not break a rebuild: the tag's last package serves.
        Err(e) if e.is_outage() && reference.digest().is_none() => {
            let Ok(mut fetched) = from_cache(reference, target, cache) else {
                return Err(e);
            };
            fetched.warnings.push(format!(
                "{} could not be reached ({}); using {}, what {reference} resolved to when \
                 last fetched",
                reference.registry(),
                first_line(&e.to_string()).trim_start_matches("ocipkg: "),
                fetched.resolved_digest
            ));
            Ok(fetched)
        }
        result => result,
    }
}

/// [`fetch`], honouring `ocipkg.lock` in `lockfile_dir`: a locked tag is
/// fetched by its digest; with `OCIPKG_UPDATE_LOCK` the lock is rewritten.
/// Returns the lockfile's path if one was used or written.
pub(crate) fn fetch_locked(
    session: &Session,
    reference: &Reference,
    target: &Target,
    offline: Option<bool>,
    lockfile_dir: Option<&Path>,
) -> Result<(Fetched, Option<PathBuf>)> {
    let Some(dir) = lockfile_dir else {
        return Ok((fetch(session, reference, target, offline)?, None));
    };
    let mut lockfile = Lockfile::load(dir)?;
    if env::is_true(session.env(), env::UPDATE_LOCK) {
        let fetched = fetch(session, reference, target, offline)?;
        lockfile.set(reference, &fetched.resolved_digest);
        lockfile.save()?;
        return Ok((fetched, Some(lockfile.path().to_path_buf())));
    }
    let used = lockfile.exists().then(|| lockfile.path().to_path_buf());
    let locked = match (reference.digest(), lockfile.get(reference)) {
        (None, Some(digest)) => reference.with_digest(digest),
        _ => return Ok((fetch(session, reference, target, offline)?, used)),
    };
    match fetch(session, &locked, target, offline) {
        Ok(fetched) => Ok((fetched, used)),
        Err(Error::NotFound { .. }) => Err(Error::config(
            format!(
                "{} locks {reference} to {}, but the registry does not serve that digest",
                lockfile.path().display(),
                locked.digest().unwrap_or_default()
            ),
            format!(
                "the package was deleted or the tag re-published. To move to what the tag \
                 points at now, run `ocipkg lock {reference}` in {} (or build once with \
                 OCIPKG_UPDATE_LOCK=1)",
                dir.display()
            ),
        )),
        Err(e) => Err(e),
    }
}

/// From the registry, or its mirrors: those only serve content, so a tag is
/// resolved at the registry itself and mirrors are asked for that digest,
/// verified; any failure there falls through to the next source.
fn fetch_online(session: &Session, reference: &Reference, target: &Target) -> Result<Fetched> {
    let cache = session.cache()?;
    let settings = session.config()?.registry(reference.registry());
    let origin = || session.client(reference, false);
    if settings.mirrors.is_empty() {
        return pull(reference, target, &mut origin()?, cache);
    }
    let mut warnings = Vec::new();
    let mut pinned = reference.clone();
    if reference.digest().is_none() {
        match resolve(reference, &mut origin()?) {
            Ok((_, digest)) => pinned = reference.with_digest(&digest),
            Err(e) if e.is_outage() && settings.trust_mirror_tags => warnings.push(format!(
                "{} is unreachable; resolving the tag {reference} through its mirrors \
                 (trust_mirror_tags is set)",
                reference.registry()
            )),
            Err(e) if e.is_outage() => {
                return Err(Error::config(
                    format!(
                        "cannot resolve the tag {reference}: {} is unreachable, and its mirrors \
                         are only trusted with digests\n  cause: {}",
                        reference.registry(),
                        first_line(&e.to_string())
                    ),
                    format!(
                        "pin the reference by digest (REF@sha256:...) or lock it with `ocipkg \
                         lock {reference}` while the registry is reachable; or set \
                         `\"trust_mirror_tags\": true` for {} in the registry configuration \
                         (OCIPKG_CONFIG) to let mirrors answer tags",
                        reference.registry()
                    ),
                ))
            }
            Err(e) => return Err(e),
        }
    }
    let mut found = None;
    for mirror in &settings.mirrors {
        let on_mirror = pinned.on_mirror(mirror)?;
        match pull(
            &pinned,
            target,
            &mut session.mirror_client(&on_mirror)?,
            cache,
        ) {
            Ok(fetched) => {
                found = Some(fetched);
                break;
            }
            Err(e) => warnings.push(format!(
                "mirror {mirror} did not serve {pinned}: {}; trying the next source",
                first_line(&e.to_string()).trim_start_matches("ocipkg: ")
            )),
        }
    }
    let mut fetched = match found {
        Some(fetched) => fetched,
        None => pull(&pinned, target, &mut origin()?, cache)?,
    };
    if reference.digest().is_none() {
        cache.record_ref(reference, &fetched.resolved_digest)?;
    }
    fetched.warnings = warnings;
    Ok(fetched)
}

/// What a tag names now, asked of the registry itself (never the cache or a
/// mirror): the digest `ocipkg lock` records. Only the manifest is read, so
/// a tag without a build for this machine (one for a cross target) locks too.
#[cfg(feature = "producer")]
pub(crate) fn resolve_online(session: &Session, reference: &Reference) -> Result<String> {
    let (fetched, digest) = resolve(reference, &mut session.client(reference, false)?)?;
    if is_index(&fetched.bytes, fetched.media_type.as_deref()) {
        let what = format!("the manifest of {reference}");
        if parse_index(&fetched.bytes, &what)?.manifests().is_empty() {
            return Err(Error::invalid(
                what,
                "it is an index of no manifests: there is nothing to lock",
            ));
        }
    } else {
        parse_manifest(reference, &fetched.bytes)?;
    }
    Ok(digest)
}

/// The first line of a multi-line message.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The cached package for `digest` (a manifest, or an index whose entry
/// for `target` is cached), without network.
fn cached(digest: &str, target: &Target, cache: &Cache) -> Result<Option<Fetched>> {
    if let Some(dir) = cache.lookup(digest)? {
        return Ok(Some(Fetched::new(
            dir,
            digest.to_string(),
            digest.to_string(),
        )));
    }
    let Some(bytes) = cache.index(digest)? else {
        return Ok(None);
    };
    let index = parse_index(&bytes, digest)?;
    let entry = platform::select(index.manifests(), target, &format!("package {digest}"))?;
    let entry_digest = entry.digest().to_string();
    Ok(cache
        .lookup(&entry_digest)?
        .map(|dir| Fetched::new(dir, entry_digest, digest.to_string())))
}

/// Returns the cached package for `reference` without any network access.
pub(crate) fn from_cache(reference: &Reference, target: &Target, cache: &Cache) -> Result<Fetched> {
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
) -> Result<Fetched> {
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
            return Ok(Fetched::new(dir, entry_digest, resolved));
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
    Ok(Fetched::new(dir, digest, resolved))
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
        let body = crate::registry::progress::reader(
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
