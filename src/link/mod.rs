//! The consumer's entry point: options, then reference → resolve → verified
//! stream → cache → directives.

pub(crate) mod directive;
pub(crate) mod discover;
pub(crate) mod pkgconfig;

use std::path::{Path, PathBuf};

use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::files::place;
use crate::oci::format::{self, LinkMetadata};
use crate::oci::platform::Target;
use crate::oci::reference::Reference;
use crate::store::fetch::{self, Fetched};
use crate::store::session::Session;
use directive::{Directive, LinkKind};
use discover::Library;
use pkgconfig::PkgConfig;

/// Options for fetching and linking a package.
#[derive(Clone, Debug, Default)]
pub struct Linker {
    cache_dir: Option<PathBuf>,
    lockfile_dir: Option<PathBuf>,
    offline: Option<bool>,
    target: Option<String>,
    install_dylibs: bool,
    quiet: bool,
}

impl Linker {
    /// Default options: the cache from `OCIPKG_CACHE_DIR` or the per-user
    /// cache dir, online unless `OCIPKG_OFFLINE`/`CARGO_NET_OFFLINE` say
    /// otherwise, the target cargo builds for, directives printed to stdout.
    pub fn new() -> Self {
        Linker::default()
    }

    /// Uses `dir` as the cache root instead of `OCIPKG_CACHE_DIR` / the
    /// per-user cache.
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Looks for `ocipkg.lock` in `dir` instead of `CARGO_MANIFEST_DIR`.
    pub fn lockfile_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.lockfile_dir = Some(dir.into());
        self
    }

    /// Uses the cache only (`true`), or may use the network (`false`),
    /// whatever `OCIPKG_OFFLINE` and `CARGO_NET_OFFLINE` say.
    pub fn offline(&mut self, offline: bool) -> &mut Self {
        self.offline = Some(offline);
        self
    }

    /// Links for this Rust target triple instead of cargo's `TARGET` (or,
    /// outside build scripts, the machine ocipkg was built for).
    pub fn target(&mut self, triple: impl Into<String>) -> &mut Self {
        self.target = Some(triple.into());
        self
    }

    /// Also makes binaries linked to the package's dynamic libraries run
    /// from anywhere: copies the libraries next to the binaries in
    /// `target/<profile>/`, and gives this package's binaries an rpath of
    /// their own directory (`$ORIGIN`, `@loader_path`). Copy a binary
    /// together with those libraries and it still runs.
    pub fn install_dylibs(&mut self, install: bool) -> &mut Self {
        self.install_dylibs = install;
        self
    }

    /// Collects the cargo directives in [`Package::directives`] without
    /// printing them.
    pub fn quiet(&mut self, quiet: bool) -> &mut Self {
        self.quiet = quiet;
        self
    }

    /// Fetches (or finds in the cache) the package and links its libraries
    /// for the target being built.
    ///
    /// Under docs.rs (`DOCS_RS` set) nothing is fetched or linked: the
    /// returned package has no libraries and an empty root.
    pub fn link(&self, reference: &str) -> Result<Package> {
        let session = Session::process(true).with_cache_dir(self.cache_dir.clone());
        let mut result = self.link_in(&session, reference);
        let mut directives = rerun_directives(session.env());
        if let Ok(package) = &mut result {
            directives.append(&mut package.directives);
            package.directives = directives.clone();
        }
        if !self.quiet {
            directive::print(&directives);
        }
        result
    }

    /// Fetches the package into the cache, without looking for libraries or
    /// printing anything (`ocipkg pull`). Ignores `ocipkg.lock`.
    pub fn fetch(&self, reference: &str) -> Result<Fetched> {
        let session = Session::process(false).with_cache_dir(self.cache_dir.clone());
        self.fetch_in(&session, reference)
    }

    /// [`Linker::fetch`] in a session.
    pub(crate) fn fetch_in(&self, session: &Session, reference: &str) -> Result<Fetched> {
        let target = self.target_of(session.env())?;
        let parsed = Reference::parse(reference)?;
        let mut fetched = fetch::fetch(session, &parsed, &target, self.offline)?;
        fetched
            .warnings
            .extend(check_glibc(fetched.dir(), &parsed, &target)?);
        Ok(fetched)
    }

    fn target_of(&self, env: &Env) -> Result<Target> {
        match &self.target {
            Some(triple) => Target::parse(triple),
            None => Target::from_env(env),
        }
        .with_glibc(env)
    }

    /// [`Linker::link`] in a session, printing nothing.
    pub(crate) fn link_in(&self, session: &Session, reference: &str) -> Result<Package> {
        let env = session.env();
        let parsed = Reference::parse(reference)?;
        if env.get(env::DOCS_RS).is_some() {
            return Ok(Package {
                reference: parsed.to_string(),
                root: PathBuf::new(),
                manifest_digest: None,
                include_dirs: Vec::new(),
                libraries: Vec::new(),
                directives: Vec::new(),
            });
        }
        let target = self.target_of(env)?;
        let mut directives = Vec::new();
        let override_var = env::package_dir_var(parsed.repository());
        let (root, manifest_digest, metadata) = match env.get(&override_var) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if !dir.is_dir() {
                    return Err(Error::config(
                        format!("{override_var}={} is not a directory", dir.display()),
                        format!(
                            "point {override_var} at an unpacked package (holding lib/), or \
                             unset it to fetch {parsed}"
                        ),
                    ));
                }
                (dir, None, LinkMetadata::default())
            }
            None => {
                let lockfile_dir = self
                    .lockfile_dir
                    .clone()
                    .or_else(|| env.get(env::CARGO_MANIFEST_DIR).map(PathBuf::from));
                let (cached, lockfile) = fetch::fetch_locked(
                    session,
                    &parsed,
                    &target,
                    self.offline,
                    lockfile_dir.as_deref(),
                )?;
                let mut warnings = cached.warnings.clone();
                directives.extend(lockfile.map(Directive::RerunIfChanged));
                // Pruned or moved away: cargo reruns the build script, which
                // fetches it again, instead of linking a library that is gone.
                directives.push(Directive::RerunIfChanged(
                    cached.dir().join("manifest.json"),
                ));
                if let Some(warning) = check_glibc(cached.dir(), &parsed, &target)? {
                    warnings.push(warning);
                }
                directives.extend(warnings.into_iter().map(Directive::Warning));
                let metadata = read_metadata(cached.dir())?;
                let root = package_root(cached.root, &metadata)?;
                (root, Some(cached.manifest_digest), metadata)
            }
        };
        let prefer = preferred_kind(&parsed, env)?;
        let pkg_config = pkg_config(&root, &metadata)?;
        let mut libraries =
            discover::choose(&root, &target, &metadata, prefer, &pkg_config.lib_dirs)?;
        let metadata = with_pkg_config(metadata, &pkg_config, &libraries);
        if libraries.is_empty() && metadata.system_libraries.is_empty() {
            return Err(Error::NoLibraries {
                reference: parsed.to_string(),
                root,
                looked_for: discover::patterns(&target).to_string(),
                target: target.triple,
            });
        }
        if let Some(out_dir) = env.get(env::OUT_DIR) {
            let out_dir = PathBuf::from(out_dir);
            // cargo run/test put link search paths inside OUT_DIR on the loader path.
            let name = parsed.repository().rsplit('/').next().unwrap_or("package");
            let staging = out_dir.join("ocipkg");
            discover::stage_dylibs(&mut libraries, &root, &staging.join(name))?;
            if libraries.iter().any(|l| l.kind() == LinkKind::Dylib) {
                // For crates depending on this one: see `install_dependency_dylibs`.
                directives.push(Directive::Metadata(
                    env::DYLIBS_KEY.into(),
                    staging.display().to_string(),
                ));
            }
            if self.install_dylibs {
                directives.extend(install_dylibs(&libraries, &out_dir, &target)?);
            }
        }
        directives.extend(discover::link_directives(&libraries, &metadata, &target));
        let include_dirs = include_dirs(&root, &metadata, &pkg_config);
        directives.push(Directive::Metadata(
            "root".into(),
            root.display().to_string(),
        ));
        if let Some(first) = include_dirs.first() {
            directives.push(Directive::Metadata(
                "include".into(),
                first.display().to_string(),
            ));
        }
        // The last guard: nothing that is not plain data reaches stdout.
        if let Some(problem) = directives.iter().find_map(Directive::problem) {
            return Err(Error::refused(
                format!("package {parsed}"),
                format!("a cargo directive from it would not be plain data: {problem}"),
                "report it to the package's publisher",
            ));
        }
        Ok(Package {
            reference: parsed.to_string(),
            root,
            manifest_digest,
            include_dirs,
            libraries,
            directives,
        })
    }
}

