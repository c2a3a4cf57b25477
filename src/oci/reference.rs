//! Image references: `[registry[:port]/]repository[:tag][@sha256:<64 hex>]`.
//!
//! Follows the grammar of the distribution project's `reference` package,
//! including Docker Hub's defaults.
//!
//! Why not `oci_spec::distribution::Reference`: it needs oci-spec's
//! `distribution` feature (more code in every consumer build), and its parse
//! errors say that a reference is invalid, not which part is wrong and what
//! it should look like, which is what a build-script error must say. This
//! parser is a few hundred lines with tests, and also handles what ocipkg
//! needs around references (mirrors, the plain-HTTP loopback rule).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The registry name used when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses a reference, saying which part is wrong when it is invalid.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidReference {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(bad("the reference is empty".into()));
        }
        if input.trim() != input {
            return Err(bad(
                "the reference has leading or trailing white space".into()
            ));
        }
        if let Some((scheme, rest)) = input.split_once("://") {
            return Err(bad(scheme_reason(scheme, rest)));
        }
        let (name_tag, digest) = match input.split_once('@') {
            Some((n, d)) => (n, Some(parse_digest(d).map_err(bad)?)),
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = name_tag.split_at(last_slash + i);
                (n, Some(&t[1..]))
            }
            None => (name_tag, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(bad)?;
        }
        let (registry, remainder) = match name.split_once('/') {
            Some((first, rest)) if looks_like_registry(first) => {
                check_registry(first).map_err(bad)?;
                (first.to_string(), rest)
            }
            _ => (DOCKER_HUB.to_string(), name),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        check_repository(remainder).map_err(bad)?;
        let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_string()
        };
        if repository.len() > 255 {
            return Err(bad(
                "the repository name is longer than 255 characters".into()
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry as written (`docker.io` for Docker Hub), with port if any.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) that serves the registry API.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path, e.g. `org/libfoo` or `library/ubuntu`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag as given, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest (`sha256:...`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned,
    /// else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The same reference with another tag and no digest.
    #[cfg(feature = "producer")]
    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        check_tag(tag).map_err(|reason| Error::InvalidReference {
            input: format!("{}/{}:{tag}", self.registry, self.repository),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same reference pinned to `digest` (the tag is kept for display).
    pub(crate) fn with_digest(&self, digest: &str) -> Self {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The same repository on a mirror `host[:port][/path-prefix]`.
    pub(crate) fn on_mirror(&self, mirror: &str) -> Result<Self> {
        let mirror = mirror.trim_end_matches('/');
        let host = mirror.split('/').next().unwrap_or(mirror);
        let mut on = Reference::parse(&format!("{mirror}/{}", self.repository))?;
        if on.registry != host {
            return Err(Error::config(
                format!("mirror `{mirror}` does not start with a registry host"),
                "write mirrors as `host[:port][/path-prefix]` with a host that has a `.` or a \
                 port (or is `localhost`), in the registry configuration",
            ));
        }
        on.tag = self.tag.clone();
        on.digest = self.digest.clone();
        Ok(on)
    }

    /// Whether the registry is on this machine (`localhost`, `127.0.0.0/8`, `[::1]`):
    /// only those are reached over plain HTTP by default.
    pub fn is_loopback(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost"
            || host == "[::1]"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Why `scheme://rest` is no reference, and, for `http://`, how plain HTTP
/// is chosen instead.
fn scheme_reason(scheme: &str, rest: &str) -> String {
    let mut reason = format!("a reference has no scheme (`{scheme}://`): write `{rest}`");
    if scheme.eq_ignore_ascii_case("http") {
        let plain = match Reference::parse(rest) {
            Ok(r) if r.is_loopback() => format!(
                "{} is a loopback registry: it is reached over plain HTTP already",
                r.registry()
            ),
            Ok(r) => format!(
                "registries other than loopback ones are reached over HTTPS; to reach {0} \
                 over plain HTTP, set {1}={0} (comma-separated; a host without a port \
                 covers all its ports), or give it `\"plain_http\": true` in the registry \
                 configuration ({2})",
                r.registry(),
                crate::env::INSECURE_REGISTRIES,
                crate::env::CONFIG
            ),
            Err(_) => format!(
                "registries other than loopback ones are reached over HTTPS; list a \
                 plain-HTTP registry's host[:port] in {}",
                crate::env::INSECURE_REGISTRIES
            ),
        };
        reason.push_str(&format!("\n  plain HTTP: {plain}"));
    }
    reason
}

/// The host part of `host[:port]`, keeping IPv6 brackets.
pub(crate) fn host_of(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |i| &registry[..=i]);
    }
    registry.split(':').next().unwrap_or(registry)
}

/// Docker's rule: the first component is a registry if it has a `.` or a `:`,
/// is `localhost`, or has upper-case letters (which repositories cannot have).
fn looks_like_registry(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.starts_with('[')
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn check_registry(registry: &str) -> std::result::Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(format!(
                "registry `{registry}`: IPv6 address lacks a closing `]`"
            ));
        };
        let addr = &rest[..end];
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "registry `{registry}`: `{addr}` is not an IPv6 address"
            ));
        }
        match &rest[end + 1..] {
            "" => (registry, None),
            p => match p.strip_prefix(':') {
                Some(port) => (&registry[..end + 2], Some(port)),
                None => return Err(format!("registry `{registry}`: junk after `]`")),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) || port.len() > 5 {
            return Err(format!(
                "registry `{registry}`: port `{port}` is not a number"
            ));
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return Err(format!(
                "registry `{registry}`: port `{port}` is out of range"
            ));
        }
    }
    if !host.starts_with('[') {
        for label in host.split('.') {
            let ok = !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!(
                    "registry `{registry}`: host `{host}` is not a valid host name \
                     (letters, digits and `-` between dots)"
                ));
            }
        }
    }
    Ok(())
}

