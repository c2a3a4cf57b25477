//! What a package's binaries need from the system that consumers link them
//! on, read at pack time (producer only):
//! - static archives that use the C++ runtime without declaring it, and
//!   shared objects whose `NEEDED` libraries are neither in the package nor
//!   declared: `ocipkg pack` prints a warning for each, naming the flag that
//!   fixes it;
//! - the oldest glibc (and libstdc++) the binaries run with, their
//!   [`Floor`]: for shared objects and executables the newest `GLIBC_`,
//!   `GLIBCXX_` and `CXXABI_` versions they need (`.gnu.version_r`); for
//!   static archives, each undefined symbol mapped to the version that
//!   introduced its default definition in the C library the producer builds
//!   against (the host's `libc.so.6`, `libm.so.6` and `libstdc++.so.6`, or a
//!   cross target's `/usr/<multiarch>/lib`): that is how a call to
//!   `__isoc23_strtol` becomes "needs glibc 2.38".

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use object::read::elf::{Dyn as _, FileHeader, SectionTable};
use object::{Object, ObjectSymbol};

use crate::oci::format::LinkMetadata;
use crate::oci::platform::{Target, Version};

/// The oldest runtime versions a package's binaries need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Floor {
    pub glibc: Option<Version>,
    pub glibcxx: Option<Version>,
    pub cxxabi: Option<Version>,
}

impl Floor {
    fn raise(&mut self, version_name: &str) {
        let (slot, number) = if let Some(n) = version_name.strip_prefix("GLIBC_") {
            (&mut self.glibc, n)
        } else if let Some(n) = version_name.strip_prefix("GLIBCXX_") {
            (&mut self.glibcxx, n)
        } else if let Some(n) = version_name.strip_prefix("CXXABI_") {
            (&mut self.cxxabi, n)
        } else {
            return;
        };
        // GLIBC_PRIVATE and the like are no versions.
        if let Ok(version) = number.parse::<Version>() {
            if slot.as_ref().is_none_or(|v| *v < version) {
                *slot = Some(version);
            }
        }
    }
}

/// The floor of the package tree at `dir`, for `target` (default: the host).
pub(crate) fn floor(dir: &Path, target: Option<&Target>) -> Floor {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut floor = Floor::default();
    let mut undefined = BTreeSet::new();
    let mut defined = BTreeSet::new();
    for file in &files {
        let Ok(data) = fs::read(file) else { continue };
        if data.starts_with(b"!<arch>\n") {
            for member in archive_members(&data) {
                let aligned: Vec<u8> = member.into();
                symbols(&aligned, &mut defined, &mut |name| {
                    undefined.insert(name.to_string());
                });
            }
        } else {
            for name in elf_version_needs(&data).unwrap_or_default() {
                floor.raise(&name);
            }
        }
    }
    if !undefined.is_empty() {
        let versions = runtime_versions(target);
        for symbol in undefined.iter().filter(|s| !defined.contains(*s)) {
            if let Some(version) = versions.get(symbol) {
                floor.raise(version);
            }
        }
    }
    floor
}

