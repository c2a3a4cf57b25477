//! Link prebuilt static or dynamic libraries from any OCI registry in
//! `build.rs`; pack, publish, save and load them; build container images
//! without a container engine ([`ImageBuilder`]).
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
//! `cargo:rustc-link-lib=static=…` (or `dylib=…`) for each library of the
//! target, choosing the target's build from a multi-platform package (see
//! [`platform`]) and following the package's link metadata (see
//! [`format`](mod@format)). Use [`Linker`] for options.
//!
//! # Environment variables
//!
//! | variable | meaning |
//! |---|---|
//! | `OCIPKG_CACHE_DIR` | cache root (default: the per-user cache dir, e.g. `~/.cache/ocipkg`) |
//! | `OCIPKG_OFFLINE`, `CARGO_NET_OFFLINE` | `1`/`true`: use the cache only; a miss is an error advising `ocipkg pull REF` |
//! | `OCIPKG_<NAME>_DIR` | use this unpacked package directory instead of fetching; `NAME` is the repository's last path segment, upper-cased, with `-` and `.` turned into `_` (`ghcr.io/org/lib-foo` → `OCIPKG_LIB_FOO_DIR`) |
//! | `OCIPKG_<NAME>_LINK` | `static` or `dylib`: which kind to link when the package has both (default static) |
//! | `OUT_DIR` | set by cargo: shared libraries are staged under it |
//! | `OCIPKG_UPDATE_LOCK` | `1`/`true`: resolve tags online and record them in `ocipkg.lock` |
//! | `CARGO_MANIFEST_DIR` | set by cargo: where `ocipkg.lock` is looked for |
//! | `DOCS_RS` | set by docs.rs: fetch and link nothing |
//! | `OCIPKG_AUTH_<HOST>`, `OCIPKG_USERNAME`, `OCIPKG_PASSWORD`, `DOCKER_CONFIG`, `XDG_RUNTIME_DIR` | credentials: see [`credentials`] |
//! | `OCIPKG_CONFIG` | the registry configuration file (see [`config`]) |
//! | `OCIPKG_INSECURE_REGISTRIES` | comma-separated `host[:port]` reached over plain HTTP (loopback registries always are) |
//! | `TARGET`, `CARGO_CFG_TARGET_OS`, `CARGO_CFG_TARGET_ENV` | set by cargo: the target whose build and library names are chosen |
//! | `SOURCE_DATE_EPOCH` | producer: timestamp of files in packed layers (default 0) and `created` |
//! | `OCIPKG_UPLOAD_CHUNK_MIB` | producer: chunk size of uploads of large blobs (default 16) |
//! | `OCIPKG_MAX_UNPACKED_MIB`, `OCIPKG_MAX_EXPANSION`, `OCIPKG_MAX_FILES` | limits of what one package may unpack to: MiB (default 4096), unpacked bytes per compressed byte past 64 MiB (default 100), entries (default 100000) |
//! | `OCIPKG_TIMEOUT_SECS` | time limit of one fetch or push, in seconds (default 1800) |
//! | `OCIPKG_TARGET_GLIBC` | the glibc of the oldest system the build must run on (`2.31`); packages needing a newer one are not linked. Default: this system's, for a native Linux GNU build |
//! | `HOST` | set by cargo: whether the build is native (then this system's glibc is the target's) |
//! | `CARGO`, `RUSTC` | `cargo ocipkg`: the cargo to run and the compiler asked for the host triple |
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
//! `refs/<registry>/<repository>/_tags/<tag>` recording the digest a tag had when
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

mod env;
mod error;
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
