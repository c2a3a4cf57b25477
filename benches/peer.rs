//! Benchmark side by side with the peer users would otherwise pick: crates.io
//! `ocipkg-cli` 0.4.0 (upstream ocipkg), on a package of real libraries
//! (this toolchain's rlibs and `librustc_driver.so`, ~300 MB), against one
//! loopback Distribution registry, in one interleaved run:
//!
//! - pack wall time (the median of interleaved rounds) and layer size (gzip,
//!   zstd at the default level and, once, at the highest, plus a zstd level
//!   table);
//! - cold pull + verify + unpack into an empty cache: wall time and peak RSS
//!   (GNU `time`), the median of interleaved rounds; `ocipkg pull` (the CLI,
//!   which has libzstd) and, for zstd, `examples/fetch.rs` built without
//!   features: the consumer API with the pure-Rust decoder, as a -sys crate's
//!   build script runs it;
//! - the clean compile of a consumer crate with only ocipkg as
//!   build-dependency, next to one depending on crates.io `ocipkg` 0.4.0.
//!
//! Every figure is also printed as a ratio to upstream. Run:
//! `cargo bench --features cli --bench peer` (`OCIPKG_UPSTREAM=/path/to/ocipkg`
//! uses that binary; otherwise `cargo install ocipkg-cli --version 0.4.0`
//! into `target/upstream-ocipkg`, skipped with a note when that fails;
//! `OCIPKG_BENCH_ROUNDS` sets the rounds, default 3; `OCIPKG_BENCH_QUICK=1`
//! skips the level table and the compile comparison).

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;

