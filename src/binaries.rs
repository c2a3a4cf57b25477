//! What a package's binaries need from the system that consumers link them
//! on, read at pack time (producer only): static archives that use the C++
//! runtime without declaring it, and shared objects whose `NEEDED` libraries
//! are neither in the package nor declared. `ocipkg pack` prints a warning
//! for each, naming the flag that fixes it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use object::read::elf::{Dyn as _, FileHeader, SectionTable};
use object::{Object, ObjectSymbol};

use crate::format::LinkMetadata;

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

fn is_cxx_runtime(name: &str) -> bool {
    // Mach-O names carry one more leading underscore.
    let name = if name.starts_with("___") || name.starts_with("__Z") {
        &name[1..]
    } else {
        name
    };
    CXX_RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p))
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
        assert!(!is_cxx_runtime("_ZN3foo3barEv"));
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
