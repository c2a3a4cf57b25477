//! Producer side: a directory becomes a package in an OCI image layout.
//!
//! Packs are reproducible: entries are sorted, owned by uid/gid 0 with no
//! names, modes normalised to 0755/0644, and dated `SOURCE_DATE_EPOCH` (or 0).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Descriptor, ImageManifestBuilder, MediaType, ANNOTATION_CREATED, SCHEMA_VERSION,
};

use crate::error::{Error, Result};
use crate::files::TempDir;
use crate::oci::digest::HashingReader;
use crate::oci::format::{self, LinkMetadata};
use crate::oci::platform::{Target, TARGET_ANNOTATION};
use crate::oci::reference::Reference;
use crate::store::layout::{canonical_json, Layout};
use crate::store::session::Session;

/// What [`pack`] wrote.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Packed {
    /// The reference the package will be pushed to.
    pub reference: String,
    /// Digest of the manifest.
    pub manifest_digest: String,
    /// Where the layout was written.
    pub output: PathBuf,
    /// What consumers may trip over, found in the packed binaries (a C++
    /// runtime or a shared library that is used but not declared), each
    /// naming the flag that fixes it.
    pub warnings: Vec<String>,
    /// The oldest runtimes the binaries need, as recorded in the manifest's
    /// annotations: `glibc`, `glibcxx`, `cxxabi` → version.
    pub floor: BTreeMap<String, String>,
}

/// Packs `dir` (its contents become the package tree: put libraries in
/// `lib/` and headers in `include/`) as an OCI image layout at `output`: a
/// directory, or a tar archive when `output` ends in `.tar`. The package
/// names no target and carries no link metadata; see [`Packer`].
pub fn pack(dir: &Path, reference: &str, output: &Path) -> Result<Packed> {
    Packer::new().pack(dir, reference, output)
}

/// Options for packing: the target the libraries are built for, and link
/// metadata for consumers.
#[derive(Clone, Debug, Default)]
pub struct Packer {
    target: Option<String>,
    metadata: LinkMetadata,
    compression: LayerCompression,
    root_dir: String,
    uid: u64,
    gid: u64,
    annotations: BTreeMap<String, String>,
    glibc_floor: Option<crate::oci::platform::Version>,
}

/// How the package's layer is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerCompression {
    /// `tar+gzip` at this level (0–9; default 6): what every consumer reads.
    Gzip {
        /// 0 (store) to 9 (smallest).
        level: u32,
    },
    /// `tar+zstd` at this level (1–19, default [`ZSTD_DEFAULT_LEVEL`]):
    /// smaller than gzip; needs a consumer that reads zstd layers (ocipkg
    /// does, in pure Rust or, with the `libzstd` feature, with libzstd).
    /// Frames hold 4 MiB of tar, 8 MiB at [`ZSTD_MAX_LEVEL`].
    Zstd {
        /// 1 (fastest) to 19 (smallest).
        level: i32,
    },
}

/// The zstd level packs use unless told otherwise (see README's table).
pub const ZSTD_DEFAULT_LEVEL: i32 = 9;
/// The highest zstd level offered.
pub const ZSTD_MAX_LEVEL: i32 = 19;

impl Default for LayerCompression {
    fn default() -> Self {
        LayerCompression::Gzip { level: 6 }
    }
}

impl Packer {
    /// No target, no link metadata.
    pub fn new() -> Self {
        Packer::default()
    }

    /// The Rust target triple the libraries are built for: the package gets
    /// its OCI platform and the `vnd.ocipkg.target` annotation, and
    /// `ocipkg push` adds it to the multi-platform index under its tag.
    pub fn target(&mut self, triple: impl Into<String>) -> &mut Self {
        self.target = Some(triple.into());
        self
    }

    /// Link metadata stored in the package's config.
    pub fn metadata(&mut self, metadata: LinkMetadata) -> &mut Self {
        self.metadata = metadata;
        self
    }

    /// How the layer is compressed (default gzip level 6).
    pub fn compression(&mut self, compression: LayerCompression) -> &mut Self {
        self.compression = compression;
        self
    }

    /// Places the files under this directory of the package tree (e.g.
    /// `/opt/foo`) instead of its root, and records it in the link metadata
    /// (`root_dir`), so consumers find `lib/` and `include/` there.
    pub fn root_dir(&mut self, dir: impl Into<String>) -> &mut Self {
        self.root_dir = dir.into();
        self
    }

