//! The package format: names and media types shared by producer and consumer.
//!
//! A package is an OCI image manifest with
//! - `artifactType` [`ARTIFACT_TYPE`],
//! - a config: [`CONFIG_MEDIA_TYPE`] holding [`LinkMetadata`] as JSON, or the
//!   OCI empty config (`application/vnd.oci.empty.v1+json`, `{}`) when the
//!   producer gave no link metadata,
//! - one or more `application/vnd.oci.image.layer.v1.tar+gzip` layers, each
//!   annotated with `org.opencontainers.image.title`, whose files form the
//!   package tree: `lib/` (libraries), `include/` (headers), anything else,
//! - for a package built for one target, the annotation
//!   `vnd.ocipkg.target` with the Rust target triple.
//!
//! A multi-platform package is an OCI image index of such manifests, each
//! entry with its `platform` and `vnd.ocipkg.target` annotation.
//!
//! Link metadata example:
//!
//! ```json
//! {
//!   "libraries": [{"name": "foo", "kind": "static"}, {"name": "bar"}],
//!   "system_libraries": ["stdc++", "m"],
//!   "frameworks": ["Security"],
//!   "include_dirs": ["include"],
//!   "pkg_config": "lib/pkgconfig/foo.pc"
//! }
//! ```
//!
//! `libraries` are linked in the order given (default: every library found);
//! `kind` is `static` or `dylib` (default: static when both exist).
//! `system_libraries` are linked from the system after them; `frameworks`
//! on Apple targets only. Paths are relative to the package root.

use serde::{Deserialize, Serialize};

/// `artifactType` of an ocipkg package manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.ocipkg.v1.artifact";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of the layers ocipkg writes.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the config holding [`LinkMetadata`].
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.ocipkg.config.v1+json";
/// Media type of the OCI empty config.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Content of the OCI empty config.
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Layer annotation naming the layer (ORAS and skopeo show it).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Index annotation naming the tag of a manifest in an OCI image layout.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Index annotation in layouts written by `ocipkg pack`: the full reference
/// (`registry/repository:tag`) that `ocipkg push` pushes to.
pub const REFERENCE_ANNOTATION: &str = "vnd.ocipkg.reference";

/// How a package is linked, as the producer knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMetadata {
    /// Libraries in link order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<LibrarySpec>,
    /// System libraries linked after the package's own (`stdc++`, `m`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_libraries: Vec<String>,
    /// Apple frameworks (`Security`, ...), linked on Apple targets only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frameworks: Vec<String>,
    /// Header directories, relative to the package root (default `include`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_dirs: Vec<String>,
    /// A pkg-config file, relative to the package root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkg_config: Option<String>,
}

impl LinkMetadata {
    /// Whether nothing is set (the package then gets the OCI empty config).
    pub fn is_empty(&self) -> bool {
        self == &LinkMetadata::default()
    }
}

/// One library of [`LinkMetadata::libraries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySpec {
    /// Link name: `foo` for `libfoo.a`/`foo.lib`.
    pub name: String,
    /// `static` or `dylib`; absent: static when both exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Layer media types the consumer can unpack, and how they are compressed.
pub(crate) fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
        _ => None,
    }
}

/// Compression of a tar layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}