/// `cargo:rerun-if-env-changed` for every variable read so far.
pub(crate) fn rerun_directives(env: &Env) -> Vec<Directive> {
    env.read_names()
        .into_iter()
        .map(Directive::RerunIfEnvChanged)
        .collect()
}

/// `OCIPKG_<NAME>_LINK=static|dylib`, if set.
fn preferred_kind(reference: &Reference, env: &Env) -> Result<Option<LinkKind>> {
    let var = env::package_link_var(reference.repository());
    env.get(&var)
        .map(|value| {
            value.parse().map_err(|reason| {
                Error::config(
                    format!("{var}: {reason}"),
                    format!("set {var} to static or dylib, or unset it (static is preferred)"),
                )
            })
        })
        .transpose()
}

/// Fails when the cached package needs a newer glibc than the target has
/// (before anything is linked); a warning when the target's glibc is unknown.
fn check_glibc(dir: &Path, reference: &Reference, target: &Target) -> Result<Option<String>> {
    if !target.is_linux_gnu() {
        return Ok(None);
    }
    let manifest: serde_json::Value = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let floor = manifest
        .get("annotations")
        .and_then(|a| a.get(crate::oci::platform::GLIBC_ANNOTATION))
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<crate::oci::platform::Version>().ok());
    let Some(floor) = floor else {
        return Ok(None);
    };
    match &target.glibc {
        Some(glibc) if floor > glibc.version => Err(Error::RuntimeTooOld {
            package: format!("package {reference}"),
            needs: format!("glibc {floor}"),
            has: format!("glibc {} ({})", glibc.version, glibc.source),
        }),
        Some(_) => Ok(None),
        None => Ok(Some(format!(
            "{reference} needs glibc {floor} or newer; the glibc of {} is not known here \
             (a cross build), so this is not checked: set {}=X.Y to check it",
            target.triple,
            env::TARGET_GLIBC
        ))),
    }
}

