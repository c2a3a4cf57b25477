//! Unpacks a layer stream into a package directory: decompress (see
//! [`crate::decode`]) → untar (or write the one file a layer holds),
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

use crate::decode::decoder;
use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::format::LayerKind;
use crate::tempdir::symlink;

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
        let number = |name: &str, default: u64| -> Result<u64> {
            match env.get(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        Error::usage(
                            format!("{name}=`{v}` is not a positive whole number"),
                            format!("set {name} to a number (default {default}), or unset it"),
                        )
                    }),
            }
        };
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
    compressed: u64,
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
            written: 0,
            entries: 0,
        }
    }

    /// Puts a layer of `size` compressed bytes into the root.
    pub(crate) fn layer(
        &mut self,
        reader: impl Read + Send + 'static,
        kind: &LayerKind,
        size: u64,
    ) -> Unpacked {
        self.compressed = self.compressed.saturating_add(size);
        match kind {
            LayerKind::Tar(compression) => self.untar(decoder(reader, *compression)?),
            LayerKind::File(compression, path) => {
                let relative = relative_path(path)?;
                let target = self.prepare(&relative, false)?;
                self.count_entry()?;
                self.write_file(&target, &mut decoder(reader, *compression)?, path)
            }
        }
    }

    fn untar(&mut self, reader: impl Read) -> Unpacked {
        let mut archive = tar::Archive::new(reader);
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
                        "entry `{name}` is a sparse file, which packages may not hold"
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
                drop(file);
                let _ = fs::remove_file(target);
                let reason = if var == env::MAX_EXPANSION {
                    format!(
                        "while writing `{name}` it unpacks to more than {} times its compressed \
                         size of {} bytes (a decompression bomb?)",
                        self.limits.max_expansion, self.compressed
                    )
                } else {
                    format!(
                        "while writing `{name}` it unpacks to more than {} MiB",
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
            file.write_all(&buffer[..n])?;
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
                                relative.display()
                            ));
                        }
                        fs::remove_file(&path)?;
                    } else {
                        return refuse(format!(
                            "entry `{}` goes through the symlink `{}`",
                            relative.display(),
                            components[..=i].iter().collect::<PathBuf>().display()
                        ));
                    }
                }
                Ok(meta) if meta.is_dir() => {
                    if last && !dir {
                        return refuse(format!(
                            "entry `{}` would replace a directory with a file",
                            relative.display()
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
                "hard link `{name}` -> `{link}` names a path outside the package"
            ));
        };
        let mut path = self.root.clone();
        for component in relative.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return refuse(format!(
                        "hard link `{name}` -> `{link}` goes through a symlink"
                    ))
                }
                Ok(_) => {}
                Err(_) => {
                    return refuse(format!(
                        "hard link `{name}` -> `{link}` names no file unpacked before it"
                    ))
                }
            }
        }
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return refuse(format!(
                "hard link `{name}` -> `{link}` does not name a regular file"
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
                    "entry `{path}` is not a relative path inside the package"
                ))
            }
        }
    }
    if path.contains('\0') {
        return refuse(format!("entry `{path}` holds a NUL character"));
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

#[cfg(unix)]
fn set_executable(path: &Path, executable: bool) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
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
