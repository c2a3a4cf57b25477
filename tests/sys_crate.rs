//! The shape of a `-sys` crate in the wild: `foo-sys` (`links = "foo"`)
//! links a package from its build.rs with the reference written into it, and
//! an application depending on it calls the library and prints the answer.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// foo-sys's build.rs: link the package or fail with ocipkg's message.
const LINK_BUILD_RS: &str = r#"fn main() {
    if let Err(e) = ocipkg::link_package("REF") {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
"#;

/// README's "Prebuilt, or build from source".
const FALLBACK_BUILD_RS: &str = r#"fn main() {
    match ocipkg::link_package("REF") {
        Ok(_) => {}
        Err(e) if e.is_no_prebuilt() => {
            println!("cargo:warning=no prebuilt libfoo here ({}); building it from source",
                     e.to_string().lines().next().unwrap_or_default());
            cc::Build::new().file("vendor/foo.c").compile("foo");
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
"#;

const FOO_FFI: &str = "pub fn foo_answer() -> i32;";
const FOO_MAIN: &str = r#"fn main() {
    println!("answer={}", unsafe { foo_sys::foo_answer() });
}
"#;

const SQLITE_FFI: &str = r#"pub fn sqlite3_libversion() -> *const std::ffi::c_char;
pub fn sqlite3_open(name: *const std::ffi::c_char, db: *mut *mut std::ffi::c_void) -> i32;
pub fn sqlite3_prepare_v2(db: *mut std::ffi::c_void, sql: *const std::ffi::c_char, n: i32,
    stmt: *mut *mut std::ffi::c_void, tail: *mut *const std::ffi::c_char) -> i32;
pub fn sqlite3_step(stmt: *mut std::ffi::c_void) -> i32;
pub fn sqlite3_column_text(stmt: *mut std::ffi::c_void, col: i32) -> *const std::ffi::c_char;"#;

const INSTALL_BUILD_RS: &str = r#"fn main() {
    if let Err(e) = ocipkg::install_dependency_dylibs() {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
"#;

const DEBIAN_LIB: &str = "/usr/lib/x86_64-linux-gnu";

/// A user's two crates side by side (`foo-sys/`, `app/`), with package
/// names unique to the test, its own ocipkg cache and a cargo target dir.
struct Story {
    root: PathBuf,
    name: String,
    cache: PathBuf,
    target: PathBuf,
}

impl Story {
    fn new(name: &str) -> Story {
        Story {
            root: temp_dir(name),
            name: format!("sys-{name}"),
            cache: temp_dir(&format!("{name}-cache")),
            target: shared_target_dir(),
        }
    }

    /// foo-sys linking `reference` with the plain build.rs, and an app printing `foo_answer()`.
    fn foo(name: &str, reference: &str) -> Story {
        let story = Story::new(name);
        story.write_sys(LINK_BUILD_RS, reference, FOO_FFI, "");
        story.write_app(FOO_MAIN, None);
        story
    }

    fn sys(&self) -> PathBuf {
        self.root.join("foo-sys")
    }

    fn app(&self) -> PathBuf {
        self.root.join("app")
    }

    fn write_sys(&self, build_rs: &str, reference: &str, ffi: &str, build_deps: &str) {
        write_crate(
            &self.sys(),
            &format!(
                "[package]\nname = \"{}-sys\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 links = \"foo\"\n\n[build-dependencies]\nocipkg = {{ path = {:?} }}\n{build_deps}",
                self.name,
                env!("CARGO_MANIFEST_DIR")
            ),
            &[
                ("build.rs", &build_rs.replace("REF", reference)),
                ("src/lib.rs", &format!("extern \"C\" {{\n{ffi}\n}}\n")),
            ],
        );
    }

    fn write_app(&self, main_rs: &str, build_rs: Option<&str>) {
        let mut manifest = format!(
            "[package]\nname = \"{0}-app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nfoo-sys = {{ path = \"../foo-sys\", package = \"{0}-sys\" }}\n",
            self.name
        );
        let mut files = vec![("src/main.rs", main_rs)];
        if let Some(build_rs) = build_rs {
            manifest += &format!(
                "\n[build-dependencies]\nocipkg = {{ path = {:?} }}\n",
                env!("CARGO_MANIFEST_DIR")
            );
            files.push(("build.rs", build_rs));
        }
        write_crate(&self.app(), &manifest, &files);
    }

    /// `cargo build` of the app (not run yet).
    fn cargo_build(&self) -> Command {
        let mut cmd = cargo(&self.app(), &self.cache);
        cmd.arg("build").env("CARGO_TARGET_DIR", &self.target);
        cmd
    }

    /// `cargo build` of the app, which must succeed; its stderr.
    fn build(&self) -> String {
        String::from_utf8_lossy(&run(&mut self.cargo_build()).stderr).into_owned()
    }

    fn binary(&self) -> PathBuf {
        self.target.join("debug").join(format!("{}-app", self.name))
    }

    /// Runs the built app without LD_LIBRARY_PATH; its stdout.
    fn run_app(&self) -> String {
        stdout(&run(
            Command::new(self.binary()).env_remove("LD_LIBRARY_PATH")
        ))
    }

    /// `ocipkg` with this story's cache.
    fn ocipkg(&self) -> Command {
        let mut cmd = ocipkg();
        cmd.env("OCIPKG_CACHE_DIR", &self.cache);
        cmd
    }

    /// `ocipkg pack DIR --tag REFERENCE --output LAYOUT [extra]` then `ocipkg push LAYOUT`;
    /// returns the layout and pack's output.
    fn publish(&self, dir: &Path, reference: &str, extra: &[&str]) -> (PathBuf, Output) {
        let layout = dir.with_extension("oci");
        let packed = run(self
            .ocipkg()
            .arg("pack")
            .arg(dir)
            .args(["--tag", reference, "--output"])
            .arg(&layout)
            .args(extra));
        run(self.ocipkg().arg("push").arg(&layout));
        (layout, packed)
    }
}

/// A standalone crate (`[workspace]`) with the repository's Cargo.lock.
fn write_crate(dir: &Path, manifest: &str, files: &[(&str, &str)]) {
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(dir.join("Cargo.toml"), format!("{manifest}\n[workspace]\n")).unwrap();
    for (path, text) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    copy_lockfile(dir);
}

/// `int foo_answer(void)` returning `n`.
fn foo_source(n: i32) -> String {
    format!("int foo_answer(void) {{ return {n}; }}\n")
}

/// A package directory with `lib/libfoo.a` (`compiler -c` + `ar rcs` of
/// `source`, a file named `source_name`) and `include/foo.h`.
fn foo_package(name: &str, compiler: &str, source_name: &str, source: &str) -> PathBuf {
    let dir = temp_dir(name);
    let work = temp_dir(&format!("{name}-src"));
    fs::write(work.join(source_name), source).unwrap();
    run(Command::new(compiler)
        .args(["-c", "-O2", "-fPIC", source_name, "-o", "foo.o"])
        .current_dir(&work));
    fs::create_dir_all(dir.join("lib")).unwrap();
    run(Command::new("ar")
        .arg("rcs")
        .arg(dir.join("lib/libfoo.a"))
        .arg(work.join("foo.o")));
    fs::create_dir_all(dir.join("include")).unwrap();
    fs::write(dir.join("include/foo.h"), "int foo_answer(void);\n").unwrap();
    dir
}

fn c_package(name: &str, answer: i32) -> PathBuf {
    foo_package(name, "cc", "foo.c", &foo_source(answer))
}

fn touch(path: &Path) {
    run(Command::new("touch").arg(path));
}

/// SQLITE_VERSION from Debian's sqlite3.h, e.g. `3.40.1`.
fn header_version() -> String {
    read(Path::new("/usr/include/sqlite3.h"))
        .lines()
        .find_map(|l| l.strip_prefix("#define SQLITE_VERSION "))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("SQLITE_VERSION in sqlite3.h")
}

#[test]
fn static_library_links_refetches_after_prune_and_stays_locked() {
    let registry = Registry::start();
    let reference = format!("{}/native/foo:1", registry.host());
    let story = Story::foo("static", &reference);
    let (first, _) = story.publish(&c_package("foo-42", 42), &reference, &[]);
    let (first_digest, _) = layout_digests(&first);

    story.build();
    assert_eq!(story.run_app().trim(), "answer=42");

    // The cache goes away; an unrelated edit rebuilds and fetches it again.
    run(story.ocipkg().args(["prune", "--all"]));
    let entry = story
        .cache
        .join("pkgs/sha256")
        .join(first_digest.strip_prefix("sha256:").unwrap());
    assert!(!entry.exists(), "prune --all left {}", entry.display());
    touch(&story.app().join("src/main.rs"));
    story.build();
    assert!(
        entry.join("manifest.json").is_file(),
        "the build did not fetch the pruned package again"
    );
    assert_eq!(story.run_app().trim(), "answer=42");

    // Locked, a re-published tag changes nothing.
    run(story
        .ocipkg()
        .args(["lock", &reference, "--dir"])
        .arg(story.sys()));
    let lock = read(&story.sys().join("ocipkg.lock"));
    assert!(lock.contains(&first_digest), "{lock}");
    let (second, _) = story.publish(&c_package("foo-43", 43), &reference, &[]);
    assert_ne!(layout_digests(&second).0, first_digest);
    story.build();
    assert_eq!(story.run_app().trim(), "answer=42");
    touch(&story.sys().join("build.rs")); // look again now: still locked
    story.build();
    assert_eq!(story.run_app().trim(), "answer=42");

    // Without the lock the next build takes the new build.
    fs::remove_file(story.sys().join("ocipkg.lock")).unwrap();
    story.build();
    assert_eq!(story.run_app().trim(), "answer=43");
}

#[test]
fn shared_library_travels_with_the_moved_binary() {
    let registry = Registry::start();
    let reference = format!("{}/debian/sqlite3:so", registry.host());
    let files = ["libsqlite3.so", "libsqlite3.so.0", "libsqlite3.so.0.8.6"];
    let package = temp_dir("sqlite-so");
    fs::create_dir_all(package.join("include")).unwrap();
    fs::create_dir_all(package.join("lib")).unwrap();
    for file in files {
        run(Command::new("cp")
            .arg("-a")
            .arg(Path::new(DEBIAN_LIB).join(file))
            .arg(package.join("lib")));
    }
    fs::copy("/usr/include/sqlite3.h", package.join("include/sqlite3.h")).unwrap();

    let story = Story::new("dylib");
    story.publish(&package, &reference, &[]);
    story.write_sys(LINK_BUILD_RS, &reference, SQLITE_FFI, "");
    story.write_app(
        r#"fn main() {
    let version = unsafe { std::ffi::CStr::from_ptr(foo_sys::sqlite3_libversion()) };
    println!("version={}", version.to_str().unwrap());
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut paths: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("libsqlite3"))
        .collect();
    paths.dedup();
    for path in paths {
        println!("mapped={path}");
    }
}
"#,
        Some(INSTALL_BUILD_RS),
    );
    let profile = story.target.join("debug");
    for file in files {
        let _ = fs::remove_file(profile.join(file)); // left by an earlier run
    }
    story.build();

    // The binary and what install_dependency_dylibs put beside it, moved.
    let elsewhere = temp_dir("dylib-moved");
    let binary = elsewhere.join("app");
    fs::copy(story.binary(), &binary).unwrap();
    for file in files {
        assert!(profile.join(file).exists(), "{file} was not installed");
        fs::copy(profile.join(file), elsewhere.join(file)).unwrap();
    }
    let out = stdout(&run(Command::new(&binary)
        .env_remove("LD_LIBRARY_PATH")
        .current_dir("/")));
    assert!(
        out.lines()
            .any(|l| l == format!("version={}", header_version())),
        "{out}"
    );
    let mapped: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mapped="))
        .collect();
    assert!(!mapped.is_empty(), "{out}");
    for path in mapped {
        assert!(
            Path::new(path).starts_with(&elsewhere),
            "loaded {path}, not the copy in {}",
            elsewhere.display()
        );
    }
    let dynamic = stdout(&run(Command::new("readelf").arg("-d").arg(&binary)));
    assert!(
        dynamic
            .lines()
            .any(|l| (l.contains("(RUNPATH)") || l.contains("(RPATH)")) && l.contains("$ORIGIN")),
        "{dynamic}"
    );
}

#[test]
fn registry_outage_links_the_cached_package_with_a_warning() {
    let registry = Registry::start();
    let reference = format!("{}/outage/foo:1", registry.host());
    let story = Story::foo("outage", &reference);
    let (layout, _) = story.publish(&c_package("outage-foo", 42), &reference, &[]);
    let (digest, _) = layout_digests(&layout);
    story.build();
    drop(registry);

    touch(&story.sys().join("build.rs"));
    let err = story.build();
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning:") && l.contains(&digest)),
        "no warning naming {digest}:\n{err}"
    );
    assert_eq!(story.run_app().trim(), "answer=42");

    // Nothing cached: nothing to fall back on, and the error says how to build offline.
    let out = story
        .cargo_build()
        .env("OCIPKG_CACHE_DIR", temp_dir("outage-empty-cache"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("OCIPKG_OFFLINE") || err.contains("CARGO_NET_OFFLINE"),
        "{err}"
    );
}

#[test]
fn no_build_for_this_target_builds_from_source_but_an_outage_fails() {
    let registry = Registry::start();
    let reference = format!("{}/fallback/foo:1", registry.host());
    let story = Story::new("fallback");
    story.publish(
        &c_package("fallback-foo", 42),
        &reference,
        &["--target", "aarch64-unknown-linux-gnu"],
    );
    let raw = stdout(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let manifests = index["manifests"].as_array().expect("an index");
    assert_eq!(manifests.len(), 1, "{raw}");
    assert_eq!(manifests[0]["platform"]["architecture"], "arm64", "{raw}");

    story.write_sys(FALLBACK_BUILD_RS, &reference, FOO_FFI, "cc = \"1\"\n");
    fs::create_dir_all(story.sys().join("vendor")).unwrap();
    fs::write(story.sys().join("vendor/foo.c"), foo_source(7)).unwrap();
    story.write_app(FOO_MAIN, None);
    let err = story.build();
    assert!(err.contains("building it from source"), "{err}");
    assert_eq!(story.run_app().trim(), "answer=7");

    // Connection refused is no reason to build from source.
    drop(registry);
    let out = story
        .cargo_build()
        .env("OCIPKG_CACHE_DIR", temp_dir("fallback-empty-cache"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("building it from source"), "{err}");
    assert!(err.contains("ocipkg:") && err.contains("failed"), "{err}");
}

#[test]
fn a_build_for_a_newer_glibc_falls_back_to_source_too() {
    // The package's only build for this target needs a glibc from the
    // future: refused before linking (RuntimeTooOld, a no-prebuilt outcome),
    // so README's fallback builds from source.
    let registry = Registry::start();
    let reference = format!("{}/fallback/glibc:1", registry.host());
    let story = Story::new("fallback-glibc");
    story.publish(
        &c_package("fallback-glibc-foo", 42),
        &reference,
        &["--target", &host_triple(), "--glibc-floor", "9.99"],
    );
    story.write_sys(FALLBACK_BUILD_RS, &reference, FOO_FFI, "cc = \"1\"\n");
    fs::create_dir_all(story.sys().join("vendor")).unwrap();
    fs::write(story.sys().join("vendor/foo.c"), foo_source(7)).unwrap();
    story.write_app(FOO_MAIN, None);
    let err = story.build();
    assert!(
        err.contains("building it from source") && err.contains("glibc 9.99"),
        "{err}"
    );
    assert_eq!(story.run_app().trim(), "answer=7");
}

#[test]
fn debian_static_sqlite_links_with_the_libraries_its_pkg_config_names() {
    let registry = Registry::start();
    let reference = format!("{}/debian/sqlite3:static", registry.host());
    let package = temp_dir("sqlite-a");
    fs::create_dir_all(package.join("include")).unwrap();
    fs::create_dir_all(package.join("lib/pkgconfig")).unwrap();
    fs::copy(
        Path::new(DEBIAN_LIB).join("libsqlite3.a"),
        package.join("lib/libsqlite3.a"),
    )
    .unwrap();
    fs::copy("/usr/include/sqlite3.h", package.join("include/sqlite3.h")).unwrap();
    let pc = read(&Path::new(DEBIAN_LIB).join("pkgconfig/sqlite3.pc"));
    let from = "libdir=${prefix}/lib/x86_64-linux-gnu";
    assert!(pc.contains(from), "{pc}");
    assert!(pc.contains("Libs.private: -lm -lz"), "{pc}");
    fs::write(
        package.join("lib/pkgconfig/sqlite3.pc"),
        pc.replace(from, "libdir=${prefix}/lib"),
    )
    .unwrap();

    let story = Story::new("pkgconfig");
    // zstd: the build script decodes it with the pure-Rust decoder every
    // consumer compiles (the CLI and these tests have libzstd).
    let (layout, _) = story.publish(&package, &reference, &["--compression", "zstd"]);
    let blobs = fs::read_dir(layout.join("blobs/sha256")).unwrap();
    assert!(
        blobs
            .map(|b| fs::read(b.unwrap().path()).unwrap())
            .any(|bytes| String::from_utf8_lossy(&bytes).contains("v1.tar+zstd")),
        "a zstd layer"
    );
    story.write_sys(LINK_BUILD_RS, &reference, SQLITE_FFI, "");
    story.write_app(
        r#"use foo_sys::*;
fn main() {
    unsafe {
        let mut db = std::ptr::null_mut();
        assert_eq!(sqlite3_open(c":memory:".as_ptr(), &mut db), 0);
        let mut stmt = std::ptr::null_mut();
        let sql = c"select sqlite_version()";
        assert_eq!(sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, std::ptr::null_mut()), 0);
        assert_eq!(sqlite3_step(stmt), 100); // SQLITE_ROW
        let text = std::ffi::CStr::from_ptr(sqlite3_column_text(stmt, 0));
        println!("{}", text.to_str().unwrap());
    }
}
"#,
        None,
    );
    // -vv echoes the build scripts' output on stdout.
    let echoed = stdout(&run(story.cargo_build().arg("-vv")));
    let directives: Vec<&str> = echoed
        .lines()
        .filter(|l| l.contains("-sys 0.1.0] cargo:rustc-link-lib="))
        .collect();
    for lib in ["static=sqlite3", "=m", "=z"] {
        assert!(
            directives.iter().any(|l| l.ends_with(lib)),
            "no link-lib{lib} in {directives:#?}"
        );
    }
    assert_eq!(story.run_app().trim(), header_version());
    // Linked statically: no libsqlite3.so needed at run time.
    let dynamic = stdout(&run(Command::new("readelf").arg("-d").arg(story.binary())));
    assert!(!dynamic.contains("libsqlite3"), "{dynamic}");
}

#[test]
fn packing_a_cpp_library_without_stdcxx_warns() {
    let source = r#"#include <stdexcept>
#include <string>
extern "C" int foo_answer(void) {
    try {
        throw std::runtime_error(std::to_string(42));
    } catch (const std::exception &e) {
        return std::stoi(e.what());
    }
}
"#;
    let dir = foo_package("cpp-foo", "g++", "foo.cpp", source);
    let story = Story::new("cpp");
    let pack = |extra: &[&str]| {
        let layout = temp_dir("cpp-layout").join("layout");
        let out = run(story
            .ocipkg()
            .arg("pack")
            .arg(&dir)
            .args(["--tag", "127.0.0.1:1/cpp/foo:1", "--output"])
            .arg(layout)
            .args(extra));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = pack(&[]);
    assert!(err.contains("--system-lib stdc++"), "{err}");
    let err = pack(&["--system-lib", "stdc++"]);
    assert!(!err.contains("--system-lib stdc++"), "{err}");
}

#[test]
fn a_consumer_with_default_features_compiles_ocipkg_without_warnings() {
    let registry = Registry::start();
    let reference = format!("{}/quiet/foo:1", registry.host());
    let mut story = Story::foo("quiet", &reference);
    story.publish(&c_package("quiet-foo", 42), &reference, &[]);
    // A target dir of its own, so ocipkg is really compiled in this build.
    story.target = temp_dir("quiet-target");
    let err = story.build();
    assert!(err.contains("Compiling ocipkg v"), "{err}");
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| {
            l.trim_start().starts_with("warning")
                || l.contains(env!("CARGO_MANIFEST_DIR")) && l.contains("-->")
        })
        .collect();
    assert!(warnings.is_empty(), "{warnings:#?}\n{err}");
    assert_eq!(story.run_app().trim(), "answer=42");
}
