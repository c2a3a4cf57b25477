//! Unpacks a layer stream into a package directory: decompress (see
//! [`crate::store::decode`]) → untar (or write the one file a layer holds),
//! streaming, treating every entry as hostile.
//!
//! The rules, which keep everything a package writes inside its own root:
//! - entry paths (and hard-link targets) are relative, without `..`;
//! - nothing is written through a symlink: an entry whose path crosses a
//!   symlink already in the tree (from this layer or an earlier one) is
//!   refused, and an existing symlink at an entry's own path is replaced,
//!   never followed;
//! - a symlink may only point inside the package: a relative target whose
//!   `..` components stay within the root (and come first, so no symlink
//!   can be climbed out of), or an absolute target, which is taken relative
//!   to the package root as in a container image (`/usr/lib/x` is written as
//!   a relative link to `<root>/usr/lib/x`). SONAME chains
//!   (`libfoo.so -> libfoo.so.1`) are kept as they are;
//! - hard links must name a regular file already unpacked;
//! - sparse entries are refused, devices and FIFOs skipped;
//! - the total unpacked size, its ratio to the compressed size and the
//!   number of entries are bounded ([`Limits`]).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::env::{self, Env};
use crate::error::Result;
use crate::files::symlink;
use crate::oci::format::LayerKind;
use crate::store::decode::decoder;

/// Bounds on what one package may unpack to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Total bytes of all files.
    pub max_bytes: u64,
    /// Unpacked bytes per compressed byte, once past [`RATIO_FREE_BYTES`].
    pub max_expansion: u64,
    /// Entries (files, directories, links).
    pub max_files: u64,
}

/// Unpacked bytes allowed whatever the compression ratio.
const RATIO_FREE_BYTES: u64 = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4096 << 20,
            max_expansion: 100,
            max_files: 100_000,
        }
    }
}

impl Limits {
    /// The defaults, overridden by `OCIPKG_MAX_UNPACKED_MIB`,
    /// `OCIPKG_MAX_EXPANSION` and `OCIPKG_MAX_FILES`.
    pub(crate) fn from_env(env: &Env) -> Result<Self> {
        let number = |name: &str, default: u64| env::number(env, name, default, u64::MAX);
        let defaults = Limits::default();
        Ok(Limits {
            max_bytes: number(env::MAX_UNPACKED_MIB, defaults.max_bytes >> 20)?
                .saturating_mul(1 << 20),
            max_expansion: number(env::MAX_EXPANSION, defaults.max_expansion)?,
            max_files: number(env::MAX_FILES, defaults.max_files)?,
        })
    }
}

/// Why a layer could not be unpacked.
#[derive(Debug)]
pub(crate) enum UnpackError {
    /// Reading, decompressing or writing failed.
    Io(io::Error),
    /// The layer breaks one of the rules: what it tried, and what to do.
    Refused { reason: String, help: String },
}

impl From<io::Error> for UnpackError {
    fn from(e: io::Error) -> Self {
        UnpackError::Io(e)
    }
}

type Unpacked<T = ()> = std::result::Result<T, UnpackError>;

fn refuse<T>(reason: impl Into<String>) -> Unpacked<T> {
    Err(UnpackError::Refused {
        reason: reason.into(),
        help: "the package holds entries that would reach outside its own directory; ocipkg \
               refuses it. Report it to its publisher, or use another package."
            .into(),
    })
}

/// Unpacks the layers of one package into its root, counting against the
/// package's [`Limits`] across layers.
pub(crate) struct Unpacker {
    root: PathBuf,
    limits: Limits,
    /// Compressed bytes of the layers done, as received (not as declared).
    compressed: u64,
    /// Compressed bytes of the current layer received so far.
    current: Arc<AtomicU64>,
    written: u64,
    entries: u64,
}

