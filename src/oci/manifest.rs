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
    ImageIndex::from_reader(bytes).map_err(|e| {
        let reason =
            bad_digest(bytes).unwrap_or_else(|| format!("it is not an OCI image index: {e}"));
        Error::invalid(what, reason)
    })
}

pub(crate) fn parse_manifest(reference: &Reference, bytes: &[u8]) -> Result<ImageManifest> {
    ImageManifest::from_reader(bytes).map_err(|e| {
        let reason =
            bad_digest(bytes).unwrap_or_else(|| format!("it is not an OCI image manifest: {e}"));
        Error::invalid(format!("the manifest of {reference}"), reason)
    })
}

/// Which descriptor of a manifest or index carries a digest that is not a
/// sha256 digest (the parser's own message only says "serde failed").
fn bad_digest(bytes: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let descriptors = json
        .get("config")
        .map(|c| ("config".to_string(), c))
        .into_iter()
        .chain(["layers", "manifests"].into_iter().flat_map(|field| {
            json.get(field)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .enumerate()
                .map(move |(i, d)| (format!("{field}[{i}]"), d))
        }));
    for (name, descriptor) in descriptors {
        let digest = descriptor
            .get("digest")
            .and_then(|d| d.as_str())
            .unwrap_or("");
        if digest::hex_part(digest).is_err() {
            return Some(format!(
                "{name} has the digest `{}`, not `sha256:` and 64 lower-case hex digits",
                digest
                    .escape_debug()
                    .to_string()
                    .chars()
                    .take(100)
                    .collect::<String>()
            ));
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_digest_is_named() {
        let manifest = br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"b","digest":"sha256:ZZ","size":1}]}"#;
        let reference = Reference::parse("r.example/a:1").unwrap();
        let err = parse_manifest(&reference, manifest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layers[0]") && err.contains("sha256:ZZ"),
            "{err}"
        );
    }
}
