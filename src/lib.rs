//! Link prebuilt static libraries from any OCI registry in `build.rs`, and
//! pack and publish them.
//!
//! # Consumer
//!
//! ```no_run
//! // In the `main` of an FFI crate's build.rs:
//! match ocipkg::link_package("ghcr.io/org/libfoo:1.2") {
//!     Ok(package) => {
//!         // Headers for cc or bindgen:
//!         let _include = package.include_dir();
//!     }
//!     Err(e) => {
//!         // A clean, multi-line message instead of a panic backtrace.
//!         eprintln!("{e}");
//!         std::process::exit(1);
//!     }
//! }
//! ```
//!
//! [`link_package`] parses the reference, fetches the manifest and layers,
//! verifies the sha256 of every one of them, unpacks them into the per-user
//! cache and prints `cargo:rustc-link-search=native=…` and
//! `cargo:rustc-link-lib=static=…` for each static library of the target.
//! Use [`Linker`] for options.
//!
//! # Environment variables
//!
//! | variable | meaning |
//! |---|---|
//! | `OCIPKG_CACHE_DIR` | cache root (default: the per-user cache dir, e.g. `~/.cache/ocipkg`) |
//! | `OCIPKG_OFFLINE`, `CARGO_NET_OFFLINE` | `1`/`true`: use the cache only; a miss is an error advising `ocipkg pull REF` |
//! | `OCIPKG_<NAME>_DIR` | use this unpacked package directory instead of fetching; `NAME` is the repository's last path segment, upper-cased, with `-` and `.` turned into `_` (`ghcr.io/org/lib-foo` → `OCIPKG_LIB_FOO_DIR`) |
//! | `OCIPKG_UPDATE_LOCK` | `1`/`true`: resolve tags online and record them in `ocipkg.lock` |
//! | `CARGO_MANIFEST_DIR` | set by cargo: where `ocipkg.lock` is looked for |
//! | `DOCS_RS` | set by docs.rs: fetch and link nothing |
//! | `OCIPKG_AUTH_<HOST>`, `OCIPKG_USERNAME`, `OCIPKG_PASSWORD`, `DOCKER_CONFIG`, `XDG_RUNTIME_DIR` | credentials: see [`credentials`] |
//! | `OCIPKG_CONFIG` | the registry configuration file (see [`config`]) |
//! | `OCIPKG_INSECURE_REGISTRIES` | comma-separated `host[:port]` reached over plain HTTP (loopback registries always are) |
//! | `TARGET`, `CARGO_CFG_TARGET_OS`, `CARGO_CFG_TARGET_ENV` | set by cargo: the target whose library names are looked for |
//! | `SOURCE_DATE_EPOCH` | producer: timestamp of files in packed layers (default 0) |
//!
//! In a build script every variable read is also announced with
//! `cargo:rerun-if-env-changed`.
//!
//! # Lockfile
//!
//! See [`lockfile`]: `ocipkg.lock` next to the consumer's `Cargo.toml` locks
//! tag references to manifest digests, for reproducible builds.
//!
//! # Cache layout
//!
//! `pkgs/sha256/<manifest hex>/{manifest.json,config.json,root/}`, with
//! `refs/<registry>/<repository>/<tag>` recording the digest a tag had when
//! last fetched (for offline builds), `tmp/` for fetches in progress and
//! `locks/` for one-download-at-a-time locks. A package directory appears
//! only after every digest matched.
//!
//! # Package format
//!
//! See [`format`](mod@format): an OCI image manifest with `artifactType`
//! `application/vnd.ocipkg.v1.artifact`, the OCI empty config, and
//! `tar+gzip` layers holding `lib/`, `include/`, ….

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod cache;
mod client;
pub mod config;
pub mod credentials;
mod digest;
mod directive;
mod env;
mod error;
pub mod format;
mod layout;
mod link;
pub mod lockfile;
mod pack;
mod pull;
mod push;
mod reference;
mod retry;
mod stream;
mod tempdir;
mod unpack;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

use std::path::{Path, PathBuf};