/// Default symbol versions of the C and C++ runtimes the producer links
/// against: symbol name -> `GLIBC_2.36` and the like.
fn runtime_versions(target: Option<&Target>) -> std::collections::HashMap<String, String> {
    let multiarch = match target
        .map(|t| t.arch.as_str())
        .unwrap_or(std::env::consts::ARCH)
    {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "i686" | "i586" | "x86" => "i386-linux-gnu",
        a if a.starts_with("armv7") || a == "arm" => "arm-linux-gnueabihf",
        "riscv64gc" | "riscv64" => "riscv64-linux-gnu",
        "powerpc64le" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => "",
    };
    let host_arch = std::env::consts::ARCH;
    let native = target.is_none_or(|t| t.arch == host_arch);
    let dirs: Vec<PathBuf> = if native {
        [
            format!("/lib/{multiarch}"),
            format!("/usr/lib/{multiarch}"),
            "/lib64".into(),
            "/usr/lib64".into(),
            "/lib".into(),
            "/usr/lib".into(),
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect()
    } else {
        vec![
            PathBuf::from(format!("/usr/{multiarch}/lib")),
            PathBuf::from(format!("/usr/lib/{multiarch}")),
        ]
    };
    let mut versions = std::collections::HashMap::new();
    for name in ["libc.so.6", "libm.so.6", "libstdc++.so.6"] {
        let Some(data) = dirs.iter().find_map(|d| fs::read(d.join(name)).ok()) else {
            continue;
        };
        for (symbol, version) in elf_default_versions(&data).unwrap_or_default() {
            versions.entry(symbol).or_insert(version);
        }
    }
    versions
}

/// Symbols that only the C++ runtime defines (Itanium ABI names).
const CXX_RUNTIME_PREFIXES: [&str; 10] = [
    "__cxa_",
    "__gxx_personality",
    "_Znwm",
    "_Znam",
    "_ZdlPv",
    "_ZdaPv",
    "_ZSt",
    "_ZNSt",
    "_ZNKSt",
    "_ZTVN10__cxxabiv",
];

/// C++ runtime libraries a producer may declare.
const CXX_LIBRARIES: [&str; 3] = ["stdc++", "c++", "c++abi"];

/// Libraries every Linux system has: never worth a warning.
const SYSTEM_RUNTIME: [&str; 10] = [
    "libc.so",
    "libm.so",
    "libdl.so",
    "libpthread.so",
    "librt.so",
    "libutil.so",
    "libresolv.so",
    "libgcc_s.so",
    "ld-linux",
    "ld64.so",
];

/// Files larger than this are not inspected (no library is).
const MAX_FILE: u64 = 2 << 30;

/// Warnings about the package tree at `dir` with `metadata`.
pub(crate) fn check(dir: &Path, metadata: &LinkMetadata) -> Vec<String> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    let file_names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(String::from))
        .collect();
    let declares = |name: &str| metadata.system_libraries.iter().any(|l| l == name);
    let mut warnings = Vec::new();
    let mut cxx_users = Vec::new();
    let mut defined = BTreeSet::new();
    let mut undefined_cxx: BTreeSet<String> = BTreeSet::new();
    for file in &files {
        let Ok(data) = fs::read(file) else { continue };
        let rel = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        if data.starts_with(b"!<arch>\n") {
            let mut uses_cxx = false;
            for member in archive_members(&data) {
                // A fresh allocation: object files must be aligned to parse.
                let aligned: Vec<u8> = member.into();
                symbols(&aligned, &mut defined, &mut |name| {
                    if is_cxx_runtime(name) {
                        undefined_cxx.insert(name.to_string());
                        uses_cxx = true;
                    }
                });
            }
            if uses_cxx {
                cxx_users.push(rel);
            }
        } else if let Some(needed) = elf_needed(&data) {
            symbols(&data, &mut defined, &mut |_| {});
            for lib in needed {
                let in_package = file_names.contains(&lib);
                let stem = lib
                    .strip_prefix("lib")
                    .and_then(|l| l.split(".so").next())
                    .unwrap_or(&lib);
                let system = SYSTEM_RUNTIME.iter().any(|s| lib.starts_with(s));
                if !in_package && !system && !declares(stem) {
                    warnings.push(format!(
                        "{rel} needs {lib}, which is neither in the package nor declared: \
                         consumers must have it installed. Declare it with `--system-lib \
                         {stem}` (or add the file to the package)"
                    ));
                }
            }
        }
    }
    let cxx_declared = CXX_LIBRARIES.iter().any(|l| declares(l))
        || file_names
            .iter()
            .any(|f| f.starts_with("libstdc++") || f.starts_with("libc++"));
    let mut missing: Vec<&String> = undefined_cxx
        .iter()
        .filter(|s| !defined.contains(*s))
        .collect();
    // The shortest names say most (`__cxa_throw` before a mangled template).
    missing.sort_by_key(|s| (s.len(), *s));
    missing.truncate(3);
    if !cxx_declared && !missing.is_empty() {
        warnings.push(format!(
            "{} use{} the C++ runtime ({}) but the package declares no C++ system library: \
             consumers' links will fail with undefined references. Add `--system-lib stdc++` \
             (GNU libstdc++) or `--system-lib c++` (LLVM libc++)",
            cxx_users.join(", "),
            if cxx_users.len() == 1 { "s" } else { "" },
            missing
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    warnings
}

/// `__cxa_` names that the C library itself defines (glibc), used by C and
/// Rust code alike.
const LIBC_CXA: [&str; 4] = [
    "__cxa_atexit",
    "__cxa_finalize",
    "__cxa_thread_atexit",
    "__cxa_thread_atexit_impl",
];

fn is_cxx_runtime(name: &str) -> bool {
    // Mach-O names carry one more leading underscore.
    let name = if name.starts_with("___") || name.starts_with("__Z") {
        &name[1..]
    } else {
        name
    };
    !LIBC_CXA.contains(&name) && CXX_RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Regular files under `dir`, never following a symlink.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            walk(&entry.path(), out);
        } else if kind.is_file() && entry.metadata().is_ok_and(|m| m.len() <= MAX_FILE) {
            out.push(entry.path());
        }
    }
}

/// The object files of an `ar` archive.
fn archive_members(data: &[u8]) -> Vec<&[u8]> {
    let Ok(archive) = object::read::archive::ArchiveFile::parse(data) else {
        return Vec::new();
    };
    archive
        .members()
        .flatten()
        .filter_map(|m| m.data(data).ok())
        .collect()
}

/// Feeds the undefined symbols of an object file to `undefined` and adds
/// its defined ones to `defined`.
fn symbols(data: &[u8], defined: &mut BTreeSet<String>, undefined: &mut dyn FnMut(&str)) {
    let Ok(file) = object::File::parse(data) else {
        return;
    };
    let all = file.symbols().chain(file.dynamic_symbols());
    for symbol in all {
        let Ok(name) = symbol.name() else { continue };
        if symbol.is_undefined() {
            undefined(name);
        } else if symbol.is_global() {
            defined.insert(name.to_string());
        }
    }
}

