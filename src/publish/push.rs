//! Producer side: pushes a package from an OCI image layout to a registry.

use crate::error::{Error, Result};
use crate::oci::format;
use crate::oci::manifest;
use crate::oci::reference::Reference;
use crate::registry::client::{Client, Upload};
use crate::store::layout::Layout;
use crate::store::session::Session;

use std::collections::HashMap;
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType, SCHEMA_VERSION,
};

use crate::oci::digest;
use crate::oci::platform::{
    self, Target, CXXABI_ANNOTATION, GLIBCXX_ANNOTATION, GLIBC_ANNOTATION, TARGET_ANNOTATION,
};
use crate::registry::retry;
use crate::store::layout::canonical_json;

/// What [`push`] pushed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Pushed {
    /// Where it was pushed (`registry/repository:tag`).
    pub reference: String,
    /// Digest of the manifest (of the index, for a layout holding a
    /// multi-platform index); `reference@digest` pins exactly this package.
    pub manifest_digest: String,
    /// For a package built for one target: digest of the multi-platform
    /// index now under the tag.
    pub index_digest: Option<String>,
    /// Blobs uploaded (blobs the registry already had are skipped).
    pub uploaded_blobs: usize,
    /// Blobs mounted from another repository of the registry.
    pub mounted_blobs: usize,
}

