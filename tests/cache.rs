//! The cache under pressure: offline builds, many processes at once,
//! leftovers of killed fetches.

mod common;

use std::fs;

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
fn a_fetch_killed_mid_unpack_leaves_nothing_trusted_and_the_next_one_succeeds() {
    let registry = Registry::start();
    // A package with 10 MiB of incompressible data (three 4 MiB pieces), so
    // a download stalled after the first piece is caught in the middle of
    // unpacking.
    let dir = stage_c_package("kill-pkg");
    let noise = noise(10 << 20, 0x9e37_79b9_7f4a_7c15);
    fs::write(dir.join("lib/noise.bin"), &noise).unwrap();
    let reference = format!("{}/kill/answer:1", registry.host());
    let layout = pack(&dir, &reference);
    run(ocipkg().arg("push").arg(&layout));
    let (digest, layers) = layout_digests(&layout);
    let layer = layers[0].clone();
    let proxy = Proxy::start(registry.port, move |req| {
        if req.path().ends_with(&layer) {
            Action::ForwardThenStall(5 << 20)
        } else {
            Action::Forward
        }
    });

    let cache = temp_dir("cache-kill");
    let mut child = ocipkg()
        .args(["pull", &format!("127.0.0.1:{}/kill/answer:1", proxy.port)])
        .env("OCIPKG_CACHE_DIR", &cache)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the staging dir holds part of the package, then SIGKILL.
    let hex = digest.strip_prefix("sha256:").unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let staged = loop {
        let found = fs::read_dir(cache.join("tmp"))
            .ok()
            .and_then(|mut entries| {
                entries.find_map(|e| {
                    let path = e.ok()?.path();
                    let partial = path.join("root/lib/noise.bin");
                    (fs::metadata(&partial).ok()?.len() > 0).then_some(path)
                })
            });
        if let Some(path) = found {
            break path;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fetch never started unpacking"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(staged.exists(), "the killed process left its staging dir");
    assert!(
        !cache.join("pkgs/sha256").join(&hex).exists(),
        "nothing was committed"
    );

    // Offline, the half-unpacked package is not trusted.
    let out = ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache)
        .env("OCIPKG_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // The next fetch cleans up and succeeds with exactly one complete entry.
    let root = stdout(&run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache)));
    assert_eq!(
        fs::read(format!("{}/lib/noise.bin", root.trim())).unwrap(),
        noise
    );
    assert_eq!(fs::read_dir(cache.join("pkgs/sha256")).unwrap().count(), 1);
    assert_eq!(fs::read_dir(cache.join("tmp")).unwrap().count(), 0);
}

#[test]
fn a_tampered_manifest_is_rejected_with_both_digests() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "badmanifest/answer:1");
    let (digest, _) = layout_digests(&layout);
    // Change the stored manifest's bytes without changing its meaning.
    let stored = registry.blob_file(&digest);
    let mut bytes = fs::read(&stored).unwrap();
    bytes.push(b'\n');
    fs::write(&stored, &bytes).unwrap();
    let cache = temp_dir("cache-badmanifest");
    let err = link_in(&cache, &reference).unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&format!("expected: {digest}")), "{err}");
    assert!(err.contains("actual:   sha256:"), "{err}");
    assert!(
        !cache.join("pkgs").exists()
            || fs::read_dir(cache.join("pkgs/sha256")).unwrap().count() == 0
    );
}

#[test]
fn a_warm_tag_costs_one_manifest_request() {
    let registry = Registry::start();
    let (_, reference) = publish_c_package(&registry, "warm/answer:1");
    let cache = temp_dir("cache-warm");
    let mut linker = ocipkg::Linker::new();
    linker.cache_dir(&cache).quiet(true);
    linker.link(&reference).unwrap();
    let before = registry.access_log().lines().count();
    linker.link(&reference).unwrap();
    let log = registry.access_log();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].contains("\"GET /v2/warm/answer/manifests/1 "),
        "{new:?}"
    );
}
