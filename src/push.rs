//! Producer side: pushes a package from an OCI image layout to a registry.

use crate::client::Client;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::format;
use crate::layout::Layout;
use crate::reference::Reference;

use oci_spec::image::ImageManifest;
use std::path::Path;

/// What [`push`] pushed.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// Where it was pushed (`registry/repository:tag`).
    pub reference: String,
    /// Digest of the manifest; `reference@digest` pins exactly this package.
    pub manifest_digest: String,
    /// Blobs uploaded (blobs the registry already had are skipped).
    pub uploaded_blobs: usize,
}

/// Pushes the package in the layout at `path` (directory or `.tar`) to
/// `reference`, or to the reference recorded by `ocipkg pack` when `None`.
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
        Some(r) => Reference::parse(&r)?,
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
    let manifest_digest = entry.digest().to_string();
    let manifest_bytes = layout.read_blob(&manifest_digest)?;
    let manifest = ImageManifest::from_reader(&manifest_bytes[..]).map_err(|e| {
        Error::invalid(format!("the manifest in {}", path.display()), e.to_string())
    })?;

    let mut client = Client::for_reference(&reference, &Env::process(false), true)?;
    let mut uploaded_blobs = 0;
    let blobs = std::iter::once(manifest.config()).chain(manifest.layers().iter());
    for blob in blobs {
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
        client.upload_blob(&file, &digest)?;
        uploaded_blobs += 1;
    }
    let media_type = entry.media_type().to_string();
    let tag = reference.tag().unwrap_or("latest");
    client.put_manifest(tag, &manifest_bytes, &media_type)?;
    Ok(Pushed {
        reference: reference.to_string(),
        manifest_digest,
        uploaded_blobs,
    })
}