    /// Owner of every file in the layer (default 0:0).
    pub fn owner(&mut self, uid: u64, gid: u64) -> &mut Self {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Adds a manifest annotation (e.g. `org.opencontainers.image.version`).
    /// With `SOURCE_DATE_EPOCH` set, `org.opencontainers.image.created` is
    /// added from it.
    pub fn annotation(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Records this glibc floor instead of the one read from the binaries
    /// (for a package whose binaries say less than they need, or to give
    /// two builds of one target distinct floors).
    pub fn glibc_floor(&mut self, version: &str) -> Result<&mut Self> {
        self.glibc_floor = Some(crate::oci::platform::Version::glibc(version).ok_or_else(
            || {
                Error::usage(
                    format!("`{version}` is not a glibc version: it needs at least MAJOR.MINOR"),
                    "give it as MAJOR.MINOR, like 2.17 (the glibc of the oldest system the \
                 package runs on)",
                )
            },
        )?);
        Ok(self)
    }

    /// Packs `dir` for `reference` into `output` (see [`pack`]).
    pub fn pack(&self, dir: &Path, reference: &str, output: &Path) -> Result<Packed> {
        pack_with(self, dir, reference, output)
    }
}

fn pack_with(options: &Packer, dir: &Path, reference: &str, output: &Path) -> Result<Packed> {
    let reference = Reference::parse(reference)?;
    let reference = match (reference.tag(), reference.digest()) {
        (_, Some(_)) => {
            return Err(Error::usage(
                format!("cannot pack to `{reference}`: it names a digest"),
                "give a tag instead (`registry/repository:tag`); the digest is computed",
            ))
        }
        (None, None) => reference.with_tag("latest")?,
        _ => reference,
    };
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("{} is not a directory", dir.display()),
            "give the directory holding lib/ and include/ to pack",
        ));
    }
    check_metadata(dir, &options.metadata)?;
    if inside_dir(output, dir) {
        return Err(Error::usage(
            format!(
                "the output {} is inside the directory being packed, {}",
                output.display(),
                dir.display()
            ),
            "write the output outside the packed directory",
        ));
    }
    let epoch = Session::process(false).source_date_epoch()?;
    let stamp = Stamp {
        mtime: epoch.unwrap_or(0),
        uid: options.uid,
        gid: options.gid,
    };
    let root_dir = relative_root(&options.root_dir)?;
    let (layout_dir, _staging) = layout_target(output)?;
    let layout = Layout::create(&layout_dir)?;

    let (layer_digest, layer_size, _) =
        write_layer(&layout, dir, &root_dir, stamp, options.compression)?;
    // Consumers look for lib/ and include/ under the recorded root dir.
    let metadata = LinkMetadata {
        root_dir: (!root_dir.as_os_str().is_empty()).then(|| {
            let parts: Vec<String> = root_dir
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            parts.join("/")
        }),
        ..options.metadata.clone()
    };
    let (config_media_type, config_bytes) = if metadata.is_empty() {
        (MediaType::EmptyJSON, format::EMPTY_CONFIG.to_vec())
    } else {
        (
            MediaType::from(format::CONFIG_MEDIA_TYPE),
            canonical_json(&metadata)?,
        )
    };
    let config_digest = layout.write_blob(&config_bytes)?;
    let target = options.target.as_deref().map(Target::parse);

    let name = reference
        .repository()
        .rsplit('/')
        .next()
        .unwrap_or("package");
    let (media_type, extension) = match options.compression {
        LayerCompression::Gzip { .. } => (format::LAYER_MEDIA_TYPE, "tar.gz"),
        LayerCompression::Zstd { .. } => (format::LAYER_MEDIA_TYPE_ZSTD, "tar.zst"),
    };
    let mut layer = Descriptor::new(
        MediaType::from(media_type),
        layer_size,
        parse_digest(&layer_digest)?,
    );
    layer.set_annotations(Some(HashMap::from([(
        format::TITLE_ANNOTATION.to_string(),
        format!("{name}.{extension}"),
    )])));
    let config = Descriptor::new(
        config_media_type,
        config_bytes.len() as u64,
        parse_digest(&config_digest)?,
    );
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(format::ARTIFACT_TYPE))
        .config(config)
        .layers(vec![layer])
        .build()
        .map_err(|e| Error::invalid("the manifest being packed", e.to_string()))?;
    let mut annotations: HashMap<String, String> =
        options.annotations.clone().into_iter().collect();
    if let Some(epoch) = epoch {
        annotations.insert(ANNOTATION_CREATED.to_string(), rfc3339(epoch));
    }
    if let Some(target) = &target {
        annotations.insert(TARGET_ANNOTATION.to_string(), target.triple.clone());
    }
    let floor = floor_annotations(options, dir, target.as_ref());
    annotations.extend(floor.clone());
    if !annotations.is_empty() {
        manifest.set_annotations(Some(annotations));
    }
    let manifest_bytes = canonical_json(&manifest)?;
    let manifest_digest = layout.write_blob(&manifest_bytes)?;

    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        manifest_bytes.len() as u64,
        parse_digest(&manifest_digest)?,
    );
    entry.set_artifact_type(Some(MediaType::from(format::ARTIFACT_TYPE)));
    let mut annotations = HashMap::from([
        (
            format::REF_NAME_ANNOTATION.to_string(),
            reference.tag().unwrap_or("latest").to_string(),
        ),
        (
            format::REFERENCE_ANNOTATION.to_string(),
            reference.to_string(),
        ),
    ]);
    if let Some(target) = &target {
        entry.set_platform(Some(target.oci_platform()));
        annotations.insert(TARGET_ANNOTATION.to_string(), target.triple.clone());
    }
    annotations.extend(floor.clone());
    entry.set_annotations(Some(annotations));
    layout.write_single_index(entry)?;

    finish_layout(layout.dir(), output, stamp.mtime)?;
    let mut warnings = crate::publish::binaries::check(dir, &options.metadata);
    warnings.extend(missing_parts(dir, &options.metadata));
    Ok(Packed {
        reference: reference.to_string(),
        manifest_digest,
        output: output.to_path_buf(),
        warnings,
        floor: floor
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("vnd.ocipkg.").to_string(), v))
            .collect(),
    })
}

