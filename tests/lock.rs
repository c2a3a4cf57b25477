//! `ocipkg.lock`: a locked tag is linked by digest, never looked up again.

mod common;

use std::fs;
use std::process::Command;

use common::*;

#[test]
fn locked_digest_is_linked_even_after_the_tag_moves() {
    let registry = Registry::start();
    let (first_layout, reference) = publish_c_package(&registry, "lock/answer:1");
    let (first, _) = layout_digests(&first_layout);
    let consumer = temp_dir("lock-consumer");
    // Not a crate's directory, or a mistyped one: refused, nothing created.
    for (dir, says) in [
        (consumer.join("typo"), "is not a directory"),
        (consumer.clone(), "has no Cargo.toml"),
    ] {
        let out = ocipkg()
            .args(["lock", &reference, "--dir"])
            .arg(&dir)
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-lock-refused"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(says) && err.contains("help: give --dir the directory of the crate"),
            "{err}"
        );
    }
    assert!(!consumer.join("typo").exists() && !consumer.join("ocipkg.lock").exists());
    fs::write(
        consumer.join("Cargo.toml"),
        "[package]\nname = \"lock-consumer\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let out = stdout(&run(ocipkg()
        .args(["lock", &reference, "--dir"])
        .arg(&consumer)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-lock-cli"))));
    assert_eq!(out.trim(), format!("locked {reference} to {first}"));
    let lockfile = read(&consumer.join("ocipkg.lock"));
    assert!(
        lockfile.contains(&format!("{reference} {first}")),
        "{lockfile}"
    );

    // Re-publish the tag with different content.
    let changed = stage_c_package("lock-v2");
    fs::write(changed.join("include/version.h"), "#define V 2\n").unwrap();
    let second_layout = pack(&changed, &reference);
    run(ocipkg().arg("push").arg(&second_layout));
    let (second, _) = layout_digests(&second_layout);
    assert_ne!(first, second);

    let tag_lookups = || {
        registry
            .access_log()
            .lines()
            .filter(|l| l.contains("/v2/lock/answer/manifests/1 "))
            .count()
    };
    let before = tag_lookups();
    let mut linker = ocipkg::Linker::new();
    linker
        .cache_dir(temp_dir("cache-lock"))
        .lockfile_dir(&consumer)
        .quiet(true);
    let package = linker.link(&reference).unwrap();
    assert_eq!(package.manifest_digest(), Some(first.as_str()));
    assert_eq!(tag_lookups(), before, "the tag was not looked up");
    let lines: Vec<String> = package.directives().iter().map(|d| d.to_string()).collect();
    assert!(lines.contains(&format!(
        "cargo:rerun-if-changed={}",
        consumer.join("ocipkg.lock").display()
    )));

    // The locked manifest disappears: an error with the way out, no switch.
    run(Command::new("skopeo").args([
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/lock/answer@{first}", registry.host()),
    ]));
    let err = ocipkg::Linker::new()
        .cache_dir(temp_dir("cache-lock-gone"))
        .lockfile_dir(&consumer)
        .quiet(true)
        .link(&reference)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not serve that digest"), "{err}");
    assert!(err.contains(&format!("ocipkg lock {reference}")), "{err}");

    // Updating the lock moves it to what the tag points at now.
    run(ocipkg()
        .args(["lock", &reference, "--dir"])
        .arg(&consumer)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-lock-cli2")));
    let package = linker.link(&reference).unwrap();
    assert_eq!(package.manifest_digest(), Some(second.as_str()));
}

#[test]
fn a_tag_with_builds_only_for_another_target_locks_to_its_index() {
    // A cross build's package: nothing for this machine, and lock must not
    // need anything for it.
    let registry = Registry::start();
    let reference = format!("{}/lock/cross:1", registry.host());
    let layout = temp_dir("lock-cross").join("oci");
    run(ocipkg()
        .arg("pack")
        .arg(stage_c_package("lock-cross"))
        .args(["--tag", &reference, "--target", "aarch64-unknown-linux-gnu"])
        .arg("--output")
        .arg(&layout));
    run(ocipkg().arg("push").arg(&layout));
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .stdout;
    assert!(
        String::from_utf8_lossy(&raw).contains("\"manifests\""),
        "an index"
    );
    let index = sha256_of(&raw);

    let consumer = temp_dir("lock-cross-consumer");
    fs::write(
        consumer.join("Cargo.toml"),
        "[package]\nname = \"lock-cross\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let cache = temp_dir("cache-lock-cross");
    let logged_before = registry.access_log().len();
    let out = stdout(&run(ocipkg()
        .args(["lock", &reference, "--dir"])
        .arg(&consumer)
        .env("OCIPKG_CACHE_DIR", &cache)));
    assert_eq!(out.trim(), format!("locked {reference} to {index}"));
    assert!(read(&consumer.join("ocipkg.lock")).contains(&format!("{reference} {index}")));
    // Only the index was read: no blob came down.
    let log = registry.access_log();
    let during = &log[logged_before.min(log.len())..];
    assert!(during.contains("/v2/lock/cross/manifests/1"), "{during}");
    assert!(!during.contains("/blobs/"), "{during}");
}
