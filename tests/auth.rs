//! Authentication against real Distribution registries: htpasswd (Basic) and
//! token auth, with credentials from every supported source, and no leaks.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const USER: &str = "alice";
const PASSWORD: &str = "pw-Zq81-never-print-me";

/// Every output of the test, to check that no secret leaks.
#[derive(Default)]
struct Outputs(Vec<String>);

impl Outputs {
    fn keep(&mut self, out: &Output) -> String {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.0.push(text.clone());
        text
    }

    fn assert_no_secret(&self, secrets: &[&str]) {
        for text in &self.0 {
            for secret in secrets {
                assert!(!text.contains(secret), "a secret leaked into:\n{text}");
            }
        }
    }
}

/// `ocipkg` with a private, empty credential environment.
fn isolated(home: &Path) -> Command {
    let mut cmd = ocipkg();
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("OCIPKG_CACHE_DIR", home.join("cache"))
        .env_remove("OCIPKG_USERNAME")
        .env_remove("OCIPKG_PASSWORD");
    cmd
}

fn env_var(registry: &Registry) -> String {
    format!("OCIPKG_AUTH_127_0_0_1_{}", registry.port)
}

fn docker_config(home: &Path, json: &str) {
    fs::create_dir_all(home.join(".docker")).unwrap();
    fs::write(home.join(".docker/config.json"), json).unwrap();
}

fn packed(registry: &Registry, repository: &str) -> (PathBuf, String) {
    let staged = stage_c_package(&repository.replace(['/', ':'], "-"));
    let reference = format!("{}/{repository}", registry.host());
    (pack(&staged, &reference), reference)
}