impl Unpacker {
    /// `root` must exist and be a directory this fetch created.
    pub(crate) fn new(root: &Path, limits: Limits) -> Self {
        Unpacker {
            root: root.to_path_buf(),
            limits,
            compressed: 0,
            current: Arc::new(AtomicU64::new(0)),
            written: 0,
            entries: 0,
        }
    }

    /// Puts a layer into the root. The expansion ratio is measured against
    /// the compressed bytes really read, as they arrive (a manifest may
    /// declare any size).
    pub(crate) fn layer(
        &mut self,
        reader: impl Read + Send + 'static,
        kind: &LayerKind,
    ) -> Unpacked {
        self.current = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: reader,
            count: self.current.clone(),
        };
        let result = match kind {
            LayerKind::Tar(compression) => {
                self.untar(TarGuard::new(decoder(counted, *compression)?))
            }
            LayerKind::File(compression, path) => {
                let relative = relative_path(path)?;
                let target = self.prepare(&relative, false)?;
                self.count_entry()?;
                self.write_file(&target, &mut decoder(counted, *compression)?, path)
            }
        };
        self.compressed = self
            .compressed
            .saturating_add(self.current.load(Ordering::Relaxed));
        result
    }

    fn untar(&mut self, reader: impl Read) -> Unpacked {
        let mut archive = tar::Archive::new(reader);
        self.entries_of(&mut archive)?;
        // Then the layer to its end: a gzip member's CRC and a zstd frame's
        // checksum are checked only there (a layer from another tool is one
        // member or frame), and bytes after the tar's end count too.
        let mut rest = archive.into_inner();
        self.copy_counted(&mut rest, &mut io::sink(), "the end of the layer")
    }

    fn entries_of<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Unpacked {
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw_path = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw_path).into_owned();
            let relative = relative_path(&name)?;
            if relative.as_os_str().is_empty() {
                continue; // `./` itself
            }
            let kind = entry.header().entry_type();
            match kind {
                tar::EntryType::Directory => {
                    self.count_entry()?;
                    let target = self.prepare(&relative, true)?;
                    match fs::symlink_metadata(&target) {
                        Ok(m) if m.is_dir() => {}
                        _ => fs::create_dir(&target)?,
                    }
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    self.count_entry()?;
                    let target = self.prepare(&relative, false)?;
                    let executable = entry.header().mode().is_ok_and(|m| m & 0o111 != 0);
                    self.write_file(&target, &mut entry, &name)?;
                    set_executable(&target, executable)?;
                }
                tar::EntryType::Symlink => {
                    self.count_entry()?;
                    let link = entry.link_name_bytes().map(|b| b.into_owned());
                    let link =
                        String::from_utf8_lossy(link.as_deref().unwrap_or_default()).into_owned();
                    let written = link_target(&relative, &link).map_or_else(refuse, Ok)?;
                    let target = self.prepare(&relative, false)?;
                    symlink(&written, &target)?;
                }
                tar::EntryType::Link => {
                    self.count_entry()?;
                    let link = entry.link_name_bytes().map(|b| b.into_owned());
                    let link =
                        String::from_utf8_lossy(link.as_deref().unwrap_or_default()).into_owned();
                    let source = self.existing_file(&link, &name)?;
                    let target = self.prepare(&relative, false)?;
                    if fs::hard_link(&source, &target).is_err() {
                        fs::copy(&source, &target)?;
                    }
                }
                tar::EntryType::GNUSparse => {
                    return refuse(format!(
                        "entry `{}` is a sparse file, which packages may not hold",
                        shown(&name)
                    ))
                }
                // Devices, FIFOs, and metadata entries the tar crate did not merge.
                _ => {}
            }
        }
        Ok(())
    }

    fn count_entry(&mut self) -> Unpacked {
        self.entries += 1;
        if self.entries > self.limits.max_files {
            return Err(UnpackError::Refused {
                reason: format!(
                    "the package holds more than {} entries",
                    self.limits.max_files
                ),
                help: format!(
                    "if the package is trusted and really this large, raise {} (default {})",
                    env::MAX_FILES,
                    Limits::default().max_files
                ),
            });
        }
        Ok(())
    }

    /// The bytes the package may still write.
    fn byte_budget(&self) -> (u64, &'static str) {
        let by_ratio = self
            .compressed
            .saturating_add(self.current.load(Ordering::Relaxed))
            .saturating_mul(self.limits.max_expansion)
            .max(RATIO_FREE_BYTES);
        if by_ratio < self.limits.max_bytes {
            (by_ratio, env::MAX_EXPANSION)
        } else {
            (self.limits.max_bytes, env::MAX_UNPACKED_MIB)
        }
    }

    fn write_file(&mut self, target: &Path, reader: &mut dyn Read, name: &str) -> Unpacked {
        let mut file = fs::File::create(target)?;
        let written = self.copy_counted(reader, &mut file, name);
        if written.is_err() {
            drop(file);
            let _ = fs::remove_file(target);
        }
        written
    }

    /// Copies `reader` to its end into `out`, every byte counted against the
    /// limits (`name` is what is being written, for the message).
    fn copy_counted(&mut self, reader: &mut dyn Read, out: &mut dyn Write, name: &str) -> Unpacked {
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.written += n as u64;
            let (budget, var) = self.byte_budget();
            if self.written > budget {
                let reason = if var == env::MAX_EXPANSION {
                    format!(
                        "while writing `{}` it unpacks to more than {} times the {} compressed \
                         bytes read (a decompression bomb?)",
                        shown(name),
                        self.limits.max_expansion,
                        self.compressed
                            .saturating_add(self.current.load(Ordering::Relaxed))
                    )
                } else {
                    format!(
                        "while writing `{}` it unpacks to more than {} MiB",
                        shown(name),
                        self.limits.max_bytes >> 20
                    )
                };
                return Err(UnpackError::Refused {
                    reason,
                    help: format!(
                        "if the package is trusted and really this large, raise {var} \
                         (default {})",
                        if var == env::MAX_EXPANSION {
                            Limits::default().max_expansion
                        } else {
                            Limits::default().max_bytes >> 20
                        }
                    ),
                });
            }
            out.write_all(&buffer[..n])?;
        }
        Ok(())
    }

    /// `root/relative` ready to be written: every parent a real directory
    /// (created as needed, never a symlink), and nothing but a directory
    /// (when `dir`) left at the path itself.
    fn prepare(&self, relative: &Path, dir: bool) -> Unpacked<PathBuf> {
        let mut path = self.root.clone();
        let components: Vec<_> = relative.components().collect();
        for (i, component) in components.iter().enumerate() {
            path.push(component);
            let last = i + 1 == components.len();
            match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if !last {
                        fs::create_dir(&path)?;
                    }
                }
                Err(e) => return Err(e.into()),
                Ok(meta) if meta.file_type().is_symlink() => {
                    if last {
                        if dir {
                            return refuse(format!(
                                "entry `{}` would turn the symlink there into a directory",
                                shown(&relative.to_string_lossy())
                            ));
                        }
                        fs::remove_file(&path)?;
                    } else {
                        return refuse(format!(
                            "entry `{}` goes through the symlink `{}`",
                            shown(&relative.to_string_lossy()),
                            components[..=i].iter().collect::<PathBuf>().display()
                        ));
                    }
                }
                Ok(meta) if meta.is_dir() => {
                    if last && !dir {
                        return refuse(format!(
                            "entry `{}` would replace a directory with a file",
                            shown(&relative.to_string_lossy())
                        ));
                    }
                }
                Ok(_) => {
                    if !last || dir {
                        // A file where a directory is needed: the later layer wins.
                        fs::remove_file(&path)?;
                        fs::create_dir(&path)?;
                    } else {
                        fs::remove_file(&path)?;
                    }
                }
            }
        }
        Ok(path)
    }

    /// The regular file a hard link names, reached without symlinks.
    fn existing_file(&self, link: &str, name: &str) -> Unpacked<PathBuf> {
        let Ok(relative) = relative_path(link) else {
            return refuse(format!(
                "hard link `{}` -> `{}` names a path outside the package",
                shown(name),
                shown(link)
            ));
        };
        let mut path = self.root.clone();
        for component in relative.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return refuse(format!(
                        "hard link `{}` -> `{}` goes through a symlink",
                        shown(name),
                        shown(link)
                    ))
                }
                Ok(_) => {}
                Err(_) => {
                    return refuse(format!(
                        "hard link `{}` -> `{}` names no file unpacked before it",
                        shown(name),
                        shown(link)
                    ))
                }
            }
        }
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return refuse(format!(
                "hard link `{}` -> `{}` does not name a regular file",
                shown(name),
                shown(link)
            ));
        }
        Ok(path)
    }
}

