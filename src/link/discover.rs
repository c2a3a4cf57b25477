//! Finds the libraries in an unpacked package and turns them into cargo
//! directives, naming files by the conventions of the **target** (not the
//! host a build script runs on).
//!
//! | target | static | dynamic (link name → files used at run time) |
//! |---|---|---|
//! | Linux, Android, BSDs | `lib<name>.a` | `lib<name>.so` → `lib<name>.so*` |
//! | macOS, iOS | `lib<name>.a` | `lib<name>.dylib` → `lib<name>*.dylib` |
//! | Windows MSVC | `<name>.lib` | `<name>.lib` import library beside `<name>.dll` |
//! | Windows GNU | `lib<name>.a` | `lib<name>.dll.a` → `<name>.dll`/`lib<name>.dll` |
//!
//! Static libraries are preferred when a package has both kinds of the same
//! name; `OCIPKG_<NAME>_LINK=static|dylib` decides otherwise.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::link::directive::{Directive, LinkKind};
use crate::oci::format::LinkMetadata;
use crate::oci::platform::Target;

/// A library found in a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    name: String,
    kind: LinkKind,
    path: PathBuf,
    runtime: Vec<PathBuf>,
}

impl Library {
    /// The name passed to the linker (`foo` for `libfoo.a`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Static or dynamic.
    pub fn kind(&self) -> LinkKind {
        self.kind
    }
    /// The file the linker reads (archive, shared object or import library).
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Files a program linked to a dynamic library needs at run time.
    pub fn runtime_files(&self) -> &[PathBuf] {
        &self.runtime
    }
}

/// Directories searched for libraries, relative to the package root.
pub(crate) const LIB_DIRS: [&str; 4] = ["lib", "lib64", "bin", ""];

fn apple(target: &Target) -> bool {
    matches!(target.os.as_str(), "macos" | "ios" | "tvos" | "watchos")
}

/// What static archives are called on this target, for error messages.
pub(crate) fn patterns(target: &Target) -> &'static str {
    match (target.os.as_str(), target.env.as_str()) {
        ("windows", "msvc") => "<name>.lib (static or import library)",
        ("windows", _) => "lib<name>.a, lib<name>.dll.a",
        _ if apple(target) => "lib<name>.a, lib<name>.dylib",
        _ => "lib<name>.a, lib<name>.so",
    }
}

/// If `file` (in `dir`, beside `dir_files`) is a library the linker can
/// take for `target`: its name and kind (a `.lib` with a DLL is an import
/// library: dynamic).
fn classify<'a>(
    file: &'a str,
    target: &Target,
    dir: &Path,
    dir_files: &[String],
) -> Option<(&'a str, LinkKind)> {
    let windows = target.os == "windows";
    let found = if windows && target.env == "msvc" {
        let name = file.strip_suffix(".lib")?;
        let has_dll = !runtime_files(dir, name, target, dir_files).is_empty();
        (
            name,
            if has_dll {
                LinkKind::Dylib
            } else {
                LinkKind::Static
            },
        )
    } else if let Some(name) = file
        .strip_prefix("lib")
        .and_then(|f| f.strip_suffix(".dll.a"))
    {
        if !windows {
            return None;
        }
        (name, LinkKind::Dylib)
    } else if let Some(name) = file.strip_prefix("lib").and_then(|f| f.strip_suffix(".a")) {
        (name, LinkKind::Static)
    } else if apple(target) {
        (
            file.strip_prefix("lib")?.strip_suffix(".dylib")?,
            LinkKind::Dylib,
        )
    } else if !windows {
        (
            file.strip_prefix("lib")?.strip_suffix(".so")?,
            LinkKind::Dylib,
        )
    } else {
        return None;
    };
    Some(found).filter(|(name, _)| !name.is_empty())
}

/// Run-time files of a dynamic library `name` found in `dir`.
fn runtime_files(dir: &Path, name: &str, target: &Target, dir_files: &[String]) -> Vec<PathBuf> {
    let matches = |f: &String| -> bool {
        if target.os == "windows" {
            let f = f.to_ascii_lowercase();
            let name = name.to_ascii_lowercase();
            f == format!("{name}.dll") || f == format!("lib{name}.dll")
        } else if apple(target) {
            f.starts_with(&format!("lib{name}.")) && f.ends_with(".dylib")
        } else {
            f == &format!("lib{name}.so") || f.starts_with(&format!("lib{name}.so."))
        }
    };
    let mut files: Vec<PathBuf> = dir_files
        .iter()
        .filter(|f| matches(f))
        .map(|f| dir.join(f))
        .collect();
    // A Windows DLL often lives in bin/ while its import library is in lib/.
    if target.os == "windows" && files.is_empty() {
        if let Some(bin) = dir.parent().map(|p| p.join("bin")) {
            if let Ok(entries) = fs::read_dir(&bin) {
                let names: Vec<String> = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                files = names
                    .iter()
                    .filter(|f| matches(f))
                    .map(|f| bin.join(f))
                    .collect();
            }
        }
    }
    files.sort();
    files
}

