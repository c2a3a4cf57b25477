//! Multi-platform packages, dynamic libraries that run, and link metadata.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

/// Packs `dir` for `reference` and `target` (plus extra `ocipkg pack` flags).
fn pack_for(dir: &Path, reference: &str, extra: &[&str]) -> std::path::PathBuf {
    let out = dir.with_extension("oci");
    run(ocipkg()
        .arg("pack")
        .arg(dir)
        .args(["--tag", reference, "--output"])
        .arg(&out)
        .args(extra));
    out
}

#[test]
fn one_reference_serves_every_target() {
    let registry = Registry::start();
    let host = host_triple();
    let other = other_triple();
    let reference = format!("{}/multi/answer:1", registry.host());

    let native = stage_c_package("multi-host");
    let native_layout = pack_for(&native, &reference, &["--target", &host]);
    run(ocipkg().arg("push").arg(&native_layout));
    let (native_digest, native_layers) = layout_digests(&native_layout);

    // A stand-in file set labelled with the second triple.
    let standin = stage_c_package("multi-other");
    fs::write(standin.join("lib/STAND-IN"), other).unwrap();
    let other_layout = pack_for(&standin, &reference, &["--target", other]);
    let (other_digest, _) = layout_digests(&other_layout);
    let before = registry.access_log().lines().count();
    let pushed = stdout(&run(ocipkg().arg("push").arg(&other_layout)));
    assert!(pushed.contains("pin all platforms with:"), "{pushed}");
    let log = registry.access_log();
    let second_publish: Vec<&str> = log.lines().skip(before).collect();
    for layer in &native_layers {
        assert!(
            !second_publish
                .iter()
                .any(|l| l.contains("\"GET ") && l.contains(layer.as_str())),
            "the first platform's layer was downloaded: {second_publish:#?}"
        );
    }

    // The tag is an index with both platforms.
    let raw = stdout(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let triples: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"]["vnd.ocipkg.target"].as_str().unwrap())
        .collect();
    assert_eq!(triples.len(), 2, "{raw}");
    assert!(
        triples.contains(&host.as_str()) && triples.contains(&other),
        "{raw}"
    );

    // This host links its own build; the other target gets the other one.
    let cache = temp_dir("cache-multi");
    let mut linker = ocipkg::Linker::new();
    linker.cache_dir(&cache).quiet(true);
    let package = linker.link(&reference).unwrap();
    assert_eq!(package.manifest_digest(), Some(native_digest.as_str()));
    let fetched = ocipkg::Linker::new()
        .cache_dir(&cache)
        .target(other)
        .fetch(&reference)
        .unwrap();
    assert_eq!(fetched.manifest_digest, other_digest);
    assert!(fetched.root.join("lib/STAND-IN").is_file());
    let err = ocipkg::Linker::new()
        .cache_dir(&cache)
        .target("riscv64gc-unknown-linux-gnu")
        .fetch(&reference)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&host) && err.contains(other), "{err}");
    assert!(err.contains("linux/riscv64"), "{err}");

    // Offline, the kept index still picks this host's build.
    let offline = linker.offline(true).link(&reference).unwrap();
    assert_eq!(offline.manifest_digest(), Some(native_digest.as_str()));

    // And a real build through the index runs.
    let consumer = consumer_crate("consumer-multi");
    let out = run(cargo(&consumer, &temp_dir("cache-multi-build"))
        .arg("run")
        .env("CONSUMER_REF", &reference));
    assert_eq!(stdout(&out).trim(), "answer=41");
}

const CPP_SOURCE: &str = r#"
#include <string>
// Needs libstdc++: std::string, std::to_string, std::stoi.
extern "C" int ocipkg_c_answer(int x) {
    std::string s = std::to_string(2 * x + 1);
    return std::stoi(s);
}
"#;

#[test]
fn a_cpp_library_links_with_the_system_libraries_its_package_names() {
    let registry = Registry::start();
    let dir = stage_package("cpp-pkg", CPP_SOURCE, true);
    let with = format!("{}/cpp/answer:with-stdcxx", registry.host());
    let without = format!("{}/cpp/answer:without", registry.host());
    run(ocipkg()
        .arg("push")
        .arg(pack_for(&dir, &with, &["--system-lib", "stdc++"])));
    let plain = stage_package("cpp-pkg-plain", CPP_SOURCE, true);
    run(ocipkg().arg("push").arg(pack_for(&plain, &without, &[])));

    // The consumer's build.rs only calls link_package.
    let consumer = consumer_crate("consumer-cpp");
    let out = run(cargo(&consumer, &temp_dir("cache-cpp"))
        .arg("run")
        .env("CONSUMER_REF", &with));
    assert_eq!(stdout(&out).trim(), "answer=41");

    // Without the metadata the same library does not link: it matters.
    let out = cargo(&consumer, &temp_dir("cache-cpp-without"))
        .arg("build")
        .env("CONSUMER_REF", &without)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("undefined reference")
            || err.contains("undefined symbol")
            || err.contains("Undefined symbols"),
        "{err}"
    );
}

#[test]
fn the_dynamic_example_runs_without_library_path_even_when_moved() {
    let registry = Registry::start();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dynamic/rust");
    let repository = format!("{}/ocipkg/dynamic-example", registry.host());
    publish_example("dynamic", &repository, "e2e");
    let out = run(cargo(&examples.join("exe"), &temp_dir("cache-dynamic"))
        .arg("run")
        .env("OCIPKG_DYNAMIC_EXAMPLE_REF", format!("{repository}:e2e"))
        .env_remove("LD_LIBRARY_PATH"));
    let expected = "3² + 4² = 25 (computed by the shared library from the registry)";
    assert_eq!(stdout(&out).trim(), expected);

    // The binary and the library the helper put beside it, moved elsewhere.
    let elsewhere = temp_dir("dynamic-moved");
    let built = shared_target_dir().join("debug");
    for file in ["ocipkg-dynamic-example-exe", "libocipkg_dynamic_example.so"] {
        fs::copy(built.join(file), elsewhere.join(file)).unwrap();
    }
    let out = run(Command::new(elsewhere.join("ocipkg-dynamic-example-exe"))
        .env_remove("LD_LIBRARY_PATH")
        .current_dir("/"));
    assert_eq!(stdout(&out).trim(), expected);
    // It really is dynamically linked to the package's library.
    let needed = stdout(&run(
        Command::new("ldd").arg(elsewhere.join("ocipkg-dynamic-example-exe"))
    ));
    assert!(
        needed.contains(&format!(
            "{}/libocipkg_dynamic_example.so",
            elsewhere.display()
        )),
        "{needed}"
    );
}

#[test]
fn concurrent_publishers_of_one_tag_keep_each_others_platforms() {
    let registry = Registry::start();
    let reference = format!("{}/race/answer:1", registry.host());
    let triples = [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-linux-musl",
    ];
    let layouts: Vec<_> = triples
        .iter()
        .map(|triple| {
            let dir = stage_c_package(&format!("race-{triple}"));
            fs::write(dir.join("lib/TARGET"), triple).unwrap();
            pack_for(&dir, &reference, &["--target", triple])
        })
        .collect();
    let children: Vec<_> = layouts
        .iter()
        .map(|layout| {
            ocipkg()
                .arg("push")
                .arg(layout)
                .env("OCIPKG_CACHE_DIR", temp_dir("cache-race"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let raw = stdout(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])));
    for triple in triples {
        assert!(raw.contains(triple), "{triple} lost: {raw}");
    }
}
