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
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?,
        ),
    })
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
