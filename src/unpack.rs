//! Unpacks a layer stream into a directory: decompress → untar, streaming.

use std::io::Read;
use std::path::Path;

use crate::format::Compression;

/// Unpacks a tar (optionally gzip-compressed) stream under `dest`. Entries
/// that would land outside `dest` (absolute paths, `..`, links pointing
/// out) are refused by the `tar` crate.
pub(crate) fn unpack_layer(
    reader: impl Read,
    compression: Compression,
    dest: &Path,
) -> std::io::Result<()> {
    match compression {
        Compression::None => untar(reader, dest),
        Compression::Gzip => untar(flate2::read::GzDecoder::new(reader), dest),
    }
}

fn untar(reader: impl Read, dest: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_overwrite(true);
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    archive.unpack(dest)
}
