//! Peer clients: what ORAS (Python `oras` from PyPI) pushes we link, and it
//! pulls what we push.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn oras(script: &str, cwd: &std::path::Path) -> String {
    stdout(&run(Command::new(oras_python())
        .args(["-c", script])
        .current_dir(cwd)))
}

#[test]
fn oras_pulls_our_package_and_we_link_what_oras_pushes() {
    let registry = Registry::start();
    let host = registry.host();

    // Ours → ORAS: it unpacks our tar+gzip layer into the same tree.
    let (layout, reference) = publish_c_package(&registry, "peer/ours:1");
    let out = temp_dir("oras-pull");
    oras(
        &format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             c.pull(target='{reference}', outdir='{}')\n",
            out.display()
        ),
        &out,
    );
    let staged_ours = layout.with_extension("");
    for file in ["lib/libanswer.a", "include/answer.h"] {
        assert_eq!(
            fs::read(out.join(file)).unwrap(),
            fs::read(staged_ours.join(file)).unwrap(),
            "{file}"
        );
    }

    // ORAS → us: a directory (tar+gzip, unpack annotation) and a plain file.
    let staged = stage_c_package("oras-push");
    let theirs = format!("{host}/peer/theirs:1");
    oras(
        &format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{host}', insecure=True)\n\
             c.push(files=['lib', 'include/answer.h'], target='{theirs}')\n"
        ),
        &staged,
    );
    let package = link_in(temp_dir("cache-oras"), &theirs).unwrap();
    assert_eq!(package.libraries()[0].name(), "answer");
    assert_eq!(
        fs::read(package.root().join("lib/libanswer.a")).unwrap(),
        fs::read(staged.join("lib/libanswer.a")).unwrap()
    );
    assert!(
        package.root().join("answer.h").is_file(),
        "the file layer lands by its title"
    );
}

#[test]
fn buildah_images_with_zstd_layers_and_oci_indexes_are_pulled() {
    let registry = Registry::start();
    let staged = stage_c_package("buildah-pkg");
    let state = temp_dir("buildah-state");
    let buildah = || {
        let mut cmd = Command::new("buildah");
        cmd.args(["--storage-driver", "vfs", "--root"])
            .arg(state.join("root"))
            .arg("--runroot")
            .arg(state.join("run"));
        cmd
    };
    let container = stdout(&run(buildah().args(["from", "scratch"])));
    let container = container.trim();
    run(buildah().args(["copy", container]).arg(&staged).arg("/"));
    run(buildah().args(["commit", container, "localhost/ocipkg-peer:1"]));
    let zstd = format!("{}/buildah/zstd:1", registry.host());
    run(buildah().args([
        "push",
        "--tls-verify=false",
        "--compression-format",
        "zstd",
        "localhost/ocipkg-peer:1",
        &format!("docker://{zstd}"),
    ]));
    run(buildah().args(["manifest", "create", "localhost/ocipkg-peer-list"]));
    run(buildah().args([
        "manifest",
        "add",
        "localhost/ocipkg-peer-list",
        "localhost/ocipkg-peer:1",
    ]));
    let index = format!("{}/buildah/index:1", registry.host());
    run(buildah().args([
        "manifest",
        "push",
        "--all",
        "--format",
        "oci",
        "--tls-verify=false",
        "localhost/ocipkg-peer-list",
        &format!("docker://{index}"),
    ]));
    let raw = stdout(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{zstd}"),
    ])));
    assert!(raw.contains("tar+zstd"), "{raw}");
    for reference in [&zstd, &index] {
        let root = stdout(&run(ocipkg()
            .args(["pull", reference])
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-buildah"))));
        assert_eq!(
            fs::read(format!("{}/lib/libanswer.a", root.trim())).unwrap(),
            fs::read(staged.join("lib/libanswer.a")).unwrap(),
            "{reference}"
        );
    }
}
