//! The cache under pressure: offline builds, many processes at once,
//! leftovers of killed fetches.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn offline_uses_the_cache_and_advises_prefetch_on_a_miss() {
    let registry = Registry::start();
    let (_, reference) = publish_c_package(&registry, "offline/answer:1");
    let cache = temp_dir("cache-offline");
    let cold = temp_dir("cache-offline-cold");

    // Warm the cache by tag, then stop the registry: offline needs no network.
    run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache));
    drop(registry);
    for var in ["OCIPKG_OFFLINE", "CARGO_NET_OFFLINE"] {
        let out = run(ocipkg()
            .args(["pull", &reference])
            .env("OCIPKG_CACHE_DIR", &cache)
            .env(var, "true"));
        let root = stdout(&out);
        assert!(
            fs::metadata(format!("{}/lib/libanswer.a", root.trim())).is_ok(),
            "{root}"
        );
    }
    let package = ocipkg::Linker::new()
        .cache_dir(&cache)
        .offline(true)
        .quiet(true)
        .link(&reference)
        .unwrap();
    assert_eq!(package.libraries()[0].name(), "answer");

    let out = ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cold)
        .env("OCIPKG_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("offline"), "{err}");
    assert!(err.contains(&format!("ocipkg pull {reference}")), "{err}");
}

#[test]
fn sixteen_processes_pulling_at_once_download_the_layer_once() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "crowd/answer:1");
    let layer = layout_digests(&layout).1.remove(0);
    let cache = temp_dir("cache-crowd");
    let children: Vec<_> = (0..16)
        .map(|_| {
            ocipkg()
                .args(["pull", &reference])
                .env("OCIPKG_CACHE_DIR", &cache)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let roots: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout(&out).trim().to_string()
        })
        .collect();
    assert!(roots.iter().all(|r| r == &roots[0]), "{roots:?}");
    let gets = registry
        .access_log()
        .lines()
        .filter(|l| l.contains(&format!("\"GET /v2/crowd/answer/blobs/{layer} ")))
        .count();
    assert_eq!(gets, 1, "the layer is downloaded once");
    assert_eq!(fs::read_dir(cache.join("pkgs/sha256")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
}

#[test]
fn leftovers_of_a_killed_fetch_are_ignored_and_cleaned() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "killed/answer:1");
    let (digest, _) = layout_digests(&layout);
    let hex = digest.strip_prefix("sha256:").unwrap();
    let cache = temp_dir("cache-killed");
    // What a fetch SIGKILLed mid-unpack leaves: a half-filled staging dir.
    let leftover = cache.join("tmp").join(format!("{hex}.4242-1-0"));
    fs::create_dir_all(leftover.join("root/lib")).unwrap();
    fs::write(leftover.join("root/lib/libanswer.a"), b"half").unwrap();

    let out = run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache));
    let root = stdout(&out).trim().to_string();
    assert!(root.contains(hex), "{root}");
    assert!(!leftover.exists(), "the leftover was removed");
    assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
    // The unpacked archive is the real one, not the leftover.
    let lib = fs::read(format!("{root}/lib/libanswer.a")).unwrap();
    assert!(lib.starts_with(b"!<arch>"), "a real ar archive");
    // And a consumer can link it: `ar t` lists the member.
    let members = stdout(&run(Command::new("ar")
        .arg("t")
        .arg(format!("{root}/lib/libanswer.a"))));
    assert!(!members.trim().is_empty());
}
