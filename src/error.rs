//! The one error type of the crate.
//!
//! Every variant renders as a short first line saying what failed, followed by
//! indented lines saying why and what to do. `Debug` delegates to `Display`, so
//! `.unwrap()` in a build script prints the advice instead of a struct dump.

use std::fmt;
use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while resolving, fetching, unpacking, linking
/// or publishing a package.
#[non_exhaustive]
pub enum Error {
    /// The image reference could not be parsed.
    InvalidReference {
        /// The reference as given.
        input: String,
        /// Which part is wrong and why.
        reason: String,
    },
    /// The registry answered with an unexpected HTTP status.
    Registry {
        /// What we were doing, e.g. "fetching manifest of ghcr.io/a/b:1".
        action: String,
        /// HTTP status code.
        status: u16,
        /// The registry's own message, if it sent one.
        message: String,
    },
    /// The registry refused access (HTTP 401/403).
    Auth {
        /// What we were doing.
        action: String,
        /// 401 or 403.
        status: u16,
        /// The registry, as written in references.
        registry: String,
        /// Which credentials were tried (never the credentials themselves).
        tried: String,
        /// The registry's own message.
        message: String,
    },
    /// The registry could not be reached (DNS, connect, TLS, broken transfer).
    Network {
        /// What we were doing.
        action: String,
        /// What kind of failure: decides retries and advice.
        kind: NetworkKind,
        /// The underlying error, as shown (credentials masked).
        detail: String,
        /// The transport's own error, when there is one.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Content did not match the digest that names it.
    DigestMismatch {
        /// What was verified, e.g. "layer 0 of 127.0.0.1:5000/foo:1".
        what: String,
        /// The digest the manifest (or the reference) promised.
        expected: String,
        /// The digest of the bytes we received.
        actual: String,
    },
    /// Content did not have the size its descriptor promised.
    SizeMismatch {
        /// What was verified.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size received.
        actual: u64,
    },
    /// A manifest, index, layout or config could not be understood.
    InvalidContent {
        /// What was being read.
        what: String,
        /// Why it is not acceptable.
        reason: String,
    },
    /// The package breaks a safety rule (an entry reaching outside the
    /// package, a value that would inject cargo directives, a decompression
    /// bomb) and is refused.
    Refused {
        /// What was being read, naming the package.
        what: String,
        /// Which entry or field broke which rule.
        reason: String,
        /// What to do.
        help: String,
    },
    /// The package exists but has no build for the target (a multi-platform
    /// package without a matching entry). See [`Error::is_no_prebuilt`].
    NoPrebuilt {
        /// The package, as `package <reference>`.
        package: String,
        /// The target, with its OCI os/architecture.
        target: String,
        /// The platforms the package has.
        available: Vec<String>,
    },
    /// The package's builds for the target need a newer C library (glibc)
    /// than the target has. See [`Error::is_no_prebuilt`].
    RuntimeTooOld {
        /// The package, as `package <reference>`.
        package: String,
        /// What its oldest usable build needs, e.g. `glibc 2.38`.
        needs: String,
        /// What the target has and where that was learnt.
        has: String,
    },
    /// The registry does not know the repository, or the tag or digest.
    NotFound {
        /// What we were doing.
        action: String,
        /// Which of the two is missing, as far as the registry said.
        missing: Missing,
        /// The registry's own message.
        message: String,
    },
    /// The package holds no library this target can link.
    NoLibraries {
        /// The reference of the package.
        reference: String,
        /// Where the package was unpacked.
        root: PathBuf,
        /// The target being built for.
        target: String,
        /// File name patterns that were looked for.
        looked_for: String,
    },
    /// Offline (`OCIPKG_OFFLINE`, `CARGO_NET_OFFLINE`) and not in the cache.
    Offline {
        /// The reference that is missing.
        reference: String,
    },
    /// A file system operation failed.
    Io {
        /// What we were doing, naming the path.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A setting cannot be used: an environment variable, the registry
    /// configuration file, a credential store, the lockfile, the cache
    /// directory.
    Config {
        /// What is wrong, naming the setting.
        problem: String,
        /// What to do about it.
        help: String,
    },
    /// ocipkg itself failed (a worker thread panicked): a bug to report.
    Bug {
        /// What happened.
        detail: String,
    },
    /// A function or command was called in a way that cannot work (a bad
    /// argument, an output that exists).
    Usage {
        /// What is wrong.
        problem: String,
        /// What to do about it.
        help: String,
    },
    /// An external command (cargo, git) failed.
    Command {
        /// The command line.
        command: String,
        /// Exit status or spawn error, and its stderr tail.
        detail: String,
    },
}

/// `OCIPKG_AUTH_<HOST>`, the variable holding credentials for one registry:
/// its host and port upper-cased, every other character than letters and
/// digits turned into `_`.
pub(crate) fn auth_var(registry: &str) -> String {
    let host: String = registry
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("OCIPKG_AUTH_{host}")
}

/// Why a registry could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkKind {
    /// A refused, broken or stalled connection: may go away by itself, so
    /// it is retried.
    Transfer,
    /// The host name does not resolve: a typo, or no network at all.
    HostNotFound,
    /// The TLS handshake failed (certificate not trusted, wrong host).
    Tls,
    /// The operation's time limit (`OCIPKG_TIMEOUT_SECS`) ran out.
    TimeLimit,
}

/// What a registry's 404 says is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// The repository (`NAME_UNKNOWN`).
    Repository,
    /// The tag or digest in a repository that exists (`MANIFEST_UNKNOWN`,
    /// `BLOB_UNKNOWN`).
    Content,
    /// The registry did not say which.
    Unknown,
}

