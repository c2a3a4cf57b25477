//! Benchmark: cold pull + verify + unpack of a large package from a loopback
//! Distribution registry, the warm cached call, and peak memory, against a
//! naive client that holds the blob in memory and unpacks afterwards.
//!
//! Run: `cargo bench --features cli --bench pull`
//! (`OCIPKG_BENCH_MB` sets the large package's size, default 200.)
//!
//! It ends with the cost ocipkg adds to every consumer: a clean `cargo build`
//! of a crate with ocipkg as its only build-dependency (crates compiled and
//! wall time).
//!
//! Each measurement runs in a fresh child process (this binary re-executed)
//! so that its peak RSS (`VmHWM`) is its own.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        child(&args[pos + 1], &args[pos + 2], Path::new(&args[pos + 3]));
        return;
    }
    #[allow(clippy::disallowed_methods)] // a benchmark setting, not a build-script input
    let large_mb: u64 = std::env::var("OCIPKG_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let registry = Registry::start();
    println!(
        "ocipkg pull benchmark (loopback Distribution on port {})",
        registry.port
    );
    println!(
        "{:<40} {:>10} {:>14}",
        "measurement", "seconds", "peak RSS MiB"
    );
    for (name, mb) in [("small", 10), ("large", large_mb)] {
        let dir = temp_dir(&format!("bench-{name}"));
        let bytes = fill_with_object_code(&dir.join("lib"), mb << 20);
        let reference = format!("{}/bench/{name}:1", registry.host());
        let layout = dir.with_extension("oci");
        let zstd_layout = dir.with_extension("zstd.oci");
        let pack = |out: &Path, compression: &str| {
            let started = Instant::now();
            run(ocipkg()
                .arg("pack")
                .arg(&dir)
                .args([
                    "--tag",
                    &reference,
                    "--compression",
                    compression,
                    "--output",
                ])
                .arg(out));
            started.elapsed().as_secs_f64()
        };
        let gzip_time = pack(&layout, "gzip");
        let zstd_time = pack(&zstd_layout, "zstd");
        let label = format!("{name} package ({} MiB of libraries)", bytes >> 20);
        println!("{label}");
        println!(
            "{:<40} {:>10.2} {:>14}",
            "  ocipkg pack (gzip)", gzip_time, "-"
        );
        println!(
            "{:<40} {:>10.2} {:>14}",
            "  ocipkg pack (zstd)", zstd_time, "-"
        );
        let push = measure("push", &reference, &layout);
        println!(
            "{:<40} {:>10.2} {:>14.1}",
            "  ocipkg push (gzip, chunked)", push.0, push.1
        );

        let cache = temp_dir("bench-cache");
        let cold = measure("ours", &reference, &cache);
        println!(
            "{:<40} {:>10.2} {:>14.1}",
            "  cold pull+verify+unpack (ocipkg)", cold.0, cold.1
        );
        let warm = measure("ours", &reference, &cache);
        println!(
            "{:<40} {:>10.4} {:>14.1}",
            "  warm call (cached)", warm.0, warm.1
        );
        let naive_dir = temp_dir("bench-naive");
        let naive = measure("naive", &reference, &naive_dir);
        println!(
            "{:<40} {:>10.2} {:>14.1}",
            "  cold, blob in memory then unpack", naive.0, naive.1
        );
        println!(
            "{:<40} {:>10.2}x",
            "  speed-up over in-memory",
            naive.0 / cold.0
        );
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&layout);
        let _ = fs::remove_dir_all(&zstd_layout);
        let _ = fs::remove_dir_all(&cache);
        let _ = fs::remove_dir_all(&naive_dir);
    }
    let (crates, seconds) = consumer_build(
        "ocipkg = { path = \"OURS\" }",
        "link_package(\"ghcr.io/org/lib:1\").unwrap();",
    );
    println!("consumer crate, clean `cargo build` (debug)");
    println!(
        "{:<40} {:>10.1} {:>14}",
        format!("  {crates} crates compiled"),
        seconds,
        "-"
    );
}