/// Pushes the package in the layout at `path` (directory or `.tar`) to
/// `reference`, or to the reference recorded by `ocipkg pack` (or `ocipkg
/// save`) when `None`. A layout holding one manifest built for a target
/// joins the tag's multi-platform index; one holding a whole index (`ocipkg
/// save` of a multi-platform package) puts it under the tag as it is, with
/// every platform's manifest, so its digest stays the same.
pub fn push(path: &Path, reference: Option<&str>) -> Result<Pushed> {
    let layout = Layout::open(path)?;
    let index = layout.read_index()?;
    let entries = index.manifests();
    let entry = match entries.as_slice() {
        [one] => one,
        [] => {
            return Err(Error::invalid(
                format!("the layout {}", path.display()),
                "its index.json lists no manifest",
            ))
        }
        _ => {
            return Err(Error::invalid(
                format!("the layout {}", path.display()),
                "its index.json lists several manifests; push a layout holding one package",
            ))
        }
    };
    let recorded = entry
        .annotations()
        .as_ref()
        .and_then(|a| a.get(format::REFERENCE_ANNOTATION))
        .cloned();
    let reference = match reference.map(str::to_string).or(recorded) {
        Some(r) => {
            let parsed = Reference::parse(&r)?;
            if parsed.digest().is_some() {
                return Err(Error::usage(
                    format!("cannot push to `{r}`: it names a digest"),
                    "give `registry/repository:tag` (or no tag, for the one the layout \
                     records); the digest is the layout's own and is printed after the push",
                ));
            }
            parsed
        }
        None => {
            return Err(Error::usage(
                format!("the layout {} records no destination", path.display()),
                "give one: `ocipkg push PATH --tag registry/repository:tag`",
            ))
        }
    };
    let reference = match reference.tag() {
        Some(_) => reference,
        None => reference.with_tag(
            entry
                .annotations()
                .as_ref()
                .and_then(|a| a.get(format::REF_NAME_ANNOTATION))
                .map_or("latest", String::as_str),
        )?,
    };
    let what = format!("the layout {}", path.display());
    let manifest_digest = entry.digest().to_string();
    let manifest_bytes = layout_blob(&layout, &manifest_digest, &what)?;
    let is_index = manifest::is_index(&manifest_bytes, Some(entry.media_type().as_ref()));
    let parse = |bytes: &[u8], digest: &str| {
        ImageManifest::from_reader(bytes).map_err(|e| {
            Error::invalid(
                format!("the manifest {digest} in {}", path.display()),
                format!("it is not an OCI image manifest: {e}"),
            )
        })
    };
    // The package's manifests: the layout's one, or each platform's of its index.
    let mut manifests: Vec<(Descriptor, Vec<u8>, ImageManifest)> = Vec::new();
    if is_index {
        let index = manifest::parse_index(&manifest_bytes, &what)?;
        for child in index.manifests() {
            let digest = child.digest().to_string();
            if manifest::is_index(b"", Some(child.media_type().as_ref())) {
                return Err(Error::invalid(
                    what,
                    format!("its index names another index ({digest}); only one level is pushed"),
                ));
            }
            // Read once: its digest checked by the layout, its size here.
            let bytes = layout_blob(&layout, &digest, &what)?;
            digest::check(&what, &digest, child.size(), &digest, bytes.len() as u64)?;
            let parsed = parse(&bytes, &digest)?;
            manifests.push((child.clone(), bytes, parsed));
        }
    } else {
        let parsed = parse(&manifest_bytes, &manifest_digest)?;
        manifests.push((entry.clone(), manifest_bytes.clone(), parsed));
    }

    let session = Session::process(false);
    // The cache remembers where blobs were seen; without one, no mounts.
    let cache = session.cache().ok();
    let (registry, repository) = (reference.registry(), reference.repository());
    let mut blobs: Vec<&Descriptor> = Vec::new();
    for (_, _, manifest) in &manifests {
        for blob in std::iter::once(manifest.config()).chain(manifest.layers().iter()) {
            if !blobs.iter().any(|b| b.digest() == blob.digest()) {
                blobs.push(blob);
            }
        }
    }
    let seen_in = |digest: &str| {
        cache
            .as_ref()
            .and_then(|c| c.blob_seen_in(registry, digest))
            .filter(|r| r != repository)
    };
    let mut client = session.client(&reference, true)?;
    let mut sources: Vec<String> = blobs
        .iter()
        .filter_map(|b| seen_in(b.digest().as_ref()))
        .collect();
    sources.sort();
    sources.dedup();
    client.also_pull(sources);
    let mut missing = Vec::new();
    for blob in &blobs {
        let digest = blob.digest().to_string();
        if client.has_blob(&digest)? {
            continue;
        }
        let file = layout.blob_path(&digest)?;
        if !file.is_file() {
            return Err(Error::invalid(
                format!("the layout {}", path.display()),
                format!("blob {digest} named by the manifest is missing"),
            ));
        }
        let from = seen_in(&digest);
        missing.push(Job {
            digest,
            file,
            size: blob.size(),
            from,
        });
    }
    let chunk_size = session.upload_chunk()?;
    let done = upload_all(&client, missing, chunk_size)?;
    let uploaded_blobs = done
        .iter()
        .filter(|(_, how)| matches!(how, Upload::Uploaded { .. }))
        .count();
    let mounted_blobs = done.len() - uploaded_blobs;
    if let Some(cache) = &cache {
        for blob in &blobs {
            // A failure to remember only costs a future mount.
            let _ = cache.record_blob(registry, blob.digest().as_ref(), repository);
        }
    }
    let media_type = entry.media_type().to_string();
    let tag = reference.tag().unwrap_or("latest");
    if is_index {
        // Every platform's manifest first: registries refuse an index naming
        // manifests they do not have.
        for (child, bytes, _) in &manifests {
            client.put_manifest(child.digest().as_ref(), bytes, child.media_type().as_ref())?;
        }
        client.put_manifest(tag, &manifest_bytes, &media_type)?;
        return Ok(Pushed {
            reference: reference.to_string(),
            manifest_digest,
            index_digest: None,
            uploaded_blobs,
            mounted_blobs,
        });
    }
    let index_digest = match target_of(entry) {
        None => {
            client.put_manifest(tag, &manifest_bytes, &media_type)?;
            None
        }
        Some(triple) => {
            client.put_manifest(&manifest_digest, &manifest_bytes, &media_type)?;
            let mut platform_entry = Descriptor::new(
                MediaType::ImageManifest,
                manifest_bytes.len() as u64,
                entry.digest().clone(),
            );
            platform_entry.set_platform(Some(Target::parse(&triple).oci_platform()));
            platform_entry.set_artifact_type(Some(MediaType::from(format::ARTIFACT_TYPE)));
            // The entry carries the target and the runtime floors, so a
            // consumer chooses without reading every manifest.
            let mut annotations = HashMap::from([(TARGET_ANNOTATION.to_string(), triple.clone())]);
            for key in [GLIBC_ANNOTATION, GLIBCXX_ANNOTATION, CXXABI_ANNOTATION] {
                if let Some(value) = entry.annotations().as_ref().and_then(|a| a.get(key)) {
                    annotations.insert(key.to_string(), value.clone());
                }
            }
            platform_entry.set_annotations(Some(annotations));
            Some(add_to_index(&mut client, tag, platform_entry, &triple)?)
        }
    };
    Ok(Pushed {
        reference: reference.to_string(),
        manifest_digest,
        index_digest,
        uploaded_blobs,
        mounted_blobs,
    })
}

/// A manifest or index blob of the layout, checked against its digest.
fn layout_blob(layout: &Layout, digest: &str, what: &str) -> Result<Vec<u8>> {
    if !layout.blob_path(digest)?.is_file() {
        return Err(Error::invalid(
            what,
            format!(
                "it lacks the blob {digest} that its index names; write the layout again \
                 (`ocipkg save` or `ocipkg pack`)"
            ),
        ));
    }
    layout.read_blob(digest)
}

/// A blob to put into the repository.
struct Job {
    digest: String,
    file: std::path::PathBuf,
    size: u64,
    /// Another repository of the registry known to hold it.
    from: Option<String>,
}