/// Every library for `target` under `root`, one per name and kind; a name
/// found in an earlier directory shadows later ones.
fn scan(root: &Path, target: &Target, extra_dirs: &[PathBuf]) -> Result<Vec<Library>> {
    let mut found: Vec<Library> = Vec::new();
    let dirs = LIB_DIRS
        .iter()
        .map(|d| root.join(d))
        .chain(extra_dirs.iter().cloned());
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        files.sort();
        for file in &files {
            let Some((name, kind)) = classify(file, target, &dir, &files) else {
                continue;
            };
            if !crate::link::directive::is_library_name(name) {
                return Err(Error::refused(
                    "the package's files",
                    format!(
                        "the library file `{}` gives the link name `{}`, which is not valid \
                         (letters, digits, `_ . + -`)",
                        dir.join(file).display().to_string().escape_debug(),
                        name.escape_debug()
                    ),
                    "rename the library in the package (ocipkg pack), or report it to its \
                     publisher",
                ));
            }
            if found.iter().any(|l| l.name == name && l.kind == kind) {
                continue;
            }
            let runtime = match kind {
                LinkKind::Dylib => runtime_files(&dir, name, target, &files),
                LinkKind::Static => Vec::new(),
            };
            found.push(Library {
                name: name.to_string(),
                kind,
                path: dir.join(file),
                runtime,
            });
        }
    }
    Ok(found)
}

/// The libraries to link, in link order: those the package's link metadata
/// lists (each must exist), else every library found (in the usual
/// directories, then `extra_dirs`). Of a name present as
/// both kinds, `prefer` (default: static) is taken.
pub(crate) fn choose(
    root: &Path,
    target: &Target,
    metadata: &LinkMetadata,
    prefer: Option<LinkKind>,
    extra_dirs: &[PathBuf],
) -> Result<Vec<Library>> {
    let all = scan(root, target, extra_dirs)?;
    let pick = |name: &str, kind: Option<LinkKind>| -> Option<Library> {
        let of_name: Vec<&Library> = all.iter().filter(|l| l.name == name).collect();
        let wanted = kind.or(prefer).unwrap_or(LinkKind::Static);
        of_name
            .iter()
            .find(|l| l.kind == wanted)
            .or_else(|| {
                if kind.is_some() {
                    None
                } else {
                    of_name.first()
                }
            })
            .map(|l| (*l).clone())
    };
    if !metadata.libraries.is_empty() {
        let mut chosen = Vec::new();
        for spec in &metadata.libraries {
            // The user's OCIPKG_<NAME>_LINK wins over the package's choice.
            let lib = pick(&spec.name, prefer.or(spec.kind)).ok_or_else(|| {
                Error::invalid(
                    "the package's link metadata",
                    format!(
                        "it lists library `{}` but the package holds no such file for {} ({})",
                        spec.name,
                        target.triple,
                        patterns(target)
                    ),
                )
            })?;
            chosen.push(lib);
        }
        return Ok(chosen);
    }
    let mut names: Vec<&str> = Vec::new();
    for lib in &all {
        if !names.contains(&lib.name.as_str()) {
            names.push(&lib.name);
        }
    }
    Ok(names.into_iter().filter_map(|n| pick(n, None)).collect())
}

/// `rustc-link-search` for each directory holding a library, then
/// `rustc-link-lib` for each library, then the package's system libraries
/// and (Apple targets) frameworks.
pub(crate) fn link_directives(
    libraries: &[Library],
    metadata: &LinkMetadata,
    target: &Target,
) -> Vec<Directive> {
    let mut out = Vec::new();
    for lib in libraries {
        if let Some(dir) = lib.path.parent() {
            let search = Directive::LinkSearch(dir.to_path_buf());
            if !out.contains(&search) {
                out.push(search);
            }
        }
    }
    out.extend(
        libraries
            .iter()
            .map(|l| Directive::LinkLib(Some(l.kind), l.name.clone())),
    );
    out.extend(
        metadata
            .system_libraries
            .iter()
            .map(|name| Directive::LinkLib(None, name.clone())),
    );
    if apple(target) {
        out.extend(
            metadata
                .frameworks
                .iter()
                .map(|name| Directive::LinkFramework(name.clone())),
        );
    }
    out
}