/// The link metadata of a cached package (empty for an OCI empty config).
pub(crate) fn read_metadata(dir: &Path) -> Result<LinkMetadata> {
    let read = |name: &str| {
        std::fs::read(dir.join(name))
            .map_err(|e| Error::io(format!("reading {}", dir.join(name).display()), e))
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")?)
        .map_err(|e| Error::invalid("a cached manifest", e.to_string()))?;
    if manifest
        .pointer("/config/mediaType")
        .and_then(|m| m.as_str())
        != Some(format::CONFIG_MEDIA_TYPE)
    {
        return Ok(LinkMetadata::default());
    }
    let metadata: LinkMetadata = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| Error::invalid("the package's link metadata (config)", e.to_string()))?;
    check_metadata(&metadata)?;
    Ok(metadata)
}

/// Refuses link metadata whose values would not stay what they claim to be
/// in a cargo directive, or whose paths leave the package.
pub(crate) fn check_metadata(metadata: &LinkMetadata) -> Result<()> {
    let refuse = |field: &str, value: &str, rule: &str| {
        Err(Error::refused(
            "the package's link metadata (config)",
            format!("`{field}` holds `{}`, {rule}", value.escape_debug()),
            "a package may only name libraries (letters, digits, `_ . + -`) and relative paths \
             inside itself; report it to its publisher",
        ))
    };
    let names = metadata
        .libraries
        .iter()
        .map(|l| ("libraries", l.name.as_str()))
        .chain(
            metadata
                .system_libraries
                .iter()
                .map(|n| ("system_libraries", n.as_str())),
        )
        .chain(
            metadata
                .frameworks
                .iter()
                .map(|n| ("frameworks", n.as_str())),
        );
    for (field, name) in names {
        if !directive::is_library_name(name) {
            return refuse(field, name, "which is not a valid library name");
        }
    }
    let paths = metadata
        .include_dirs
        .iter()
        .map(|p| ("include_dirs", p.as_str()))
        .chain(
            metadata
                .pkg_config
                .iter()
                .map(|p| ("pkg_config", p.as_str())),
        )
        .chain(metadata.root_dir.iter().map(|p| ("root_dir", p.as_str())));
    for (field, path) in paths {
        let inside = Path::new(path).components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if !inside || !directive::is_plain_text(path) {
            return refuse(
                field,
                path,
                "which is not a relative path inside the package",
            );
        }
    }
    Ok(())
}

