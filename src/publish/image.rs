//! Container images without a container engine: a directory becomes one
//! more layer on top of a base image whose layers stay in the registry.
//!
//! Only the base's manifest and config are read. With `push`, base layers
//! the destination repository lacks are mounted from the base's repository (same
//! registry), never downloaded or uploaded. With an output layout, base
//! layers are downloaded into it, so the layout is complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, HistoryBuilder, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
    Platform, SCHEMA_VERSION,
};

use crate::error::{Error, Result};
use crate::files::TempDir;
use crate::oci::format;
use crate::oci::manifest;
use crate::oci::platform::{self, Target};
use crate::oci::reference::Reference;
use crate::publish::pack::{self, LayerCompression, Stamp};
use crate::registry::client::Upload;
use crate::store::layout::{canonical_json, Layout};
use crate::store::session::Session;

/// Options of [`ImageBuilder::build`].
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    from: String,
    root_dir: String,
    uid: u64,
    gid: u64,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    workdir: Option<String>,
    platform: Option<String>,
    compression: LayerCompression,
}

/// What [`ImageBuilder::build`] made.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuiltImage {
    /// The image's reference.
    pub reference: String,
    /// Digest of its manifest.
    pub manifest_digest: String,
    /// Digest of the new layer (compressed) and of its tar (diff_id).
    pub layer_digest: String,
    /// sha256 of the uncompressed new layer.
    pub diff_id: String,
    /// Base layers mounted into the destination repository (with push).
    pub mounted_base_layers: usize,
}

impl ImageBuilder {
    /// An image on top of `from`: a reference, or `scratch` for none.
    pub fn new(from: impl Into<String>) -> Self {
        ImageBuilder {
            from: from.into(),
            root_dir: String::new(),
            uid: 0,
            gid: 0,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            workdir: None,
            platform: None,
            compression: LayerCompression::default(),
        }
    }

    /// Where the directory's files go in the image (e.g. `/app`).
    pub fn root_dir(&mut self, dir: impl Into<String>) -> &mut Self {
        self.root_dir = dir.into();
        self
    }
    /// Owner of the new files.
    pub fn owner(&mut self, uid: u64, gid: u64) -> &mut Self {
        self.uid = uid;
        self.gid = gid;
        self
    }
    /// The entrypoint, one element per argument.
    pub fn entrypoint(&mut self, args: Vec<String>) -> &mut Self {
        self.entrypoint = Some(args);
        self
    }
    /// The default arguments.
    pub fn cmd(&mut self, args: Vec<String>) -> &mut Self {
        self.cmd = Some(args);
        self
    }
    /// Sets an environment variable (`KEY=VALUE`), replacing the base's.
    pub fn env(&mut self, pair: impl Into<String>) -> &mut Self {
        self.env.push(pair.into());
        self
    }
    /// The working directory.
    pub fn workdir(&mut self, dir: impl Into<String>) -> &mut Self {
        self.workdir = Some(dir.into());
        self
    }
    /// The platform (`os/arch[/variant]`) to take from a multi-platform base,
    /// and of a `scratch` image (default: this machine's).
    pub fn platform(&mut self, platform: impl Into<String>) -> &mut Self {
        self.platform = Some(platform.into());
        self
    }
    /// Compression of the new layer.
    pub fn compression(&mut self, compression: LayerCompression) -> &mut Self {
        self.compression = compression;
        self
    }

    /// Builds the image of `dir` as `tag`; pushes it and/or writes it as an
    /// OCI image layout (directory or `.tar`) at `output`.
    pub fn build(
        &self,
        dir: &Path,
        tag: &str,
        push: bool,
        output: Option<&Path>,
    ) -> Result<BuiltImage> {
        if !push && output.is_none() {
            return Err(Error::usage(
                "the image would go nowhere",
                "give --push, --output PATH, or both",
            ));
        }
        if !dir.is_dir() {
            return Err(Error::usage(
                format!("{} is not a directory", dir.display()),
                "give the directory whose files go into the image",
            ));
        }
        let destination = Reference::parse(tag)?;
        let session = Session::process(false);
        let wanted = match &self.platform {
            Some(p) => parse_platform(p)?,
            None => Target::from_env(session.env()).oci_platform(),
        };
        let base = Base::fetch(&self.from, &wanted, &session)?;

        let staging = TempDir::new_in(&std::env::temp_dir(), "ocipkg-image-")?;
        let layout = Layout::create(&staging.path().join("layout"))?;
        let epoch = session.source_date_epoch()?;
        let stamp = Stamp {
            mtime: epoch.unwrap_or(0),
            uid: self.uid,
            gid: self.gid,
        };
        let root_dir = pack::relative_root(&self.root_dir)?;
        let (layer_digest, layer_size, diff_id) =
            pack::write_layer(&layout, dir, &root_dir, stamp, self.compression)?;
        let layer_media_type = match self.compression {
            LayerCompression::Gzip { .. } => format::LAYER_MEDIA_TYPE,
            LayerCompression::Zstd { .. } => format::LAYER_MEDIA_TYPE_ZSTD,
        };
        let layer = Descriptor::new(
            MediaType::from(layer_media_type),
            layer_size,
            pack::parse_digest(&layer_digest)?,
        );

        let config = self.config(&base, &wanted, &diff_id, epoch)?;
        let config_bytes = canonical_json(&config)?;
        let config_digest = layout.write_blob(&config_bytes)?;
        let mut layers: Vec<Descriptor> = base.layers.clone();
        layers.push(layer);
        let manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(Descriptor::new(
                MediaType::ImageConfig,
                config_bytes.len() as u64,
                pack::parse_digest(&config_digest)?,
            ))
            .layers(layers)
            .build()
            .map_err(|e| Error::invalid("the image manifest", e.to_string()))?;
        let manifest_bytes = canonical_json(&manifest)?;
        let manifest_digest = layout.write_blob(&manifest_bytes)?;

        let mut mounted_base_layers = 0;
        if push {
            mounted_base_layers = push_image(
                &destination,
                &base,
                &layout,
                &manifest,
                &manifest_bytes,
                &session,
            )?;
        }
        if let Some(output) = output {
            write_output(
                &destination,
                &base,
                layout,
                &manifest_bytes,
                &manifest_digest,
                output,
                &session,
            )?;
        }
        Ok(BuiltImage {
            reference: destination.to_string(),
            manifest_digest,
            layer_digest,
            diff_id,
            mounted_base_layers,
        })
    }