/// Refuses, before anything is written, link metadata that every consumer
/// would refuse (the same rules), and a pkg-config file that is not there.
fn check_metadata(dir: &Path, metadata: &LinkMetadata) -> Result<()> {
    let help = "fix the --link-lib, --system-lib, --framework, --include-dir or --pkg-config \
                flag: names are letters, digits and `_ . + -`; paths are relative and inside \
                the packed directory";
    if let Err(e) = crate::link::check_metadata(metadata) {
        let reason = match e {
            Error::Refused { reason, .. } => reason,
            other => other.to_string(),
        };
        return Err(Error::usage(format!("cannot pack: {reason}"), help));
    }
    if let Some(pc) = &metadata.pkg_config {
        if !dir.join(pc).is_file() {
            return Err(Error::usage(
                format!(
                    "cannot pack: --pkg-config {pc} is not a file in {}",
                    dir.display()
                ),
                help,
            ));
        }
    }
    Ok(())
}

/// Warnings for metadata naming what the directory does not hold.
fn missing_parts(dir: &Path, metadata: &LinkMetadata) -> Vec<String> {
    let mut warnings = Vec::new();
    for include in &metadata.include_dirs {
        if !dir.join(include).is_dir() {
            warnings.push(format!(
                "--include-dir {include} is not a directory of the package; consumers get no \
                 header directory from it"
            ));
        }
    }
    let mut files = Vec::new();
    for sub in crate::link::discover::LIB_DIRS {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            files.extend(
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
    }
    for library in &metadata.libraries {
        let name = &library.name;
        let found = files
            .iter()
            .any(|f| f.starts_with(&format!("lib{name}.")) || f.starts_with(&format!("{name}.")));
        if !found {
            warnings.push(format!(
                "--link-lib {name}: no lib{name}.* or {name}.* in lib/, lib64/, bin/ or the \
                 root; consumers will fail to link it"
            ));
        }
    }
    warnings
}

/// The floor annotations of a package: for Linux GNU targets (or no
/// target), the versions its binaries need; the glibc floor given to the
/// packer wins.
fn floor_annotations(
    options: &Packer,
    dir: &Path,
    target: Option<&Target>,
) -> BTreeMap<String, String> {
    use crate::oci::platform::{CXXABI_ANNOTATION, GLIBCXX_ANNOTATION, GLIBC_ANNOTATION};
    let mut out = BTreeMap::new();
    if target.is_some_and(|t| !t.is_linux_gnu()) {
        return out;
    }
    let floor = crate::publish::binaries::floor(dir, target);
    for (key, version) in [
        (GLIBC_ANNOTATION, floor.glibc),
        (GLIBCXX_ANNOTATION, floor.glibcxx),
        (CXXABI_ANNOTATION, floor.cxxabi),
    ] {
        if let Some(version) = version {
            out.insert(key.to_string(), version.to_string());
        }
    }
    if let Some(version) = &options.glibc_floor {
        out.insert(GLIBC_ANNOTATION.to_string(), version.to_string());
    }
    out
}

/// Where to build a layout for `output`: `output` itself, or (for a `.tar`
/// output) a staging dir beside it, removed when the guard drops.
pub(crate) fn layout_target(output: &Path) -> Result<(PathBuf, Option<TempDir>)> {
    if !is_tar(output) {
        return Ok((output.to_path_buf(), None));
    }
    if output.exists() {
        return Err(Error::usage(
            format!("output {} exists", output.display()),
            "remove it or choose another --output",
        ));
    }
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = TempDir::new_in(parent, ".ocipkg-layout-")?;
    Ok((staging.path().to_path_buf(), Some(staging)))
}

fn is_tar(output: &Path) -> bool {
    output.extension().is_some_and(|e| e == "tar")
}

/// For a `.tar` output, archives the layout built in `layout_dir` into it.
pub(crate) fn finish_layout(layout_dir: &Path, output: &Path, mtime: u64) -> Result<()> {
    if !is_tar(output) {
        return Ok(());
    }
    let file =
        File::create(output).map_err(|e| Error::io(format!("creating {}", output.display()), e))?;
    let mut builder = tar::Builder::new(io::BufWriter::new(file));
    let stamp = Stamp {
        mtime,
        uid: 0,
        gid: 0,
    };
    append_tree(&mut builder, layout_dir, Path::new(""), stamp)
        .and_then(|()| builder.into_inner()?.flush())
        .map_err(|e| {
            let _ = fs::remove_file(output);
            Error::io(format!("writing {}", output.display()), e)
        })
}

/// Writes the layer of `dir` (under `root_dir`) into the layout: its
/// digest, size, and the digest of the uncompressed tar (an image's diff_id),
/// all computed in the one pass.
pub(crate) fn write_layer(
    layout: &Layout,
    dir: &Path,
    root_dir: &Path,
    stamp: Stamp,
    compression: LayerCompression,
) -> Result<(String, u64, String)> {
    let mut diff_id = String::new();
    let (digest, size) = layout.write_blob_with(|w| {
        diff_id = compressed_tar(dir, root_dir, stamp, compression, w)?;
        Ok(())
    })?;
    Ok((digest, size, diff_id))
}

/// tar of `dir` (under `root_dir`) → gzip or zstd → `out`; returns the
/// digest of the uncompressed tar. The tar is built on its own thread and
/// compressed in parallel blocks. The tar is
/// written on a second thread (reading files, building headers) into a pipe
/// that the compressor reads on this one, so both cores work. I/O errors on
/// either side are caught around the zstd compressor, which cannot report
/// them itself.
fn compressed_tar(
    dir: &Path,
    root_dir: &Path,
    stamp: Stamp,
    compression: LayerCompression,
    out: &mut impl Write,
) -> io::Result<String> {
    let (reader, writer) = io::pipe()?;
    let (dir, root_dir) = (dir.to_path_buf(), root_dir.to_path_buf());
    let producer = std::thread::spawn(move || -> io::Result<()> {
        let mut builder = tar::Builder::new(io::BufWriter::with_capacity(1 << 20, writer));
        append_rooted(&mut builder, &dir, &root_dir, stamp)?;
        builder.into_inner()?.flush()
    });
    let mut source = Guarded::new(HashingReader::new(io::BufReader::with_capacity(
        1 << 20,
        reader,
    )));
    let mut drain = Guarded::new(out);
    match compression {
        LayerCompression::Gzip { level } => {
            let level = level.min(9);
            let member = |b: &[u8]| gzip_member(b, level);
            if let Err(e) = parallel_blocks(&mut source, &mut drain, BLOCK, member) {
                drain.error.get_or_insert(e);
            }
        }
        LayerCompression::Zstd { level } => {
            let level = level.clamp(1, ZSTD_MAX_LEVEL);
            let frame = |b: &[u8]| zstd_frame(b, level);
            if let Err(e) = parallel_blocks(&mut source, &mut drain, zstd_block(level), frame) {
                drain.error.get_or_insert(e);
            }
        }
    }
    let read_error = source.error.take();
    let diff_id = source.inner.digest();
    drop(source); // closes the pipe if the tar thread still writes
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the tar thread panicked")));
    produced?;
    match (read_error, drain.error.take()) {
        (Some(e), _) | (None, Some(e)) => Err(e),
        (None, None) => Ok(diff_id),
    }
}

/// Bytes of uncompressed tar per gzip member or zstd frame.
const BLOCK: usize = 4 << 20;

/// Bytes of uncompressed tar per zstd frame: 4 MiB, but 8 MiB at the
/// highest level, where a larger window is what makes the layer smaller
/// (2 % here) and consumers hold 8 MiB pieces while they pull.
fn zstd_block(level: i32) -> usize {
    if level >= ZSTD_MAX_LEVEL {
        2 * BLOCK
    } else {
        BLOCK
    }
}

/// Compression with all cores: the stream is cut into fixed blocks (4 MiB),
/// each compressed on a worker thread into a gzip member or zstd frame,
/// written in order. Concatenated members (RFC 1952) and frames (RFC 8878)
/// are one valid stream that gzip and zstd readers decode (Go's, zlib's,
/// Python's, zstd's; ocipkg's reads every member and frame); the fixed cuts
/// keep the output reproducible. Reading, compressing and writing overlap;
/// memory: at most two blocks per worker in flight.
fn parallel_blocks(
    reader: &mut (impl io::Read + Send),
    writer: &mut impl Write,
    block_size: usize,
    compress: impl Fn(&[u8]) -> io::Result<Vec<u8>> + Sync,
) -> io::Result<()> {
    use std::collections::BTreeMap;
    use std::sync::mpsc::{channel, sync_channel};
    use std::sync::{Arc, Mutex};

    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    std::thread::scope(|scope| {
        // A block is read only with a free slot; a slot comes back when its
        // member is written.
        let (slots, slot_taken) = sync_channel::<()>(2 * workers);
        for _ in 0..2 * workers {
            let _ = slots.send(());
        }
        let (jobs, queue) = sync_channel::<(usize, Vec<u8>)>(workers);
        let queue = Arc::new(Mutex::new(queue));
        let (results, done) = channel::<(usize, io::Result<Vec<u8>>)>();
        for _ in 0..workers {
            let (queue, results, compress) = (queue.clone(), results.clone(), &compress);
            scope.spawn(move || loop {
                let job = match queue.lock() {
                    Ok(queue) => queue.recv(),
                    Err(_) => return,
                };
                let Ok((index, block)) = job else { return };
                // A panic is an error of this block, never a writer left waiting.
                let member =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compress(&block)))
                        .unwrap_or_else(|_| Err(io::Error::other("a compression thread panicked")));
                if results.send((index, member)).is_err() {
                    return;
                }
            });
        }
        // The reader: blocks in order; the count of blocks, or its error.
        let reading = scope.spawn(move || -> io::Result<usize> {
            for index in 0.. {
                if slot_taken.recv().is_err() {
                    return Ok(index); // the writer stopped
                }
                let mut block = vec![0u8; block_size];
                let n = crate::store::stream::read_full(reader, &mut block)?;
                block.truncate(n);
                // An empty stream is one empty member.
                if (n > 0 || index == 0) && jobs.send((index, block)).is_err() {
                    return Ok(index);
                }
                if n < block_size {
                    return Ok(if n > 0 || index == 0 {
                        index + 1
                    } else {
                        index
                    });
                }
            }
            unreachable!("the loop returns")
        });
        drop(results);
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut written = Ok(());
        'writing: loop {
            while let Some(member) = waiting.remove(&next) {
                let member: io::Result<Vec<u8>> = member;
                if let Err(e) = member.and_then(|m| writer.write_all(&m)) {
                    written = Err(e);
                    break 'writing;
                }
                next += 1;
                let _ = slots.send(());
            }
            match done.recv() {
                Ok((index, member)) => {
                    waiting.insert(index, member);
                }
                Err(_) => break, // every worker has finished
            }
        }
        drop(slots);
        drop(done);
        let count = reading
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the reading thread panicked")))?;
        written?;
        if next < count {
            return Err(io::Error::other("a compression thread stopped"));
        }
        writer.flush()
    })
}