/// Blobs uploaded at once, at most.
const PARALLEL_UPLOADS: usize = 3;

/// Uploads (or mounts) the blobs, a few at a time, each on its own copy of
/// the client (sharing its token).
fn upload_all(client: &Client, jobs: Vec<Job>, chunk_size: u64) -> Result<Vec<(String, Upload)>> {
    let workers = jobs.len().min(PARALLEL_UPLOADS);
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let done = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let mut client = client.clone();
                let (queue, done) = (&queue, &done);
                scope.spawn(move || -> Result<()> {
                    loop {
                        let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                        let Some(job) = next else {
                            return Ok(());
                        };
                        let how = client.upload_blob(
                            &job.file,
                            &job.digest,
                            job.size,
                            job.from.as_deref(),
                            chunk_size,
                        )?;
                        if let Ok(mut done) = done.lock() {
                            done.push((job.digest, how));
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap_or_else(|_| {
                Err(Error::Bug {
                    detail: "an upload thread panicked".into(),
                })
            })?;
        }
        Ok(())
    })?;
    Ok(done.into_inner().unwrap_or_default())
}

fn target_of(entry: &Descriptor) -> Option<String> {
    entry
        .annotations()
        .as_ref()?
        .get(TARGET_ANNOTATION)
        .cloned()
}

/// Puts `new_entry` into the index under `tag` (created if missing),
/// replacing the entry of the same target and glibc floor and keeping every
/// other one (builds of one target for older and newer systems live side
/// by side). Only
/// manifests are read: no other platform's layers are downloaded. Registries
/// have no conditional writes, so the index is read back twice, a moment
/// apart, and merged again if a concurrent publisher's write removed our
/// entry. (A publisher whose write lands later than that still wins: publish
/// the targets of one tag from one job, or one after the other, to be sure.)
fn add_to_index(
    client: &mut Client,
    tag: &str,
    new_entry: Descriptor,
    triple: &str,
) -> Result<String> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let mut entries = match client.find_manifest(tag)? {
            None => Vec::new(),
            Some(existing) => entries_of(&existing.bytes)?,
        };
        let floor = |e: &Descriptor| platform::glibc_floor(e.annotations().as_ref());
        entries.retain(|e| {
            let same_build =
                target_of(e).as_deref() == Some(triple) && floor(e) == floor(&new_entry);
            !same_build && e.digest() != new_entry.digest()
        });
        entries.push(new_entry.clone());
        entries.sort_by_key(platform::describe);
        let index = ImageIndexBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .artifact_type(MediaType::from(format::ARTIFACT_TYPE))
            .manifests(entries)
            .build()
            .map_err(|e| Error::invalid("the index being pushed", e.to_string()))?;
        let bytes = canonical_json(&index)?;
        client.put_manifest(tag, &bytes, format::INDEX_MEDIA_TYPE)?;
        // A publisher that read the index before our write may still write
        // its own without our entry: look twice, a moment apart.
        let mut kept = None;
        for _ in 0..2 {
            std::thread::sleep(retry::backoff(1, None));
            kept = client.find_manifest(tag)?.filter(|back| {
                entries_of(&back.bytes)
                    .is_ok_and(|entries| entries.iter().any(|e| e.digest() == new_entry.digest()))
            });
            if kept.is_none() {
                break;
            }
        }
        if let Some(back) = kept {
            return Ok(digest::sha256(&back.bytes));
        }
        std::thread::sleep(retry::backoff(attempt, None));
    }
    Err(Error::usage(
        format!("another publisher kept replacing the index of tag {tag}"),
        "publish the platforms one after the other, or try again",
    ))
}

/// The entries of what a tag holds now: an index's manifests, or a
/// single-target manifest as one entry (a manifest naming no target is
/// replaced by the index).
fn entries_of(bytes: &[u8]) -> Result<Vec<Descriptor>> {
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid("the manifest under the tag", e.to_string()))?;
    if json.get("manifests").is_some() {
        let index = ImageIndex::from_reader(bytes)
            .map_err(|e| Error::invalid("the index under the tag", e.to_string()))?;
        return Ok(index.manifests().clone());
    }
    let Some(triple) = json
        .pointer(&format!(
            "/annotations/{}",
            TARGET_ANNOTATION.replace('/', "~1")
        ))
        .and_then(|t| t.as_str())
    else {
        return Ok(Vec::new());
    };
    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        digest::sha256(bytes)
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| Error::invalid("a manifest digest", e.to_string()))?,
    );
    entry.set_platform(Some(Target::parse(triple).oci_platform()));
    entry.set_annotations(Some(HashMap::from([(
        TARGET_ANNOTATION.to_string(),
        triple.to_string(),
    )])));
    Ok(vec![entry])
}
