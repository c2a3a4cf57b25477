//! Every environment variable ocipkg reads, and the one reader that reads them.
//!
//! In a build script each read also records `cargo:rerun-if-env-changed=NAME`,
//! so that changing the variable re-runs the build script.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::error::{Error, Result};

/// Moves the package cache (default: the per-user cache dir chosen by `directories`).
pub const CACHE_DIR: &str = "OCIPKG_CACHE_DIR";
/// Comma-separated `host[:port]` list of registries reached over plain HTTP.
pub const INSECURE_REGISTRIES: &str = "OCIPKG_INSECURE_REGISTRIES";
/// Target triple being built for (set by cargo for build scripts).
pub const TARGET: &str = "TARGET";
/// Triple of the machine the build runs on (set by cargo for build scripts).
pub const HOST: &str = "HOST";
/// The glibc of the oldest system the build must run on (`2.31`): packages
/// needing a newer one are not linked. Default: this system's, for a native build.
pub const TARGET_GLIBC: &str = "OCIPKG_TARGET_GLIBC";
/// Target OS being built for (set by cargo for build scripts).
pub const CARGO_CFG_TARGET_OS: &str = "CARGO_CFG_TARGET_OS";
/// Target environment (gnu, musl, msvc, ...) being built for (set by cargo for build scripts).
pub const CARGO_CFG_TARGET_ENV: &str = "CARGO_CFG_TARGET_ENV";
/// Path of the registry configuration file.
pub const CONFIG: &str = "OCIPKG_CONFIG";
/// Proxy settings, read by the HTTP client itself; read here too, so a
/// build script reruns when they change.
pub const PROXY_VARS: [&str; 8] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];
/// `1`/`true`: use the cache only.
pub const OFFLINE: &str = "OCIPKG_OFFLINE";
/// `true`: offline. cargo reads it too, so `CARGO_NET_OFFLINE=true cargo build`
/// makes both offline (cargo's `--offline` flag does not reach build scripts).
pub const CARGO_NET_OFFLINE: &str = "CARGO_NET_OFFLINE";
/// `1`/`true`: resolve tags online and write them into `ocipkg.lock`.
pub const UPDATE_LOCK: &str = "OCIPKG_UPDATE_LOCK";
/// Directory of the crate whose build script runs (set by cargo): where `ocipkg.lock` lives.
pub const CARGO_MANIFEST_DIR: &str = "CARGO_MANIFEST_DIR";
/// Set by docs.rs: fetch and link nothing.
pub const DOCS_RS: &str = "DOCS_RS";
/// Upload chunk size in MiB (default 16) for pushes.
#[cfg(feature = "producer")]
pub const UPLOAD_CHUNK_MIB: &str = "OCIPKG_UPLOAD_CHUNK_MIB";
/// Set by cargo for build scripts: where shared libraries are staged.
pub const OUT_DIR: &str = "OUT_DIR";
/// Link metadata key under which a crate's build script tells its
/// dependants where its packages' shared libraries are staged; they read it
/// as `DEP_<LINKS>_OCIPKG_DYLIBS`.
pub const DYLIBS_KEY: &str = "ocipkg_dylibs";
/// Credentials for any registry that asks (with [`PASSWORD`]).
pub const USERNAME: &str = "OCIPKG_USERNAME";
/// Credentials for any registry that asks (with [`USERNAME`]).
pub const PASSWORD: &str = "OCIPKG_PASSWORD";
/// Docker's configuration directory (default `~/.docker`).
pub const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
/// Where podman keeps `containers/auth.json` first.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// The cargo `cargo ocipkg` runs (set by cargo for subcommands).
#[cfg(feature = "cli")]
pub const CARGO: &str = "CARGO";
/// The compiler `cargo ocipkg` asks for the host triple.
#[cfg(feature = "cli")]
pub const RUSTC: &str = "RUSTC";
/// Fixed timestamp for reproducible packs.
#[cfg(feature = "producer")]
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
/// Most bytes one package may unpack to, in MiB (default 4096).
pub const MAX_UNPACKED_MIB: &str = "OCIPKG_MAX_UNPACKED_MIB";
/// Most unpacked bytes per compressed byte of a package, past its first 64 MiB (default 100).
pub const MAX_EXPANSION: &str = "OCIPKG_MAX_EXPANSION";
/// Most entries (files, directories, links) one package may hold (default 100000).
pub const MAX_FILES: &str = "OCIPKG_MAX_FILES";
/// Time limit of one fetch or push, in seconds, whatever the registry does (default 1800).
pub const TIMEOUT_SECS: &str = "OCIPKG_TIMEOUT_SECS";

/// Whether the build must not use the network.
pub(crate) fn is_offline(env: &Env) -> bool {
    is_true(env, OFFLINE) || is_true(env, CARGO_NET_OFFLINE)
}