/// One zstd frame (libzstd), stating its decoded size in its header so
/// consumers can decode frames in parallel; the window never exceeds the
/// block (single segment), so a consumer's memory stays small. Its checksum (4 bytes) lets a
/// consumer tell a corrupt frame from the one packed (gzip members have
/// their CRC).
pub(crate) fn zstd_frame(block: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    compressor.include_contentsize(true)?;
    compressor.include_checksum(true)?;
    // The window covers the block and no more (4 or 8 MiB).
    let window_log = if block.len() > 4 << 20 { 23 } else { 22 };
    compressor.window_log(window_log)?;
    compressor.compress(block)
}

/// One gzip member recording its own size in a header extra field
/// (subfield `op`, as BGZF does), so consumers can find and decode members
/// in parallel; other readers skip the field. No name, time 0: reproducible.
pub(crate) fn gzip_member(block: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut deflate = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(block.len() / 2 + 64),
        flate2::Compression::new(level),
    );
    deflate.write_all(block)?;
    let body = deflate.finish()?;
    const HEADER: usize = 10 + 2 + 8;
    let size = u32::try_from(HEADER + body.len() + 8)
        .map_err(|_| io::Error::other("a gzip member outgrew 4 GiB"))?;
    let [s0, s1] = crate::store::decode::GZIP_SIZE_FIELD;
    // ID1 ID2 CM=deflate FLG=FEXTRA MTIME=0 XFL=0 OS=unknown XLEN=8, subfield op/4.
    let mut member = Vec::with_capacity(size as usize);
    member.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 255, 8, 0, s0, s1, 4, 0]);
    member.extend_from_slice(&size.to_le_bytes());
    member.extend_from_slice(&body);
    let mut crc = flate2::Crc::new();
    crc.update(block);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    member.extend_from_slice(&(block.len() as u32).to_le_bytes());
    Ok(member)
}