/// Copies (or hard-links) the dynamic libraries into `dir` and points them
/// there: cargo puts link search paths inside its target dir on the loader
/// path of `cargo run` and `cargo test`.
pub(crate) fn stage_dylibs(libraries: &mut [Library], root: &Path, dir: &Path) -> Result<()> {
    let dylibs: Vec<&mut Library> = libraries
        .iter_mut()
        .filter(|l| l.kind == LinkKind::Dylib)
        .collect();
    if dylibs.is_empty() {
        return Ok(());
    }
    crate::files::create_dir_all(dir)?;
    for lib in dylibs {
        let mut files = lib.runtime.clone();
        files.push(lib.path.clone());
        let mut staged_runtime = Vec::new();
        for file in &files {
            let Some(name) = file.file_name() else {
                continue;
            };
            let dest = dir.join(name);
            crate::files::place(file, &dest, Some(root))?;
            if lib.runtime.contains(file) {
                staged_runtime.push(dest.clone());
            }
        }
        if let Some(name) = lib.path.file_name() {
            lib.path = dir.join(name);
        }
        lib.runtime = staged_runtime;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::format::LibrarySpec;

    fn tree(files: &[&str]) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ocipkg-link-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        for f in files {
            let path = dir.join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, b"x").unwrap();
        }
        dir
    }

    fn names(libs: &[Library]) -> Vec<String> {
        libs.iter()
            .map(|l| format!("{}:{}", l.kind, l.name))
            .collect()
    }

    const LINUX: &str = "x86_64-unknown-linux-gnu";

    #[test]
    fn static_is_preferred_and_target_naming_is_used() {
        let root = tree(&[
            "lib/libfoo.a",
            "lib/libfoo.so",
            "lib/libfoo.so.1",
            "lib/libbar.so",
            "lib/baz.lib",
            "lib/README",
            "libfoo.a",
        ]);
        let none = LinkMetadata::default();
        let linux = Target::parse(LINUX);
        let libs = choose(&root, &linux, &none, None, &[]).unwrap();
        assert_eq!(names(&libs), ["dylib:bar", "static:foo"]);
        assert_eq!(libs[0].runtime_files(), [root.join("lib/libbar.so")]);
        let dylibs = choose(&root, &linux, &none, Some(LinkKind::Dylib), &[]).unwrap();
        assert_eq!(names(&dylibs), ["dylib:bar", "dylib:foo"]);
        assert_eq!(
            dylibs[1].runtime_files(),
            [root.join("lib/libfoo.so"), root.join("lib/libfoo.so.1")]
        );
        let msvc = Target::parse("x86_64-pc-windows-msvc");
        assert_eq!(
            names(&choose(&root, &msvc, &none, None, &[]).unwrap()),
            ["static:baz"]
        );
        let mac = Target::parse("aarch64-apple-darwin");
        assert_eq!(
            names(&choose(&root, &mac, &none, None, &[]).unwrap()),
            ["static:foo"]
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn windows_import_libraries_are_dylibs() {
        let root = tree(&[
            "lib/foo.lib",
            "bin/foo.dll",
            "lib/libbar.dll.a",
            "bin/libbar.dll",
        ]);
        let msvc = Target::parse("x86_64-pc-windows-msvc");
        let libs = choose(&root, &msvc, &LinkMetadata::default(), None, &[]).unwrap();
        assert_eq!(names(&libs), ["dylib:foo"]);
        assert_eq!(libs[0].runtime_files(), [root.join("bin/foo.dll")]);
        let gnu = Target::parse("x86_64-pc-windows-gnu");
        let libs = choose(&root, &gnu, &LinkMetadata::default(), None, &[]).unwrap();
        assert_eq!(names(&libs), ["dylib:bar"]);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn metadata_gives_order_kinds_and_system_libraries() {
        let root = tree(&["lib/liba.a", "lib/libb.a", "lib/libb.so"]);
        let metadata = LinkMetadata {
            libraries: vec![
                LibrarySpec {
                    name: "b".into(),
                    kind: Some(LinkKind::Dylib),
                },
                LibrarySpec {
                    name: "a".into(),
                    kind: None,
                },
            ],
            system_libraries: vec!["stdc++".into()],
            frameworks: vec!["Security".into()],
            ..LinkMetadata::default()
        };
        let linux = Target::parse(LINUX);
        let libs = choose(&root, &linux, &metadata, None, &[]).unwrap();
        let lines: Vec<String> = link_directives(&libs, &metadata, &linux)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                format!(
                    "cargo:rustc-link-search=native={}",
                    root.join("lib").display()
                ),
                "cargo:rustc-link-lib=dylib=b".to_string(),
                "cargo:rustc-link-lib=static=a".to_string(),
                "cargo:rustc-link-lib=stdc++".to_string(),
            ]
        );
        let mac = Target::parse("aarch64-apple-darwin");
        let lines: Vec<String> = link_directives(&[], &metadata, &mac)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(lines.contains(&"cargo:rustc-link-lib=framework=Security".to_string()));

        let missing = LinkMetadata {
            libraries: vec![LibrarySpec {
                name: "zzz".into(),
                kind: None,
            }],
            ..LinkMetadata::default()
        };
        let err = choose(&root, &linux, &missing, None, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`zzz`"), "{err}");
        fs::remove_dir_all(&root).unwrap();
    }
}
