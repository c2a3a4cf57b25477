//! The target being built for, and choosing its entry in a multi-platform
//! package (an OCI image index).
//!
//! Index entries carry an OCI `platform` (os, architecture, variant) and the
//! annotation [`TARGET_ANNOTATION`] with the full Rust target triple. An
//! entry is chosen by the exact triple first, then by OCI os + architecture
//! (+ variant), refusing an entry whose triple names another ABI (gnu, musl,
//! msvc, ...).

use oci_spec::image::{Arch, Descriptor, Os, Platform, PlatformBuilder};

use crate::env::{self, Env};
use crate::error::{Error, Result};

/// Descriptor/manifest annotation holding the Rust target triple.
pub const TARGET_ANNOTATION: &str = "vnd.ocipkg.target";

/// A Rust target: the triple and cargo's `target_os`/`target_env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub triple: String,
    /// `target_arch`-like first component of the triple (`x86_64`, `armv7`, ...).
    pub arch: String,
    /// cargo's `target_os` (`linux`, `macos`, `windows`, ...).
    pub os: String,
    /// cargo's `target_env` (`gnu`, `musl`, `msvc`, or empty).
    pub env: String,
}

impl Target {
    /// From `TARGET`/`CARGO_CFG_TARGET_*` (set by cargo for build scripts);
    /// outside a build script, the machine ocipkg itself was built for.
    pub(crate) fn from_env(env: &Env) -> Self {
        let parsed = Target::parse(&env.get(env::TARGET).unwrap_or_else(host_triple));
        Target {
            os: env.get(env::CARGO_CFG_TARGET_OS).unwrap_or(parsed.os),
            env: env.get(env::CARGO_CFG_TARGET_ENV).unwrap_or(parsed.env),
            ..parsed
        }
    }

    /// Understands a triple like `x86_64-unknown-linux-gnu`,
    /// `aarch64-apple-darwin`, `x86_64-pc-windows-msvc`.
    pub(crate) fn parse(triple: &str) -> Self {
        let parts: Vec<&str> = triple.split('-').collect();
        let os = parts
            .iter()
            .skip(1)
            .find_map(|p| match *p {
                "linux" => Some("linux"),
                "darwin" | "macos" => Some("macos"),
                "windows" => Some("windows"),
                "android" | "androideabi" => Some("android"),
                "ios" => Some("ios"),
                "freebsd" => Some("freebsd"),
                "netbsd" => Some("netbsd"),
                "openbsd" => Some("openbsd"),
                "wasi" | "wasip1" | "wasip2" => Some("wasi"),
                _ => None,
            })
            .unwrap_or("none");
        let last = parts.last().copied().unwrap_or("");
        let env = if last.starts_with("gnu") {
            "gnu"
        } else if last.starts_with("musl") {
            "musl"
        } else if last == "msvc" {
            "msvc"
        } else {
            ""
        };
        Target {
            triple: triple.to_string(),
            arch: parts.first().copied().unwrap_or("").to_string(),
            os: os.to_string(),
            env: env.to_string(),
        }
    }

    /// The OCI platform of this target.
    pub(crate) fn oci_platform(&self) -> Platform {
        let (arch, variant) = oci_arch(&self.arch);
        let os = match self.os.as_str() {
            "macos" => "darwin",
            "none" => "unknown",
            os => os,
        };
        let mut builder = PlatformBuilder::default()
            .architecture(Arch::from(arch))
            .os(Os::from(os));
        if let Some(variant) = variant {
            builder = builder.variant(variant);
        }
        // Both fields are set: building cannot fail.
        builder.build().unwrap_or_default()
    }
}

/// The machine ocipkg was built for, as a best-effort triple.
fn host_triple() -> String {
    let os = std::env::consts::OS;
    let (vendor, os) = match os {
        "macos" => ("apple", "darwin"),
        "windows" => ("pc", "windows"),
        os => ("unknown", os),
    };
    let abi = if cfg!(target_env = "msvc") {
        "-msvc"
    } else if cfg!(target_env = "musl") {
        "-musl"
    } else if cfg!(target_env = "gnu") {
        "-gnu"
    } else {
        ""
    };
    format!("{}-{vendor}-{os}{abi}", std::env::consts::ARCH)
}

/// Rust's architecture name → OCI `architecture` and `variant` (GOARCH names).
fn oci_arch(arch: &str) -> (&str, Option<&'static str>) {
    match arch {
        "x86_64" => ("amd64", None),
        "aarch64" | "arm64" => ("arm64", None),
        "i386" | "i586" | "i686" | "x86" => ("386", None),
        a if a.starts_with("armv7") || a.starts_with("thumbv7") => ("arm", Some("v7")),
        a if a.starts_with("armv6") || a == "arm" => ("arm", Some("v6")),
        a if a.starts_with("riscv64") => ("riscv64", None),
        "powerpc64le" => ("ppc64le", None),
        "powerpc64" => ("ppc64", None),
        "s390x" => ("s390x", None),
        "mips64el" => ("mips64le", None),
        "loongarch64" => ("loong64", None),
        "wasm32" => ("wasm", None),
        other => (other, None),
    }
}

