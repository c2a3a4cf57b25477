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
/// Descriptor/manifest annotation: the newest `GLIBC_x.y` symbol version the
/// package's binaries need (Linux GNU targets).
pub const GLIBC_ANNOTATION: &str = "vnd.ocipkg.glibc";
/// Descriptor/manifest annotation: the newest `GLIBCXX_x.y.z` version needed.
#[cfg(feature = "producer")]
pub const GLIBCXX_ANNOTATION: &str = "vnd.ocipkg.glibcxx";
/// Descriptor/manifest annotation: the newest `CXXABI_x.y.z` version needed.
#[cfg(feature = "producer")]
pub const CXXABI_ANNOTATION: &str = "vnd.ocipkg.cxxabi";

/// A dotted version (`2.36`, `3.4.30`), compared numerically.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(Vec<u32>);

impl std::str::FromStr for Version {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let parts: std::result::Result<Vec<u32>, _> = s.trim().split('.').map(str::parse).collect();
        match parts {
            Ok(parts) if !parts.is_empty() && parts.len() <= 4 => Ok(Version(parts)),
            _ => Err(()),
        }
    }
}

impl Version {
    /// A glibc version given by a person (`--glibc-floor`,
    /// `OCIPKG_TARGET_GLIBC`): at least MAJOR.MINOR, like `2.17`; a bare `2`
    /// would compare below every real glibc.
    pub(crate) fn glibc(text: &str) -> Option<Version> {
        text.parse::<Version>().ok().filter(|v| v.0.len() >= 2)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// The glibc a Linux GNU target has, and where that was learnt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Glibc {
    pub version: Version,
    pub source: String,
}

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
    /// For a Linux GNU target, its glibc when known (see [`Target::with_glibc`]).
    pub glibc: Option<Glibc>,
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
            glibc: None,
        }
    }

    /// Whether this is a Linux target with glibc.
    pub(crate) fn is_linux_gnu(&self) -> bool {
        self.os == "linux" && self.env == "gnu"
    }

    /// The target with its glibc: `OCIPKG_TARGET_GLIBC`, else, when
    /// building for the machine itself, the running system's (`getconf
    /// GNU_LIBC_VERSION`); unknown for a cross build.
    pub(crate) fn with_glibc(mut self, env: &Env) -> Result<Self> {
        if !self.is_linux_gnu() {
            return Ok(self);
        }
        if let Some(value) = env.get(env::TARGET_GLIBC) {
            let version = Version::glibc(&value).ok_or_else(|| {
                Error::config(
                    format!(
                        "{}=`{value}` is not a glibc version (MAJOR.MINOR)",
                        env::TARGET_GLIBC
                    ),
                    format!(
                        "set {} to the glibc of the oldest system the build must run on, \
                         like 2.31, or unset it",
                        env::TARGET_GLIBC
                    ),
                )
            })?;
            self.glibc = Some(Glibc {
                version,
                source: env::TARGET_GLIBC.to_string(),
            });
            return Ok(self);
        }
        let host = env.get(env::HOST).unwrap_or_else(host_triple);
        if host == self.triple {
            self.glibc = system_glibc().map(|version| Glibc {
                version,
                source: "this system".to_string(),
            });
        }
        Ok(self)
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

/// The running system's glibc, from `getconf GNU_LIBC_VERSION` (`glibc 2.36`).
fn system_glibc() -> Option<Version> {
    let out = std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.trim().strip_prefix("glibc ")?.parse().ok()
}

/// The glibc floor an index entry or manifest annotation records.
pub(crate) fn glibc_floor(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Option<Version> {
    annotations?.get(GLIBC_ANNOTATION)?.parse().ok()
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
    if let Some(floor) = glibc_floor(entry.annotations().as_ref()) {
        s.push_str(&format!(" [glibc >= {floor}]"));
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

/// The entries of an index for the OCI platform `wanted`: same os and
/// architecture, and the same variant when one is wanted.
pub(crate) fn on_platform(
    entries: &[Descriptor],
    wanted: Platform,
) -> impl Iterator<Item = &Descriptor> {
    entries.iter().filter(move |e| {
        e.platform().as_ref().is_some_and(|p| {
            p.os() == wanted.os()
                && p.architecture() == wanted.architecture()
                && (wanted.variant().is_none() || p.variant() == wanted.variant())
        })
    })
}

/// Chooses the entry of an index for `target`: those naming its exact
/// triple, else those of its OCI os/architecture (and variant) whose triple,
/// if any, has the same ABI. Of several, on a Linux GNU target, the one with
/// the highest glibc floor the target's glibc satisfies (when the target's
/// glibc is unknown, the lowest floor).
pub(crate) fn select<'a>(
    entries: &'a [Descriptor],
    target: &Target,
    what: &str,
) -> Result<&'a Descriptor> {
    let exact: Vec<&Descriptor> = entries
        .iter()
        .filter(|e| triple_of(e) == Some(target.triple.as_str()))
        .collect();
    let wanted = target.oci_platform();
    let candidates = if exact.is_empty() {
        on_platform(entries, wanted.clone())
            .filter(|e| triple_of(e).is_none_or(|t| Target::parse(t).env == target.env))
            .collect()
    } else {
        exact
    };
    if candidates.is_empty() {
        return Err(Error::NoPrebuilt {
            package: what.to_string(),
            target: format!(
                "{} ({}/{})",
                target.triple,
                wanted.os(),
                wanted.architecture()
            ),
            available: entries.iter().map(describe).collect(),
        });
    }
    let floor = |e: &Descriptor| glibc_floor(e.annotations().as_ref());
    if !target.is_linux_gnu() || candidates.len() == 1 && target.glibc.is_none() {
        return Ok(candidates[0]);
    }
    match &target.glibc {
        None => Ok(candidates
            .into_iter()
            .min_by_key(|e| floor(e))
            .unwrap_or(&entries[0])),
        Some(glibc) => {
            let usable = candidates
                .iter()
                .filter(|e| floor(e).is_none_or(|f| f <= glibc.version))
                .max_by_key(|e| floor(e));
            match usable {
                Some(entry) => Ok(entry),
                None => Err(Error::RuntimeTooOld {
                    package: what.to_string(),
                    needs: format!(
                        "glibc {}",
                        candidates
                            .iter()
                            .filter_map(|e| floor(e))
                            .min()
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    ),
                    has: format!("glibc {} ({})", glibc.version, glibc.source),
                }),
            }
        }
    }
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
    fn the_newest_build_the_target_glibc_runs_is_chosen() {
        let with_floor = |n: u8, floor: &str| {
            let mut e = entry("x86_64-unknown-linux-gnu", n);
            let mut a = e.annotations().clone().unwrap();
            a.insert(GLIBC_ANNOTATION.to_string(), floor.to_string());
            e.set_annotations(Some(a));
            e
        };
        let entries = [
            with_floor(1, "2.17"),
            with_floor(2, "2.38"),
            with_floor(3, "2.28"),
        ];
        let on = |glibc: Option<&str>| {
            let mut t = Target::parse("x86_64-unknown-linux-gnu");
            t.glibc = glibc.map(|v| Glibc {
                version: v.parse().unwrap(),
                source: "test".into(),
            });
            select(&entries, &t, "pkg").map(|e| glibc_floor(e.annotations().as_ref()))
        };
        let v = |s: &str| Some(s.parse::<Version>().unwrap());
        assert_eq!(on(Some("2.36")).unwrap(), v("2.28"));
        assert_eq!(on(Some("2.40")).unwrap(), v("2.38"));
        assert_eq!(on(None).unwrap(), v("2.17"));
        let err = on(Some("2.12")).unwrap_err();
        assert!(err.is_no_prebuilt());
        let text = err.to_string();
        assert!(
            text.contains("glibc 2.17") && text.contains("glibc 2.12"),
            "{text}"
        );
    }

    #[test]
    fn glibc_versions_given_by_people_need_major_and_minor() {
        assert_eq!(Version::glibc("2.17"), "2.17".parse().ok());
        assert_eq!(Version::glibc(" 2.2.5 "), "2.2.5".parse().ok());
        for bad in ["2", "", "2.", "two.17", "2.17.1.1.1"] {
            assert_eq!(Version::glibc(bad), None, "{bad}");
        }
        let env = Env::fake(&[("OCIPKG_TARGET_GLIBC", "2")]);
        let err = Target::parse("x86_64-unknown-linux-gnu")
            .with_glibc(&env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OCIPKG_TARGET_GLIBC=`2`") && err.contains("like 2.31"),
            "{err}"
        );
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