/// Keeps the first I/O error and then behaves as a finished stream, so a
/// caller that cannot handle errors never sees one.
struct Guarded<T> {
    inner: T,
    error: Option<io::Error>,
}

impl<T> Guarded<T> {
    fn new(inner: T) -> Self {
        Guarded { inner, error: None }
    }
}

impl<R: io::Read> io::Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Ok(0);
        }
        self.inner.read(buf).or_else(|e| {
            self.error = Some(e);
            Ok(0)
        })
    }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.error.is_none() {
            if let Err(e) = self.inner.write_all(buf) {
                self.error = Some(e);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_none() {
            if let Err(e) = self.inner.flush() {
                self.error = Some(e);
            }
        }
        Ok(())
    }
}

pub(crate) fn parse_digest(digest: &str) -> Result<oci_spec::image::Digest> {
    digest.parse().map_err(|e: oci_spec::OciSpecError| {
        Error::invalid(format!("digest {digest}"), e.to_string())
    })
}

/// Whether `path` (which may not exist yet) lies inside `dir`.
fn inside_dir(path: &Path, dir: &Path) -> bool {
    let Ok(dir) = fs::canonicalize(dir) else {
        return false;
    };
    // Resolve the nearest existing ancestor, then add back the rest.
    let mut existing = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return false,
        }
    }
    let Ok(mut resolved) = fs::canonicalize(&existing) else {
        return false;
    };
    resolved.extend(rest.iter().rev());
    resolved.starts_with(&dir)
}