#[test]
fn htpasswd_registry_with_credentials_from_every_source() {
    let registry = Registry::start_htpasswd(USER, PASSWORD);
    let home = temp_dir("home-basic");
    let mut outputs = Outputs::default();
    let (layout, reference) = packed(&registry, "private/answer:1");

    // No credentials: refused, with the way to log in.
    let out = isolated(&home).arg("push").arg(&layout).output().unwrap();
    let text = outputs.keep(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("HTTP 401, access denied"), "{text}");
    assert!(
        text.contains(&format!("ocipkg login {}", registry.host())),
        "{text}"
    );
    assert!(text.contains(&env_var(&registry)), "{text}");
    assert!(text.contains("no credentials were found"), "{text}");

    // A wrong password from the environment: refused, naming the source.
    let out = isolated(&home)
        .arg("push")
        .arg(&layout)
        .env(env_var(&registry), format!("{USER}:wrong-{PASSWORD}"))
        .output()
        .unwrap();
    let text = outputs.keep(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "environment variable {} were refused",
            env_var(&registry)
        )),
        "{text}"
    );

    // The right one from OCIPKG_AUTH_<HOST>: pushed.
    let out = run(isolated(&home)
        .arg("push")
        .arg(&layout)
        .env(env_var(&registry), format!("{USER}:{PASSWORD}")));
    outputs.keep(&out);

    // skopeo, with the same credentials, reads what we pushed.
    run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{reference}"),
    ]));

    // From OCIPKG_USERNAME/OCIPKG_PASSWORD.
    let out = run(isolated(&home)
        .args(["pull", &reference])
        .env("OCIPKG_USERNAME", USER)
        .env("OCIPKG_PASSWORD", PASSWORD)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-basic-env")));
    outputs.keep(&out);

    // From a docker config.json auths entry.
    docker_config(
        &home,
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            registry.host(),
            base64(format!("{USER}:{PASSWORD}").as_bytes(), false)
        ),
    );
    let out = run(isolated(&home)
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-basic-config")));
    outputs.keep(&out);

    // From a credential helper on PATH named by credHelpers.
    let bin = temp_dir("helper-bin");
    let helper = bin.join("docker-credential-ocipkgtest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{}\" ] || exit 1\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\n",
            registry.host()
        ),
    )
    .unwrap();
    run(Command::new("chmod").arg("+x").arg(&helper));
    docker_config(
        &home,
        &format!(
            r#"{{"credHelpers":{{"{}":"ocipkgtest"}}}}"#,
            registry.host()
        ),
    );
    #[allow(clippy::disallowed_methods)] // the test's own PATH, extended
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(isolated(&home)
        .args(["pull", &reference])
        .env("PATH", path)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-basic-helper")));
    outputs.keep(&out);

    // `ocipkg login` checks and stores; `ocipkg logout` removes.
    fs::remove_file(home.join(".docker/config.json")).unwrap();
    let out = try_login(&home, &registry.host(), "wrong");
    let text = outputs.keep(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a wrong password is not stored: {text}"
    );
    assert!(!home.join(".docker/config.json").exists());
    let out = login(&home, &registry.host(), PASSWORD);
    outputs.keep(&out);
    let config = fs::read_to_string(home.join(".docker/config.json")).unwrap();
    assert!(config.contains(&registry.host()), "{config}");
    let out = run(isolated(&home)
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-basic-login")));
    outputs.keep(&out);
    let out = run(isolated(&home).args(["logout", &registry.host()]));
    outputs.keep(&out);
    let out = isolated(&home)
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-basic-logout"))
        .output()
        .unwrap();
    let text = outputs.keep(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");

    // A real build: build.rs links the package with credentials from the
    // environment; nothing secret shows in its (very verbose) output.
    let consumer = consumer_crate("consumer-auth");
    let out = run(cargo(&consumer, &home.join("cache-build"))
        .args(["run", "-vv"])
        .env("CONSUMER_REF", &reference)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env(env_var(&registry), format!("{USER}:{PASSWORD}")));
    let text = outputs.keep(&out);
    assert!(text.contains("answer=41"), "{text}");
    assert!(
        text.contains(&format!(
            "cargo:rerun-if-env-changed={}",
            env_var(&registry)
        )),
        "{text}"
    );

    let encoded = base64(format!("{USER}:{PASSWORD}").as_bytes(), false);
    outputs.assert_no_secret(&[PASSWORD, &encoded]);
}

fn login(home: &Path, registry: &str, password: &str) -> Output {
    let out = try_login(home, registry, password);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn try_login(home: &Path, registry: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child = isolated(home)
        .args(["login", registry, "-u", USER, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn token_registry_anonymous_pull_authenticated_push_and_stale_credentials() {
    let server = TokenServer::start(USER, PASSWORD);
    let registry = Registry::start_token(&server);
    let home = temp_dir("home-token");
    let mut outputs = Outputs::default();
    let (layout, reference) = packed(&registry, "public/answer:1");

    // Anonymous tokens only grant pull: the push is refused.
    let out = isolated(&home).arg("push").arg(&layout).output().unwrap();
    let text = outputs.keep(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("access denied"), "{text}");

    // With credentials (from `ocipkg login`, which gets a token to check them).
    let out = login(&home, &registry.host(), PASSWORD);
    outputs.keep(&out);
    let out = run(isolated(&home).arg("push").arg(&layout));
    outputs.keep(&out);
    let (digest, _) = layout_digests(&layout);

    // skopeo with the same credentials reads it.
    let raw = stdout(&run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &format!("{USER}:{PASSWORD}"),
        &format!("docker://{reference}"),
    ])));
    assert!(raw.contains("application/vnd.ocipkg.v1.artifact"), "{raw}");

    // Anonymous pull of the public package.
    let anonymous = temp_dir("home-anonymous");
    let out = run(isolated(&anonymous).args(["pull", &reference]));
    outputs.keep(&out);

    // Stale stored credentials do not break a public pull.
    docker_config(
        &anonymous,
        &format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            registry.host(),
            base64(format!("{USER}:stale-password").as_bytes(), false)
        ),
    );
    let before = server.requests.lock().unwrap().len();
    let out = run(isolated(&anonymous)
        .args(["pull", &reference])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-stale")));
    outputs.keep(&out);
    let requests = server.requests.lock().unwrap()[before..].to_vec();
    assert!(
        requests.iter().any(|(_, auth)| auth.starts_with("Basic ")),
        "the stale credentials were tried first: {requests:?}"
    );
    assert!(
        requests.iter().any(|(_, auth)| auth.is_empty()),
        "then an anonymous token: {requests:?}"
    );

    // Push scope is asked for pushes, pull scope for pulls.
    let all = server.requests.lock().unwrap().clone();
    assert!(all
        .iter()
        .any(|(q, _)| q.contains("scope=repository%3Apublic%2Fanswer%3Apull%2Cpush")));
    assert!(all.iter().any(
        |(q, _)| q.contains("scope=repository%3Apublic%2Fanswer%3Apull") && !q.contains("push")
    ));

    let package = run(isolated(&anonymous)
        .args([
            "pull",
            &format!("{}/public/answer@{digest}", registry.host()),
        ])
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-token-pinned")));
    outputs.keep(&package);
    let encoded = base64(format!("{USER}:{PASSWORD}").as_bytes(), false);
    let tokens = server.issued.lock().unwrap().clone();
    assert!(!tokens.is_empty());
    let mut secrets = vec![PASSWORD, encoded.as_str()];
    // A token's signature part is what makes it a secret.
    secrets.extend(tokens.iter().filter_map(|t| t.rsplit('.').next()));
    outputs.assert_no_secret(&secrets);
}

#[test]
fn redirected_blob_downloads_carry_no_authorization() {
    let registry = Registry::start();
    let (layout, _) = publish_c_package(&registry, "redirect/answer:1");
    let layer = layout_digests(&layout).1.remove(0);
    // B: "the CDN", records the Authorization headers it receives.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let cdn = Proxy::start(registry.port, move |req| {
        s.lock()
            .unwrap()
            .push(req.header("authorization").map(String::from));
        Action::Forward
    });
    // A: "the registry", demands a token, then redirects the layer to B.
    let cdn_port = cdn.port;
    let (bearer, _) = bearer_proxy(registry.port);
    let front = Proxy::start(bearer.port, move |req| {
        let authorized = req.header("authorization").is_some();
        if authorized && req.path().ends_with(&layer) {
            let location = format!("Location: http://127.0.0.1:{cdn_port}{}\r\n", req.path());
            return Action::Respond("307 Temporary Redirect", location, String::new());
        }
        Action::Forward
    });
    let package = ocipkg::Linker::new()
        .cache_dir(temp_dir("cache-redirect"))
        .quiet(true)
        .link(&format!("127.0.0.1:{}/redirect/answer:1", front.port))
        .unwrap();
    assert_eq!(package.libraries()[0].name(), "answer");
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen.is_empty(),
        "the layer was fetched from the redirect target"
    );
    assert!(seen.iter().all(Option::is_none), "{seen:?}");
}