/// The package root in the unpacked `tree`: the directory the link
/// metadata's `root_dir` names (`ocipkg pack --root-dir`), else the tree.
fn package_root(tree: PathBuf, metadata: &LinkMetadata) -> Result<PathBuf> {
    let Some(dir) = &metadata.root_dir else {
        return Ok(tree);
    };
    let root = tree.join(dir);
    if !root.is_dir() {
        return Err(Error::invalid(
            "the package's link metadata (config)",
            format!(
                "its `root_dir` is `{}`, but the package has no such directory (it was \
                 unpacked into {})",
                dir.escape_debug(),
                tree.display()
            ),
        ));
    }
    Ok(root)
}

/// The package's header directories that exist: those the metadata names,
/// else `include/` and the pkg-config file's `-I` directories.
fn include_dirs(root: &Path, metadata: &LinkMetadata, pkg_config: &PkgConfig) -> Vec<PathBuf> {
    let mut named: Vec<PathBuf> = if metadata.include_dirs.is_empty() {
        std::iter::once(root.join("include"))
            .chain(pkg_config.include_dirs.iter().cloned())
            .collect()
    } else {
        metadata.include_dirs.iter().map(|d| root.join(d)).collect()
    };
    named.dedup();
    named.into_iter().filter(|d| d.is_dir()).collect()
}

