//! The package format: names and media types shared by producer and consumer.
//!
//! A package is an OCI image manifest with
//! - `artifactType` [`ARTIFACT_TYPE`],
//! - the OCI empty config (`application/vnd.oci.empty.v1+json`, `{}`),
//! - one or more `application/vnd.oci.image.layer.v1.tar+gzip` layers, each
//!   annotated with `org.opencontainers.image.title`, whose files form the
//!   package tree: `lib/` (libraries), `include/` (headers), anything else.

/// `artifactType` of an ocipkg package manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.ocipkg.v1.artifact";
/// Media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of the layers ocipkg writes.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
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
