//! The registry configuration file: TLS settings and mirrors.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// `ocipkg` using the configuration file `config`.
fn ocipkg_with(config: &Path, cache: &str) -> Command {
    let mut cmd = ocipkg();
    cmd.env("OCIPKG_CONFIG", config)
        .env("OCIPKG_CACHE_DIR", temp_dir(cache));
    cmd
}

fn write_config(name: &str, json: &str) -> std::path::PathBuf {
    let path = temp_dir(name).join("registries.json");
    fs::write(&path, json).unwrap();
    path
}

fn failed(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn https_registry_with_its_own_ca_or_without_verification() {
    let (registry, cert) = Registry::start_tls();
    let host = registry.host();
    let trusted = write_config(
        "config-ca",
        &format!(
            r#"{{"registries": {{"{host}": {{"plain_http": false, "ca_certs": ["{}"]}}}}}}"#,
            cert.display()
        ),
    );
    let staged = stage_c_package("tls-pkg");
    let reference = format!("{host}/tls/answer:1");
    let layout = pack(&staged, &reference);
    run(ocipkg_with(&trusted, "cache-tls-push")
        .arg("push")
        .arg(&layout));
    run(ocipkg_with(&trusted, "cache-tls-pull").args(["pull", &reference]));
    assert!(registry
        .access_log()
        .contains("\"GET /v2/tls/answer/manifests/1 "));

    // HTTPS without the CA: the certificate is refused, with advice.
    let untrusted = write_config(
        "config-https",
        &format!(r#"{{"registries": {{"{host}": {{"plain_http": false}}}}}}"#),
    );
    let err = failed(
        &ocipkg_with(&untrusted, "cache-tls-untrusted")
            .args(["pull", &reference])
            .output()
            .unwrap(),
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(err.contains("help:") && !err.contains("panicked"), "{err}");

    // insecure_tls: HTTPS without verification.
    let insecure = write_config(
        "config-insecure",
        &format!(
            r#"{{"registries": {{"{host}": {{"plain_http": false, "insecure_tls": true}}}}}}"#
        ),
    );
    run(ocipkg_with(&insecure, "cache-tls-insecure").args(["pull", &reference]));

    // A typo in the file is reported with the file's name.
    let typo = write_config(
        "config-typo",
        r#"{"registries": {"x": {"plain-http": true}}}"#,
    );
    let err = failed(
        &ocipkg_with(&typo, "cache-typo")
            .args(["pull", &reference])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("registries.json") && err.contains("plain-http"),
        "{err}"
    );
}

#[test]
fn mirrors_are_tried_first_and_never_change_what_is_linked() {
    let origin = Registry::start();
    let mirror = Registry::start();
    let (layout, reference) = publish_c_package(&origin, "mirrored/answer:1");
    let layer = layout_digests(&layout).1.remove(0);
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("docker://{}/cache/mirrored/answer:1", mirror.host()),
    ]));
    let config = write_config(
        "config-mirror",
        &format!(
            r#"{{"registries": {{"{}": {{"mirrors": ["{}/cache"]}}}}}}"#,
            origin.host(),
            mirror.host()
        ),
    );
    let origin_requests =
        || -> Vec<String> { origin.access_log().lines().map(String::from).collect() };

    // Served by the mirror: the origin only answers what the tag means
    // (mirrors are asked by digest), and sends no blob.
    let before = origin_requests().len();
    run(ocipkg_with(&config, "cache-mirror-1").args(["pull", &reference]));
    let asked = origin_requests().split_off(before);
    assert!(!asked.is_empty(), "the tag was not resolved at the origin");
    assert!(
        asked
            .iter()
            .all(|l| l.contains("\"GET /v2/mirrored/answer/manifests/1 ")),
        "{asked:?}"
    );
    assert!(mirror
        .access_log()
        .contains(&format!("\"GET /v2/cache/mirrored/answer/blobs/{layer} ")));

    // A mirror serving other bytes: verified, refused, fetched from the origin.
    let blob = mirror.blob_file(&layer);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&blob, &bytes).unwrap();
    let root = stdout(&run(
        ocipkg_with(&config, "cache-mirror-2").args(["pull", &reference])
    ));
    assert!(origin
        .access_log()
        .contains(&format!("\"GET /v2/mirrored/answer/blobs/{layer} ")));
    assert!(Path::new(root.trim()).join("lib/libanswer.a").is_file());

    // A mirror that is down: the origin serves.
    drop(mirror);
    run(ocipkg_with(&config, "cache-mirror-3").args(["pull", &reference]));
}
