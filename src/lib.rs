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
//! | `OCIPKG_INSECURE_REGISTRIES` | comma-separated `host[:port]` reached over plain HTTP (loopback registries always are) |
//! | `TARGET`, `CARGO_CFG_TARGET_OS`, `CARGO_CFG_TARGET_ENV` | set by cargo: the target whose library names are looked for |
//! | `SOURCE_DATE_EPOCH` | producer: timestamp of files in packed layers (default 0) |
//!
//! In a build script every variable read is also announced with
//! `cargo:rerun-if-env-changed`.
//!
//! # Cache layout
//!
//! `pkgs/sha256/<manifest hex>/{manifest.json,config.json,root/}`, with
//! `tmp/` for fetches in progress and `locks/` for one-download-at-a-time
//! locks. A package directory appears only after every digest matched.
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
mod digest;
mod directive;
mod env;
mod error;
pub mod format;
mod layout;
mod link;
mod pack;
mod pull;
mod push;
mod reference;
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
    quiet: bool,
}

impl Linker {
    /// Default options: the cache from `OCIPKG_CACHE_DIR` or the per-user
    /// cache dir, directives printed to stdout.
    pub fn new() -> Self {
        Linker::default()
    }

    /// Uses `dir` as the cache root instead of `OCIPKG_CACHE_DIR` / the
    /// per-user cache.
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cache_dir = Some(dir.into());
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
    pub fn link(&self, reference: &str) -> Result<Package> {
        let env = Env::process(true);
        let result = self.link_with(reference, &env);
        let mut directives = env.rerun_directives();
        let result = result.map(|mut package| {
            directives.append(&mut package.directives);
            package.directives = directives;
            package
        });
        if !self.quiet {
            match &result {
                Ok(package) => directive::print(&package.directives),
                Err(_) => directive::print(&env.rerun_directives()),
            }
        }
        result
    }

    fn link_with(&self, reference: &str, env: &Env) -> Result<Package> {
        let (reference, cached) = self.fetch_with(reference, env)?;
        let root = cached.dir.join("root");
        let target = link::Target::from_env(env);
        let libraries = link::find_libraries(&root, &target);
        if libraries.is_empty() {
            return Err(Error::NoLibraries {
                reference: reference.to_string(),
                root,
                looked_for: target.static_pattern().to_string(),
                target: target.triple,
            });
        }
        let mut directives = link::link_directives(&libraries);
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
            reference: reference.to_string(),
            root,
            manifest_digest: cached.digest,
            libraries,
            directives,
        })
    }

    fn fetch_with(&self, reference: &str, env: &Env) -> Result<(Reference, pull::Cached)> {
        let reference = Reference::parse(reference)?;
        let cache = match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone()),
            None => Cache::from_env(env)?,
        };
        let mut client = Client::for_reference(&reference, env, false);
        let cached = pull::pull(&reference, &mut client, &cache)?;
        Ok((reference, cached))
    }

    /// Fetches the package into the cache and returns its unpacked root,
    /// without looking for libraries or printing anything (`ocipkg pull`).
    pub fn fetch(&self, reference: &str) -> Result<(PathBuf, String)> {
        let env = Env::process(false);
        let (_, cached) = self.fetch_with(reference, &env)?;
        Ok((cached.dir.join("root"), cached.digest))
    }
}

/// A package fetched into the cache and linked.
#[derive(Clone, Debug)]
pub struct Package {
    reference: String,
    root: PathBuf,
    manifest_digest: String,
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
    /// The sha256 digest of the package's manifest.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
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

/// Lists the tags of a repository (`registry/repository`, any tag ignored).
pub fn list_tags(repository: &str) -> Result<Vec<String>> {
    let reference = Reference::parse(repository)?;
    let env = Env::process(false);
    Client::for_reference(&reference, &env, false).list_tags()
}