pub use directive::{Directive, LinkKind};
pub use error::{Error, Result};
pub use link::Library;
pub use pack::{pack, Packed};
pub use push::{push, Pushed};
pub use reference::Reference;

use cache::Cache;
use client::Client;
use env::Env;

/// Fetches the package `reference` and links its static libraries: the
/// common case of [`Linker::link`] with default options.
pub fn link_package(reference: &str) -> Result<Package> {
    Linker::new().link(reference)
}

/// Options for fetching and linking a package.
#[derive(Clone, Debug, Default)]
pub struct Linker {
    cache_dir: Option<PathBuf>,
    lockfile_dir: Option<PathBuf>,
    offline: Option<bool>,
    quiet: bool,
}

impl Linker {
    /// Default options: the cache from `OCIPKG_CACHE_DIR` or the per-user
    /// cache dir, online unless `OCIPKG_OFFLINE`/`CARGO_NET_OFFLINE` say
    /// otherwise, directives printed to stdout.
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

    /// Collects the cargo directives in [`Package::directives`] without
    /// printing them.
    pub fn quiet(&mut self, quiet: bool) -> &mut Self {
        self.quiet = quiet;
        self
    }

    /// Fetches (or finds in the cache) the package and links every static
    /// library it holds for the target being built.
    ///
    /// Under docs.rs (`DOCS_RS` set) nothing is fetched or linked: the
    /// returned package has no libraries and an empty root.
    pub fn link(&self, reference: &str) -> Result<Package> {
        let env = Env::process(true);
        let mut result = self.link_with(reference, &env);
        let mut directives = env.rerun_directives();
        if let Ok(package) = &mut result {
            directives.append(&mut package.directives);
            package.directives = directives.clone();
        }
        if !self.quiet {
            directive::print(&directives);
        }
        result
    }

