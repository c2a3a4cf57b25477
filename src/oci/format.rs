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
//!   "pkg_config": "lib/pkgconfig/foo.pc",
//!   "root_dir": "opt/foo"
//! }
//! ```
//!
//! `libraries` are linked in the order given (default: every library found);
//! `kind` is `static` or `dylib` (default: static when both exist).
//! `system_libraries` are linked from the system after them; `frameworks`
//! on Apple targets only. `root_dir` (from `ocipkg pack --root-dir`) is the
//! directory of the unpacked tree that is the package root (default: the
//! tree itself); the other paths are relative to that root.

use serde::{Deserialize, Serialize};

/// `artifactType` of an ocipkg package manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.ocipkg.v1.artifact";
/// Media type of an OCI image manifest.
#[cfg(feature = "producer")]
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of the layers ocipkg writes.
#[cfg(feature = "producer")]
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the config holding [`LinkMetadata`].
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.ocipkg.config.v1+json";
/// Media type of zstd-compressed layers (`ocipkg pack --compression zstd`).
#[cfg(feature = "producer")]
pub const LAYER_MEDIA_TYPE_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Content of the OCI empty config.
#[cfg(feature = "producer")]
pub const EMPTY_CONFIG: &[u8] = b"{}";
/// Layer annotation naming the layer (ORAS and skopeo show it).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Index annotation naming the tag of a manifest in an OCI image layout.
#[cfg(feature = "producer")]
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Index annotation in layouts written by `ocipkg pack`: the full reference
/// (`registry/repository:tag`) that `ocipkg push` pushes to.
#[cfg(feature = "producer")]
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
    /// The directory of the unpacked tree that is the package root (holding
    /// `lib/`, `include/`, ...), relative, e.g. `opt/foo` for a package packed
    /// with `ocipkg pack --root-dir /opt/foo`; absent: the tree itself. The
    /// other paths are relative to it. Packing sets it from
    /// `Packer::root_dir` (replacing any value given here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
}

impl LinkMetadata {
    /// Whether nothing is set (the package then gets the OCI empty config).
    #[cfg(feature = "producer")]
    pub fn is_empty(&self) -> bool {
        self == &LinkMetadata::default()
    }
}

/// How a library is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A static archive (`libfoo.a`, `foo.lib`).
    Static,
    /// A shared library (`libfoo.so`, `libfoo.dylib`, `foo.dll`).
    Dylib,
}

impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Static => "static",
            LinkKind::Dylib => "dylib",
        })
    }
}

impl std::str::FromStr for LinkKind {
    type Err = String;

    /// `static` or `dylib`; anything else is an error saying so.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "static" => Ok(LinkKind::Static),
            "dylib" => Ok(LinkKind::Dylib),
            other => Err(format!("`{other}` is neither `static` nor `dylib`")),
        }
    }
}

/// One library of [`LinkMetadata::libraries`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySpec {
    /// Link name: `foo` for `libfoo.a`/`foo.lib`.
    pub name: String,
    /// `static` or `dylib`; absent: static when both exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<LinkKind>,
}

/// Layer annotation ORAS sets on a layer that is a packed directory.
pub const ORAS_UNPACK_ANNOTATION: &str = "io.deis.oras.content.unpack";

/// What a layer holds and how to put it into the package tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LayerKind {
    /// A tar archive, unpacked at the package root.
    Tar(Compression),
    /// One file, written at this relative path (its title annotation).
    File(Compression, String),
}

/// How to unpack a layer, from its media type and annotations:
/// - tar, tar+gzip and tar+zstd layers (OCI and Docker media types, and the
///   upstream ocipkg `application/vnd.ocipkg.v1.{layer,directory}.tar+gzip`)
///   are unpacked, except that in an artifact not made by ocipkg (`ours`
///   false) an uncompressed-tar layer with an `org.opencontainers.image.title`
///   and no `io.deis.oras.content.unpack` is a single file, as ORAS pushes
///   files (its directories are compressed tars);
/// - upstream ocipkg's `application/vnd.ocipkg.v1.file+gzip` is a gzipped
///   file named by its title;
/// - any other media type with a title is a file stored as is.
pub(crate) fn layer_kind(
    media_type: &str,
    annotations: Option<&std::collections::HashMap<String, String>>,
    ours: bool,
) -> Option<LayerKind> {
    let title = annotations
        .and_then(|a| a.get(TITLE_ANNOTATION))
        .filter(|t| !t.is_empty())
        .cloned();
    let unpack = annotations
        .and_then(|a| a.get(ORAS_UNPACK_ANNOTATION))
        .is_some_and(|v| v == "true");
    let tar = match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.ocipkg.v1.layer.tar+gzip"
        | "application/vnd.ocipkg.v1.directory.tar+gzip" => Some(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Some(Compression::Zstd),
        _ => None,
    };
    match (tar, title) {
        // ORAS stores a file as is under the plain tar media type; its
        // directories are compressed tars (with or without the annotation).
        (Some(Compression::None), Some(title)) if !ours && !unpack => {
            Some(LayerKind::File(Compression::None, title))
        }
        (Some(c), _) => Some(LayerKind::Tar(c)),
        (None, Some(title)) if media_type == "application/vnd.ocipkg.v1.file+gzip" => {
            Some(LayerKind::File(Compression::Gzip, title))
        }
        (None, Some(title)) => Some(LayerKind::File(Compression::None, title)),
        (None, None) => None,
    }
}

/// Compression of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn layers_are_tars_or_files() {
        let titled = HashMap::from([(TITLE_ANNOTATION.to_string(), "lib/libfoo.a".to_string())]);
        let mut unpack = titled.clone();
        unpack.insert(ORAS_UNPACK_ANNOTATION.into(), "true".into());
        let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
        assert_eq!(
            layer_kind(gz, Some(&titled), true),
            Some(LayerKind::Tar(Compression::Gzip))
        );
        assert_eq!(
            layer_kind(gz, Some(&titled), false),
            Some(LayerKind::Tar(Compression::Gzip))
        );
        let plain = "application/vnd.oci.image.layer.v1.tar";
        assert_eq!(
            layer_kind(plain, Some(&titled), false),
            Some(LayerKind::File(Compression::None, "lib/libfoo.a".into()))
        );
        assert_eq!(
            layer_kind(plain, Some(&unpack), false),
            Some(LayerKind::Tar(Compression::None))
        );
        assert_eq!(
            layer_kind(gz, Some(&unpack), false),
            Some(LayerKind::Tar(Compression::Gzip))
        );
        assert_eq!(
            layer_kind(gz, None, false),
            Some(LayerKind::Tar(Compression::Gzip))
        );
        assert_eq!(
            layer_kind("application/vnd.oci.image.layer.v1.tar+zstd", None, false),
            Some(LayerKind::Tar(Compression::Zstd))
        );
        assert_eq!(
            layer_kind("application/vnd.ocipkg.v1.file+gzip", Some(&titled), false),
            Some(LayerKind::File(Compression::Gzip, "lib/libfoo.a".into()))
        );
        assert_eq!(
            layer_kind("text/plain", Some(&titled), false),
            Some(LayerKind::File(Compression::None, "lib/libfoo.a".into()))
        );
        assert_eq!(layer_kind("text/plain", None, false), None);
    }
}
