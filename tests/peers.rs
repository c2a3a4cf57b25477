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
    let package = ocipkg::Linker::new()
        .cache_dir(temp_dir("cache-oras"))
        .quiet(true)
        .link(&theirs)
        .unwrap();
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
