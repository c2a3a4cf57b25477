//! The user's story against a real registry: pack and push a library, link it
//! from another crate's build.rs, run the result.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn c_static_library_is_packed_pushed_linked_and_run() {
    let registry = Registry::start();
    let staged = stage_c_package("c-pkg");
    let reference = format!("{}/native/answer:1.0", registry.host());
    // Packed as a tar archive this time (the other tests use directories).
    let archive = staged.with_extension("tar");
    run(ocipkg()
        .arg("pack")
        .arg(&staged)
        .args(["--tag", &reference, "--output"])
        .arg(&archive));
    let pushed = stdout(&run(ocipkg().arg("push").arg(&archive)));
    assert!(pushed.contains(&format!("pushed {reference}")), "{pushed}");

    let tags = stdout(&run(ocipkg()
        .arg("tags")
        .arg(format!("{}/native/answer", registry.host()))));
    assert_eq!(tags.trim(), "1.0");

    let consumer = consumer_crate("consumer-c");
    let cache = temp_dir("cache-c");
    let out = run(cargo(&consumer, &cache)
        .arg("run")
        .env("CONSUMER_REF", &reference));
    assert_eq!(stdout(&out).trim(), "answer=41");
    // The package went into the cache dir given by OCIPKG_CACHE_DIR.
    assert_eq!(fs::read_dir(cache.join("pkgs/sha256")).unwrap().count(), 1);
}

#[test]
fn a_package_packed_under_a_root_dir_is_linked_from_there() {
    let registry = Registry::start();
    let staged = stage_c_package("rooted-c-pkg");
    let reference = format!("{}/rooted/answer:1", registry.host());
    let layout = staged.with_extension("oci");
    run(ocipkg()
        .arg("pack")
        .arg(&staged)
        .args(["--tag", &reference, "--root-dir", "/opt/answer", "-o"])
        .arg(&layout));
    run(ocipkg().arg("push").arg(&layout));

    let cache = temp_dir("cache-rooted");
    let package = link_in(&cache, &reference).unwrap();
    assert!(package.root().ends_with("root/opt/answer"), "{package:?}");
    assert_eq!(package.libraries()[0].name(), "answer");
    assert_eq!(package.include_dir(), package.root().join("include"));
    let lines: Vec<String> = package.directives().iter().map(|d| d.to_string()).collect();
    assert!(
        lines.contains(&format!("cargo:root={}", package.root().display())),
        "{lines:?}"
    );

    let consumer = consumer_crate("consumer-rooted");
    let out = run(cargo(&consumer, &cache)
        .arg("run")
        .env("CONSUMER_REF", &reference));
    assert_eq!(stdout(&out).trim(), "answer=41");
}

#[test]
fn rust_static_example_is_published_with_cargo_ocipkg_and_runs() {
    let registry = Registry::start();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/static/rust");
    let repository = format!("{}/ocipkg/static-example", registry.host());
    let cache = temp_dir("cache-rust");
    let published = publish_example("static", &repository, "e2e");
    assert!(
        published.contains(&format!("pushed {repository}:e2e")),
        "{published}"
    );
    let out = run(cargo(&examples.join("exe"), &cache)
        .arg("run")
        .env("OCIPKG_STATIC_EXAMPLE_REF", format!("{repository}:e2e")));
    let text = stdout(&out);
    assert!(text.contains("6 * 7 = 42"), "{text}");
    assert!(text.contains("1000000 has 7 digits"), "{text}");
}

#[test]
fn cargo_ocipkg_build_explains_missing_registry_metadata() {
    let dir = temp_dir("no-metadata");
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"nometa\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [lib]\ncrate-type = [\"staticlib\"]\n[workspace]\n",
    )
    .unwrap();
    fs::write(dir.join("src/lib.rs"), "").unwrap();
    let out = cargo_ocipkg()
        .args(["build", "--tag", "x"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[package.metadata.ocipkg]"), "{err}");
    assert!(err.contains("--registry"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn cargo_ocipkg_build_without_release_warns_and_records_the_profile() {
    let dir = temp_dir("debug-pack");
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"debugpack\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         [lib]\ncrate-type = [\"staticlib\"]\n\
         [package.metadata.ocipkg]\nregistry = \"localhost:5000/x/debugpack\"\n[workspace]\n",
    )
    .unwrap();
    fs::write(
        dir.join("src/lib.rs"),
        "#[no_mangle]\npub extern \"C\" fn debugpack_one() -> i32 { 1 }\n",
    )
    .unwrap();
    let out = cargo_ocipkg()
        .args(["build", "--tag", "t"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("debug build") && err.contains("--release"),
        "{err}"
    );
    let layout = dir.join("target/ocipkg/debugpack");
    let (digest, _) = layout_digests(&layout);
    let manifest = read(&layout.join("blobs/sha256").join(&digest[7..]));
    assert!(
        manifest.contains("\"vnd.ocipkg.cargo.profile\":\"debug\""),
        "{manifest}"
    );
}

#[test]
fn skopeo_reads_what_we_push_and_we_read_what_skopeo_pushes() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "interop/answer:v1");

    // Registry → skopeo: same manifest and layer digests as ours.
    let copied = temp_dir("skopeo-out").join("layout");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:v1", copied.display()),
    ]));
    let (ours_digest, layers) = layout_digests(&layout);
    assert_eq!(
        layout_digests(&copied),
        (ours_digest.clone(), layers.clone())
    );
    for d in &layers {
        let hex = d.strip_prefix("sha256:").unwrap();
        assert!(copied.join("blobs/sha256").join(hex).is_file());
    }

    // Our layout → skopeo → registry → us.
    let other = format!("{}/interop/via-skopeo:v1", registry.host());
    run(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{other}"),
    ]));
    let package = link_in(temp_dir("cache-skopeo"), &other).unwrap();
    assert_eq!(package.manifest_digest(), Some(ours_digest.as_str()));
    assert_eq!(package.libraries()[0].name(), "answer");
}