/// Whether a variable is set to `1`, `true` or `yes`.
pub(crate) fn is_true(env: &Env, name: &str) -> bool {
    env.get(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// `OCIPKG_<NAME>_DIR` for a repository: NAME is its last path segment,
/// upper-cased, with `-` and `.` turned into `_`.
pub(crate) fn package_dir_var(repository: &str) -> String {
    format!("OCIPKG_{}_DIR", package_name(repository))
}

/// `OCIPKG_<NAME>_LINK` (static or dylib), NAME as for [`package_dir_var`].
pub(crate) fn package_link_var(repository: &str) -> String {
    format!("OCIPKG_{}_LINK", package_name(repository))
}

fn package_name(repository: &str) -> String {
    let last = repository.rsplit('/').next().unwrap_or_default();
    last.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

pub(crate) use crate::error::auth_var;

/// A whole number from 1 to `max` in variable `name`, `default` when unset;
/// anything else is an error naming the variable.
pub(crate) fn number(env: &Env, name: &str, default: u64, max: u64) -> Result<u64> {
    match env.get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n >= 1 && n <= max => Ok(n),
            _ => Err(Error::config(
                format!("{name}=`{v}` is not a whole number from 1 to {max}"),
                format!("set {name} to such a number (default {default}), or unset it"),
            )),
        },
    }
}

/// Reads environment variables, optionally recording them for cargo.
///
/// A fake environment can be injected for tests with [`Env::fake`].
pub(crate) struct Env {
    fake: Option<HashMap<String, String>>,
    record: bool,
    read: RefCell<Vec<String>>,
}

impl Env {
    /// The process environment. `record` makes each read emit a rerun directive.
    pub(crate) fn process(record: bool) -> Self {
        Env {
            fake: None,
            record,
            read: RefCell::new(Vec::new()),
        }
    }

    /// A fixed environment for tests.
    #[cfg(test)]
    pub(crate) fn fake(vars: &[(&str, &str)]) -> Self {
        Env {
            fake: Some(
                vars.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            record: true,
            read: RefCell::new(Vec::new()),
        }
    }

    /// The value of `name`, if set to valid unicode and not empty.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        // Variables cargo sets for build scripts change only with what cargo
        // already reruns for: no rerun line (it would only be noise).
        let set_by_cargo = matches!(name, OUT_DIR | TARGET | HOST | CARGO_MANIFEST_DIR)
            || name.starts_with("CARGO_CFG_");
        if self.record && !set_by_cargo {
            let mut read = self.read.borrow_mut();
            if !read.iter().any(|n| n == name) {
                read.push(name.to_string());
            }
        }
        let value = match &self.fake {
            Some(map) => map.get(name).cloned(),
            #[allow(clippy::disallowed_methods)] // the one place that reads the environment
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.is_empty())
    }

    /// The names of the set variables that start with `prefix` and end with
    /// `suffix`, sorted (their values are read with [`Env::get`]).
    pub(crate) fn names_like(&self, prefix: &str, suffix: &str) -> Vec<String> {
        let matches = |n: &str| n.starts_with(prefix) && n.ends_with(suffix);
        let mut names: Vec<String> = match &self.fake {
            Some(map) => map.keys().filter(|n| matches(n)).cloned().collect(),
            #[allow(clippy::disallowed_methods)] // the one place that reads the environment
            None => std::env::vars_os()
                .filter_map(|(n, _)| n.into_string().ok())
                .filter(|n| matches(n))
                .collect(),
        };
        names.sort();
        names
    }

    /// The variables read so far, for `cargo:rerun-if-env-changed` (empty
    /// unless recording).
    pub(crate) fn read_names(&self) -> Vec<String> {
        self.read.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_dir_variable_names() {
        assert_eq!(package_dir_var("org/lib-foo.x"), "OCIPKG_LIB_FOO_X_DIR");
        assert_eq!(auth_var("localhost:5000"), "OCIPKG_AUTH_LOCALHOST_5000");
    }

    #[test]
    fn offline_from_either_variable() {
        assert!(is_offline(&Env::fake(&[("CARGO_NET_OFFLINE", "true")])));
        assert!(is_offline(&Env::fake(&[("OCIPKG_OFFLINE", "1")])));
        assert!(!is_offline(&Env::fake(&[("OCIPKG_OFFLINE", "0")])));
        assert!(!is_offline(&Env::fake(&[])));
    }

    #[test]
    fn reads_are_recorded_once() {
        let env = Env::fake(&[("A", "1"), ("EMPTY", "")]);
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("A").as_deref(), Some("1"));
        assert_eq!(env.get("EMPTY"), None);
        assert_eq!(env.get("MISSING"), None);
        assert_eq!(env.read_names(), ["A", "EMPTY", "MISSING"]);
    }
}
