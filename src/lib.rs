//! Link prebuilt static or dynamic libraries from any OCI registry in
//! `build.rs`. The producer side (pack, push, save/load, container images)
//! is [`publish`](crate#producer), behind the `producer` feature.
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
//!     Err(e) if e.is_no_prebuilt() => {
//!         // Nothing to link for this target: build from source instead.
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
//! `cargo:rustc-link-lib=static=…` (or `dylib=…`) for each library of the
//! target, choosing the target's build from a multi-platform package (see
//! [Platforms](#platforms)) and following the package's link metadata and
//! pkg-config file (see [Package format](#package-format)). Use [`Linker`]
//! for options; an application whose `-sys` dependency links shared
//! libraries calls [`install_dependency_dylibs`] in its own build.rs.
//!
//! # Environment variables
//!
//! | variable | meaning |
//! |---|---|
//! | `OCIPKG_CACHE_DIR` | cache root (default: the per-user cache dir, e.g. `~/.cache/ocipkg`) |
//! | `OCIPKG_OFFLINE`, `CARGO_NET_OFFLINE` | `1`/`true`: use the cache only; a miss is an error advising `ocipkg pull REF` (cargo's `--offline` flag does not reach build scripts; `CARGO_NET_OFFLINE=true cargo build` makes both offline) |
//! | `OCIPKG_<NAME>_DIR` | use this unpacked package directory instead of fetching; `NAME` is the repository's last path segment, upper-cased, with `-` and `.` turned into `_` (`ghcr.io/org/lib-foo` → `OCIPKG_LIB_FOO_DIR`) |
//! | `OCIPKG_<NAME>_LINK` | `static` or `dylib`: which kind to link when the package has both (default static) |
//! | `OUT_DIR` | set by cargo: shared libraries are staged under it |
//! | `OCIPKG_UPDATE_LOCK` | `1`/`true`: resolve tags online and record them in `ocipkg.lock` |
//! | `CARGO_MANIFEST_DIR` | set by cargo: where `ocipkg.lock` is looked for |
//! | `DOCS_RS` | set by docs.rs: fetch and link nothing |
//! | `OCIPKG_AUTH_<HOST>`, `OCIPKG_USERNAME`, `OCIPKG_PASSWORD`, `DOCKER_CONFIG`, `XDG_RUNTIME_DIR` | credentials: see [Credentials](#credentials) |
//! | `OCIPKG_CONFIG` | the registry configuration file (see [Registry configuration](#registry-configuration)) |
//! | `OCIPKG_INSECURE_REGISTRIES` | comma-separated `host[:port]` reached over plain HTTP (loopback registries always are): `host` alone is every port of it, `host:port` that port only |
//! | `TARGET`, `HOST`, `CARGO_CFG_TARGET_OS`, `CARGO_CFG_TARGET_ENV` | set by cargo: the target whose build and library names are chosen, and whether the build is native |
//! | `OCIPKG_TARGET_GLIBC` | the glibc of the oldest system the build must run on (`2.31`); packages needing a newer one are not linked. Default: this system's, for a native Linux GNU build |
//! | `OCIPKG_MAX_UNPACKED_MIB`, `OCIPKG_MAX_EXPANSION`, `OCIPKG_MAX_FILES` | limits of what one package may unpack to: MiB (default 4096), unpacked bytes per compressed byte past 64 MiB (default 100), entries (default 100000) |
//! | `OCIPKG_TIMEOUT_SECS` | time limit of one fetch or push, in seconds (default 1800) |
//! | `SOURCE_DATE_EPOCH` | producer: timestamp of files in packed layers (default 0) and `created` |
//! | `OCIPKG_UPLOAD_CHUNK_MIB` | producer: chunk size of uploads of large blobs (default 16) |
//! | `CARGO`, `RUSTC` | `cargo ocipkg`: the cargo to run and the compiler asked for the host triple |
//!
//! In a build script every variable read (except those cargo sets) is also
//! announced with `cargo:rerun-if-env-changed`.
//!
//! # Credentials
//!
//! Looked up by registry host, first match wins: `OCIPKG_AUTH_<HOST>=user:password`
//! (`HOST` the registry with port, upper-cased, every other character than
//! letters and digits turned into `_`: `localhost:5000` →
//! `OCIPKG_AUTH_LOCALHOST_5000`); `OCIPKG_USERNAME`/`OCIPKG_PASSWORD` (for
//! the registries a build names, never for mirrors); Docker's
//! `$DOCKER_CONFIG/config.json` (`credHelpers`, `credsStore`, `auths`); podman's
//! `auth.json`. They are sent only when the registry itself asks (a 401 from
//! its own origin), to its token realm over HTTPS (plain HTTP only on a
//! plain-HTTP registry's own host), and never appear in any output.
//!
//! # Registry configuration
//!
//! `OCIPKG_CONFIG`, default `registries.json` in the per-user config dir:
//! `{"registries": {"HOST[:PORT]": {...}}}` with, per registry, `plain_http`,
//! `insecure_tls`, `ca_certs` (PEM files), `mirrors` (`host[:port][/prefix]`,
//! asked for content by digest; tags are resolved at the registry itself) and
//! `trust_mirror_tags` (let mirrors resolve tags while the registry is
//! unreachable). Unknown keys are errors.
//!
//! # Lockfile
//!
//! `ocipkg.lock` next to the consumer's `Cargo.toml` maps references to
//! manifest digests, one `registry/repository:tag sha256:<hex>` per line. A
//! locked reference is fetched by its digest and its tag never looked up.
//!
//! # Platforms
//!
//! A tag may hold an OCI image index with one entry per target, each with
//! its OCI `platform` and the annotation `vnd.ocipkg.target` (the Rust
//! triple). The entry with the build's triple is taken, else one with the
//! same OCI os/architecture/variant and ABI; among several, on Linux GNU,
//! the one with the highest glibc floor (`vnd.ocipkg.glibc`) the target's
//! glibc runs. No match is [`Error::NoPrebuilt`] or [`Error::RuntimeTooOld`].
//!
//! # Package format
//!
//! An OCI image manifest with `artifactType`
//! `application/vnd.ocipkg.v1.artifact`; a config of media type
//! `application/vnd.ocipkg.config.v1+json` holding link metadata
//! (`libraries` in link order with `kind` static/dylib, `system_libraries`,
//! `frameworks`, `include_dirs`, `pkg_config`, and `root_dir`: the directory
//! of the tree holding `lib/` and `include/`, from `ocipkg pack --root-dir`),
//! or the OCI empty config; and
//! `tar+gzip` or `tar+zstd` layers (also plain tar, Docker layers, ORAS file
//! layers, upstream ocipkg layers) holding `lib/`, `include/`, …. A
//! pkg-config file (named, or found in `lib/pkgconfig`) adds its `Libs`,
//! `Libs.private` (static linking) and `Cflags -I` where the metadata says
//! nothing. Every value that reaches a `cargo:` line is validated.
//!
//! # Cache layout
//!
//! `pkgs/sha256/<manifest hex>/{manifest.json,config.json,root/}` (files
//! read-only, checked against the digest on use), with
//! `refs/<registry>/<repository>/_tags/<tag>` recording the digest a tag had
//! when last fetched (for offline builds and outages), `indexes/` for
//! multi-platform indexes, `tmp/` for fetches in progress and `locks/` for
//! one-download-at-a-time locks. A package directory appears only after
//! every digest matched.
//!
//! # Producer
//!
//! With the `producer` feature (which the `cli` feature, for the `ocipkg`
//! and `cargo-ocipkg` tools, turns on), `ocipkg::publish` packs, pushes,
//! saves, loads and inspects packages and builds container images. Consumers
//! never compile it.
//!
//! The `libzstd` feature (included in `producer`) decodes zstd layers with
//! the C libzstd, about four times faster than the pure-Rust decoder used
//! otherwise, at the cost of compiling libzstd.
//!
//! # Architecture
//!
//! Folders are layers; each uses only those before it
//! (`python3 ../shared/tools/layers.py src` checks it):
//!
//! 1. `error`, `env`, `files`: the error type; every environment variable
//!    and its reader; file helpers (atomic writes, temp dirs, safe placing).
//! 2. `oci/`: vocabulary: references, digests, platforms and glibc floors,
//!    media types and link metadata, manifests and the `Source` trait.
//! 3. `registry/`: one client per repository (auth, credentials, the
//!    configuration file, retries, resumable downloads, uploads).
//! 4. `store/`: the cache, the verified stream from a source into it
//!    (parallel decode, unpack under the safety rules), the lockfile, OCI
//!    layouts, and the `Session` every operation runs in (environment,
//!    configuration, cache, time limit: read once).
//! 5. `link/`: `Linker` and `Package`, library discovery, pkg-config,
//!    directives, shared-library staging.
//! 6. `publish/` (feature `producer`) and `cli/` (feature `cli`) on top.
//!
//! Data flows one way: reference → resolve (`oci::manifest`, a
//! `registry::client` or a layout) → verified stream (`store::stream`,
//! `store::decode`, `store::unpack`) → cache (`store::cache`) → directives
//! (`link`). A registry feature goes into `registry/` (and a setting into
//! `Session`); a package-format field into `oci/format.rs` and its use into
//! `link/`; a CLI command into `cli/` over a `publish/` function.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod env;
mod error;
mod files;
mod link;
mod oci;
#[cfg(feature = "producer")]
pub mod publish;
mod registry;
mod store;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;