impl Error {
    /// Whether no prebuilt package is there to link: the reference's
    /// repository, tag or digest does not exist, the package has no build
    /// for the target, or no library for it. Something broken (network,
    /// authentication, integrity, a refused package) is not. A build script
    /// may fall back to building from source on these:
    ///
    /// ```no_run
    /// match ocipkg::link_package("ghcr.io/org/libfoo:1.2") {
    ///     Ok(_) => {}
    ///     Err(e) if e.is_no_prebuilt() => { /* build from source with cc */ }
    ///     Err(e) => {
    ///         eprintln!("{e}");
    ///         std::process::exit(1);
    ///     }
    /// }
    /// ```
    pub fn is_no_prebuilt(&self) -> bool {
        matches!(
            self,
            Error::NoPrebuilt { .. }
                | Error::NotFound { .. }
                | Error::NoLibraries { .. }
                | Error::RuntimeTooOld { .. }
        )
    }

    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidContent {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn refused(
        what: impl Into<String>,
        reason: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Error::Refused {
            what: what.into(),
            reason: reason.into(),
            help: help.into(),
        }
    }

    /// Whether this is the registry being unreachable or failing (network,
    /// 5xx, 429 after retries) rather than an answer (401, 404, bad content).
    pub(crate) fn is_outage(&self) -> bool {
        matches!(
            self,
            Error::Network {
                kind: NetworkKind::Transfer | NetworkKind::HostNotFound | NetworkKind::TimeLimit,
                ..
            } | Error::Registry {
                status: 429 | 500..=599,
                ..
            }
        )
    }

    pub(crate) fn network(
        action: impl Into<String>,
        kind: NetworkKind,
        detail: impl Into<String>,
    ) -> Self {
        Error::Network {
            action: action.into(),
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// [`Error::network`] keeping the transport's error as the source.
    pub(crate) fn network_from(
        action: impl Into<String>,
        kind: NetworkKind,
        detail: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Network {
            action: action.into(),
            kind,
            detail: detail.into(),
            source: Some(Box::new(source)),
        }
    }

    pub(crate) fn config(problem: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Config {
            problem: problem.into(),
            help: help.into(),
        }
    }

    pub(crate) fn usage(problem: impl Into<String>, help: impl Into<String>) -> Self {
        Error::Usage {
            problem: problem.into(),
            help: help.into(),
        }
    }
}

impl Error {
    /// The message for a person who ran the `ocipkg` or `cargo ocipkg`
    /// command: `Display`'s, with advice in terms of commands where
    /// `Display` speaks of the library's API (a build script's fallback).
    #[cfg(feature = "cli")]
    pub(crate) fn cli_message(&self) -> String {
        match self {
            Error::NoPrebuilt { .. } | Error::RuntimeTooOld { .. } => {
                self.no_prebuilt_message(true)
            }
            other => other.to_string(),
        }
    }

    /// `NoPrebuilt` and `RuntimeTooOld`, for a build script's author or
    /// (`cli`) a person at the command line.
    fn no_prebuilt_message(&self, cli: bool) -> String {
        match self {
            Error::NoPrebuilt {
                package,
                target,
                available,
            } => {
                let available = if available.is_empty() {
                    "nothing".to_string()
                } else {
                    available.join(", ")
                };
                let publish = "publish a build for this target (`cargo ocipkg publish --target \
                               ...` or `ocipkg pack --target ...` under the same tag)";
                let or = if cli {
                    "or pick one of the targets it has with --target (`ocipkg pull`, \
                     `inspect` and `load` take it)"
                } else {
                    "or build from source when `Error::is_no_prebuilt()` says so"
                };
                format!(
                    "ocipkg: {package} has no build for target {target}\n  \
                     it has: {available}\n  \
                     help: {publish}, {or}."
                )
            }
            Error::RuntimeTooOld {
                package,
                needs,
                has,
            } => {
                let or = if cli {
                    "or, if the binaries will only run on newer systems, set \
                     OCIPKG_TARGET_GLIBC to their glibc (e.g. OCIPKG_TARGET_GLIBC=2.38) and run \
                     the command again"
                } else {
                    "build from source when `Error::is_no_prebuilt()` says so, or, if the \
                     binaries will only run on newer systems, set OCIPKG_TARGET_GLIBC to their \
                     glibc"
                };
                format!(
                    "ocipkg: {package} needs {needs}, but the target has {has}\n  \
                     help: its binaries would fail to link or to load here. Publish a build \
                     made on an older system (ocipkg picks the newest build the target can \
                     run), {or}."
                )
            }
            other => other.to_string(),
        }
    }
}

/// Advice for an HTTP status returned by a registry.
fn status_advice(status: u16) -> &'static str {
    match status {
        401 | 403 => {
            "the registry refused access. Check that the repository exists and is public, or \
             that you are logged in to it with push/pull rights."
        }
        404 => {
            "the registry does not know this repository, tag or digest. Check the reference \
             (spelling, tag) and that the package was published."
        }
        429 => "the registry is rate-limiting this client; wait a moment and build again.",
        500..=599 => "the registry had an internal error; try again later.",
        _ => "check the reference and the registry's address.",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidReference { input, reason } => write!(
                f,
                "ocipkg: invalid image reference `{input}`\n  \
                 reason: {reason}\n  \
                 help: a reference looks like `[registry[:port]/]repository[:tag][@sha256:<64 hex>]`, \
                 e.g. `ghcr.io/org/libfoo:1.2` or `127.0.0.1:5000/libfoo:latest`"
            ),
            Error::Registry {
                action,
                status,
                message,
            } => {
                write!(f, "ocipkg: {action} failed: HTTP {status}")?;
                if !message.is_empty() {
                    write!(f, "\n  registry says: {message}")?;
                }
                write!(f, "\n  help: {}", status_advice(*status))
            }
            Error::Auth {
                action,
                status,
                registry,
                tried,
                message,
            } => {
                let env_var = auth_var(registry);
                write!(f, "ocipkg: {action} failed: HTTP {status}, access denied")?;
                if !message.is_empty() {
                    write!(f, "\n  registry says: {message}")?;
                }
                write!(
                    f,
                    "\n  credentials: {tried}\n  \
                     help: log in with `ocipkg login {registry}` (or `docker login {registry}`), \
                     or set {env_var}=USER:PASSWORD (in CI: OCIPKG_USERNAME and \
                     OCIPKG_PASSWORD); check that the account may access this repository."
                )
            }
            Error::Network {
                action,
                kind: NetworkKind::Tls,
                detail,
                ..
            } => write!(
                f,
                "ocipkg: {action} failed: {detail}\n  \
                 help: the registry's TLS certificate was not accepted. If it is issued by a \
                 private CA, list the CA's PEM file in `ca_certs` of the registry in the registry \
                 configuration (OCIPKG_CONFIG, default ~/.config/ocipkg/registries.json); \
                 `insecure_tls: true` skips verification (test registries only)."
            ),
            Error::Network {
                action,
                kind: NetworkKind::HostNotFound,
                detail,
                ..
            } => write!(
                f,
                "ocipkg: {action} failed: {detail}\n  \
                 help: the registry's host name does not resolve. Check its spelling in the \
                 reference (ghcr.io, docker.io, ...) and this machine's network; to build from \
                 the cache alone, set OCIPKG_OFFLINE=1 (or CARGO_NET_OFFLINE=true)."
            ),
            Error::Network {
                action,
                kind: NetworkKind::TimeLimit,
                detail,
                ..
            } => write!(
                f,
                "ocipkg: {action} failed: {detail}\n  \
                 help: the registry answers too slowly. Raise OCIPKG_TIMEOUT_SECS (seconds, \
                 default 1800) for large packages on slow links; to build from the cache \
                 alone, set OCIPKG_OFFLINE=1 (or CARGO_NET_OFFLINE=true)."
            ),
            Error::Network { action, detail, .. } => write!(
                f,
                "ocipkg: {action} failed: {detail}\n  \
                 help: check that the registry is reachable from this machine. Registries other \
                 than loopback ones are reached over HTTPS; list a plain-HTTP registry in \
                 OCIPKG_INSECURE_REGISTRIES (comma-separated host[:port]; a host alone \
                 matches every port) or give it \
                 `plain_http: true` in the registry configuration (OCIPKG_CONFIG) to use HTTP. \
                 To build from the cache alone, set OCIPKG_OFFLINE=1 (or \
                 CARGO_NET_OFFLINE=true, which cargo honours too)."
            ),
            Error::DigestMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "ocipkg: digest mismatch for {what}\n  \
                 expected: {expected}\n  \
                 actual:   {actual}\n  \
                 help: the content was changed in transit or in the registry's storage. Nothing \
                 was added to the cache. Re-publish the package or report it to its publisher."
            ),
            Error::SizeMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "ocipkg: size mismatch for {what}\n  \
                 expected: {expected} bytes\n  \
                 actual:   {actual} bytes\n  \
                 help: the content was truncated or changed. Nothing was added to the cache; \
                 build again, and if it persists re-publish the package."
            ),
            Error::InvalidContent { what, reason } => write!(
                f,
                "ocipkg: cannot use {what}\n  \
                 reason: {reason}\n  \
                 help: check that the reference names a package made by `ocipkg pack` or \
                 `cargo ocipkg build` (an OCI image manifest with tar layers)."
            ),
            Error::Refused { what, reason, help } => write!(
                f,
                "ocipkg: refusing {what}\n  \
                 reason: {reason}\n  \
                 help: {help}"
            ),
            Error::NoPrebuilt { .. } | Error::RuntimeTooOld { .. } => {
                f.write_str(&self.no_prebuilt_message(false))
            }
            Error::NotFound {
                action,
                missing,
                message,
            } => {
                let what = match missing {
                    Missing::Repository => "the registry has no such repository",
                    Missing::Content => "the repository has no such tag or digest",
                    Missing::Unknown => "the registry does not know this repository, tag or digest",
                };
                write!(f, "ocipkg: {action} failed: HTTP 404, {what}")?;
                if !message.is_empty() {
                    write!(f, "\n  registry says: {message}")?;
                }
                write!(
                    f,
                    "\n  help: check the reference (registry, repository spelling, tag) and that \
                     the package was published there (`ocipkg tags REPOSITORY` lists the tags)."
                )
            }
            Error::NoLibraries {
                reference,
                root,
                target,
                looked_for,
            } => write!(
                f,
                "ocipkg: package {reference} holds no library for target {target}\n  \
                 unpacked at: {}\n  \
                 looked for: {looked_for} in lib/, lib64/, bin/ and the package root\n  \
                 help: publish a package built for {target}, or check the target you build for \
                 (cargo build --target ...).",
                root.display()
            ),
            Error::Offline { reference } => write!(
                f,
                "ocipkg: {reference} is not in the cache, and this build is offline\n  \
                 (OCIPKG_OFFLINE or CARGO_NET_OFFLINE is set)\n  \
                 help: fetch it once while online with `ocipkg pull {reference}` (or a build \
                 with OCIPKG_OFFLINE and CARGO_NET_OFFLINE unset)."
            ),
            Error::Io { action, source } => write!(
                f,
                "ocipkg: {action} failed: {source}\n  \
                 help: check that the path exists and that you may read (or write) it, and \
                 the free space. The cache location can be moved with OCIPKG_CACHE_DIR."
            ),
            Error::Usage { problem, help } | Error::Config { problem, help } => {
                write!(f, "ocipkg: {problem}\n  help: {help}")
            }
            Error::Bug { detail } => write!(
                f,
                "ocipkg: internal error: {detail}\n  \
                 help: this is a bug in ocipkg; please report it with the command that failed."
            ),
            Error::Command { command, detail } => {
                write!(f, "ocipkg: `{command}` failed\n  {detail}")
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Network {
                source: Some(source),
                ..
            } => Some(source.as_ref()),
            _ => None,
        }
    }
}