    /// The base's config with the new layer, a history entry and the
    /// requested changes.
    fn config(
        &self,
        base: &Base,
        platform: &Platform,
        diff_id: &str,
        epoch: Option<u64>,
    ) -> Result<ImageConfiguration> {
        let mut config = base.config.clone().unwrap_or_else(|| {
            let mut c = ImageConfiguration::default();
            c.set_os(platform.os().clone());
            c.set_architecture(platform.architecture().clone());
            c.set_variant(platform.variant().clone());
            c
        });
        config.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
        let created = epoch.map(pack::rfc3339);
        config.set_created(created.clone());
        let mut entry = HistoryBuilder::default().created_by(format!(
            "ocipkg image {}",
            if self.root_dir.is_empty() {
                "/"
            } else {
                &self.root_dir
            }
        ));
        if let Some(created) = created {
            entry = entry.created(created);
        }
        let entry = entry
            .build()
            .map_err(|e| Error::invalid("the image history", e.to_string()))?;
        config
            .history_mut()
            .get_or_insert_with(Vec::new)
            .push(entry);
        let mut run = config.config().clone().unwrap_or_default();
        if let Some(entrypoint) = &self.entrypoint {
            run.set_entrypoint(Some(entrypoint.clone()));
            if self.cmd.is_none() {
                // Docker's rule: a new entrypoint drops the base's arguments.
                run.set_cmd(None);
            }
        }
        if let Some(cmd) = &self.cmd {
            run.set_cmd(Some(cmd.clone()));
        }
        if let Some(workdir) = &self.workdir {
            run.set_working_dir(Some(workdir.clone()));
        }
        if !self.env.is_empty() {
            let mut vars = run.env().clone().unwrap_or_default();
            for pair in &self.env {
                let Some((key, _)) = pair.split_once('=') else {
                    return Err(Error::usage(
                        format!("--env {pair} is not KEY=VALUE"),
                        "write e.g. --env RUST_LOG=info",
                    ));
                };
                vars.retain(|v| v.split_once('=').map(|(k, _)| k) != Some(key));
                vars.push(pair.clone());
            }
            run.set_env(Some(vars));
        }
        config.set_config(Some(run));
        Ok(config)
    }
}

/// `os/arch[/variant]`
fn parse_platform(text: &str) -> Result<Platform> {
    let parts: Vec<&str> = text.split('/').collect();
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(*variant)),
        _ => {
            return Err(Error::usage(
                format!("platform `{text}` is not os/arch[/variant]"),
                "write e.g. --platform linux/amd64 or linux/arm/v7",
            ))
        }
    };
    let mut builder = oci_spec::image::PlatformBuilder::default()
        .os(oci_spec::image::Os::from(os))
        .architecture(oci_spec::image::Arch::from(arch));
    if let Some(variant) = variant {
        builder = builder.variant(variant);
    }
    builder
        .build()
        .map_err(|e| Error::usage(format!("platform `{text}`: {e}"), "write os/arch"))
}

/// The base image: its reference, layers and config (none for scratch).
struct Base {
    reference: Option<Reference>,
    layers: Vec<Descriptor>,
    config: Option<ImageConfiguration>,
}