    fn link_with(&self, reference: &str, env: &Env) -> Result<Package> {
        let parsed = Reference::parse(reference)?;
        if env.get(env::DOCS_RS).is_some() {
            return Ok(Package {
                reference: parsed.to_string(),
                root: PathBuf::new(),
                manifest_digest: None,
                libraries: Vec::new(),
                directives: Vec::new(),
            });
        }
        let mut extra = Vec::new();
        let override_var = env::package_dir_var(&parsed);
        let (root, manifest_digest) = match env.get(&override_var) {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                if !dir.is_dir() {
                    return Err(Error::usage(
                        format!("{override_var}={} is not a directory", dir.display()),
                        format!(
                            "point {override_var} at an unpacked package (holding lib/), or \
                             unset it to fetch {parsed}"
                        ),
                    ));
                }
                (dir, None)
            }
            None => {
                let (cached, lockfile) = self.fetch_locked(&parsed, env)?;
                extra.extend(lockfile.map(Directive::RerunIfChanged));
                (cached.dir.join("root"), Some(cached.digest))
            }
        };
        let target = link::Target::from_env(env);
        let libraries = link::find_libraries(&root, &target);
        if libraries.is_empty() {
            return Err(Error::NoLibraries {
                reference: parsed.to_string(),
                root,
                looked_for: target.static_pattern().to_string(),
                target: target.triple,
            });
        }
        let mut directives = extra;
        directives.extend(link::link_directives(&libraries));
        directives.push(Directive::Metadata(
            "root".into(),
            root.display().to_string(),
        ));
        if root.join("include").is_dir() {
            directives.push(Directive::Metadata(
                "include".into(),
                root.join("include").display().to_string(),
            ));
        }
        Ok(Package {
            reference: parsed.to_string(),
            root,
            manifest_digest,
            libraries,
            directives,
        })
    }

    /// Fetches `reference`, honouring `ocipkg.lock` next to the crate being
    /// built; returns the lockfile's path if one was used or written.
    fn fetch_locked(
        &self,
        reference: &Reference,
        env: &Env,
    ) -> Result<(pull::Cached, Option<PathBuf>)> {
        let dir = match &self.lockfile_dir {
            Some(dir) => dir.clone(),
            None => match env.get(env::CARGO_MANIFEST_DIR) {
                Some(dir) => PathBuf::from(dir),
                None => return Ok((self.fetch_with(reference, env)?, None)),
            },
        };
        let mut lockfile = lockfile::Lockfile::load(&dir)?;
        if env::is_true(env, env::UPDATE_LOCK) {
            let cached = self.fetch_with(reference, env)?;
            lockfile.set(reference, &cached.digest);
            lockfile.save()?;
            return Ok((cached, Some(lockfile.path().to_path_buf())));
        }
        let used = lockfile.exists().then(|| lockfile.path().to_path_buf());
        let locked = match (reference.digest(), lockfile.get(reference)) {
            (None, Some(digest)) => reference.with_digest(digest),
            _ => return Ok((self.fetch_with(reference, env)?, used)),
        };
        match self.fetch_with(&locked, env) {
            Ok(cached) => Ok((cached, used)),
            Err(Error::Registry { status: 404, .. }) => Err(Error::usage(
                format!(
                    "{} locks {reference} to {}, but the registry does not serve that digest",
                    lockfile.path().display(),
                    locked.digest().unwrap_or_default()
                ),
                format!(
                    "the package was deleted or the tag re-published. To move to what the tag \
                     points at now, run `ocipkg lock {reference}` in {} (or build once with \
                     OCIPKG_UPDATE_LOCK=1)",
                    dir.display()
                ),
            )),
            Err(e) => Err(e),
        }
    }

    fn fetch_with(&self, reference: &Reference, env: &Env) -> Result<pull::Cached> {
        let cache = match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::from_env(env)?,
        };
        let offline = match self.offline {
            Some(offline) => offline,
            None => env::is_offline(env),
        };
        if offline {
            return pull::from_cache(reference, &cache);
        }
        let config = config::Config::load(env)?;
        let settings = config.registry(reference.registry());
        // Mirrors first; any failure there (even a wrong digest) falls
        // through to the next source, and finally to the registry itself.
        for mirror in &settings.mirrors {
            let on_mirror = reference.on_mirror(mirror)?;
            let credentials = credentials::Lookup::new(on_mirror.registry(), env);
            let mut client = Client::configured(&on_mirror, &config, env, false, credentials)?;
            if let Ok(cached) = pull::pull(reference, &mut client, &cache) {
                return Ok(cached);
            }
        }
        let credentials = credentials::Lookup::new(reference.registry(), env);
        let mut client = Client::configured(reference, &config, env, false, credentials)?;
        pull::pull(reference, &mut client, &cache)
    }

    /// Fetches the package into the cache and returns its unpacked root and
    /// manifest digest, without looking for libraries or printing anything
    /// (`ocipkg pull`).
    pub fn fetch(&self, reference: &str) -> Result<(PathBuf, String)> {
        let env = Env::process(false);
        let cached = self.fetch_with(&Reference::parse(reference)?, &env)?;
        Ok((cached.dir.join("root"), cached.digest))
    }
}

/// A package fetched into the cache and linked.
#[derive(Clone, Debug)]
pub struct Package {
    reference: String,
    root: PathBuf,
    manifest_digest: Option<String>,
    libraries: Vec<Library>,
    directives: Vec<Directive>,
}

impl Package {
    /// The reference the package was fetched by, normalised.
    pub fn reference(&self) -> &str {
        &self.reference
    }
    /// The unpacked package tree.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `<root>/include`, for `cc::Build::include` or bindgen's `-I`.
    pub fn include_dir(&self) -> PathBuf {
        self.root.join("include")
    }
    /// The sha256 digest of the package's manifest; `None` when the package
    /// came from an `OCIPKG_<NAME>_DIR` directory or nothing was fetched (docs.rs).
    pub fn manifest_digest(&self) -> Option<&str> {
        self.manifest_digest.as_deref()
    }
    /// The libraries that were linked.
    pub fn libraries(&self) -> &[Library] {
        &self.libraries
    }
    /// Every cargo directive emitted, in order.
    pub fn directives(&self) -> &[Directive] {
        &self.directives
    }
}