use std::path::PathBuf;

pub use error::{Error, Missing, NetworkKind, Result};
pub use link::directive::{Directive, LinkKind};
pub use link::discover::Library;
pub use link::{Linker, Package};
pub use store::fetch::Fetched;

use store::session::Session;

/// Fetches the package `reference` and links its static libraries: the
/// common case of [`Linker::link`] with default options.
pub fn link_package(reference: &str) -> Result<Package> {
    Linker::new().link(reference)
}

/// In the build script of a crate with binaries (an application, or an
/// example-bearing crate), makes its binaries find the shared libraries that
/// its dependencies linked with ocipkg: copies them (versioned names
/// included) next to the binaries in `target/<profile>/` and gives this
/// crate's binaries an rpath of their own directory (`$ORIGIN`,
/// `@loader_path`; Windows looks next to the `.exe`). A binary copied
/// together with those files then runs anywhere, loading the packaged
/// libraries rather than system copies of the same name. Returns the
/// installed files.
///
/// The dependency must be a `links = "..."` crate whose build script called
/// [`link_package`] (or [`Linker::link`]): it passes the staging directory
/// as `DEP_<LINKS>_OCIPKG_DYLIBS`, which cargo gives to direct dependants.
///
/// ```no_run
/// // In the `main` of the application's build.rs:
/// if let Err(e) = ocipkg::install_dependency_dylibs() {
///     eprintln!("{e}");
///     std::process::exit(1);
/// }
/// ```
pub fn install_dependency_dylibs() -> Result<Vec<PathBuf>> {
    let session = Session::process(true);
    let result = link::install_dependency_dylibs(session.env());
    let mut directives = link::rerun_directives(session.env());
    if let Ok((_, installed)) = &result {
        directives.extend(installed.iter().cloned());
    }
    link::directive::print(&directives);
    result.map(|(files, _)| files)
}
