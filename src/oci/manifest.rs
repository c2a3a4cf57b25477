//! Manifests and indexes: where they come from (a [`Source`]), how a
//! reference resolves to one (checked against its digest), and parsing.

use std::io::Read;

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::error::{Error, NetworkKind, Result};
use crate::oci::digest::{self, VerifyingReader};
use crate::oci::format;
use crate::oci::platform;
use crate::oci::reference::Reference;

/// A manifest as served: raw bytes (what the digest covers) and media type.
pub(crate) struct RawManifest {
    pub bytes: Vec<u8>,
    pub media_type: Option<String>,
    pub digest_header: Option<String>,
}

/// Where manifests and blobs come from: a registry, or an OCI image layout.
pub(crate) trait Source {
    /// A manifest or index by tag or digest.
    fn manifest(&mut self, reference: &str) -> Result<RawManifest>;
    /// A blob's bytes, to be verified by the caller.
    fn blob(&mut self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>>;
}

/// The manifest (or index) `reference` names, checked against the pinned
/// digest or the registry's `Docker-Content-Digest`; and its digest.
pub(crate) fn resolve(
    reference: &Reference,
    source: &mut dyn Source,
) -> Result<(RawManifest, String)> {
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