impl Base {
    /// Reads the base's manifest (choosing `platform` from an index) and
    /// config; never its layers.
    fn fetch(from: &str, platform: &Platform, session: &Session) -> Result<Base> {
        if from == "scratch" {
            return Ok(Base {
                reference: None,
                layers: Vec::new(),
                config: None,
            });
        }
        let reference = Reference::parse(from)?;
        let mut client = session.client(&reference, false)?;
        let (fetched, _) = manifest::resolve(&reference, &mut client)?;
        let what = format!("base image {reference}");
        let bytes = if manifest::is_index(&fetched.bytes, fetched.media_type.as_deref()) {
            let index = manifest::parse_index(&fetched.bytes, &what)?;
            let entry = platform::on_platform(index.manifests(), platform.clone())
                .next()
                .ok_or_else(|| {
                    let available: Vec<String> =
                        index.manifests().iter().map(platform::describe).collect();
                    Error::invalid(
                        &what,
                        format!(
                            "it has no {}/{} image; it has: {}",
                            platform.os(),
                            platform.architecture(),
                            available.join(", ")
                        ),
                    )
                })?;
            manifest::entry_manifest(&mut client, entry, &what)?
        } else {
            fetched.bytes
        };
        let manifest: ImageManifest = manifest::parse_manifest(&reference, &bytes)?;
        let config_blob = manifest.config();
        let config_bytes = manifest::fetch_small_blob(
            &mut client,
            config_blob.digest().as_ref(),
            config_blob.size(),
            &format!("the config of {what}"),
        )?;
        let config = ImageConfiguration::from_reader(&config_bytes[..]).map_err(|e| {
            Error::invalid(&what, format!("its config is not an OCI image config: {e}"))
        })?;
        Ok(Base {
            reference: Some(reference),
            layers: manifest.layers().clone(),
            config: Some(config),
        })
    }
}

/// Pushes config, new layer and manifest; base layers the destination lacks are
/// mounted from the base's repository. Returns the number mounted.
fn push_image(
    destination: &Reference,
    base: &Base,
    layout: &Layout,
    manifest: &ImageManifest,
    manifest_bytes: &[u8],
    session: &Session,
) -> Result<usize> {
    let mut client = session.client(destination, true)?;
    let same_registry = base
        .reference
        .as_ref()
        .filter(|b| b.registry() == destination.registry());
    if let Some(base) = same_registry {
        client.also_pull(vec![base.repository().to_string()]);
    }
    let mut mounted = 0;
    for layer in &base.layers {
        let digest = layer.digest().to_string();
        if client.has_blob(&digest)? {
            continue;
        }
        let Some(base) = same_registry else {
            return Err(Error::usage(
                format!(
                    "base layer {digest} is not in {} and the base image is on another registry",
                    destination.registry()
                ),
                "copy the base image into the destination registry first (e.g. `skopeo copy`), \
                 so its layers are mounted, never downloaded",
            ));
        };
        match client.mount_blob(&digest, base.repository())? {
            true => mounted += 1,
            false => {
                return Err(Error::usage(
                    format!(
                        "{} refused to mount base layer {digest} from {}",
                        destination.registry(),
                        base.repository()
                    ),
                    "check push/pull rights on both repositories, or push the base image \
                     into the destination repository first",
                ))
            }
        }
    }
    let chunk_size = session.upload_chunk()?;
    let own = std::iter::once(manifest.config()).chain(manifest.layers().last());
    for blob in own {
        let digest = blob.digest().to_string();
        if !client.has_blob(&digest)? {
            let file = layout.blob_path(&digest)?;
            let uploaded: Upload =
                client.upload_blob(&file, &digest, blob.size(), None, chunk_size)?;
            let _ = uploaded;
        }
    }
    client.put_manifest(
        destination.tag().unwrap_or("latest"),
        manifest_bytes,
        format::MANIFEST_MEDIA_TYPE,
    )?;
    Ok(mounted)
}

/// Writes a complete OCI image layout (base layers downloaded into it).
fn write_output(
    destination: &Reference,
    base: &Base,
    layout: Layout,
    manifest_bytes: &[u8],
    manifest_digest: &str,
    output: &Path,
    session: &Session,
) -> Result<()> {
    if let Some(base_ref) = &base.reference {
        let mut client = session.client(base_ref, false)?;
        for layer in &base.layers {
            crate::publish::transfer::copy_blob(
                &mut client,
                &layout,
                layer,
                &base_ref.to_string(),
            )?;
        }
    }
    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        pack::parse_digest(manifest_digest)?,
    );
    let tag = destination.tag().unwrap_or("latest").to_string();
    entry.set_annotations(Some(HashMap::from([
        (format::REF_NAME_ANNOTATION.to_string(), tag),
        (
            format::REFERENCE_ANNOTATION.to_string(),
            destination.to_string(),
        ),
    ])));
    layout.write_single_index(entry)?;
    let (dest, _staging) = pack::layout_target(output)?;
    copy_layout(layout.dir(), &dest)?;
    pack::finish_layout(&dest, output, 0)
}

fn copy_layout(src: &Path, dest: &Path) -> Result<()> {
    let io = |e, p: &PathBuf| Error::io(format!("writing {}", p.display()), e);
    let blobs = dest.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io(e, &blobs))?;
    for name in ["oci-layout", "index.json"] {
        let to = dest.join(name);
        std::fs::copy(src.join(name), &to).map_err(|e| io(e, &to))?;
    }
    let entries = std::fs::read_dir(src.join("blobs").join("sha256"))
        .map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    for entry in entries.flatten() {
        let to = blobs.join(entry.file_name());
        crate::files::place(&entry.path(), &to, None)?;
    }
    Ok(())
}
