//! Packages that know the oldest glibc they run on: the floor is read at pack
//! time from the binaries, and a consumer only links a build its target's
//! glibc can run. Expected versions come from this machine's own libc.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The newest `GLIBC_x.y` in `objdump -T` of `file` (of its defined
/// functions only, with `defined`), and a symbol of that version.
fn newest_glibc_of(file: &str, defined: bool) -> (String, String) {
    let dump = stdout(&run(Command::new("objdump").args(["-T", file])));
    let mut best: Option<(Vec<u32>, String, String)> = None;
    for line in dump.lines() {
        let Some(at) = line.find("GLIBC_") else {
            continue;
        };
        let version: String = line[at + 6..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let Ok(parts) = version
            .split('.')
            .map(str::parse::<u32>)
            .collect::<Result<Vec<u32>, _>>()
        else {
            continue;
        };
        // A function the test can call: defined (` DF .text`), public name.
        let symbol = line
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        let callable = line.contains(" DF ") && !line.contains("*UND*") && !symbol.starts_with('_');
        if defined && !callable {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _, _)| parts > *b) {
            best = Some((parts, version, symbol));
        }
    }
    let (_, version, symbol) = best.expect("objdump shows GLIBC_ versions");
    (version, symbol)
}

fn libc() -> &'static str {
    [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("this machine's libc.so.6")
}

/// `ocipkg pack` of `dir` (extra flags) and its stdout.
fn pack_with(dir: &Path, reference: &str, flags: &[&str]) -> (PathBuf, String) {
    let out = temp_dir("glibc-layout").join("layout");
    let printed = stdout(&run(ocipkg()
        .arg("pack")
        .arg(dir)
        .args(["--tag", reference, "--output"])
        .arg(&out)
        .args(flags)));
    (out, printed)
}

/// A C static library answering `2x+1` that also calls `symbol` (declared
/// here, so the call only adds an undefined reference), compiled by `cc`.
fn stage_calling(name: &str, symbol: &str, compiler: &str) -> PathBuf {
    let dir = temp_dir(name);
    let src = dir.with_extension("c");
    fs::write(
        &src,
        format!(
            "extern unsigned {symbol}();\n\
             int ocipkg_c_answer(int x) {{ volatile int never = 0; \
             if (never) {{ {symbol}(); }} return 2 * x + 1; }}\n"
        ),
    )
    .unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("include")).unwrap();
    fs::write(
        dir.join("include/answer.h"),
        "int ocipkg_c_answer(int x);\n",
    )
    .unwrap();
    let obj = dir.with_extension("o");
    run(Command::new(compiler)
        .args(["-c", "-O2"])
        .arg(&src)
        .arg("-o")
        .arg(&obj));
    run(Command::new("ar")
        .arg("rcs")
        .arg(dir.join("lib/libanswer.a"))
        .arg(&obj));
    dir
}

#[test]
fn pack_records_the_floor_objdump_shows() {
    // A shared library of the system: the same newest GLIBC_ as objdump -T.
    let so = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6";
    let (expected, _) = newest_glibc_of(so, false);
    let dir = temp_dir("glibc-so");
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::copy(so, dir.join("lib/libsqlite3.so.0.8.6")).unwrap();
    let (_, printed) = pack_with(&dir, "127.0.0.1:1/glibc/so:1", &[]);
    assert!(
        printed.contains(&format!("glibc >= {expected}")),
        "{printed}"
    );

    // A static archive calling the newest function of this machine's libc:
    // its floor is that function's version.
    let (newest, symbol) = newest_glibc_of(libc(), true);
    let staged = stage_calling("glibc-newest", &symbol, "cc");
    let (layout, printed) = pack_with(
        &staged,
        "127.0.0.1:1/glibc/a:1",
        &["--target", "x86_64-unknown-linux-gnu"],
    );
    assert!(
        printed.contains(&format!("glibc >= {newest}")),
        "{symbol}: {printed}"
    );
    let inspected = stdout(&run(ocipkg().arg("inspect").arg(&layout)));
    assert!(inspected.contains(&newest), "{inspected}");
}

#[test]
fn a_glibc_floor_without_a_minor_version_is_refused() {
    let staged = stage_c_package("glibc-floor-major");
    for floor in ["2", "2.", "latest"] {
        let out = ocipkg()
            .arg("pack")
            .arg(&staged)
            .args(["--tag", "127.0.0.1:1/glibc/major:1", "--glibc-floor", floor])
            .arg("-o")
            .arg(staged.with_extension(format!("{}.oci", floor.len())))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{floor}: {err}");
        assert!(
            err.contains(&format!("--glibc-floor {floor} is not a glibc version"))
                && err.contains("MAJOR.MINOR")
                && err.contains("help: write e.g. --glibc-floor 2.17"),
            "{err}"
        );
    }
}

