//! The producer side: reproducible packs, zstd, pushes that upload only what
//! is missing, and the upstream ocipkg format.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use common::*;

/// Packs `dir` with extra flags (and environment) into a fresh layout; returns
/// the layout and its manifest digest.
fn pack_digest(
    dir: &Path,
    reference: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (std::path::PathBuf, String) {
    let out = temp_dir("layout").join("out");
    let mut cmd = ocipkg();
    cmd.arg("pack")
        .arg(dir)
        .args(["--tag", reference, "--output"])
        .arg(&out)
        .args(flags)
        .env_remove("SOURCE_DATE_EPOCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd);
    let digest = layout_digests(&out).0;
    (out, digest)
}

/// Copies a tree, so two checkouts have different paths, inodes and times.
fn copy_tree(src: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let target = dest.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn packs_are_reproducible_across_checkouts_and_times() {
    let first = stage_c_package("repro-a");
    fs::create_dir_all(first.join("share/doc")).unwrap();
    fs::write(first.join("share/doc/README"), "docs\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = temp_dir("repro-b").join("checkout");
    copy_tree(&first, &second);
    // Different modes that normalise to the same: group/other write bits.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            second.join("share/doc/README"),
            fs::Permissions::from_mode(0o666),
        )
        .unwrap();
    }
    let reference = "registry.example/repro/answer:1";
    for flags in [
        &["--compression", "gzip"][..],
        &["--compression", "zstd"][..],
    ] {
        let (_, a) = pack_digest(&first, reference, flags, &[]);
        let (_, b) = pack_digest(&second, reference, flags, &[]);
        assert_eq!(a, b, "{flags:?}");
    }
    // SOURCE_DATE_EPOCH dates the files: another epoch, another (stable) digest.
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let (_, default) = pack_digest(&first, reference, &[], &[]);
    let (_, dated_a) = pack_digest(&first, reference, &[], &epoch);
    let (_, dated_b) = pack_digest(&second, reference, &[], &epoch);
    assert_ne!(default, dated_a);
    assert_eq!(dated_a, dated_b);
}

#[test]
fn zstd_packages_round_trip_through_registry_and_skopeo() {
    let registry = Registry::start();
    let staged = stage_c_package("zstd-pkg");
    // More than one 4 MiB block: several zstd frames, all read back.
    let big = noise(9 << 20, 0x5eed);
    fs::write(staged.join("lib/big.bin"), &big).unwrap();
    let reference = format!("{}/zstd/answer:1", registry.host());
    let (layout, digest) = pack_digest(&staged, &reference, &["--compression", "zstd"], &[]);
    run(ocipkg().arg("push").arg(&layout));
    let manifest = read(&layout.join("blobs/sha256").join(&digest[7..]));
    assert!(
        manifest.contains("application/vnd.oci.image.layer.v1.tar+zstd"),
        "{manifest}"
    );

    let copied = temp_dir("zstd-skopeo").join("layout");
    run(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("oci:{}:1", copied.display()),
    ]));
    assert_eq!(layout_digests(&copied).0, digest);

    let package = link_in(temp_dir("cache-zstd"), &reference).unwrap();
    assert_eq!(
        fs::read(package.root().join("lib/libanswer.a")).unwrap(),
        fs::read(staged.join("lib/libanswer.a")).unwrap()
    );
    assert_eq!(fs::read(package.root().join("lib/big.bin")).unwrap(), big);
}

#[test]
fn republishing_an_unchanged_package_uploads_no_blob() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "again/answer:1");
    let before = registry.access_log().lines().count();
    let out = stdout(&run(ocipkg().arg("push").arg(&layout)));
    assert!(out.contains("(0 new blobs, 0 mounted)"), "{out}");
    let log = registry.access_log();
    let uploads: Vec<&str> = log
        .lines()
        .skip(before)
        .filter(|l| {
            l.contains("/blobs/")
                && (l.contains("\"PUT ") || l.contains("\"PATCH ") || l.contains("\"POST "))
        })
        .collect();
    assert!(uploads.is_empty(), "{uploads:#?}");
    assert!(stdout(&run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-again"))))
    .contains("/root"));

    // One changed file: one new blob (the layer), said in the singular.
    let changed = stage_c_package("again-changed");
    fs::write(changed.join("include/version.h"), "#define V 2\n").unwrap();
    let out = stdout(&run(ocipkg().arg("push").arg(pack(&changed, &reference))));
    assert!(out.contains("(1 new blob, 0 mounted)"), "{out}");
}