/// `path` as a relative path of normal components (`.` dropped), or a refusal.
fn relative_path(path: &str) -> Unpacked<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => {
                return refuse(format!(
                    "entry `{}` is not a relative path inside the package",
                    shown(path)
                ))
            }
        }
    }
    if path.contains('\0') {
        return refuse(format!("entry `{}` holds a NUL character", shown(path)));
    }
    Ok(out)
}

/// What to write for a symlink at `link` (relative to the root) pointing at
/// `target`, or why it may not exist.
fn link_target(link: &Path, target: &str) -> std::result::Result<PathBuf, String> {
    let outside = || {
        format!(
            "symlink `{}` -> `{target}` points outside the package",
            link.display()
        )
    };
    let depth = link.components().count().saturating_sub(1);
    let target_path = Path::new(target);
    if target.is_empty() || target.contains('\0') {
        return Err(outside());
    }
    let mut out = PathBuf::new();
    let mut ups = 0;
    let mut descended = false;
    let absolute = target_path.has_root();
    if absolute {
        // Rooted at the package root, as in a container image.
        for _ in 0..depth {
            out.push("..");
        }
    }
    for component in target_path.components() {
        match component {
            Component::RootDir | Component::Prefix(_) if absolute => {}
            Component::CurDir => {}
            Component::ParentDir if !absolute && !descended => {
                ups += 1;
                if ups > depth {
                    return Err(outside());
                }
                out.push("..");
            }
            Component::Normal(c) => {
                descended = true;
                out.push(c);
            }
            _ => return Err(outside()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    Ok(out)
}

/// Read-only (a cached file is never edited in place, also not through the
/// hard links staged into `OUT_DIR`), executable if it was.
#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o555 } else { 0o444 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// A name from a package as it may appear in a message: control
/// characters escaped, at most 200 characters.
fn shown(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    match escaped.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &escaped[..at]),
        None => escaped,
    }
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Most bytes of a tar metadata entry (GNU long name or link, PAX header):
/// the tar crate reads them whole into memory.
const TAR_METADATA_LIMIT: u64 = 64 << 10;

/// Passes a tar stream through unchanged, following its headers, and fails
/// on a metadata entry larger than [`TAR_METADATA_LIMIT`] before the tar
/// crate would read it into memory. A PAX `size` record is honoured, so the
/// headers stay in step.
struct TarGuard<R> {
    inner: R,
    header: Vec<u8>,
    /// Data bytes (padded to 512) before the next header.
    data_left: u64,
    /// The data of the PAX header being read, and the size it sets.
    pax: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

impl<R: Read> TarGuard<R> {
    fn new(inner: R) -> Self {
        TarGuard {
            inner,
            header: Vec::with_capacity(512),
            data_left: 0,
            pax: None,
            pax_size: None,
        }
    }

    fn follow(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.data_left > 0 {
                let n = (self.data_left.min(bytes.len() as u64)) as usize;
                if let Some(pax) = &mut self.pax {
                    pax.extend_from_slice(&bytes[..n]);
                }
                self.data_left -= n as u64;
                bytes = &bytes[n..];
                if self.data_left == 0 {
                    if let Some(pax) = self.pax.take() {
                        self.pax_size = pax_size(&pax);
                    }
                }
                continue;
            }
            let n = (512 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 512 {
                let header = std::mem::take(&mut self.header);
                self.start_entry(&header)?;
            }
        }
        Ok(())
    }

    fn start_entry(&mut self, header: &[u8]) -> io::Result<()> {
        if header.iter().all(|&b| b == 0) {
            return Ok(()); // end-of-archive blocks
        }
        let size = tar_size(&header[124..136]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a tar header has an unreadable size",
            )
        })?;
        let kind = header[156];
        let metadata = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if metadata && size > TAR_METADATA_LIMIT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "a tar metadata entry (type `{}`) of {size} bytes; at most \
                     {TAR_METADATA_LIMIT} are accepted",
                    kind as char
                ),
            ));
        }
        let size = match kind {
            b'x' => {
                self.pax = Some(Vec::with_capacity(size as usize));
                size
            }
            b'L' | b'K' | b'g' => size,
            _ => self.pax_size.take().unwrap_or(size),
        };
        self.data_left = size.div_ceil(512) * 512;
        if kind == b'x' && self.data_left == 0 {
            self.pax = None;
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.follow(&buf[..n])?;
        Ok(n)
    }
}