#[allow(clippy::disallowed_methods)] // benchmark settings, not build-script inputs
fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn main() {
    let rounds: usize = setting("OCIPKG_BENCH_ROUNDS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let quick = setting("OCIPKG_BENCH_QUICK").is_some();
    let upstream = locate_upstream();
    let fetcher = consumer_fetcher();
    let registry = Registry::start();
    let host = format!("localhost:{}", registry.port);
    let dir = toolchain_package();
    let (files, bytes) = tree_stats(&dir);
    println!(
        "ocipkg vs upstream ocipkg-cli 0.4.0 — {} MB in {files} files of real libraries, \
         loopback Distribution, {rounds} interleaved rounds (median)",
        bytes / 1_000_000
    );

    // Pack: wall time and the size of the layer (the blob users download),
    // interleaved rounds like the pulls (the median's layout is kept).
    let default_level = ocipkg::publish::ZSTD_DEFAULT_LEVEL.to_string();
    let (mut gzip_runs, mut zstd_runs, mut upstream_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        gzip_runs.push(pack_ours(
            &dir,
            &format!("{host}/bench/gzip:1"),
            &["--compression", "gzip"],
        ));
        zstd_runs.push(pack_ours(
            &dir,
            &format!("{host}/bench/zstd:1"),
            &["--compression", "zstd", "--level", &default_level],
        ));
        if let Some(bin) = &upstream {
            upstream_runs.push(pack_upstream(
                bin,
                &dir,
                &format!("{host}/bench/upstream:1"),
            ));
        }
    }
    let gzip = median_pack(gzip_runs);
    let zstd = median_pack(zstd_runs);
    let max_level = ocipkg::publish::ZSTD_MAX_LEVEL.to_string();
    let zstd_max = (!quick).then(|| {
        pack_ours(
            &dir,
            &format!("{host}/bench/zstd-max:1"),
            &["--compression", "zstd", "--level", &max_level],
        )
    });
    let theirs = (!upstream_runs.is_empty()).then(|| median_pack(upstream_runs));

    for packed in [Some(&gzip), Some(&zstd), zstd_max.as_ref()]
        .into_iter()
        .flatten()
    {
        run(ocipkg().arg("push").arg(&packed.layout));
    }
    if let (Some(bin), Some(t)) = (&upstream, &theirs) {
        run(Command::new(bin)
            .arg("push")
            .arg(&t.layout)
            .env("HOME", temp_dir("bench-home")));
    }

    // Cold pulls, interleaved.
    let mut ours_gzip = Vec::new();
    let mut ours_zstd = Vec::new();
    let mut consumer_zstd = Vec::new();
    let mut upstream_pull = Vec::new();
    for _ in 0..rounds {
        ours_gzip.push(pull_ours(&format!("{host}/bench/gzip:1")));
        ours_zstd.push(pull_ours(&format!("{host}/bench/zstd:1")));
        if let Some(bin) = &fetcher {
            consumer_zstd.push(pull_consumer(bin, &format!("{host}/bench/zstd:1")));
        }
        if let Some(bin) = &upstream {
            upstream_pull.push(pull_upstream(bin, &format!("{host}/bench/upstream:1")));
        }
    }
    let (gzip_pull, zstd_pull) = (median(&ours_gzip), median(&ours_zstd));
    let consumer_pull = (!consumer_zstd.is_empty()).then(|| median(&consumer_zstd));
    let up_pull = (!upstream_pull.is_empty()).then(|| median(&upstream_pull));

    let ratio = |ours: f64, theirs: Option<f64>| match theirs {
        Some(t) if t > 0.0 => format!("{:.2}x", ours / t),
        _ => "-".into(),
    };
    let up_pack = theirs.as_ref().map(|t| t.seconds);
    let up_size = theirs.as_ref().map(|t| t.layer_bytes as f64);
    println!();
    println!(
        "{:<28} {:>10} {:>8} {:>12} {:>8} {:>11} {:>8} {:>9}",
        "", "pack s", "ratio", "layer MB", "ratio", "cold pull s", "ratio", "RSS MiB"
    );
    // A figure with its precision, or "-" where the row has none.
    let shown = |value: Option<f64>, decimals: usize| {
        value.map_or("-".into(), |v| format!("{v:.decimals$}"))
    };
    let row = |name: &str, p: Option<&Packed>, pull: Option<(f64, f64)>| {
        let pack_s = p.map(|p| p.seconds);
        let size = p.map(|p| p.layer_bytes as f64);
        println!(
            "{:<28} {:>10} {:>8} {:>12} {:>8} {:>11} {:>8} {:>9}",
            name,
            shown(pack_s, 2),
            pack_s.map_or("-".into(), |s| ratio(s, up_pack)),
            shown(size.map(|s| s / 1e6), 1),
            size.map_or("-".into(), |s| ratio(s, up_size)),
            shown(pull.map(|p| p.0), 2),
            pull.map_or("-".into(), |p| ratio(p.0, up_pull.map(|u| u.0))),
            shown(pull.map(|p| p.1), 1),
        );
    };
    if let Some(t) = &theirs {
        row("upstream 0.4.0", Some(t), up_pull);
    } else {
        println!("upstream 0.4.0: not available (see the note above); no ratios");
    }
    row("ocipkg gzip (level 6)", Some(&gzip), Some(gzip_pull));
    row(
        &format!("ocipkg zstd (level {default_level})"),
        Some(&zstd),
        Some(zstd_pull),
    );
    if let Some(pull) = consumer_pull {
        row("  the same, build script", None, Some(pull));
    }
    if let Some(max) = &zstd_max {
        row(&format!("ocipkg zstd (level {max_level})"), Some(max), None);
    }
    println!(
        "zstd layer vs gzip layer: {:.2}x at level {default_level}{}",
        zstd.layer_bytes as f64 / gzip.layer_bytes as f64,
        zstd_max
            .as_ref()
            .map(|m| format!(
                ", {:.2}x at level {max_level}",
                m.layer_bytes as f64 / gzip.layer_bytes as f64
            ))
            .unwrap_or_default()
    );

    if !quick {
        println!();
        println!("zstd levels (pack s, layer vs gzip-6):");
        for level in [1, 3, 6, 9, 12, 15] {
            let p = pack_ours(
                &dir,
                &format!("{host}/bench/level{level}:1"),
                &["--compression", "zstd", "--level", &level.to_string()],
            );
            println!(
                "  level {level:>2}: {:>6.2} s  {:.3}x",
                p.seconds,
                p.layer_bytes as f64 / gzip.layer_bytes as f64
            );
            let _ = fs::remove_dir_all(&p.layout);
        }
        println!();
        let ours = consumer_build(
            "ocipkg = { path = \"OURS\" }",
            "link_package(\"x\").unwrap();",
        );
        let with_libzstd = consumer_build(
            "ocipkg = { path = \"OURS\", features = [\"libzstd\"] }",
            "link_package(\"x\").unwrap();",
        );
        let theirs = consumer_build("ocipkg = \"=0.4.0\"", "link_package(\"x\").unwrap();");
        let floor = consumer_build(
            &format!(
                "ocipkg = {{ path = {:?}, package = \"ocipkg-floor\" }}",
                floor_crate()
            ),
            "link_package(\"x\").unwrap();",
        );
        println!("consumer crate, clean `cargo build` (debug, only ocipkg as build-dependency):");
        println!(
            "  ocipkg (this crate):  {:>3} crates {:>6.1} s",
            ours.0, ours.1
        );
        let versus = |seconds: f64| match theirs {
            (n, s) if n > 0 => format!("  ({:.2}x)", seconds / s),
            _ => String::new(),
        };
        println!(
            "  the same with feature libzstd: {:>3} crates {:>6.1} s{}",
            with_libzstd.0,
            with_libzstd.1,
            versus(with_libzstd.1)
        );
        match theirs {
            (n, s) if n > 0 => println!(
                "  crates.io ocipkg 0.4.0: {n:>3} crates {s:>6.1} s  (ours: {:.2}x)",
                ours.1 / s
            ),
            _ => println!("  crates.io ocipkg 0.4.0: could not be built here"),
        }
        println!(
            "  floor (ocipkg's required dependencies, same features, empty lib): {:>3} crates \
             {:>6.1} s{}",
            floor.0,
            floor.1,
            versus(floor.1)
        );
    }
}

/// A packed layout, its pack time and its layer size.
struct Packed {
    layout: PathBuf,
    seconds: f64,
    layer_bytes: u64,
}

fn pack_ours(dir: &Path, reference: &str, flags: &[&str]) -> Packed {
    let layout = temp_dir("bench-layout").join("oci");
    let started = Instant::now();
    run(ocipkg()
        .arg("pack")
        .arg(dir)
        .args(["--tag", reference, "--output"])
        .arg(&layout)
        .args(flags));
    let seconds = started.elapsed().as_secs_f64();
    let (_, layers) = layout_digests(&layout);
    let layer_bytes = layers
        .iter()
        .map(|d| {
            fs::metadata(layout.join("blobs/sha256").join(&d[7..]))
                .unwrap()
                .len()
        })
        .sum();
    Packed {
        layout,
        seconds,
        layer_bytes,
    }
}

fn pack_upstream(bin: &Path, dir: &Path, reference: &str) -> Packed {
    let out = temp_dir("bench-upstream").join("package.tar");
    let started = Instant::now();
    run(Command::new(bin)
        .arg("pack")
        .arg(dir)
        .arg(&out)
        .args(["-t", reference]));
    let seconds = started.elapsed().as_secs_f64();
    // Its layer: the largest blob in the oci-archive.
    let listing = stdout(&run(Command::new("tar").arg("tvf").arg(&out)));
    let layer_bytes = listing
        .lines()
        .filter(|l| l.contains("blobs/sha256/"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    Packed {
        layout: out,
        seconds,
        layer_bytes,
    }
}

/// (wall seconds, peak RSS MiB) of a command, from GNU time.
fn timed(cmd: &mut Command) -> (f64, f64) {
    let report = temp_dir("bench-time").join("report");
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%e %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args);
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    run(&mut wrapped);
    let text = read(&report);
    let mut parts = text.split_whitespace();
    let seconds: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    let kib: f64 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    (seconds, kib / 1024.0)
}

fn pull_ours(reference: &str) -> (f64, f64) {
    let cache = temp_dir("bench-pull-cache");
    let measured = timed(
        ocipkg()
            .args(["pull", reference])
            .env("OCIPKG_CACHE_DIR", &cache),
    );
    let _ = fs::remove_dir_all(&cache);
    measured
}

/// A crate with exactly ocipkg's non-optional dependencies (same versions
/// and features) and an empty library: what no consumer build can go below.
fn floor_crate() -> PathBuf {
    let manifest = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    let dependencies: Vec<&str> = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("optional = true"))
        .collect();
    let dir = temp_dir("bench-floor");
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"ocipkg-floor\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [dependencies]\n{}\n",
            dependencies.join("\n")
        ),
    )
    .unwrap();
    fs::write(
        dir.join("src/lib.rs"),
        "pub fn link_package(_: &str) -> Result<(), ()> { Ok(()) }\n",
    )
    .unwrap();
    dir
}

