//! OCI image layouts on disk: a directory, or a tar of one.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;

use crate::error::{Error, Result};
use crate::files::{create_dir_all, open_regular, read_regular, TempDir};
use crate::oci::digest::{self, hex_part, HashingWriter};
use crate::oci::format;
use crate::oci::format::{Compression, LayerKind};
use crate::oci::manifest::{RawManifest, Source};
use crate::store::unpack::{Limits, UnpackError, Unpacker};

const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Most bytes of a manifest, index or config read from a layout.
const SMALL_BLOB_LIMIT: u64 = 4 << 20;

/// An OCI image layout directory.
pub(crate) struct Layout {
    dir: PathBuf,
    /// Holds an extracted tar layout alive.
    _extracted: Option<TempDir>,
}

impl Layout {
    /// Creates an empty layout at `dir` (which must not exist or be empty).
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        if dir.exists()
            && fs::read_dir(dir)
                .map_err(|e| Error::io(format!("reading {}", dir.display()), e))?
                .next()
                .is_some()
        {
            return Err(Error::usage(
                format!("output {} exists and is not empty", dir.display()),
                "remove it or choose another --output",
            ));
        }
        create_dir_all(&dir.join("blobs").join("sha256"))?;
        write_file(&dir.join("oci-layout"), OCI_LAYOUT)?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            _extracted: None,
        })
    }

    /// Opens a layout directory, or a tar of one (extracted to a temp dir).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            if !path.join("oci-layout").is_file() || !path.join("index.json").is_file() {
                return Err(Error::usage(
                    format!(
                        "{} is not an OCI image layout (no oci-layout or index.json)",
                        path.display()
                    ),
                    "give the directory or .tar written by `ocipkg pack --output`",
                ));
            }
            return Ok(Layout {
                dir: path.to_path_buf(),
                _extracted: None,
            });
        }
        let file =
            open_regular(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        let tmp = TempDir::new_in(&std::env::temp_dir(), "ocipkg-layout-")?;
        // The archive is as untrusted as a registry: unpacked by the same rules.
        let mut unpacker = Unpacker::new(tmp.path(), Limits::default());
        let kind = LayerKind::Tar(Compression::None);
        unpacker.layer(file, &kind).map_err(|e| match e {
            UnpackError::Io(e) => {
                Error::invalid(format!("the archive {}", path.display()), e.to_string())
            }
            UnpackError::Refused { reason, help } => {
                Error::refused(format!("the archive {}", path.display()), reason, help)
            }
        })?;
        let mut layout = Layout::open(tmp.path())?;
        layout._extracted = Some(tmp);
        Ok(layout)
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with `digest` lives.
    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self
            .dir
            .join("blobs")
            .join("sha256")
            .join(hex_part(digest)?))
    }

    /// Stores bytes as a blob; returns its digest.
    pub(crate) fn write_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = digest::sha256(bytes);
        write_file(&self.blob_path(&digest)?, bytes)?;
        Ok(digest)
    }

    /// Streams a blob in through `fill`, hashing it; returns digest and size.
    pub(crate) fn write_blob_with(
        &self,
        fill: impl FnOnce(&mut HashingWriter<BufWriter<File>>) -> std::io::Result<()>,
    ) -> Result<(String, u64)> {
        let tmp = self.dir.join("blobs").join("sha256").join(".incoming");
        let file =
            File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        let mut writer = HashingWriter::new(BufWriter::new(file));
        let written = fill(&mut writer).and_then(|()| writer.flush());
        let (inner, digest, size) = writer.finish();
        drop(inner);
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(format!("writing {}", tmp.display()), e));
        }
        let dest = self.blob_path(&digest)?;
        fs::rename(&tmp, &dest).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))?;
        Ok((digest, size))
    }

    /// Reads a small blob (a manifest, index or config) and checks its digest.
    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = read_regular(&path, SMALL_BLOB_LIMIT)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        digest::verify_bytes(&format!("blob {}", path.display()), &bytes, digest, None)?;
        Ok(bytes)
    }

    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<()> {
        write_file(&self.dir.join("index.json"), &canonical_json(index)?)
    }

    /// Writes `index.json` listing the one manifest (or index) `entry`.
    pub(crate) fn write_single_index(&self, entry: oci_spec::image::Descriptor) -> Result<()> {
        let index = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(oci_spec::image::SCHEMA_VERSION)
            .media_type(oci_spec::image::MediaType::ImageIndex)
            .manifests(vec![entry])
            .build()
            .map_err(|e| Error::invalid("the layout's index.json", e.to_string()))?;
        self.write_index(&index)
    }

    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        let path = self.dir.join("index.json");
        let bytes = read_regular(&path, SMALL_BLOB_LIMIT)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        ImageIndex::from_reader(&bytes[..])
            .map_err(|e| Error::invalid(format!("{}", path.display()), e.to_string()))
    }
}

impl Source for Layout {
    fn manifest(&mut self, reference: &str) -> Result<RawManifest> {
        let index = self.read_index()?;
        let by_digest = reference.starts_with("sha256:");
        let entry = index.manifests().iter().find(|e| {
            if by_digest {
                e.digest().as_ref() == reference
            } else {
                e.annotations()
                    .as_ref()
                    .and_then(|a| a.get(format::REF_NAME_ANNOTATION))
                    .is_some_and(|name| name == reference)
            }
        });
        let entry = match (entry, index.manifests().as_slice()) {
            (Some(entry), _) => Some(entry),
            (None, [only]) if !by_digest => Some(only),
            _ => None,
        };
        let (digest, media_type) = match entry {
            Some(e) => (e.digest().to_string(), Some(e.media_type().to_string())),
            // A digest not listed in index.json may still be a blob (an
            // index's platform manifest).
            None if by_digest => (reference.to_string(), None),
            None => {
                return Err(Error::invalid(
                    format!("the layout {}", self.dir().display()),
                    format!("it has no manifest tagged `{reference}`"),
                ))
            }
        };
        Ok(RawManifest {
            bytes: self.read_blob(&digest)?,
            media_type,
            digest_header: None,
        })
    }
    fn blob(&mut self, digest: &str, _size: u64) -> Result<Box<dyn Read + Send>> {
        let path = self.blob_path(digest)?;
        let file = crate::files::open_regular(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Box::new(file))
    }
}

/// JSON with object keys sorted, so equal content gives equal digests.
pub(crate) fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_value(value)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(|e| Error::invalid("a manifest being written", e.to_string()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}
