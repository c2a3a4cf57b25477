//! `ocipkg image`: a directory layered onto a base image in the registry,
//! base never downloaded; the result is an image peers accept.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn image(args: &[&str]) -> String {
    stdout(&run(ocipkg()
        .arg("image")
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-image"))))
}

#[test]
fn an_app_layered_on_a_base_without_downloading_the_base() {
    let registry = Registry::start();
    let host = registry.host();
    let base_dir = temp_dir("image-base");
    fs::create_dir_all(base_dir.join("etc")).unwrap();
    fs::write(base_dir.join("etc/base.txt"), "from the base\n").unwrap();
    let base = format!("{host}/images/base:1");
    image(&[
        base_dir.to_str().unwrap(),
        "--from",
        "scratch",
        "--tag",
        &base,
        "--push",
        "--platform",
        "linux/amd64",
    ]);
    let base_manifest: serde_json::Value =
        serde_json::from_str(&stdout(&run(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{base}"),
        ]))))
        .unwrap();
    let base_layer = base_manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let app_dir = temp_dir("image-app");
    fs::write(app_dir.join("hello.txt"), "hello from the app\n").unwrap();
    let app = format!("{host}/images/app:1");
    let before = registry.access_log().lines().count();
    let args = [
        app_dir.to_str().unwrap(),
        "--from",
        &base,
        "--tag",
        &app,
        "--push",
        "--root-dir",
        "/app",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--entrypoint",
        "/app/hello",
        "--env",
        "GREETING=hi",
        "--workdir",
        "/app",
    ];
    let out = image(&args);
    assert!(out.contains("; 1 base layer mounted"), "{out}");
    let log = registry.access_log();
    let requests: Vec<&str> = log.lines().skip(before).collect();
    let touches_base = |l: &&&str| l.contains(base_layer.as_str());
    assert!(
        !requests
            .iter()
            .filter(touches_base)
            .any(|l| l.contains("\"GET ")),
        "a base layer was downloaded: {requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|l| (l.contains("\"PUT ") || l.contains("\"PATCH "))
                && l.contains("/blobs/uploads/")
                && l.contains(base_layer.as_str())),
        "base layer bytes were uploaded: {requests:#?}"
    );

    // skopeo copies it; umoci unpacks base files and the new ones.
    let layout = temp_dir("image-skopeo").join("layout");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{app}"),
        &format!("oci:{}:1", layout.display()),
    ]));
    let bundle = temp_dir("image-bundle").join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:1", layout.display()))
        .arg(&bundle));
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/base.txt")).unwrap(),
        "from the base\n"
    );
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/app/hello.txt")).unwrap(),
        "hello from the app\n"
    );
    let runtime: serde_json::Value =
        serde_json::from_str(&read(&bundle.join("config.json"))).unwrap();
    assert_eq!(runtime["process"]["args"][0], "/app/hello");
    assert_eq!(runtime["process"]["cwd"], "/app");
    assert!(runtime["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "GREETING=hi"));

    // The new files have the requested owner (read from the layer itself).
    let (manifest_digest, layers) = layout_digests(&layout);
    let new_layer = layers.last().unwrap();
    let blob = fs::File::open(layout.join("blobs/sha256").join(&new_layer[7..])).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (1000, 1000));
    }

    // The same input gives the same image.
    let again = temp_dir("image-again").join("layout");
    let mut repeat: Vec<&str> = args.iter().copied().filter(|a| *a != "--push").collect();
    let again_path = again.to_str().unwrap().to_string();
    repeat.extend(["--output", &again_path]);
    image(&repeat);
    assert_eq!(layout_digests(&again).0, manifest_digest);

    // Running it needs a container engine; this machine may have none.
    let podman = Command::new("podman").arg("--version").output();
    if podman.is_err() {
        eprintln!("podman is not installed here: the image was checked with skopeo and umoci only");
    }
}