/// `--root-dir`: a relative path without `..` (leading `/` ignored).
pub(crate) fn relative_root(root: &str) -> Result<PathBuf> {
    let trimmed = root.trim_start_matches('/');
    let path = PathBuf::from(trimmed);
    if path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(Error::usage(
            format!("root dir `{root}` is not a plain directory path"),
            "give a path like /opt/foo (no `..`)",
        ));
    }
    Ok(path)
}

/// Seconds since the epoch as RFC 3339 (`2023-11-14T22:13:20Z`).
pub(crate) fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Normalised metadata of every tar entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
}

/// Appends the directories of `prefix` (`a`, `a/b`, ...), then `src`'s tree
/// under it.
fn append_rooted<W: Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    prefix: &Path,
    stamp: Stamp,
) -> io::Result<()> {
    let mut dir = PathBuf::new();
    for component in prefix.components() {
        dir.push(component);
        let mut header = stamp.header();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, &dir, io::empty())?;
    }
    append_tree(builder, src, prefix, stamp)
}

impl Stamp {
    fn header(&self) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_uid(self.uid);
        header.set_gid(self.gid);
        header.set_mtime(self.mtime);
        header
    }
}

/// Appends `src` recursively as `prefix/...`, in sorted order with
/// normalised metadata.
fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    src: &Path,
    prefix: &Path,
    stamp: Stamp,
) -> io::Result<()> {
    let mut entries: Vec<(std::ffi::OsString, PathBuf)> = fs::read_dir(src)?
        .map(|e| e.map(|e| (e.file_name(), e.path())))
        .collect::<io::Result<_>>()?;
    entries.sort();
    for (name, path) in entries {
        let rel = prefix.join(&name);
        let meta = fs::symlink_metadata(&path)?;
        let mut header = stamp.header();
        if meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, &rel, io::empty())?;
            append_tree(builder, &path, &rel, stamp)?;
        } else if meta.file_type().is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, &rel, fs::read_link(&path)?)?;
        } else if meta.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(if is_executable(&meta) { 0o755 } else { 0o644 });
            header.set_size(meta.len());
            builder.append_data(&mut header, &rel, File::open(&path)?)?;
        }
        // Sockets, fifos and devices have no place in a package: skipped.
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_blocks_keep_order_and_fail_cleanly() {
        // Blocks finish out of order (later ones faster); the output keeps
        // the input's order.
        let input: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let slow_first = |b: &[u8]| {
            std::thread::sleep(std::time::Duration::from_millis(u64::from(20 - b[0] % 20)));
            Ok(b.to_vec())
        };
        let mut out = Vec::new();
        parallel_blocks(&mut &input[..], &mut out, 700, slow_first).unwrap();
        assert!(out == input);
        // An empty stream is one (empty) block.
        let mut out = Vec::new();
        parallel_blocks(&mut &[][..], &mut out, 700, |b: &[u8]| {
            assert!(b.is_empty());
            Ok(b"empty".to_vec())
        })
        .unwrap();
        assert_eq!(out, b"empty");
        // A failing or panicking block fails the whole, without hanging.
        let fails = |b: &[u8]| {
            if b[0] == input[7 * 700] {
                Err(io::Error::other("block 7"))
            } else {
                Ok(b.to_vec())
            }
        };
        let err = parallel_blocks(&mut &input[..], &mut Vec::new(), 700, fails).unwrap_err();
        assert_eq!(err.to_string(), "block 7");
        let panics = |b: &[u8]| {
            assert!(b[0] != input[3 * 700], "a compressor bug");
            Ok(b.to_vec())
        };
        assert!(parallel_blocks(&mut &input[..], &mut Vec::new(), 700, panics).is_err());
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn outputs_inside_the_packed_dir_are_detected() {
        let dir = std::env::temp_dir().join(format!("ocipkg-inside-{}", std::process::id()));
        fs::create_dir_all(dir.join("lib")).unwrap();
        assert!(inside_dir(&dir.join("out.tar"), &dir));
        assert!(inside_dir(&dir.join("lib/new/x"), &dir));
        assert!(!inside_dir(&dir.with_extension("tar"), &dir));
        let err = pack(&dir, "registry.example/a/b:1", &dir.join("o"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("inside the directory being packed"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn root_dirs_are_plain_relative_paths() {
        assert_eq!(relative_root("/opt/foo").unwrap(), PathBuf::from("opt/foo"));
        assert_eq!(relative_root("").unwrap(), PathBuf::new());
        assert!(relative_root("../x").is_err());
    }
}

/// The producer's pieces through the consumer's decoder.
#[cfg(test)]
mod decode_tests {
    use super::{gzip_member, zstd_frame};
    use crate::oci::format::Compression;
    use crate::store::decode::{decoder_with, gzip_member_size, zstd_content_size, Zstd};
    use std::io::Write;
    use std::io::{self, Read};

    fn gzip_pieces(data: &[u8], block: usize) -> Vec<u8> {
        data.chunks(block)
            .flat_map(|c| gzip_member(c, 1).unwrap())
            .collect()
    }

    fn zstd_pieces(data: &[u8], block: usize) -> Vec<u8> {
        data.chunks(block)
            .flat_map(|c| zstd_frame(c, 3).unwrap())
            .collect()
    }

    fn sample() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
            .collect()
    }

    /// Both zstd decoders (the consumer's pure-Rust one, the producer's
    /// libzstd) must agree.
    const DECODERS: [Zstd; 2] = [Zstd::PureRust, Zstd::LibZstd];

    fn decode_with(bytes: Vec<u8>, compression: Compression, zstd: Zstd) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder_with(io::Cursor::new(bytes), compression, zstd)?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// What each zstd decoder makes of `bytes`.
    fn decode_all(bytes: Vec<u8>, compression: Compression) -> Vec<io::Result<Vec<u8>>> {
        DECODERS
            .iter()
            .map(|&zstd| decode_with(bytes.clone(), compression, zstd))
            .collect()
    }

    #[test]
    fn many_gzip_members_decode_in_order() {
        let data = sample();
        let packed = gzip_pieces(&data, 100_000);
        let first = gzip_member(&data[..100_000], 1).unwrap();
        assert_eq!(gzip_member_size(&packed), Some(first.len()));
        for decoded in decode_all(packed.clone(), Compression::Gzip) {
            assert!(decoded.unwrap() == data);
        }
        // Every other gzip reader still reads one stream.
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&packed[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn a_single_plain_member_decodes_as_a_stream() {
        let data = sample();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&data).unwrap();
        let packed = encoder.finish().unwrap();
        assert_eq!(gzip_member_size(&packed), None);
        for decoded in decode_all(packed, Compression::Gzip) {
            assert!(decoded.unwrap() == data);
        }
    }

    #[test]
    fn zstd_frames_decode_in_order_and_alone() {
        let data = sample();
        let packed = zstd_pieces(&data, 250_000);
        assert_eq!(
            zstd_content_size(&packed),
            Some(250_000),
            "frames state their size"
        );
        for decoded in decode_all(packed, Compression::Zstd) {
            assert!(decoded.unwrap() == data);
        }
        let one = zstd_pieces(&data, data.len());
        for decoded in decode_all(one, Compression::Zstd) {
            assert!(decoded.unwrap() == data);
        }
    }

    #[test]
    fn a_corrupt_member_in_the_middle_fails_to_decode() {
        // gzip members carry a CRC, the producer's zstd frames a checksum:
        // decoding fails with both decoders (the layer's sha256, checked on
        // every pull, proves the bytes are the ones published; this proves
        // they decode to what was packed).
        let data = sample();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let mut packed = match compression {
                Compression::Gzip => gzip_pieces(&data, 100_000),
                _ => zstd_pieces(&data, 250_000),
            };
            let middle = packed.len() / 2;
            for b in &mut packed[middle..middle + 64] {
                *b ^= 0x5a;
            }
            for (decoded, zstd) in decode_all(packed.clone(), compression).iter().zip(DECODERS) {
                assert!(decoded.is_err(), "{compression:?} {zstd:?}");
            }
        }
    }

    #[test]
    fn a_zstd_stream_from_another_tool_decodes_and_its_checksum_is_checked() {
        // One frame without a decoded size (as `zstd` or containers/image
        // write it): decoded as a stream; its checksum still counts.
        let data = sample();
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        encoder.include_checksum(true).unwrap();
        encoder.write_all(&data).unwrap();
        let mut packed = encoder.finish().unwrap();
        assert_eq!(zstd_content_size(&packed), None);
        for decoded in decode_all(packed.clone(), Compression::Zstd) {
            assert!(decoded.unwrap() == data);
        }
        let middle = packed.len() / 2;
        for b in &mut packed[middle..middle + 64] {
            *b ^= 0x5a;
        }
        for (decoded, zstd) in decode_all(packed, Compression::Zstd).iter().zip(DECODERS) {
            assert!(decoded.is_err(), "{zstd:?}");
        }
    }

    /// A zstd frame written by hand: raw blocks of `data`, stating
    /// `stated` as its decoded size (4-byte field), with a window of
    /// 2^`window_log` bytes, no checksum.
    fn raw_frame(data: &[u8], stated: Option<u32>, window_log: u8) -> Vec<u8> {
        let descriptor = if stated.is_some() { 2 << 6 } else { 0 };
        let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, descriptor, (window_log - 10) << 3];
        if let Some(stated) = stated {
            out.extend_from_slice(&stated.to_le_bytes());
        }
        let blocks: Vec<&[u8]> = data.chunks(128 << 10).collect();
        for (i, block) in blocks.iter().enumerate() {
            let last = u32::from(i + 1 == blocks.len());
            let header = last | (block.len() as u32) << 3; // raw block
            out.extend_from_slice(&header.to_le_bytes()[..3]);
            out.extend_from_slice(block);
        }
        out
    }

    #[test]
    fn skippable_frames_are_skipped_by_both_decoders() {
        let data = sample();
        let skippable = |n: u8| {
            let mut frame = vec![0x50 + n, 0x2A, 0x4D, 0x18, 3, 0, 0, 0];
            frame.extend_from_slice(b"abc");
            frame
        };
        let (a, b) = data.split_at(1_000_000);
        // Leading: the stream path; in between: the pieces path too.
        for packed in [
            [
                skippable(0),
                zstd_pieces(a, 250_000),
                skippable(1),
                zstd_pieces(b, 250_000),
            ]
            .concat(),
            [
                zstd_pieces(a, 250_000),
                skippable(2),
                zstd_pieces(b, 250_000),
                skippable(3),
            ]
            .concat(),
        ] {
            for (decoded, zstd) in decode_all(packed, Compression::Zstd)
                .into_iter()
                .zip(DECODERS)
            {
                assert!(decoded.unwrap() == data, "{zstd:?}");
            }
        }
    }

    #[test]
    fn a_frame_lying_about_its_size_fails_with_both_decoders() {
        // Over PIECE_LIMIT: decoded as a stream.
        let data: Vec<u8> = (0..17u32 << 20).map(|i| (i % 251) as u8).collect();
        let len = data.len() as u32;
        let honest = raw_frame(&data, Some(len), 24);
        for decoded in decode_all(honest, Compression::Zstd) {
            assert!(decoded.unwrap() == data);
        }
        for stated in [len - 1, len + 1] {
            let lying = raw_frame(&data, Some(stated), 24);
            for (decoded, zstd) in decode_all(lying, Compression::Zstd).iter().zip(DECODERS) {
                assert!(decoded.is_err(), "{stated} {zstd:?}");
            }
        }
    }

    #[test]
    fn a_small_piece_asking_for_a_huge_window_is_refused() {
        // ruzstd would fill the window (here 128 MiB) before failing.
        let frame = raw_frame(&[7; 1000], Some(1000), 27);
        for (decoded, zstd) in decode_all(frame, Compression::Zstd).iter().zip(DECODERS) {
            let err = decoded.as_ref().unwrap_err();
            assert!(err.to_string().contains("window"), "{zstd:?}: {err}");
        }
    }

    #[test]
    fn a_truncated_stream_is_an_error() {
        let data = sample();
        for compression in [Compression::Gzip, Compression::Zstd] {
            let mut packed = match compression {
                Compression::Gzip => gzip_pieces(&data, 100_000),
                _ => zstd_pieces(&data, 250_000),
            };
            packed.truncate(packed.len() - 1000);
            for (decoded, zstd) in decode_all(packed.clone(), compression).iter().zip(DECODERS) {
                assert!(decoded.is_err(), "{compression:?} {zstd:?}");
            }
        }
    }

    #[test]
    fn a_member_claiming_too_much_is_refused() {
        let mut member = gzip_member(b"hello", 6).unwrap();
        let len = member.len();
        member[len - 4..].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let err = decode_with(member, Compression::Gzip, Zstd::DEFAULT).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
