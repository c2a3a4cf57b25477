//! Network faults injected by a loopback proxy in front of a real registry:
//! 5xx, 429 with Retry-After, connections dropped mid-download.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;

/// Counts how often each kind of request was seen, to fail only the first.
#[derive(Default)]
struct Seen {
    manifests: AtomicUsize,
    config: AtomicUsize,
    layer: AtomicUsize,
}

fn pull_through(
    proxy: &Proxy,
    repository: &str,
    cache_name: &str,
) -> ocipkg::Result<ocipkg::Package> {
    ocipkg::Linker::new()
        .cache_dir(temp_dir(cache_name))
        .quiet(true)
        .link(&format!("127.0.0.1:{}/{repository}", proxy.port))
}

#[test]
fn a_503_a_429_and_a_dropped_download_are_survived() {
    let registry = Registry::start();
    let (layout, _) = publish_c_package(&registry, "faults/answer:1");
    let (digest, layers) = layout_digests(&layout);
    let layer = layers[0].clone();
    let config = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let seen = Arc::new(Seen::default());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let (s, r) = (seen.clone(), ranges.clone());
    let proxy = Proxy::start(registry.port, move |req| {
        let path = req.path();
        if path.contains("/manifests/") && s.manifests.fetch_add(1, Ordering::SeqCst) == 0 {
            return Action::Respond("503 Service Unavailable", String::new(), "busy".into());
        }
        if path.ends_with(config) && s.config.fetch_add(1, Ordering::SeqCst) == 0 {
            return Action::Respond(
                "429 Too Many Requests",
                "Retry-After: 1\r\n".into(),
                "".into(),
            );
        }
        if path.ends_with(&layer) {
            if let Some(range) = req.header("range") {
                r.lock().unwrap().push(range.to_string());
            }
            if s.layer.fetch_add(1, Ordering::SeqCst) == 0 {
                return Action::ForwardTruncated(100);
            }
        }
        Action::Forward
    });
    let package = pull_through(&proxy, "faults/answer:1", "cache-faults").unwrap();
    assert_eq!(package.manifest_digest(), Some(digest.as_str()));
    assert_eq!(package.libraries()[0].name(), "answer");
    assert_eq!(seen.manifests.load(Ordering::SeqCst), 2, "503 then success");
    assert_eq!(seen.config.load(Ordering::SeqCst), 2, "429 then success");
    assert_eq!(
        seen.layer.load(Ordering::SeqCst),
        2,
        "dropped, then resumed"
    );
    assert_eq!(
        *ranges.lock().unwrap(),
        ["bytes=100-"],
        "resumed where it broke"
    );
}

#[test]
fn a_dropped_download_starts_over_when_ranges_are_ignored() {
    let registry = Registry::start();
    let (layout, _) = publish_c_package(&registry, "norange/answer:1");
    let layer = layout_digests(&layout).1.remove(0);
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let proxy = Proxy::start(registry.port, move |req| {
        if req.path().ends_with(&layer) {
            return match d.fetch_add(1, Ordering::SeqCst) {
                0 => Action::ForwardTruncated(300),
                _ => Action::ForwardWithoutRange,
            };
        }
        Action::Forward
    });
    let package = pull_through(&proxy, "norange/answer:1", "cache-norange").unwrap();
    assert_eq!(package.libraries()[0].name(), "answer");
    assert_eq!(drops.load(Ordering::SeqCst), 2);
}

#[test]
fn a_registry_that_stays_down_fails_with_advice_after_bounded_retries() {
    let registry = Registry::start();
    let proxy = Proxy::start(registry.port, |_| {
        Action::Respond("503 Service Unavailable", String::new(), "down".into())
    });
    let started = std::time::Instant::now();
    let err = pull_through(&proxy, "down/answer:1", "cache-down")
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 503"), "{err}");
    assert!(err.contains("tried 4 times"), "{err}");
    assert!(err.contains("help:"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_manifest_naming_blobs_the_registry_does_not_see_yet_is_pushed_again() {
    // Eventually consistent registries (and Distribution while another
    // publisher links the same blob) may briefly answer MANIFEST_BLOB_UNKNOWN
    // for blobs just uploaded.
    let registry = Registry::start();
    let blob_unknown = || {
        Action::Respond(
            "400 Bad Request",
            "Content-Type: application/json\r\n".into(),
            r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#
                .into(),
        )
    };
    let puts = Arc::new(AtomicUsize::new(0));
    let seen = puts.clone();
    let proxy = Proxy::start(registry.port, move |req| {
        if req.method() == "PUT"
            && req.path().contains("/manifests/")
            && seen.fetch_add(1, Ordering::SeqCst) == 0
        {
            return blob_unknown();
        }
        Action::Forward
    });
    let reference = format!("127.0.0.1:{}/faults/settling:1", proxy.port);
    let layout = pack(&stage_c_package("settling"), &reference);
    run(ocipkg()
        .arg("push")
        .arg(&layout)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-settling")));
    assert_eq!(puts.load(Ordering::SeqCst), 2, "refused once, then taken");
    let package = pull_through(&proxy, "faults/settling:1", "cache-settling-pull").unwrap();
    assert_eq!(package.libraries()[0].name(), "answer");

    // A registry that keeps saying so: the push fails, after a bounded wait,
    // with the registry's own words.
    let stubborn = Proxy::start(registry.port, move |req| {
        if req.method() == "PUT" && req.path().contains("/manifests/") {
            return blob_unknown();
        }
        Action::Forward
    });
    let reference = format!("127.0.0.1:{}/faults/stubborn:1", stubborn.port);
    let layout = pack(&stage_c_package("stubborn"), &reference);
    let started = std::time::Instant::now();
    let out = ocipkg()
        .arg("push")
        .arg(&layout)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-stubborn"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