#[test]
fn consumers_link_the_newest_build_their_glibc_runs() {
    let registry = Registry::start();
    let reference = format!("{}/glibc/answer:1", registry.host());
    let staged = stage_c_package("glibc-two-builds");
    let (host_glibc, _) = newest_glibc_of(libc(), true);
    // One build for old systems (a lower floor), one claiming a future glibc.
    let (old, _) = pack_with(
        &staged,
        &reference,
        &[
            "--target",
            "x86_64-unknown-linux-gnu",
            "--glibc-floor",
            "2.17",
        ],
    );
    let (future, _) = pack_with(
        &staged,
        &reference,
        &[
            "--target",
            "x86_64-unknown-linux-gnu",
            "--glibc-floor",
            "9.99",
        ],
    );
    run(ocipkg().arg("push").arg(&old));
    run(ocipkg().arg("push").arg(&future));
    let listed = stdout(&run(ocipkg().args(["inspect", &reference])));
    assert!(
        listed.contains("2.17") && listed.contains("9.99"),
        "{listed}"
    );

    let consumer = consumer_crate("consumer-glibc");
    let cache = temp_dir("cache-glibc");
    let out = run(cargo(&consumer, &cache)
        .arg("run")
        .env("CONSUMER_REF", &reference));
    assert_eq!(stdout(&out).trim(), "answer=41");
    // The build linked is the one for old systems.
    let linked: Vec<_> = fs::read_dir(cache.join("pkgs/sha256"))
        .unwrap()
        .map(|e| read(&e.unwrap().path().join("manifest.json")))
        .collect();
    assert_eq!(linked.len(), 1);
    assert!(
        linked[0].contains("\"vnd.ocipkg.glibc\":\"2.17\""),
        "{}",
        linked[0]
    );

    // Only the future build: refused before linking, naming both versions.
    let only_future = format!("{}/glibc/future:1", registry.host());
    let (future, _) = pack_with(
        &staged,
        &only_future,
        &[
            "--target",
            "x86_64-unknown-linux-gnu",
            "--glibc-floor",
            "9.99",
        ],
    );
    run(ocipkg().arg("push").arg(&future));
    let failed = cargo(&consumer, &cache)
        .arg("build")
        .env("CONSUMER_REF", &only_future)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("glibc 9.99") && err.contains(&format!("glibc {host_glibc}")),
        "{err}"
    );
    assert!(!err.contains("undefined reference"), "{err}");
}

/// The arc4random package (new in glibc 2.36) packed for `triple`.
fn publish_arc4random(registry: &Registry, triple: &str, compiler: &str) -> (String, String) {
    let reference = format!("{}/glibc/arc4random-{triple}:1", registry.host());
    let staged = stage_calling(&format!("arc4random-{triple}"), "arc4random", compiler);
    let (layout, printed) = pack_with(&staged, &reference, &["--target", triple]);
    run(ocipkg().arg("push").arg(&layout));
    (reference, printed)
}

#[test]
fn target_glibc_decides_natively() {
    let registry = Registry::start();
    let (reference, printed) = publish_arc4random(&registry, "x86_64-unknown-linux-gnu", "cc");
    assert!(printed.contains("glibc >= 2.36"), "{printed}");
    let consumer = consumer_crate("consumer-arc4random");
    let cache = temp_dir("cache-arc4random");
    let failed = cargo(&consumer, &cache)
        .arg("build")
        .env("CONSUMER_REF", &reference)
        .env("OCIPKG_TARGET_GLIBC", "2.30")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("glibc 2.36") && err.contains("glibc 2.30"),
        "{err}"
    );
    let out = run(cargo(&consumer, &cache)
        .arg("run")
        .env("CONSUMER_REF", &reference)
        .env("OCIPKG_TARGET_GLIBC", "2.36"));
    assert_eq!(stdout(&out).trim(), "answer=41");
}

#[test]
fn target_glibc_decides_for_an_aarch64_cross_build() {
    let triple = "aarch64-unknown-linux-gnu";
    let registry = Registry::start();
    let (reference, printed) = publish_arc4random(&registry, triple, "aarch64-linux-gnu-gcc");
    // The floor comes from the cross target's own libc (Debian's arm64 cross libc).
    assert!(printed.contains("glibc >= 2.36"), "{printed}");
    let consumer = consumer_crate("consumer-arc4random-aarch64");
    let cache = temp_dir("cache-arc4random-aarch64");
    let cross = |glibc: Option<&str>| {
        let mut cmd = cargo(&consumer, &cache);
        cmd.args(["build", "--target", triple])
            .env("CONSUMER_REF", &reference)
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            );
        match glibc {
            Some(v) => cmd.env("OCIPKG_TARGET_GLIBC", v),
            None => cmd.env_remove("OCIPKG_TARGET_GLIBC"),
        };
        cmd.output().unwrap()
    };
    let failed = cross(Some("2.30"));
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(
        err.contains("glibc 2.36") && err.contains("glibc 2.30"),
        "{err}"
    );

    // Unknown glibc of a cross target: linked, with a warning saying how to check.
    let unchecked = cross(None);
    let text = String::from_utf8_lossy(&unchecked.stderr);
    assert!(unchecked.status.success(), "{text}");
    assert!(text.contains("OCIPKG_TARGET_GLIBC"), "{text}");

    let built = cross(Some("2.36"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let exe = shared_target_dir()
        .join(triple)
        .join("debug/consumer-arc4random-aarch64");
    let out = run(Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&exe));
    assert_eq!(stdout(&out).trim(), "answer=41");
}
