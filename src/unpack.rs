//! Unpacks a layer stream into a directory: decompress → untar (or write
//! the one file a layer holds), streaming.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::format::{Compression, LayerKind};

/// Puts a layer into `dest`. Tar entries that would land outside `dest`
/// (absolute paths, `..`, links pointing out) are refused by the `tar`
/// crate; a file layer's path must be relative and stay inside.
pub(crate) fn unpack_layer(reader: impl Read, kind: &LayerKind, dest: &Path) -> io::Result<()> {
    match kind {
        LayerKind::Tar(compression) => untar(decompress(reader, *compression)?, dest),
        LayerKind::File(compression, path) => {
            let target = inside(dest, path)?;
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut file = fs::File::create(&target)?;
            io::copy(&mut decompress(reader, *compression)?, &mut file)?;
            Ok(())
        }
    }
}

fn decompress<'a>(
    reader: impl Read + 'a,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // Multi-member streams too (parallel gzip writes one member per block).
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(ZstdFrames {
            decoder: None,
            reader: Some(io::BufReader::new(reader)),
        }),
    })
}

type ZstdDecoder<R> = ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>;

/// Decodes every zstd frame of a stream, one after the other (parallel
/// packs write one frame per block).
struct ZstdFrames<R: io::BufRead> {
    decoder: Option<ZstdDecoder<R>>,
    reader: Option<R>,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(decoder) = &mut self.decoder {
                let n = decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                // This frame is done: take the reader back for the next one.
                if let Some(decoder) = self.decoder.take() {
                    self.reader = Some(decoder.into_inner());
                }
            }
            let Some(mut reader) = self.reader.take() else {
                return Ok(0);
            };
            if reader.fill_buf()?.is_empty() {
                return Ok(0);
            }
            let decoder = ZstdDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            self.decoder = Some(decoder);
        }
    }
}

/// `dest/path` if `path` is relative and has no `..`.
fn inside(dest: &Path, path: &str) -> io::Result<PathBuf> {
    let relative = Path::new(path);
    let ok = !path.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the layer's file name `{path}` is not a relative path inside the package"),
        ));
    }
    Ok(dest.join(relative))
}

fn untar(reader: impl Read, dest: &Path) -> io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_overwrite(true);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.unpack(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_layers_stay_inside() {
        let dest = Path::new("/pkg");
        assert_eq!(
            inside(dest, "lib/a.so").unwrap(),
            Path::new("/pkg/lib/a.so")
        );
        for bad in ["", "/etc/passwd", "../x", "lib/../../x"] {
            assert!(inside(dest, bad).is_err(), "{bad}");
        }
    }
}
