//! A package's pkg-config file, read without a `pkg-config` binary: its
//! `Libs` (and `Libs.private` when linking statically) and `Cflags`, with
//! the prefix relocated to where the package was unpacked.
//!
//! Relocation follows pkgconf's `--define-prefix`: a `.pc` file in
//! `<prefix>/lib/pkgconfig` (or `lib64/`, `share/`) gets `prefix` set to that
//! directory's grandparent, and any variable whose value starts with the
//! file's original prefix is moved with it. `${pcfiledir}` is the file's own
//! directory. Paths that end up outside the package are ignored (a package
//! does not get to point the linker at the build machine's directories);
//! names are validated like every value that reaches a cargo directive.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::link::directive::is_library_name;

/// What a `.pc` file asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PkgConfig {
    /// `-L` directories inside the package.
    pub lib_dirs: Vec<PathBuf>,
    /// `-l` names of `Libs`, in order.
    pub libs: Vec<String>,
    /// `-l` names of `Libs.private` (static linking) not in `libs`.
    pub private_libs: Vec<String>,
    /// `-framework` names.
    pub frameworks: Vec<String>,
    /// `-I` directories inside the package.
    pub include_dirs: Vec<PathBuf>,
}

/// Reads the `.pc` file at `path` (inside `root`).
pub(crate) fn read(path: &Path, root: &Path) -> Result<PkgConfig, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > 1 << 20 {
        return Err("it is not a regular file of at most 1 MiB".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let dir = path.parent().unwrap_or(root);
    Ok(parse(&text, dir, root))
}

fn parse(text: &str, pcfiledir: &Path, root: &Path) -> PkgConfig {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("pcfiledir".into(), pcfiledir.display().to_string());
    let mut fields: HashMap<String, String> = HashMap::new();
    // The prefix a file in <prefix>/lib/pkgconfig relocates to.
    let relocated = pcfiledir
        .ends_with("lib/pkgconfig")
        .then_some(())
        .or_else(|| pcfiledir.ends_with("lib64/pkgconfig").then_some(()))
        .or_else(|| pcfiledir.ends_with("share/pkgconfig").then_some(()))
        .and_then(|()| pcfiledir.parent()?.parent())
        .map(|p| p.display().to_string());
    let mut original_prefix: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let (key, value, is_var) = match (line.find('='), line.find(':')) {
            (Some(e), Some(c)) if e < c => (&line[..e], &line[e + 1..], true),
            (Some(e), None) => (&line[..e], &line[e + 1..], true),
            (_, Some(c)) => (&line[..c], &line[c + 1..], false),
            _ => continue,
        };
        let key = key.trim();
        let mut value = expand(value.trim(), &vars);
        if is_var {
            if key == "prefix" {
                if let Some(new) = &relocated {
                    original_prefix = Some(value.clone());
                    value = new.clone();
                }
            } else if let (Some(old), Some(new)) = (&original_prefix, &relocated) {
                if let Some(rest) = value.strip_prefix(old.as_str()) {
                    value = format!("{new}{rest}");
                }
            }
            vars.insert(key.to_string(), value);
        } else {
            fields.insert(key.to_ascii_lowercase(), value);
        }
    }
    let mut out = PkgConfig::default();
    let inside = |dir: &str| -> Option<PathBuf> {
        let path = normalize(Path::new(dir))?;
        path.starts_with(root).then_some(path)
    };
    for (field, private) in [("libs", false), ("libs.private", true)] {
        let libs = words(fields.get(field).map_or("", String::as_str));
        let mut i = 0;
        while i < libs.len() {
            let word = libs[i].as_str();
            let name = match word {
                "-pthread" => Some("pthread"),
                _ => word.strip_prefix("-l"),
            };
            if let Some(dir) = word.strip_prefix("-L") {
                out.lib_dirs.extend(inside(dir));
            } else if let Some(name) = name.filter(|n| is_library_name(n)) {
                let known = out.libs.iter().chain(&out.private_libs).any(|l| l == name);
                if !known {
                    let list = if private {
                        &mut out.private_libs
                    } else {
                        &mut out.libs
                    };
                    list.push(name.to_string());
                }
            } else if word == "-framework" {
                i += 1;
                if let Some(name) = libs.get(i).filter(|n| is_library_name(n)) {
                    out.frameworks.push(name.clone());
                }
            }
            i += 1;
        }
    }
    for word in words(fields.get("cflags").map_or("", String::as_str)) {
        if let Some(dir) = word.strip_prefix("-I") {
            out.include_dirs.extend(inside(dir));
        }
    }
    out
}

/// `${name}` replaced by the variable's value (unknown ones by nothing).
fn expand(value: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start + 2..].find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(vars.get(name).map_or("", String::as_str));
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    out
}

/// Whitespace-separated words; quotes group, a backslash escapes.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => word.extend(chars.next()),
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (c, _) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// An absolute path with `.` and `..` resolved lexically.
fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_style_file_is_relocated_to_the_package() {
        let text = "prefix=/usr\nexec_prefix=${prefix}\nlibdir=${prefix}/lib/x86_64-linux-gnu\n\
                    includedir=/usr/include\n\nName: SQLite\nVersion: 3.40.1\n\
                    Libs: -L${libdir} -lsqlite3\nLibs.private: -lz -lm -ldl -lpthread\n\
                    Cflags: -I${includedir} -DX\n";
        let root = Path::new("/cache/pkg/root");
        let pc = parse(text, &root.join("lib/pkgconfig"), root);
        assert_eq!(pc.lib_dirs, [root.join("lib/x86_64-linux-gnu")]);
        assert_eq!(pc.libs, ["sqlite3"]);
        assert_eq!(pc.private_libs, ["z", "m", "dl", "pthread"]);
        assert_eq!(pc.include_dirs, [root.join("include")]);
    }

    #[test]
    fn outside_paths_and_bad_names_are_ignored() {
        let text = "Libs: -L/usr/lib -L${pcfiledir}/../../../x -lok -lbad=x -l:libx.a \
                    -framework Security\nCflags: -I/etc -I${pcfiledir}/../../include\n";
        let root = Path::new("/c/root");
        let pc = parse(text, &root.join("lib/pkgconfig"), root);
        assert!(pc.lib_dirs.is_empty(), "{pc:?}");
        assert_eq!(pc.libs, ["ok"]);
        assert_eq!(pc.frameworks, ["Security"]);
        assert_eq!(pc.include_dirs, [root.join("include")]);
    }
}