/// Fetches each reference (verified, into the cache) and locks it to its
/// manifest digest in `dir/ocipkg.lock`, creating or updating the file.
/// Returns `(reference, digest)` pairs.
pub fn lock(references: &[&str], dir: &Path) -> Result<Vec<(String, String)>> {
    let mut lockfile = lockfile::Lockfile::load(dir)?;
    let mut locked = Vec::new();
    for reference in references {
        let parsed = Reference::parse(reference)?;
        if parsed.digest().is_some() {
            return Err(Error::usage(
                format!("{reference} is already pinned to a digest"),
                "lock tag references (`registry/repository:tag`)",
            ));
        }
        let (_, digest) = Linker::new().fetch(reference)?;
        lockfile.set(&parsed, &digest);
        locked.push((parsed.to_string(), digest));
    }
    lockfile.save()?;
    Ok(locked)
}

/// Checks `username`/`password` against `registry` (`ghcr.io`,
/// `localhost:5000`, `docker.io`, ...) and stores them in Docker's config
/// file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), where
/// ocipkg, docker, podman and skopeo find them. Returns the file's path.
pub fn login(registry: &str, username: &str, password: &str) -> Result<PathBuf> {
    let reference = Reference::parse(&format!("{registry}/login"))?;
    let env = Env::process(false);
    let credential = credentials::Credential {
        username: Some(username.to_string()),
        secret: password.to_string(),
        source: "the given user name and password".into(),
    };
    let lookup = credentials::Lookup::new(reference.registry(), &env).fixed(credential);
    Client::configured(
        &reference,
        &config::Config::load(&env)?,
        &env,
        false,
        lookup,
    )?
    .ping()?;
    let path = credentials::docker_config_path(&env);
    credentials::store(&path, reference.registry(), username, password)?;
    Ok(path)
}

/// Removes the stored credentials of `registry` from Docker's config file.
pub fn logout(registry: &str) -> Result<PathBuf> {
    let reference = Reference::parse(&format!("{registry}/logout"))?;
    let path = credentials::docker_config_path(&Env::process(false));
    if !credentials::remove(&path, reference.registry())? {
        return Err(Error::usage(
            format!(
                "{} holds no credentials for {}",
                path.display(),
                reference.registry()
            ),
            "nothing to do; `docker logout` removes credentials kept by a credential helper",
        ));
    }
    Ok(path)
}

/// Lists the tags of a repository (`registry/repository`, any tag ignored).
pub fn list_tags(repository: &str) -> Result<Vec<String>> {
    let reference = Reference::parse(repository)?;
    let env = Env::process(false);
    Client::for_reference(&reference, &env, false)?.list_tags()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_rs_fetches_and_links_nothing() {
        let env = Env::fake(&[("DOCS_RS", "1")]);
        let package = Linker::new()
            .link_with("registry.invalid/org/libfoo:1", &env)
            .unwrap();
        assert!(package.libraries().is_empty());
        assert!(package.directives().is_empty());
        assert_eq!(package.manifest_digest(), None);
    }

    #[test]
    fn package_dir_variable_skips_the_fetch() {
        let dir = std::env::temp_dir().join(format!("ocipkg-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/libfoo.a"), b"!<arch>\n").unwrap();
        let env = Env::fake(&[
            ("OCIPKG_LIBFOO_DIR", dir.to_str().unwrap()),
            ("CARGO_CFG_TARGET_OS", "linux"),
            ("CARGO_CFG_TARGET_ENV", "gnu"),
        ]);
        let package = Linker::new()
            .link_with("registry.invalid/org/libfoo:1", &env)
            .unwrap();
        assert_eq!(package.root(), dir);
        assert_eq!(package.libraries()[0].name(), "foo");
        let reruns: Vec<String> = env
            .rerun_directives()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(reruns.contains(&"cargo:rerun-if-env-changed=OCIPKG_LIBFOO_DIR".to_string()));

        let env = Env::fake(&[("OCIPKG_LIBFOO_DIR", "/does/not/exist")]);
        let err = Linker::new()
            .link_with("registry.invalid/org/libfoo:1", &env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OCIPKG_LIBFOO_DIR") && err.contains("help:"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