/// How an index entry is shown in errors: `os/arch[/variant] (triple)`.
pub(crate) fn describe(entry: &Descriptor) -> String {
    let mut s = match entry.platform() {
        Some(p) => {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push_str(&format!("/{v}"));
            }
            s
        }
        None => "no platform".to_string(),
    };
    if let Some(triple) = triple_of(entry) {
        s.push_str(&format!(" ({triple})"));
    }
    s
}

fn triple_of(entry: &Descriptor) -> Option<&str> {
    entry
        .annotations()
        .as_ref()?
        .get(TARGET_ANNOTATION)
        .map(String::as_str)
}

/// Chooses the entry of an index for `target`.
pub(crate) fn select<'a>(
    entries: &'a [Descriptor],
    target: &Target,
    what: &str,
) -> Result<&'a Descriptor> {
    if let Some(exact) = entries
        .iter()
        .find(|e| triple_of(e) == Some(target.triple.as_str()))
    {
        return Ok(exact);
    }
    let wanted = target.oci_platform();
    let matching = entries.iter().find(|e| {
        let Some(p) = e.platform() else {
            return false;
        };
        let same_abi = triple_of(e).is_none_or(|t| Target::parse(t).env == target.env);
        p.os() == wanted.os()
            && p.architecture() == wanted.architecture()
            && (wanted.variant().is_none() || p.variant() == wanted.variant())
            && same_abi
    });
    matching.ok_or_else(|| Error::NoPrebuilt {
        package: what.to_string(),
        target: format!(
            "{} ({}/{})",
            target.triple,
            wanted.os(),
            wanted.architecture()
        ),
        available: entries.iter().map(describe).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;
    use std::collections::HashMap;

    fn entry(triple: &str, n: u8) -> Descriptor {
        let digest = format!("sha256:{}", format!("{n:02x}").repeat(32));
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            1,
            digest.parse::<oci_spec::image::Digest>().unwrap(),
        );
        d.set_platform(Some(Target::parse(triple).oci_platform()));
        d.set_annotations(Some(HashMap::from([(
            TARGET_ANNOTATION.to_string(),
            triple.to_string(),
        )])));
        d
    }

    #[test]
    fn triples_map_to_oci_platforms() {
        let t = Target::parse("x86_64-unknown-linux-gnu");
        assert_eq!((t.os.as_str(), t.env.as_str()), ("linux", "gnu"));
        let p = t.oci_platform();
        assert_eq!(
            (p.os().to_string(), p.architecture().to_string()),
            ("linux".into(), "amd64".into())
        );
        let p = Target::parse("aarch64-apple-darwin").oci_platform();
        assert_eq!(
            (p.os().to_string(), p.architecture().to_string()),
            ("darwin".into(), "arm64".into())
        );
        let p = Target::parse("armv7-unknown-linux-gnueabihf").oci_platform();
        assert_eq!(p.variant().as_deref(), Some("v7"));
        assert_eq!(Target::parse("x86_64-pc-windows-msvc").env, "msvc");
        assert_eq!(Target::parse("x86_64-unknown-linux-musl").env, "musl");
    }

    #[test]
    fn selection_prefers_the_triple_then_the_platform_with_the_same_abi() {
        let entries = [
            entry("x86_64-unknown-linux-gnu", 1),
            entry("aarch64-unknown-linux-gnu", 2),
        ];
        let pick = |t: &str| select(&entries, &Target::parse(t), "pkg").map(describe);
        assert_eq!(
            pick("x86_64-unknown-linux-gnu").unwrap(),
            "linux/amd64 (x86_64-unknown-linux-gnu)"
        );
        assert_eq!(
            pick("aarch64-unknown-linux-gnu").unwrap(),
            "linux/arm64 (aarch64-unknown-linux-gnu)"
        );
        // Same os/arch, another vendor: the platform decides.
        assert_eq!(
            pick("x86_64-foo-linux-gnu").unwrap(),
            "linux/amd64 (x86_64-unknown-linux-gnu)"
        );
        // Same os/arch, another ABI: refused, listing what there is.
        let err = pick("x86_64-unknown-linux-musl").unwrap_err();
        assert!(err.is_no_prebuilt(), "{err}");
        let err = err.to_string();
        assert!(
            err.contains("x86_64-unknown-linux-gnu") && err.contains("aarch64-unknown-linux-gnu"),
            "{err}"
        );
        let err = pick("x86_64-pc-windows-msvc").unwrap_err().to_string();
        assert!(
            err.contains("windows/amd64") && err.contains("linux/arm64"),
            "{err}"
        );
    }
}