/// `examples/fetch.rs` built without features (the consumer's decoders).
fn consumer_fetcher() -> Option<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = manifest_dir.join("target/bench-consumer");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "--example",
            "fetch",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(manifest_dir)
        .status();
    match status {
        Ok(s) if s.success() => Some(target.join("release/examples/fetch")),
        _ => {
            println!("note: examples/fetch.rs did not build; no build-script row");
            None
        }
    }
}

fn pull_consumer(bin: &Path, reference: &str) -> (f64, f64) {
    let cache = temp_dir("bench-fetch-cache");
    let measured = timed(
        Command::new(bin)
            .arg(reference)
            .env("OCIPKG_CACHE_DIR", &cache),
    );
    let _ = fs::remove_dir_all(&cache);
    measured
}

fn pull_upstream(bin: &Path, reference: &str) -> (f64, f64) {
    let home = temp_dir("bench-pull-upstream");
    let measured = timed(
        Command::new(bin)
            .args(["get", reference])
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .env("RUST_LOG", "error"),
    );
    let _ = fs::remove_dir_all(&home);
    measured
}

/// The pack of median time; the other rounds' layouts are removed.
fn median_pack(mut runs: Vec<Packed>) -> Packed {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let kept = runs.remove(runs.len() / 2);
    for other in runs {
        let _ = fs::remove_dir_all(other.layout.parent().unwrap_or(&other.layout));
    }
    kept
}