fn check_repository(repository: &str) -> std::result::Result<(), String> {
    if repository.is_empty() {
        return Err("the repository name is empty".into());
    }
    for component in repository.split('/') {
        if component.is_empty() {
            return Err(format!(
                "repository `{repository}` has an empty path component (`//` or a trailing `/`)"
            ));
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "repository `{repository}` must be lower case (`{component}` is not)"
            ));
        }
        if !valid_path_component(component) {
            return Err(format!(
                "repository component `{component}` is invalid: use lower-case letters and \
                 digits, separated by `.`, `_`, `__` or `-`"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let alnum = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit();
    let bytes: Vec<char> = c.chars().collect();
    let mut i = 0;
    let mut need_alnum = true;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            need_alnum = false;
            i += 1;
            continue;
        }
        if need_alnum {
            return false;
        }
        // a separator run
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep: String = bytes[start..i].iter().collect();
        let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|ch| ch == '-');
        if !ok {
            return false;
        }
        need_alnum = true;
    }
    !need_alnum
}

fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let mut chars = tag.chars();
    let valid = match chars.next() {
        Some(first) => {
            (first.is_ascii_alphanumeric() || first == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        None => return Err("the tag after `:` is empty".into()),
    };
    if !valid {
        return Err(format!(
            "tag `{tag}` is invalid: use letters, digits, `_`, `.` and `-`, not starting with \
             `.` or `-`"
        ));
    }
    if tag.len() > 128 {
        return Err(format!("tag `{tag}` is longer than 128 characters"));
    }
    Ok(())
}

fn parse_digest(d: &str) -> std::result::Result<String, String> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err(format!(
            "digest `{d}` lacks the algorithm: write `sha256:<64 hex digits>`"
        ));
    };
    if algorithm != "sha256" {
        return Err(format!(
            "digest algorithm `{algorithm}` is not supported: use sha256"
        ));
    }
    if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return Err(format!(
            "digest `{d}` must be `sha256:` followed by 64 lower-case hex digits"
        ));
    }
    Ok(d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(s).unwrap();
        (
            r.registry().to_string(),
            r.repository().to_string(),
            r.tag().map(String::from),
            r.digest().map(String::from),
        )
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(
            parts("ubuntu"),
            ("docker.io".into(), "library/ubuntu".into(), None, None)
        );
        let r = Reference::parse("ubuntu").unwrap();
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(
            parts("org/foo:1.2"),
            (
                "docker.io".into(),
                "org/foo".into(),
                Some("1.2".into()),
                None
            )
        );
        assert_eq!(parts("index.docker.io/org/foo").0, "docker.io".to_string());
    }

    #[test]
    fn registries_with_ports_and_digests() {
        assert_eq!(
            parts("localhost:5000/a/b:v1"),
            (
                "localhost:5000".into(),
                "a/b".into(),
                Some("v1".into()),
                None
            )
        );
        assert_eq!(
            parts(&format!("127.0.0.1:5000/libfoo@{D}")),
            (
                "127.0.0.1:5000".into(),
                "libfoo".into(),
                None,
                Some(D.into())
            )
        );
        assert_eq!(
            parts(&format!("ghcr.io/org/lib-foo_bar.x:1.0@{D}")),
            (
                "ghcr.io".into(),
                "org/lib-foo_bar.x".into(),
                Some("1.0".into()),
                Some(D.into())
            )
        );
        assert_eq!(parts("[::1]:5000/foo").0, "[::1]:5000".to_string());
        assert_eq!(parts("localhost/foo").0, "localhost".to_string());
        let r = Reference::parse(&format!("localhost:1/x@{D}")).unwrap();
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("localhost:1/x@{D}"));
    }

    #[test]
    fn mirrors_keep_repository_tag_and_digest() {
        let r = Reference::parse(&format!("ghcr.io/org/foo:1@{D}")).unwrap();
        let m = r.on_mirror("mirror.example:5000/ghcr/").unwrap();
        assert_eq!(
            m.to_string(),
            format!("mirror.example:5000/ghcr/org/foo:1@{D}")
        );
        let hub = Reference::parse("ubuntu:22.04")
            .unwrap()
            .on_mirror("127.0.0.1:1")
            .unwrap();
        assert_eq!(hub.to_string(), "127.0.0.1:1/library/ubuntu:22.04");
        assert!(r.on_mirror("mirror").is_err());
    }

    #[test]
    fn loopback_detection() {
        for s in [
            "localhost:5000/a",
            "127.0.0.1/a",
            "127.1.2.3:80/a",
            "[::1]:5000/a",
        ] {
            assert!(Reference::parse(s).unwrap().is_loopback(), "{s}");
        }
        for s in ["ghcr.io/a", "10.0.0.1:5000/a", "localhost.example.com/a"] {
            assert!(!Reference::parse(s).unwrap().is_loopback(), "{s}");
        }
    }

    #[test]
    fn an_http_scheme_says_how_to_use_plain_http() {
        let err = Reference::parse("http://registry.lan:5000/org/foo:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no scheme (`http://`): write `registry.lan:5000/org/foo:1`")
                && err.contains("\n  plain HTTP: ")
                && err.contains("OCIPKG_INSECURE_REGISTRIES=registry.lan:5000")
                && err.contains("help:"),
            "{err}"
        );
        let err = Reference::parse("http://127.0.0.1:5000/foo")
            .unwrap_err()
            .to_string();
        assert!(err.contains("plain HTTP already"), "{err}");
        let err = Reference::parse("https://ghcr.io/org/foo:1")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("plain HTTP"), "{err}");
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("", "empty"),
            ("ghcr.io/Org/foo", "lower case"),
            ("ghcr.io/org/foo:", "tag after `:` is empty"),
            ("ghcr.io/org/foo:.bad", "tag `.bad`"),
            ("ghcr.io/org//foo", "empty path component"),
            ("ghcr.io/org/foo@sha256:abc", "64 lower-case hex"),
            ("ghcr.io/org/foo@md5:abc", "algorithm `md5`"),
            ("localhost:99999/foo", "out of range"),
            ("localhost:abc/foo", "not a number"),
            ("ex_ample.com/foo", "not a valid host name"),
            ("ghcr.io/org/foo--.x", "component `foo--.x`"),
            (" ghcr.io/foo", "white space"),
            (
                "docker://ghcr.io/org/foo:1",
                "no scheme (`docker://`): write `ghcr.io/org/foo:1`",
            ),
            ("https://ghcr.io/org/foo", "no scheme (`https://`)"),
        ];
        for (input, needle) in cases {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(err.contains("help:"), "{err}");
        }
    }
}
