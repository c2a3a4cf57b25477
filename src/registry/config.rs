//! The registry configuration file: per-registry transport settings and
//! mirrors.
//!
//! `OCIPKG_CONFIG` names the file; by default it is `registries.json` in the
//! per-user config directory (`~/.config/ocipkg/registries.json` on Linux).
//! A missing file means defaults. Example:
//!
//! ```json
//! {
//!   "registries": {
//!     "registry.internal:5000": { "plain_http": true },
//!     "harbor.corp.example": { "ca_certs": ["/etc/ssl/corp-ca.pem"] },
//!     "test.example": { "insecure_tls": true },
//!     "ghcr.io": { "mirrors": ["mirror.corp.example/ghcr"] }
//!   }
//! }
//! ```
//!
//! - `plain_http`: reach the registry over `http://` (default: only loopback
//!   registries and those in `OCIPKG_INSECURE_REGISTRIES`).
//! - `insecure_tls`: HTTPS without verifying the certificate.
//! - `ca_certs`: PEM files whose certificates (and only those) verify the
//!   registry's certificate.
//! - `mirrors`: `host[:port][/path-prefix]` tried in order before the
//!   registry itself when pulling; the repository path is appended to the
//!   prefix. Mirrors only serve content: a tag is resolved at the registry
//!   itself (or taken from `ocipkg.lock`), and mirrors are asked for that
//!   digest. Every digest is verified whatever the source, so a mirror can
//!   make a pull fail over to the next source (with a warning) but never
//!   change what is linked.
//! - `trust_mirror_tags`: when the registry itself cannot be reached, let
//!   its mirrors resolve tags (they could then choose what is linked).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::env::{self, Env};
use crate::error::{Error, Result};

/// Settings of one registry.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryConfig {
    #[serde(default)]
    pub plain_http: Option<bool>,
    #[serde(default)]
    pub insecure_tls: bool,
    #[serde(default)]
    pub ca_certs: Vec<PathBuf>,
    #[serde(default)]
    pub mirrors: Vec<String>,
    #[serde(default)]
    pub trust_mirror_tags: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    registries: HashMap<String, RegistryConfig>,
}

/// The loaded configuration.
#[derive(Debug, Default)]
pub(crate) struct Config {
    registries: HashMap<String, RegistryConfig>,
}

impl Config {
    /// Reads `OCIPKG_CONFIG`, or the default file if it exists.
    pub(crate) fn load(env: &Env) -> Result<Self> {
        let (path, explicit) = match env.get(env::CONFIG) {
            Some(path) => (PathBuf::from(path), true),
            None => match directories::ProjectDirs::from("", "", "ocipkg") {
                Some(dirs) => (dirs.config_dir().join("registries.json"), false),
                None => return Ok(Config::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(e) => Err(Error::io(
                format!("reading the registry configuration {}", path.display()),
                e,
            )),
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let file: File = serde_json::from_str(text).map_err(|e| {
            Error::config(
                format!(
                    "the registry configuration {} is invalid: {e}",
                    path.display()
                ),
                "see README's \"Registry configuration\" for its format: \
                 {\"registries\": {\"HOST\": {\"plain_http\", \"insecure_tls\", \"ca_certs\", \
                 \"mirrors\", \"trust_mirror_tags\"}}}",
            )
        })?;
        Ok(Config {
            registries: file.registries,
        })
    }

    /// The settings of `registry` (defaults if it is not listed).
    pub(crate) fn registry(&self, registry: &str) -> RegistryConfig {
        self.registries.get(registry).cloned().unwrap_or_default()
    }
}

/// Whether `OCIPKG_INSECURE_REGISTRIES` (comma-separated `host[:port]`)
/// lists `registry` (as written in references, with its port) or the host
/// serving its API: an entry with a port matches that port only, an entry
/// without one every port of its host.
pub(crate) fn listed_insecure(list: &str, registry: &str, api_host: &str) -> bool {
    let matches = |entry: &str, registry: &str| {
        let host = crate::oci::reference::host_of(entry);
        if host.len() == entry.len() {
            host.eq_ignore_ascii_case(crate::oci::reference::host_of(registry))
        } else {
            entry.eq_ignore_ascii_case(registry)
        }
    };
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .any(|entry| matches(entry, registry) || matches(entry, api_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts_match_every_port_and_host_ports_one() {
        let listed = |list: &str, registry: &str| listed_insecure(list, registry, registry);
        assert!(listed("registry.lan", "registry.lan"));
        assert!(listed("registry.lan", "registry.lan:5000"));
        assert!(listed("other, Registry.LAN", "registry.lan:5001"));
        assert!(listed("registry.lan:5000", "registry.lan:5000"));
        assert!(!listed("registry.lan:5000", "registry.lan:5001"));
        assert!(!listed("registry.lan:5000", "registry.lan"));
        assert!(!listed("registry.lan", "registry.lan.example"));
        assert!(!listed("lan", "registry.lan"));
        assert!(!listed("", "registry.lan"));
        assert!(listed("[fd00::1]", "[fd00::1]:5000"));
        assert!(listed("[fd00::1]:5000", "[fd00::1]:5000"));
        assert!(!listed("[fd00::1]:5000", "[fd00::1]:5001"));
        // Docker Hub: the API host counts too.
        assert!(listed_insecure(
            "registry-1.docker.io",
            "docker.io",
            "registry-1.docker.io"
        ));
    }

    #[test]
    fn parses_entries_and_rejects_typos() {
        let config = Config::parse(
            r#"{"registries": {"r:5000": {"plain_http": true, "mirrors": ["m/x"]}}}"#,
            Path::new("c.json"),
        )
        .unwrap();
        let r = config.registry("r:5000");
        assert_eq!(r.plain_http, Some(true));
        assert_eq!(r.mirrors, ["m/x"]);
        assert_eq!(config.registry("other"), RegistryConfig::default());
        let err = Config::parse(
            r#"{"registries": {"r": {"plain-http": true}}}"#,
            Path::new("c.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("plain-http") && err.contains("c.json"),
            "{err}"
        );
    }
}
