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