/// The version names (`GLIBC_2.14`, ...) an ELF file needs (`.gnu.version_r`).
fn elf_version_needs(data: &[u8]) -> Option<Vec<String>> {
    match object::FileKind::parse(data).ok()? {
        object::FileKind::Elf32 => {
            version_needs::<object::elf::FileHeader32<object::Endianness>>(data)
        }
        object::FileKind::Elf64 => {
            version_needs::<object::elf::FileHeader64<object::Endianness>>(data)
        }
        _ => None,
    }
}

fn version_needs<Elf: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<Vec<String>> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections: SectionTable<Elf> = header.sections(endian, data).ok()?;
    let (mut needs, link) = sections.gnu_verneed(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    let mut out = Vec::new();
    while let Ok(Some((_, mut aux))) = needs.next() {
        while let Ok(Some(entry)) = aux.next() {
            if let Ok(name) = entry.name(endian, strings) {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Some(out)
}

/// Each defined dynamic symbol of a shared library with the version of its
/// default (not hidden) definition.
fn elf_default_versions(data: &[u8]) -> Option<Vec<(String, String)>> {
    match object::FileKind::parse(data).ok()? {
        object::FileKind::Elf32 => {
            default_versions::<object::elf::FileHeader32<object::Endianness>>(data)
        }
        object::FileKind::Elf64 => {
            default_versions::<object::elf::FileHeader64<object::Endianness>>(data)
        }
        _ => None,
    }
}

fn default_versions<Elf: FileHeader<Endian = object::Endianness>>(
    data: &[u8],
) -> Option<Vec<(String, String)>> {
    use object::read::elf::Sym as _;
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections: SectionTable<Elf> = header.sections(endian, data).ok()?;
    let symbols = sections
        .symbols(endian, data, object::elf::SHT_DYNSYM)
        .ok()?;
    let versions = sections.versions(endian, data).ok()??;
    let mut out = Vec::new();
    for (index, symbol) in symbols.enumerate() {
        if symbol.is_undefined(endian) {
            continue;
        }
        let version_index = versions.version_index(endian, index);
        if version_index.is_hidden() {
            continue;
        }
        let (Ok(name), Ok(Some(version))) = (
            symbols.symbol_name(endian, symbol),
            versions.version(version_index),
        ) else {
            continue;
        };
        out.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(version.name()).into_owned(),
        ));
    }
    Some(out)
}

/// The `NEEDED` entries of an ELF shared object or executable.
fn elf_needed(data: &[u8]) -> Option<Vec<String>> {
    match object::FileKind::parse(data).ok()? {
        object::FileKind::Elf32 => needed::<object::elf::FileHeader32<object::Endianness>>(data),
        object::FileKind::Elf64 => needed::<object::elf::FileHeader64<object::Endianness>>(data),
        _ => None,
    }
}

fn needed<Elf: FileHeader<Endian = object::Endianness>>(data: &[u8]) -> Option<Vec<String>> {
    let header = Elf::parse(data).ok()?;
    let endian = header.endian().ok()?;
    let sections: SectionTable<Elf> = header.sections(endian, data).ok()?;
    let (entries, link) = sections.dynamic(endian, data).ok()??;
    let strings = sections.strings(endian, data, link).ok()?;
    let mut out = Vec::new();
    for entry in entries {
        if entry.tag32(endian) == Some(object::elf::DT_NEEDED) {
            if let Ok(name) = entry.string(endian, strings) {
                out.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cxx_runtime_names() {
        assert!(is_cxx_runtime("__cxa_begin_catch"));
        assert!(is_cxx_runtime("___cxa_begin_catch"));
        assert!(is_cxx_runtime("_Znwm"));
        assert!(is_cxx_runtime("__gxx_personality_v0"));
        assert!(!is_cxx_runtime("malloc"));
        assert!(!is_cxx_runtime("__cxa_thread_atexit_impl"));
        assert!(!is_cxx_runtime("___cxa_atexit"));
        assert!(!is_cxx_runtime("_ZN3foo3barEv"));
    }

    #[test]
    fn versions_compare_as_numbers() {
        let mut floor = Floor::default();
        for name in [
            "GLIBC_2.2.5",
            "GLIBC_2.14",
            "GLIBC_PRIVATE",
            "GLIBC_2.3",
            "CXXABI_1.3.9",
        ] {
            floor.raise(name);
        }
        assert_eq!(floor.glibc.unwrap().to_string(), "2.14");
        assert_eq!(floor.cxxabi.unwrap().to_string(), "1.3.9");
        assert_eq!(floor.glibcxx, None);
    }

    #[test]
    fn shared_objects_of_this_machine_have_needed_entries() {
        // Any shared library of the host: its NEEDED list names libc.
        let libm = [
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/usr/lib/x86_64-linux-gnu/libm.so.6",
        ]
        .iter()
        .find_map(|p| fs::read(p).ok());
        if let Some(data) = libm {
            let needed = elf_needed(&data).unwrap();
            assert!(
                needed.iter().any(|n| n.starts_with("libc.so")),
                "{needed:?}"
            );
        }
    }
}