/// Writes an OCI layout by hand: one manifest with the given layers
/// (media type, bytes, annotations) and config.
fn hand_made_layout(
    dir: &Path,
    tag: &str,
    artifact_type: &str,
    config: (&str, &[u8]),
    layers: &[(&str, Vec<u8>, serde_json::Value)],
) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> String {
        let digest = sha256_of(bytes);
        fs::write(blobs.join(&digest[7..]), bytes).unwrap();
        digest
    };
    let config_digest = put(config.1);
    let layer_descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|(media_type, bytes, annotations)| {
            serde_json::json!({
                "mediaType": media_type,
                "digest": put(bytes),
                "size": bytes.len(),
                "annotations": annotations,
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": config.0, "digest": config_digest, "size": config.1.len()},
        "layers": layer_descriptors,
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn upstream_ocipkg_and_oras_style_artifacts_are_read() {
    let registry = Registry::start();
    let staged = stage_c_package("foreign-pkg");
    let archive = fs::read(staged.join("lib/libanswer.a")).unwrap();
    let header = b"int ocipkg_c_answer(int x);\n";
    let title = |t: &str| serde_json::json!({"org.opencontainers.image.title": t});

    // Upstream ocipkg: a directory layer and a gzipped file layer.
    let upstream = temp_dir("upstream-layout").join("layout");
    hand_made_layout(
        &upstream,
        "1",
        "application/vnd.ocipkg.v1.artifact",
        ("application/vnd.ocipkg.v1.config+json", br#"{"layers":{}}"#),
        &[
            (
                "application/vnd.ocipkg.v1.directory.tar+gzip",
                gzip(&tar_of(&[("lib/libanswer.a", &archive)])),
                serde_json::json!({}),
            ),
            (
                "application/vnd.ocipkg.v1.file+gzip",
                gzip(header),
                title("include/answer.h"),
            ),
        ],
    );
    // ORAS: files stored as is under the default media type, named by title.
    let oras = temp_dir("oras-layout").join("layout");
    hand_made_layout(
        &oras,
        "1",
        "application/vnd.example.thing",
        ("application/vnd.oci.empty.v1+json", b"{}"),
        &[
            (
                "application/vnd.oci.image.layer.v1.tar",
                archive.clone(),
                title("lib/libanswer.a"),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                header.to_vec(),
                title("include/answer.h"),
            ),
        ],
    );
    for (name, layout) in [("upstream", &upstream), ("oras", &oras)] {
        let reference = format!("{}/foreign/{name}:1", registry.host());
        run(Command::new("skopeo").args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:1", layout.display()),
            &format!("docker://{reference}"),
        ]));
        let package = link_in(temp_dir("cache-foreign"), &reference)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(package.libraries()[0].name(), "answer", "{name}");
        assert_eq!(
            fs::read(package.root().join("lib/libanswer.a")).unwrap(),
            archive,
            "{name}"
        );
        assert_eq!(
            fs::read(package.include_dir().join("answer.h")).unwrap(),
            header,
            "{name}"
        );
    }
}

#[test]
fn blobs_known_in_another_repository_are_mounted_not_uploaded() {
    let registry = Registry::start();
    let cache = temp_dir("cache-mount");
    let staged = stage_c_package("mount-pkg");
    let first = format!("{}/mount/one:1", registry.host());
    let second = format!("{}/mount/two:1", registry.host());
    run(ocipkg()
        .arg("push")
        .arg(pack(&staged, &first))
        .env("OCIPKG_CACHE_DIR", &cache));
    let before = registry.access_log().lines().count();
    let out = stdout(&run(ocipkg()
        .arg("push")
        .arg(staged.with_extension("oci"))
        .args(["--tag", &second])
        .env("OCIPKG_CACHE_DIR", &cache)));
    assert!(out.contains("(0 new blobs, 2 mounted)"), "{out}");
    let log = registry.access_log();
    let new: Vec<&str> = log.lines().skip(before).collect();
    assert!(
        new.iter()
            .any(|l| l.contains("\"POST /v2/mount/two/blobs/uploads/?mount=")
                && l.contains("\" 201 ")),
        "{new:#?}"
    );
    assert!(
        !new.iter()
            .any(|l| l.contains("\"PUT /v2/mount/two/blobs/") || l.contains("\"PATCH ")),
        "{new:#?}"
    );
    run(ocipkg()
        .args(["pull", &second])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-mount-pull")));
}

#[test]
fn large_blobs_are_uploaded_in_chunks() {
    let registry = Registry::start();
    let dir = stage_c_package("chunky-pkg");
    // 5 MiB: more than one 4 MiB gzip member, too.
    let noise = noise(5 << 20, 0x1234_5678_9abc_def1);
    fs::write(dir.join("lib/noise.bin"), &noise).unwrap();
    let reference = format!("{}/chunky/answer:1", registry.host());
    let layout = pack(&dir, &reference);
    run(ocipkg()
        .arg("push")
        .arg(&layout)
        .env("OCIPKG_UPLOAD_CHUNK_MIB", "1")
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-chunky-push")));
    let patches = registry
        .access_log()
        .lines()
        .filter(|l| l.contains("\"PATCH /v2/chunky/answer/blobs/uploads/") && l.contains("\" 202 "))
        .count();
    assert!(
        patches >= 3,
        "a 3 MiB layer in 1 MiB chunks: {patches} PATCHes"
    );
    let root = stdout(&run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-chunky"))));
    assert_eq!(
        fs::read(format!("{}/lib/noise.bin", root.trim())).unwrap(),
        noise
    );
}

#[test]
fn root_dir_owner_and_annotations_are_applied() {
    let staged = stage_c_package("rooted-pkg");
    let (layout, digest) = pack_digest(
        &staged,
        "registry.example/rooted/answer:1",
        &[
            "--root-dir",
            "/opt/answer",
            "--uid",
            "1000",
            "--gid",
            "100",
            "--annotation",
            "org.opencontainers.image.version=1.2.3",
        ],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&read(&layout.join("blobs/sha256").join(&digest[7..]))).unwrap();
    let annotations = &manifest["annotations"];
    assert_eq!(annotations["org.opencontainers.image.version"], "1.2.3");
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "2023-11-14T22:13:20Z"
    );
    // The config records the root dir, so consumers find lib/ under it.
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&read(&layout.join("blobs/sha256").join(&config[7..]))).unwrap();
    assert_eq!(config, serde_json::json!({"root_dir": "opt/answer"}));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = fs::File::open(layout.join("blobs/sha256").join(&layer[7..])).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    let entries: Vec<(String, u64, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
            )
        })
        .collect();
    let paths: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(&paths[..2], ["opt", "opt/answer"], "{paths:?}");
    assert!(paths.contains(&"opt/answer/lib/libanswer.a"), "{paths:?}");
    assert!(
        entries
            .iter()
            .all(|e| (e.1, e.2, e.3) == (1000, 100, 1_700_000_000)),
        "{entries:?}"
    );
}
