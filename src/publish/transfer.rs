//! Moving packages between a registry, an OCI archive and the cache, for
//! air-gapped builds: `ocipkg save` (registry → layout or `.tar`, every
//! platform, every digest verified) and `ocipkg load` (layout or `.tar` →
//! cache, after which offline builds find the package by its tag).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};

use crate::error::{Error, Result};
use crate::oci::digest::{self, VerifyingReader};
use crate::oci::format;
use crate::oci::manifest::{self, Source};
use crate::oci::platform::Target;
use crate::oci::reference::Reference;
use crate::publish::pack::{finish_layout, layout_target};
use crate::registry::client::Client;
use crate::store::fetch;
use crate::store::fetch::Fetched;
use crate::store::layout::Layout;
use crate::store::session::Session;

/// What [`save`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Saved {
    /// The digest the reference resolved to (manifest or index).
    pub digest: String,
    /// Distinct blobs written (manifests, configs, layers).
    pub blobs: usize,
    /// The layout directory or `.tar`.
    pub output: PathBuf,
}

/// Downloads the package `reference` (all its platforms) into an OCI image
/// layout at `output` (a directory, or a tar archive if it ends in `.tar`),
/// verifying every blob. `ocipkg load` or `ocipkg push` take it from there.
pub fn save(reference: &str, output: &Path) -> Result<Saved> {
    let reference = Reference::parse(reference)?;
    let mut client = Session::process(false).client(&reference, false)?;
    let (layout_dir, _staging) = layout_target(output)?;
    let layout = Layout::create(&layout_dir)?;
    let (top, top_digest) = manifest::resolve(&reference, &mut client)?;
    layout.write_blob(&top.bytes)?;
    let mut blobs = 1;
    let what = reference.to_string();
    let manifests = if manifest::is_index(&top.bytes, top.media_type.as_deref()) {
        let index = manifest::parse_index(&top.bytes, &what)?;
        let mut manifests = Vec::new();
        for entry in index.manifests() {
            let bytes = manifest::entry_manifest(&mut client, entry, &what)?;
            layout.write_blob(&bytes)?;
            blobs += 1;
            manifests.push(bytes);
        }
        manifests
    } else {
        vec![top.bytes.clone()]
    };
    // Platforms often share blobs (an empty config, a layer): each is
    // written, and counted, once.
    let mut copied = std::collections::HashSet::new();
    for bytes in &manifests {
        let manifest = manifest::parse_manifest(&reference, bytes)?;
        for blob in std::iter::once(manifest.config()).chain(manifest.layers().iter()) {
            if copied.insert(blob.digest().to_string()) {
                copy_blob(&mut client, &layout, blob, &what)?;
                blobs += 1;
            }
        }
    }
    let media_type = top
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| {
            if manifest::is_index(&top.bytes, None) {
                format::INDEX_MEDIA_TYPE.to_string()
            } else {
                format::MANIFEST_MEDIA_TYPE.to_string()
            }
        });
    let mut entry = Descriptor::new(
        MediaType::from(media_type.as_str()),
        top.bytes.len() as u64,
        top_digest
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| Error::invalid("a manifest digest", e.to_string()))?,
    );
    let tag = reference.tag().unwrap_or("latest");
    let untagged = Reference::parse(&format!(
        "{}/{}:{tag}",
        reference.registry(),
        reference.repository()
    ))?;
    entry.set_annotations(Some(HashMap::from([
        (format::REF_NAME_ANNOTATION.to_string(), tag.to_string()),
        (
            format::REFERENCE_ANNOTATION.to_string(),
            untagged.to_string(),
        ),
    ])));
    layout.write_single_index(entry)?;
    finish_layout(&layout_dir, output, 0)?;
    Ok(Saved {
        digest: top_digest,
        blobs,
        output: output.to_path_buf(),
    })
}

/// Streams one blob from the registry into the layout, verifying it.
pub(crate) fn copy_blob(
    client: &mut Client,
    layout: &Layout,
    blob: &Descriptor,
    what: &str,
) -> Result<()> {
    let expected = blob.digest().to_string();
    digest::hex_part(&expected)?;
    if layout.blob_path(&expected)?.is_file() {
        return Ok(());
    }
    let body = client.blob(&expected, blob.size())?;
    let mut verifying = VerifyingReader::new(body, blob.size());
    let (actual, size) = layout.write_blob_with(|w| io::copy(&mut verifying, w).map(|_| ()))?;
    let verdict = digest::check(
        &format!("blob {expected} of {what}"),
        &expected,
        blob.size(),
        &actual,
        size,
    );
    if verdict.is_err() {
        let _ = std::fs::remove_file(layout.blob_path(&actual)?);
    }
    verdict
}

/// Puts the package in the layout at `path` (directory or `.tar`, as
/// written by `ocipkg save` or `ocipkg pack`) into the cache, verified,
/// choosing `target`'s build from a multi-platform package (default: this
/// machine). The tag is recorded, so offline builds of `reference` (default:
/// the one recorded in the layout) use it.
pub fn load(path: &Path, reference: Option<&str>, target: Option<&str>) -> Result<Fetched> {
    load_in(&Session::process(false), path, reference, target)
}

/// [`load`] into the session's cache.
pub(crate) fn load_in(
    session: &Session,
    path: &Path,
    reference: Option<&str>,
    target: Option<&str>,
) -> Result<Fetched> {
    let mut layout = Layout::open(path)?;
    let index = layout.read_index()?;
    let recorded = match index.manifests().as_slice() {
        [only] => only
            .annotations()
            .as_ref()
            .and_then(|a| a.get(format::REFERENCE_ANNOTATION))
            .cloned(),
        _ => None,
    };
    let Some(reference) = reference.map(str::to_string).or(recorded) else {
        return Err(Error::usage(
            format!("the layout {} records no reference", path.display()),
            "name it: `ocipkg load PATH --tag registry/repository:tag`",
        ));
    };
    let reference = Reference::parse(&reference)?;
    let target = match target {
        Some(triple) => Target::parse(triple),
        None => Target::from_env(session.env()),
    };
    fetch::pull(&reference, &target, &mut layout, session.cache()?)
}