/// A tar header's size field: octal digits, or GNU's base-256 form.
fn tar_size(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        return field[1..]
            .iter()
            .try_fold(0u64, |n, &b| n.checked_mul(256).map(|n| n + b as u64));
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The `size` record of PAX extended header data (`NN size=123\n`).
fn pax_size(data: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|record| {
        let (_, field) = record.split_once(' ')?;
        field.strip_prefix("size=")?.trim().parse().ok()
    })
}

#[cfg(not(unix))]
fn set_executable(_path: &Path, _executable: bool) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        assert_eq!(relative_path("./lib/a.so").unwrap(), Path::new("lib/a.so"));
        for bad in ["/etc/passwd", "../x", "lib/../../x", "lib/../x"] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }

    fn guarded(tar: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        TarGuard::new(tar).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn tar_guard_follows_long_names_and_pax_sizes() {
        let mut builder = tar::Builder::new(Vec::new());
        let long = format!("lib/{}.a", "x".repeat(300));
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        builder
            .append_data(&mut header, &long, &b"hello"[..])
            .unwrap();
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("size", &b"7"[..])]).unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(7);
        pax.append_data(&mut header, "b", &b"1234567"[..]).unwrap();
        for tar in [builder.into_inner().unwrap(), pax.into_inner().unwrap()] {
            assert_eq!(guarded(&tar).unwrap(), tar);
        }
    }

    #[test]
    fn tar_guard_refuses_huge_metadata_entries() {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(2 << 30);
        header.set_cksum();
        let err = guarded(header.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("metadata entry"), "{err}");
    }

    #[test]
    fn names_in_messages_are_escaped_and_short() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert!(shown(&"x".repeat(5000)).len() < 210);
    }

    #[test]
    fn symlink_targets_stay_inside() {
        let link = Path::new("lib/libfoo.so");
        assert_eq!(
            link_target(link, "libfoo.so.1").unwrap(),
            Path::new("libfoo.so.1")
        );
        assert_eq!(
            link_target(link, "../include/x").unwrap(),
            Path::new("../include/x")
        );
        assert_eq!(
            link_target(link, "/usr/lib/x").unwrap(),
            Path::new("../usr/lib/x")
        );
        assert_eq!(
            link_target(Path::new("a"), "/etc").unwrap(),
            Path::new("etc")
        );
        for bad in ["../../x", "a/../../x", "x/..", "/../x", ""] {
            assert!(link_target(link, bad).is_err(), "{bad}");
        }
        assert!(link_target(Path::new("x"), "..").is_err());
    }
}
