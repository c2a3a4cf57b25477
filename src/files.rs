//! A directory removed when dropped unless kept.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

/// A fresh directory under a parent, removed on drop unless [`TempDir::keep`] is called.
pub(crate) struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    /// Creates `parent/<prefix><pid>-<random>-<n>`, creating `parent` as needed.
    pub(crate) fn new_in(parent: &Path, prefix: &str) -> Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        create_dir_all(parent)?;
        let path = parent.join(format!(
            "{prefix}{}-{:016x}-{}",
            std::process::id(),
            unguessable(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(TempDir { path: Some(path) })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Stops the removal and returns the path.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

/// 64 bits no package can predict: the standard library's randomly keyed
/// hasher, seeded from the OS, over the time.
fn unguessable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Writes `bytes` to `path` through a temp file renamed over it, so readers
/// see the old content or the new, never half of it. Creates the parent.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`] for a file only its owner may read (credentials): the
/// temp file is created with that mode, so the content is never exposed.
#[cfg(feature = "producer")]
pub(crate) fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::io(
            format!("writing {}", path.display()),
            std::io::Error::other("not a file path"),
        ));
    };
    create_dir_all(dir)?;
    // A leading dot: no tag, digest or file name ocipkg writes starts with one.
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    options
        .open(&tmp)
        .and_then(|mut file| file.write_all(bytes))
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("writing {}", path.display()), e)
        })
}

pub(crate) fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}

/// Opens `path` for reading if it is a regular file (not a symlink, a
/// device or a FIFO, which could feed endless or blocking input).
#[cfg(feature = "producer")]
pub(crate) fn open_regular(path: &Path) -> std::io::Result<fs::File> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    fs::File::open(path)
}

/// The bytes of the regular file `path`, refused above `limit` bytes.
#[cfg(feature = "producer")]
pub(crate) fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(bytes)
}

/// Creates a symlink at `link` pointing to `target`.
#[cfg(unix)]
pub(crate) fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

/// Creates a symlink at `link` pointing to `target`.
#[cfg(windows)]
pub(crate) fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

/// Hard-links `src` to `dest`, or copies it; replaces an older `dest`.
/// Symlinks (`libfoo.so -> libfoo.so.1`) are resolved, so the copy is a real
/// file, but only to a file inside `root` when given.
pub(crate) fn place(src: &Path, dest: &Path, root: Option<&Path>) -> Result<()> {
    let _ = fs::remove_file(dest);
    let real =
        fs::canonicalize(src).map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    if let Some(root) = root {
        let root = fs::canonicalize(root)
            .map_err(|e| Error::io(format!("reading {}", root.display()), e))?;
        if !real.starts_with(&root) || !real.is_file() {
            return Err(Error::refused(
                format!("the library file {}", src.display()),
                format!(
                    "it resolves to {}, which is not a file inside the package",
                    real.display()
                ),
                "report it to the package's publisher",
            ));
        }
    }
    if fs::hard_link(&real, dest).is_ok() {
        return Ok(());
    }
    fs::copy(&real, dest).map(|_| ()).map_err(|e| {
        Error::io(
            format!("copying {} to {}", src.display(), dest.display()),
            e,
        )
    })
}
