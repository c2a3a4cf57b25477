//! Finds the libraries in an unpacked package and turns them into cargo
//! directives, naming files by the conventions of the **target** (not the
//! host a build script runs on).

use std::fs;
use std::path::{Path, PathBuf};

use crate::directive::{Directive, LinkKind};
use crate::env::{self, Env};

/// The target being built for, as cargo describes it to build scripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub triple: String,
    pub os: String,
    pub env: String,
}

impl Target {
    /// From `TARGET`/`CARGO_CFG_TARGET_*`; outside a build script (the CLI),
    /// the machine ocipkg itself was built for.
    pub(crate) fn from_env(env: &Env) -> Self {
        let os = env
            .get(env::CARGO_CFG_TARGET_OS)
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let target_env = env
            .get(env::CARGO_CFG_TARGET_ENV)
            .unwrap_or_else(|| host_target_env().to_string());
        let triple = env
            .get(env::TARGET)
            .unwrap_or_else(|| format!("{}-{os}", std::env::consts::ARCH));
        Target {
            triple,
            os,
            env: target_env,
        }
    }

    /// The library name of a static archive file, if `file` is one for this target.
    fn static_lib_name<'a>(&self, file: &'a str) -> Option<&'a str> {
        if self.env == "msvc" {
            file.strip_suffix(".lib")
        } else {
            file.strip_prefix("lib")?.strip_suffix(".a")
        }
        .filter(|n| !n.is_empty())
    }

    /// What static archives are called on this target, for error messages.
    pub(crate) fn static_pattern(&self) -> &'static str {
        if self.env == "msvc" {
            "<name>.lib"
        } else {
            "lib<name>.a"
        }
    }
}

fn host_target_env() -> &'static str {
    if cfg!(target_env = "msvc") {
        "msvc"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else if cfg!(target_env = "gnu") {
        "gnu"
    } else {
        ""
    }
}

/// A library found in a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Library {
    name: String,
    kind: LinkKind,
    path: PathBuf,
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
    /// The library file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Directories searched for libraries, relative to the package root.
const LIB_DIRS: [&str; 3] = ["lib", "lib64", ""];

/// Static libraries for `target` under `root`, sorted by name within each
/// directory; a name found in an earlier directory shadows later ones.
pub(crate) fn find_libraries(root: &Path, target: &Target) -> Vec<Library> {
    let mut found: Vec<Library> = Vec::new();
    for dir in LIB_DIRS {
        let dir = root.join(dir);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for path in files {
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            if let Some(name) = target.static_lib_name(file) {
                if !found.iter().any(|l| l.name == name) {
                    found.push(Library {
                        name: name.to_string(),
                        kind: LinkKind::Static,
                        path: path.clone(),
                    });
                }
            }
        }
    }
    found
}

/// `rustc-link-search` for each directory holding a library, then
/// `rustc-link-lib` for each library.
pub(crate) fn link_directives(libraries: &[Library]) -> Vec<Directive> {
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
            .map(|l| Directive::LinkLib(l.kind, l.name.clone())),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(triple: &str, os: &str, env: &str) -> Target {
        Target {
            triple: triple.into(),
            os: os.into(),
            env: env.into(),
        }
    }

    #[test]
    fn target_comes_from_cargo_env_not_host() {
        let env = Env::fake(&[
            ("TARGET", "x86_64-pc-windows-msvc"),
            ("CARGO_CFG_TARGET_OS", "windows"),
            ("CARGO_CFG_TARGET_ENV", "msvc"),
        ]);
        let t = Target::from_env(&env);
        assert_eq!(t, target("x86_64-pc-windows-msvc", "windows", "msvc"));
        assert_eq!(t.static_lib_name("foo.lib"), Some("foo"));
        assert_eq!(t.static_lib_name("libfoo.a"), None);
    }

    #[test]
    fn finds_static_libraries_by_target_naming() {
        let dir = std::env::temp_dir().join(format!("ocipkg-link-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("lib")).unwrap();
        for f in [
            "lib/libfoo.a",
            "lib/libbar.a",
            "lib/foo.lib",
            "lib/README",
            "libfoo.a",
        ] {
            fs::write(dir.join(f), b"x").unwrap();
        }
        let linux = target("x86_64-unknown-linux-gnu", "linux", "gnu");
        let libs = find_libraries(&dir, &linux);
        let names: Vec<&str> = libs.iter().map(|l| l.name()).collect();
        assert_eq!(names, ["bar", "foo"]);
        let lines: Vec<String> = link_directives(&libs)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                format!(
                    "cargo:rustc-link-search=native={}",
                    dir.join("lib").display()
                ),
                "cargo:rustc-link-lib=static=bar".to_string(),
                "cargo:rustc-link-lib=static=foo".to_string(),
            ]
        );
        let msvc = target("x86_64-pc-windows-msvc", "windows", "msvc");
        let names: Vec<String> = find_libraries(&dir, &msvc)
            .iter()
            .map(|l| l.name().to_string())
            .collect();
        assert_eq!(names, ["foo"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