fn median(runs: &[(f64, f64)]) -> (f64, f64) {
    let mut by_time = runs.to_vec();
    by_time.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_time[by_time.len() / 2]
}

/// The upstream CLI: `OCIPKG_UPSTREAM`, or installed from crates.io once.
fn locate_upstream() -> Option<PathBuf> {
    if let Some(path) = setting("OCIPKG_UPSTREAM") {
        return Some(PathBuf::from(path));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/upstream-ocipkg");
    let bin = root.join("bin/ocipkg");
    if bin.is_file() {
        return Some(bin);
    }
    println!("building upstream ocipkg-cli 0.4.0 with cargo install (once) ...");
    let status = Command::new(env!("CARGO"))
        .args([
            "install",
            "ocipkg-cli",
            "--version",
            "0.4.0",
            "--locked",
            "--root",
        ])
        .arg(&root)
        .status();
    match status {
        Ok(s) if s.success() && bin.is_file() => Some(bin),
        _ => {
            println!("note: ocipkg-cli 0.4.0 could not be installed; upstream columns skipped");
            None
        }
    }
}

/// This toolchain's libraries: rlibs of every installed target and
/// `librustc_driver.so`.
fn toolchain_package() -> PathBuf {
    let sysroot = stdout(&run(Command::new("rustc").args(["--print", "sysroot"])));
    let sysroot = Path::new(sysroot.trim());
    let dir = temp_dir("bench-toolchain");
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    let mut sources: Vec<PathBuf> = Vec::new();
    if let Ok(targets) = fs::read_dir(sysroot.join("lib/rustlib")) {
        for target in targets.flatten() {
            if let Ok(files) = fs::read_dir(target.path().join("lib")) {
                sources.extend(files.flatten().map(|f| f.path()));
            }
        }
    }
    if let Ok(files) = fs::read_dir(sysroot.join("lib")) {
        sources.extend(
            files
                .flatten()
                .map(|f| f.path())
                .filter(|p| p.to_string_lossy().contains("librustc_driver")),
        );
    }
    for (i, source) in sources.iter().filter(|p| p.is_file()).enumerate() {
        let name = source.file_name().unwrap().to_string_lossy();
        fs::copy(source, lib.join(format!("{i:03}-{name}"))).unwrap();
    }
    dir
}

fn tree_stats(dir: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(dir.join("lib")).unwrap().flatten() {
        files += 1;
        bytes += entry.metadata().unwrap().len();
    }
    (files, bytes)
}