#[test]
fn tampered_blob_fails_with_both_digests_and_leaves_no_cache_entry() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "tamper/answer:1");

    let layer = layout_digests(&layout).1.remove(0);

    // Flip one byte of the stored layer, keeping its size.
    let blob = registry.blob_file(&layer);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let actual = sha256_of(&bytes);

    let cache = temp_dir("cache-tamper");
    let err = link_in(&cache, &reference).unwrap_err().to_string();
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&format!("expected: {layer}")), "{err}");
    assert!(err.contains(&format!("actual:   {actual}")), "{err}");
    let entries = |d: &str| fs::read_dir(cache.join(d)).map_or(0, |r| r.count());
    assert_eq!(entries("pkgs/sha256"), 0, "nothing cached for the package");
    assert_eq!(entries("tmp"), 0, "no staging left behind");

    // `ocipkg pull` reports the same, without a panic.
    let out = ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("digest mismatch") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn pinned_digest_is_served_from_cache_without_the_registry() {
    let registry = Registry::start();
    let (layout, _) = publish_c_package(&registry, "pinned/answer:1");
    let (digest, _) = layout_digests(&layout);
    let pinned = format!("{}/pinned/answer@{digest}", registry.host());

    let cache = temp_dir("cache-pinned");
    let mut linker = ocipkg::Linker::new();
    linker.cache_dir(&cache).quiet(true);
    let first = linker.link(&pinned).unwrap();
    drop(registry);
    let second = linker.link(&pinned).unwrap();
    assert_eq!(first.root(), second.root());
    assert_eq!(second.manifest_digest(), Some(digest.as_str()));
    let lines: Vec<String> = second.directives().iter().map(|d| d.to_string()).collect();
    assert!(
        lines.contains(&"cargo:rustc-link-lib=static=answer".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&format!(
        "cargo:rustc-link-search=native={}",
        second.root().join("lib").display()
    )));
}

#[test]
fn unknown_tag_and_missing_libraries_give_advice() {
    let registry = Registry::start();
    let cache = temp_dir("cache-advice");
    let mut linker = ocipkg::Linker::new();
    linker.cache_dir(&cache).quiet(true);
    let err = linker
        .link(&format!("{}/nothing/here:1", registry.host()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("help:"), "{err}");

    // A package with headers only has nothing to link.
    let dir = temp_dir("headers-only");
    fs::create_dir_all(dir.join("include")).unwrap();
    fs::write(dir.join("include/x.h"), "").unwrap();
    let reference = format!("{}/headers/only:1", registry.host());
    run(ocipkg().arg("push").arg(pack(&dir, &reference)));
    let err = linker.link(&reference).unwrap_err().to_string();
    assert!(err.contains("holds no library"), "{err}");
    assert!(err.contains("lib<name>.a"), "{err}");
}

#[test]
fn anonymous_bearer_token_flow_is_followed() {
    let registry = Registry::start();
    let (layout, _) = publish_c_package(&registry, "public/answer:1");
    let (proxy, token_requests) = bearer_proxy(registry.port);
    let through_proxy = format!("127.0.0.1:{}/public/answer:1", proxy.port);
    let package = link_in(temp_dir("cache-bearer"), &through_proxy).unwrap();
    assert_eq!(
        package.manifest_digest(),
        Some(layout_digests(&layout).0.as_str())
    );
    let requests = token_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "one token, reused: {requests:?}");
    assert!(
        requests[0].contains("service=test-registry"),
        "{requests:?}"
    );
    assert!(
        requests[0].contains("scope=repository%3Apublic%2Fanswer%3Apull"),
        "{requests:?}"
    );
}