/// The package's pkg-config files, merged: the one the link metadata names,
/// else every `.pc` file in `lib/pkgconfig`, `lib64/pkgconfig` and
/// `share/pkgconfig`.
fn pkg_config(root: &Path, metadata: &LinkMetadata) -> Result<PkgConfig> {
    let files: Vec<PathBuf> = match &metadata.pkg_config {
        Some(named) => vec![root.join(named)],
        None => ["lib/pkgconfig", "lib64/pkgconfig", "share/pkgconfig"]
            .iter()
            .filter_map(|dir| std::fs::read_dir(root.join(dir)).ok())
            .flat_map(|entries| {
                let mut found: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "pc"))
                    .collect();
                found.sort();
                found
            })
            .collect(),
    };
    let mut merged = PkgConfig::default();
    for file in files {
        let pc = pkgconfig::read(&file, root).map_err(|reason| {
            Error::invalid(format!("the pkg-config file {}", file.display()), reason)
        })?;
        for (from, to) in [
            (pc.lib_dirs, &mut merged.lib_dirs),
            (pc.include_dirs, &mut merged.include_dirs),
        ] {
            to.extend(
                from.into_iter()
                    .filter(|d| !to.contains(d))
                    .collect::<Vec<_>>(),
            );
        }
        for (from, to) in [
            (pc.libs, &mut merged.libs),
            (pc.private_libs, &mut merged.private_libs),
            (pc.frameworks, &mut merged.frameworks),
        ] {
            to.extend(
                from.into_iter()
                    .filter(|d| !to.contains(d))
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(merged)
}

/// The link metadata completed by pkg-config where it says nothing: the
/// `.pc` file's `-l` libraries that are not the package's own become system
/// libraries (with `Libs.private` when a library is linked statically), and
/// its frameworks are used. Metadata given to `ocipkg pack` wins.
fn with_pkg_config(
    mut metadata: LinkMetadata,
    pkg_config: &PkgConfig,
    libraries: &[Library],
) -> LinkMetadata {
    let statically = libraries.iter().any(|l| l.kind() == LinkKind::Static);
    if metadata.system_libraries.is_empty() {
        let private = pkg_config.private_libs.iter().filter(|_| statically);
        metadata.system_libraries = pkg_config
            .libs
            .iter()
            .chain(private)
            .filter(|name| !libraries.iter().any(|l| l.name() == name.as_str()))
            .cloned()
            .collect();
    }
    if metadata.frameworks.is_empty() {
        metadata.frameworks = pkg_config.frameworks.clone();
    }
    metadata
}

/// Copies the run-time files of dynamic libraries next to the binaries of
/// the profile (`OUT_DIR/../../..`) and gives this package's binaries an
/// rpath of their own directory.
fn install_dylibs(
    libraries: &[Library],
    out_dir: &Path,
    target: &Target,
) -> Result<Vec<Directive>> {
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return Ok(Vec::new());
    };
    let mut installed = false;
    for lib in libraries.iter().filter(|l| l.kind() == LinkKind::Dylib) {
        for file in lib.runtime_files() {
            if let Some(name) = file.file_name() {
                place(file, &profile_dir.join(name), None)?;
                installed = true;
            }
        }
    }
    Ok(if installed { rpath(target) } else { Vec::new() })
}

/// The link argument that makes a binary look for libraries in its own
/// directory (none on Windows, which looks next to the `.exe` anyway).
fn rpath(target: &Target) -> Vec<Directive> {
    let arg = match target.os.as_str() {
        "macos" | "ios" | "tvos" | "watchos" => "-Wl,-rpath,@loader_path",
        "windows" => return Vec::new(),
        _ => "-Wl,-rpath,$ORIGIN",
    };
    vec![Directive::LinkArg(arg.into())]
}

/// What [`crate::install_dependency_dylibs`] does, in an environment: the
/// installed files and the directives to print.
pub(crate) fn install_dependency_dylibs(env: &Env) -> Result<(Vec<PathBuf>, Vec<Directive>)> {
    let Some(out_dir) = env.get(env::OUT_DIR).map(PathBuf::from) else {
        return Err(Error::usage(
            "install_dependency_dylibs was called outside a build script (OUT_DIR is not set)",
            "call it from the build.rs of the crate whose binaries use the libraries",
        ));
    };
    let Some(profile_dir) = out_dir.ancestors().nth(3) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let suffix = format!("_{}", env::DYLIBS_KEY.to_ascii_uppercase());
    let mut installed = Vec::new();
    for var in env.names_like("DEP_", &suffix) {
        let Some(staging) = env.get(&var).map(PathBuf::from) else {
            continue;
        };
        let io = |e| Error::io(format!("reading {} (from {var})", staging.display()), e);
        let mut packages: Vec<PathBuf> = std::fs::read_dir(&staging)
            .map_err(io)?
            .flatten()
            .map(|e| e.path())
            .collect();
        packages.sort();
        for package in packages {
            let Ok(files) = std::fs::read_dir(&package) else {
                continue;
            };
            for file in files.flatten() {
                let dest = profile_dir.join(file.file_name());
                if file.path().is_file() && !installed.contains(&dest) {
                    place(&file.path(), &dest, Some(&package))?;
                    installed.push(dest);
                }
            }
        }
    }
    let directives = if installed.is_empty() {
        Vec::new()
    } else {
        rpath(&Target::from_env(env))
    };
    Ok((installed, directives))
}

/// A package fetched into the cache and linked.
#[derive(Clone, Debug)]
pub struct Package {
    reference: String,
    root: PathBuf,
    manifest_digest: Option<String>,
    include_dirs: Vec<PathBuf>,
    libraries: Vec<Library>,
    directives: Vec<Directive>,
}

impl Package {
    /// The reference the package was fetched by, normalised.
    pub fn reference(&self) -> &str {
        &self.reference
    }
    /// The package root: the unpacked tree, or the directory of it that the
    /// producer packed the files under (`ocipkg pack --root-dir`).
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `<root>/include`, for `cc::Build::include` or bindgen's `-I`.
    pub fn include_dir(&self) -> PathBuf {
        self.include_dirs
            .first()
            .cloned()
            .unwrap_or_else(|| self.root.join("include"))
    }
    /// Every header directory of the package that exists (the link
    /// metadata's `include_dirs`, else `include/`).
    pub fn include_dirs(&self) -> &[PathBuf] {
        &self.include_dirs
    }
    /// The sha256 digest of the package's manifest for the target; `None`
    /// when the package came from an `OCIPKG_<NAME>_DIR` directory or
    /// nothing was fetched (docs.rs).
    pub fn manifest_digest(&self) -> Option<&str> {
        self.manifest_digest.as_deref()
    }
    /// The libraries that were linked, in link order.
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }
    /// Every cargo directive emitted, in order.
    pub fn directives(&self) -> &[Directive] {
        &self.directives
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_rs_fetches_and_links_nothing() {
        let env = Env::fake(&[("DOCS_RS", "1")]);
        let package = Linker::new()
            .link_in(&Session::new(env), "registry.invalid/org/libfoo:1")
            .unwrap();
        assert!(package.libraries().is_empty());
        assert!(package.directives().is_empty());
        assert_eq!(package.manifest_digest(), None);
    }

    #[test]
    fn a_root_dir_must_stay_inside_the_package_and_exist() {
        for bad in ["../x", "/opt/foo", "opt/../../x"] {
            let metadata = LinkMetadata {
                root_dir: Some(bad.into()),
                ..LinkMetadata::default()
            };
            let err = check_metadata(&metadata).unwrap_err().to_string();
            assert!(err.contains("`root_dir`"), "{bad}: {err}");
        }
        let tree = std::env::temp_dir().join(format!("ocipkg-root-test-{}", std::process::id()));
        std::fs::create_dir_all(tree.join("opt/foo/lib")).unwrap();
        let metadata = LinkMetadata {
            root_dir: Some("opt/foo".into()),
            ..LinkMetadata::default()
        };
        check_metadata(&metadata).unwrap();
        assert_eq!(
            package_root(tree.clone(), &metadata).unwrap(),
            tree.join("opt/foo")
        );
        assert_eq!(
            package_root(tree.clone(), &LinkMetadata::default()).unwrap(),
            tree
        );
        let missing = LinkMetadata {
            root_dir: Some("opt/bar".into()),
            ..LinkMetadata::default()
        };
        let err = package_root(tree.clone(), &missing)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`opt/bar`") && err.contains("help:"), "{err}");
        std::fs::remove_dir_all(&tree).unwrap();
    }

    #[test]
    fn package_dir_variable_skips_the_fetch() {
        let dir = std::env::temp_dir().join(format!("ocipkg-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/libfoo.a"), b"!<arch>\n").unwrap();
        let env = Env::fake(&[
            ("OCIPKG_LIBFOO_DIR", dir.to_str().unwrap()),
            ("TARGET", "x86_64-unknown-linux-gnu"),
        ]);
        let session = Session::new(env);
        let package = Linker::new()
            .link_in(&session, "registry.invalid/org/libfoo:1")
            .unwrap();
        assert_eq!(package.root(), dir);
        assert_eq!(package.libraries()[0].name(), "foo");
        let reruns: Vec<String> = rerun_directives(session.env())
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(reruns.contains(&"cargo:rerun-if-env-changed=OCIPKG_LIBFOO_DIR".to_string()));

        let env = Env::fake(&[("OCIPKG_LIBFOO_DIR", "/does/not/exist")]);
        let err = Linker::new()
            .link_in(&Session::new(env), "registry.invalid/org/libfoo:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OCIPKG_LIBFOO_DIR") && err.contains("help:"),
            "{err}"
        );

        let env = Env::fake(&[
            ("OCIPKG_LIBFOO_DIR", dir.to_str().unwrap()),
            ("OCIPKG_LIBFOO_LINK", "shared"),
        ]);
        let err = Linker::new()
            .link_in(&Session::new(env), "registry.invalid/org/libfoo:1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("OCIPKG_LIBFOO_LINK"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
