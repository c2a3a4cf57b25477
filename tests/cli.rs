//! The `ocipkg` command line: inspect, list, prune, save/load, pull --output,
//! JSON output, help and exit codes.

mod common;

use std::fs;
use std::process::Command;

use common::*;

/// `ocipkg --json ...` with a private cache; parses stdout.
fn json(cache: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = run(ocipkg()
        .arg("--json")
        .args(args)
        .env("OCIPKG_CACHE_DIR", cache));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&out)))
}

#[test]
fn save_load_and_build_offline_on_another_machine() {
    let registry = Registry::start();
    let (layout, reference) = publish_c_package(&registry, "airgap/answer:1");
    let archive = temp_dir("airgap").join("answer.tar");
    let saved = json(
        &temp_dir("cache-save"),
        &["save", &reference, "-o", archive.to_str().unwrap()],
    );
    assert_eq!(saved["digest"], layout_digests(&layout).0.as_str());
    drop(registry); // the other machine has no registry

    let cache = temp_dir("cache-airgap");
    let loaded = json(&cache, &["load", archive.to_str().unwrap()]);
    assert_eq!(
        loaded["manifest_digest"],
        layout_digests(&layout).0.as_str()
    );
    let out = temp_dir("airgap-out").join("tree");
    let pulled = run(ocipkg()
        .args(["pull", &reference, "--output", out.to_str().unwrap()])
        .env("OCIPKG_CACHE_DIR", &cache)
        .env("OCIPKG_OFFLINE", "1"));
    assert_eq!(stdout(&pulled).trim(), out.display().to_string());
    assert!(out.join("lib/libanswer.a").is_file() && out.join("include/answer.h").is_file());
    // --output refuses to overwrite.
    let again = ocipkg()
        .args(["pull", &reference, "--output", out.to_str().unwrap()])
        .env("OCIPKG_CACHE_DIR", &cache)
        .env("OCIPKG_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn inspect_list_and_prune() {
    let registry = Registry::start();
    let host = host_triple();
    let reference = format!("{}/listed/answer:1", registry.host());
    let old = stage_c_package("listed-old");
    run(ocipkg()
        .arg("pack")
        .arg(&old)
        .args([
            "--tag",
            &reference,
            "--system-lib",
            "m",
            "--target",
            &host,
            "-o",
        ])
        .arg(old.with_extension("oci")));
    run(ocipkg().arg("push").arg(old.with_extension("oci")));
    let cache = temp_dir("cache-listed");

    let inspection = json(&cache, &["inspect", &reference]);
    assert_eq!(
        inspection["platforms"][0],
        format!("{} ({host})", platform_of(&host))
    );
    assert_eq!(inspection["link_metadata"]["system_libraries"][0], "m");
    let files: Vec<&str> = inspection["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files, ["include/answer.h", "lib/libanswer.a"]);
    assert_eq!(
        inspection["annotations"]["vnd.ocipkg.target"],
        host.as_str()
    );

    // The tag moves to a new build: the old one is no longer referenced.
    let new = stage_c_package("listed-new");
    fs::write(new.join("include/version.h"), "#define V 2\n").unwrap();
    run(ocipkg()
        .arg("pack")
        .arg(&new)
        .args(["--tag", &reference, "--target", &host, "-o"])
        .arg(new.with_extension("oci")));
    run(ocipkg().arg("push").arg(new.with_extension("oci")));
    json(&cache, &["pull", &reference]);
    let listed = json(&cache, &["list"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let referenced: Vec<bool> = listed
        .iter()
        .map(|p| !p["references"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(referenced.iter().filter(|r| **r).count(), 1, "{listed:#?}");
    assert!(listed.iter().all(|p| p["size"].as_u64().unwrap() > 0));

    let pruned = json(&cache, &["prune"]);
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1);
    assert_eq!(json(&cache, &["list"]).as_array().unwrap().len(), 1);
    // Offline builds still work after a prune: the current build is kept.
    run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", &cache)
        .env("OCIPKG_OFFLINE", "1"));
    json(&cache, &["prune", "--all"]);
    assert!(json(&cache, &["list"]).as_array().unwrap().is_empty());

    // A layout can be inspected without a registry.
    let local = json(
        &temp_dir("cache-inspect-layout"),
        &["inspect", new.with_extension("oci").to_str().unwrap()],
    );
    assert_eq!(local["files"].as_array().unwrap().len(), 3);
}

fn platform_of(triple: &str) -> &'static str {
    if triple.starts_with("x86_64") && triple.contains("linux") {
        "linux/amd64"
    } else if triple.starts_with("aarch64") && triple.contains("linux") {
        "linux/arm64"
    } else {
        "unknown"
    }
}

#[test]
fn every_command_has_help_with_an_example_and_bad_arguments_exit_2() {
    let commands = [
        "pack", "push", "pull", "inspect", "list", "prune", "save", "load", "lock", "login",
        "logout", "tags",
    ];
    for command in commands {
        let help = stdout(&run(ocipkg().args([command, "--help"])));
        assert!(
            help.contains("Example:") && help.contains(&format!("ocipkg {command}")),
            "{command}: {help}"
        );
    }
    for command in ["build", "publish"] {
        let help = stdout(&run(cargo_ocipkg().args([command, "--help"])));
        assert!(help.contains("--target"), "{command}: {help}");
        assert!(
            help.contains(&format!("Example: cargo ocipkg {command}")),
            "{command}: {help}"
        );
    }
    for flag in ["-h", "--help"] {
        let help = stdout(&run(ocipkg().arg(flag)));
        assert!(help.contains("Example: ocipkg pack"), "{help}");
        let help = stdout(&run(cargo_ocipkg().arg(flag)));
        assert!(help.contains("Example: cargo ocipkg publish"), "{help}");
    }
    let out = ocipkg().args(["pull"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_ocipkg"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = ocipkg().args(["pull", "Not A Reference"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid image reference") && err.contains("help:"),
        "{err}"
    );
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let registry = Registry::start();
    let (_, reference) = publish_c_package(&registry, "progress/answer:1");
    // Piped: no progress at all.
    let out = run(ocipkg()
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-progress-pipe")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r') && !err.contains("MiB"), "{err}");
    // On a terminal (util-linux `script` provides one): a progress line.
    let command = format!("{} pull {reference}", env!("CARGO_BIN_EXE_ocipkg"));
    let out = run(Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-progress-tty")));
    let text = stdout(&out);
    assert!(text.contains("MiB"), "{text}");
}

#[test]
fn login_and_logout_print_json_too() {
    let registry = Registry::start();
    let home = temp_dir("home-json");
    let docker = home.join(".docker");
    let isolated = || {
        let mut cmd = ocipkg();
        cmd.env("HOME", &home)
            .env("DOCKER_CONFIG", &docker)
            .env("XDG_RUNTIME_DIR", home.join("run"));
        cmd
    };
    let out = {
        use std::io::Write;
        let mut child = isolated()
            .args(["--json", "login", &registry.host(), "-u", "me"])
            .arg("--password-stdin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"secret\n").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = serde_json::json!({
        "registry": registry.host(),
        "credentials_file": docker.join("config.json"),
    });
    let login: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(login, expected);
    let out = run(isolated().args(["logout", "--json", &registry.host()]));
    let logout: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(logout, expected);
}

#[test]
fn a_saved_multi_platform_package_is_pushed_whole_to_another_repository() {
    let registry = Registry::start();
    let reference = format!("{}/saved/answer:1", registry.host());
    for (name, target) in [
        ("saved-x86", "x86_64-unknown-linux-gnu"),
        ("saved-arm", "aarch64-unknown-linux-gnu"),
    ] {
        let staged = stage_c_package(name);
        fs::write(staged.join("lib/TARGET"), target).unwrap();
        let layout = staged.with_extension("oci");
        run(ocipkg()
            .arg("pack")
            .arg(&staged)
            .args(["--tag", &reference, "--target", target, "-o"])
            .arg(&layout));
        run(ocipkg().arg("push").arg(&layout));
    }
    let cache = temp_dir("cache-saved-multi");
    let archive = temp_dir("saved-multi").join("answer.tar");
    let saved = json(
        &cache,
        &["save", &reference, "-o", archive.to_str().unwrap()],
    );
    // The index, two manifests, one empty config they share, two layers.
    assert_eq!(saved["blobs"], 6);
    let copy = format!("{}/copied/answer:2", registry.host());
    let pushed = json(&cache, &["push", archive.to_str().unwrap(), "--tag", &copy]);
    assert_eq!(pushed["reference"], copy.as_str());
    assert_eq!(pushed["manifest_digest"], saved["digest"]);
    // The copy is the same index, and each platform is there.
    let inspected = json(&temp_dir("cache-copied"), &["inspect", &copy]);
    assert_eq!(inspected["digest"], saved["digest"]);
    assert_eq!(inspected["platforms"].as_array().unwrap().len(), 2);
    for target in ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"] {
        let out = temp_dir("copied-tree").join(target);
        run(ocipkg()
            .args(["pull", &copy, "--target", target, "-o"])
            .arg(&out)
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-copied-pull")));
        assert_eq!(read(&out.join("lib/TARGET")), target);
    }
}

#[test]
fn push_to_a_digest_and_tags_of_a_tag_are_refused() {
    let staged = stage_c_package("refused-forms");
    let layout = pack(&staged, "127.0.0.1:9/forms/answer:1");
    let digest = layout_digests(&layout).0;
    let out = ocipkg()
        .arg("push")
        .arg(&layout)
        .args(["--tag", &format!("127.0.0.1:9/forms/answer:2@{digest}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("names a digest") && err.contains("help: give `registry/repository:tag`"),
        "{err}"
    );
    for wrong in [
        "127.0.0.1:9/forms/answer:1".to_string(),
        format!("127.0.0.1:9/forms/answer@{digest}"),
    ] {
        let out = ocipkg().args(["tags", &wrong]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("names a tag or digest")
                && err.contains("help: give the repository alone: `127.0.0.1:9/forms/answer`"),
            "{err}"
        );
    }
}

#[test]
fn cli_errors_advise_commands_and_library_errors_the_api() {
    let registry = Registry::start();
    let host = host_triple();
    let other = other_triple();
    let elsewhere = format!("{}/advice/elsewhere:1", registry.host());
    let too_new = format!("{}/advice/too-new:1", registry.host());
    for (reference, flags) in [
        (&elsewhere, vec!["--target", other]),
        (&too_new, vec!["--target", &host, "--glibc-floor", "9.99"]),
    ] {
        let staged = stage_c_package("advice");
        run(ocipkg()
            .arg("pack")
            .arg(&staged)
            .args(["--tag", reference, "-o"])
            .arg(staged.with_extension("oci"))
            .args(flags));
        run(ocipkg().arg("push").arg(staged.with_extension("oci")));
    }
    let pull = |reference: &str| {
        let out = ocipkg()
            .args(["pull", reference])
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-advice-cli"))
            .env("OCIPKG_TARGET_GLIBC", "2.17")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = pull(&elsewhere);
    assert!(
        err.contains("has no build for target")
            && err.contains("pick one of the targets it has with --target")
            && !err.contains("Error::"),
        "{err}"
    );
    let err = pull(&too_new);
    assert!(
        err.contains("needs glibc 9.99")
            && err.contains("run the command again")
            && !err.contains("Error::"),
        "{err}"
    );
    // The library speaks to the build script's author.
    let err = link_in(temp_dir("cache-advice-lib"), &elsewhere)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`Error::is_no_prebuilt()`"), "{err}");
}

#[test]
fn a_url_instead_of_a_reference_says_to_drop_the_scheme() {
    let failed = |args: &[&str]| {
        let out = ocipkg().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = failed(&["pull", "http://registry.lan:5000/org/foo:1"]);
    assert!(
        err.contains(
            "reason: a reference has no scheme (`http://`): write `registry.lan:5000/org/foo:1`"
        ) && err.contains("  plain HTTP: ")
            && err.contains("OCIPKG_INSECURE_REGISTRIES=registry.lan:5000"),
        "{err}"
    );
    let home = temp_dir("home-url");
    let out = ocipkg()
        .args(["logout", "http://registry.lan:5000/"])
        .env("DOCKER_CONFIG", home.join(".docker"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("is a URL, not a registry")
            && err.contains("help: write it as host[:port]: `registry.lan:5000`")
            && err.contains("OCIPKG_INSECURE_REGISTRIES"),
        "{err}"
    );
}