/// Runs one measurement in a child process; returns (seconds, peak RSS MiB).
fn measure(mode: &str, reference: &str, dir: &Path) -> (f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let out = run(Command::new(exe)
        .args(["--child", mode, reference])
        .arg(dir));
    let text = stdout(&out);
    let mut words = text.split_whitespace();
    let seconds = words.next().unwrap().parse().unwrap();
    let kib: f64 = words.next().unwrap().parse().unwrap();
    (seconds, kib / 1024.0)
}

/// In the child: do the work, print "<seconds> <VmHWM KiB>".
fn child(mode: &str, reference: &str, dir: &Path) {
    let started = Instant::now();
    match mode {
        "push" => {
            ocipkg::publish::push(dir, Some(reference)).unwrap();
        }
        "ours" => {
            ocipkg::Linker::new()
                .cache_dir(dir)
                .fetch(reference)
                .unwrap();
        }
        _ => naive_pull(reference, dir),
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .to_string();
    println!("{seconds} {hwm}");
}

/// The way we do not do it: download the whole blob into memory, hash it,
/// then decompress and unpack.
fn naive_pull(reference: &str, dest: &Path) {
    use sha2::Digest as _;
    let (host, rest) = reference.split_once('/').unwrap();
    let (repo, tag) = rest.rsplit_once(':').unwrap();
    let agent = ureq::Agent::new_with_defaults();
    let manifest: serde_json::Value = serde_json::from_str(
        &agent
            .get(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let mut blob = Vec::new();
        agent
            .get(format!("http://{host}/v2/{repo}/blobs/{digest}"))
            .call()
            .unwrap()
            .into_body()
            .into_reader()
            .read_to_end(&mut blob)
            .unwrap();
        let hex: String = sha2::Sha256::digest(&blob)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(format!("sha256:{hex}"), digest);
        tar::Archive::new(flate2::read::MultiGzDecoder::new(&blob[..]))
            .unpack(dest)
            .unwrap();
    }
}

/// Copies libraries found on this machine (static archives, rlibs, shared
/// objects) into `dir` until `target` bytes; returns the bytes copied.
fn fill_with_object_code(dir: &Path, target: u64) -> u64 {
    fs::create_dir_all(dir).unwrap();
    let sysroot = stdout(&run(Command::new("rustc").args(["--print", "sysroot"])));
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut roots = vec![
        PathBuf::from("/usr/lib/x86_64-linux-gnu"),
        PathBuf::from("/usr/lib/aarch64-linux-gnu"),
        PathBuf::from("/usr/lib"),
    ];
    roots.push(Path::new(sysroot.trim()).join("lib/rustlib"));
    while let Some(root) = roots.pop() {
        let Ok(entries) = fs::read_dir(&root) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() && path.starts_with(sysroot.trim()) {
                roots.push(path);
            } else if meta.is_file() {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.ends_with(".a") || name.ends_with(".rlib") || name.contains(".so") {
                    sources.push(path);
                }
            }
        }
    }
    sources.sort();
    assert!(
        !sources.is_empty(),
        "no libraries found on this machine to copy"
    );
    let mut total = 0;
    let mut round = 0;
    // Whole files only, none that would overshoot the target by more than 8 MiB.
    while total < target {
        let before = total;
        for (i, src) in sources.iter().enumerate() {
            let size = fs::metadata(src).map(|m| m.len()).unwrap_or(u64::MAX);
            if total >= target || total + size > target + (8 << 20) {
                continue;
            }
            let name = src.file_name().unwrap().to_string_lossy();
            let dest = dir.join(format!("r{round}-{i}-{name}"));
            if let Ok(n) = fs::copy(src, &dest) {
                total += n;
            }
        }
        if total == before {
            break;
        }
        round += 1;
    }
    total
}
