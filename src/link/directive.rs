//! Cargo build-script directives, as data.
//!
//! They are collected while a package is linked and printed once at the end by
//! [`print`], so tests can assert on them. Single-colon `cargo:` syntax keeps
//! callers with an MSRV older than 1.77 working.

use std::fmt;
use std::path::PathBuf;

pub use crate::oci::format::LinkKind;

/// One line for cargo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// `cargo:rerun-if-env-changed=NAME`
    RerunIfEnvChanged(String),
    /// `cargo:rerun-if-changed=PATH`
    RerunIfChanged(PathBuf),
    /// `cargo:rustc-link-search=native=DIR`
    LinkSearch(PathBuf),
    /// `cargo:rustc-link-lib=[KIND=]NAME` (no kind: cargo's default, dylib)
    LinkLib(Option<LinkKind>, String),
    /// `cargo:rustc-link-lib=framework=NAME`
    LinkFramework(String),
    /// `cargo:rustc-link-arg=ARG` (applies to the build script's own package's binaries)
    LinkArg(String),
    /// `cargo:KEY=VALUE`, metadata for crates depending on the `links` crate.
    Metadata(String, String),
    /// `cargo:warning=MESSAGE`
    Warning(String),
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Directive::RerunIfEnvChanged(name) => write!(f, "cargo:rerun-if-env-changed={name}"),
            Directive::RerunIfChanged(path) => {
                write!(f, "cargo:rerun-if-changed={}", path.display())
            }
            Directive::LinkSearch(dir) => {
                write!(f, "cargo:rustc-link-search=native={}", dir.display())
            }
            Directive::LinkLib(Some(kind), name) => {
                write!(f, "cargo:rustc-link-lib={kind}={name}")
            }
            Directive::LinkLib(None, name) => write!(f, "cargo:rustc-link-lib={name}"),
            Directive::LinkFramework(name) => write!(f, "cargo:rustc-link-lib=framework={name}"),
            Directive::LinkArg(arg) => write!(f, "cargo:rustc-link-arg={arg}"),
            Directive::Metadata(key, value) => write!(f, "cargo:{key}={value}"),
            Directive::Warning(message) => write!(f, "cargo:warning={message}"),
        }
    }
}

/// Whether `name` may be a library or framework name in a directive:
/// letters, digits and `_ . + -`, not starting with `-` (no `=` or `:` that
/// would change the kind or add modifiers, no line breaks).
pub(crate) fn is_library_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
}

/// Whether `text` may be part of a directive: no control characters, so it
/// cannot end the line and start another.
pub(crate) fn is_plain_text(text: &str) -> bool {
    !text.chars().any(char::is_control)
}

impl Directive {
    /// Why this directive must not be printed, if it must not: a value with
    /// a control character (a line break would start another directive) or
    /// a library name rustc would read as something else.
    pub(crate) fn problem(&self) -> Option<String> {
        let path_text = |p: &PathBuf| p.to_string_lossy().into_owned();
        let (text, name) = match self {
            Directive::RerunIfEnvChanged(v) | Directive::LinkArg(v) | Directive::Warning(v) => {
                (v.clone(), false)
            }
            Directive::RerunIfChanged(p) | Directive::LinkSearch(p) => (path_text(p), false),
            Directive::LinkLib(_, n) | Directive::LinkFramework(n) => (n.clone(), true),
            Directive::Metadata(k, v) => {
                if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || k.is_empty() {
                    return Some(format!(
                        "metadata key `{}` is not a plain word",
                        k.escape_debug()
                    ));
                }
                (v.clone(), false)
            }
        };
        if name && !is_library_name(&text) {
            return Some(format!(
                "`{}` is not a valid library name (letters, digits, `_ . + -`)",
                text.escape_debug()
            ));
        }
        (!is_plain_text(&text)).then(|| {
            format!(
                "`{}` holds a control character (a line break would inject cargo directives)",
                text.escape_debug()
            )
        })
    }
}

/// Prints the directives to stdout, one per line: the only output ocipkg
/// writes to stdout in a build script.
pub fn print(directives: &[Directive]) {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for d in directives {
        // A closed stdout in a build script cannot be reported anywhere useful.
        let _ = writeln!(out, "{d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_single_colon_syntax() {
        assert_eq!(
            Directive::LinkSearch(PathBuf::from("/c/lib")).to_string(),
            "cargo:rustc-link-search=native=/c/lib"
        );
        assert_eq!(
            Directive::LinkLib(Some(LinkKind::Static), "foo".into()).to_string(),
            "cargo:rustc-link-lib=static=foo"
        );
        assert_eq!(
            Directive::Metadata("include".into(), "/x".into()).to_string(),
            "cargo:include=/x"
        );
    }

    #[test]
    fn values_that_would_inject_directives_are_caught() {
        let lib = |n: &str| Directive::LinkLib(None, n.into());
        for good in ["m", "stdc++", "gcc_s", "ssl.3", "c++"] {
            assert_eq!(lib(good).problem(), None, "{good}");
        }
        for bad in [
            "m\ncargo:rustc-env=X=1",
            "static=foo",
            "foo:bar",
            "-lfoo",
            "",
        ] {
            assert!(lib(bad).problem().is_some(), "{bad}");
        }
        let search = Directive::LinkSearch(PathBuf::from("/c/lib\ncargo:warning=x"));
        assert!(search.problem().unwrap().contains("control character"));
        assert!(Directive::Metadata("a\nb".into(), "x".into())
            .problem()
            .is_some());
    }
}
