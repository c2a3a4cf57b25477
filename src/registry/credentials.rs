//! Registry credentials, looked up by registry host, in this order:
//!
//! 1. `OCIPKG_AUTH_<HOST>=user:password`, `HOST` being the registry (with
//!    port) upper-cased with every other character than letters and digits
//!    turned into `_` (`ghcr.io` → `OCIPKG_AUTH_GHCR_IO`,
//!    `localhost:5000` → `OCIPKG_AUTH_LOCALHOST_5000`);
//! 2. `OCIPKG_USERNAME` and `OCIPKG_PASSWORD`, for any registry that asks;
//! 3. Docker's `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`):
//!    `credHelpers.<host>`, then `credsStore` (running
//!    `docker-credential-<name> get`), then `auths.<host>` (`auth`,
//!    `username`/`password` or `identitytoken`);
//! 4. podman's `$XDG_RUNTIME_DIR/containers/auth.json`, then
//!    `~/.config/containers/auth.json`.
//!
//! Credentials are sent only to a registry that asks for them (HTTP 401), and
//! never appear in errors, logs or `Debug` output.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::env::{self, Env};
use crate::error::{Error, Result};
use crate::oci::reference::DOCKER_HUB;

/// The key Docker uses for Docker Hub in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name with its secret, and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    /// `None` for an identity (refresh) token.
    pub username: Option<String>,
    pub secret: String,
    /// Where it was found, for error messages: never the secret itself.
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credential {
    /// `Basic base64(user:secret)`, for a user name and password.
    pub(crate) fn basic(&self) -> Option<String> {
        let user = self.username.as_deref()?;
        Some(format!(
            "Basic {}",
            base64_encode(format!("{user}:{}", self.secret).as_bytes())
        ))
    }
}

/// What the environment says about credentials for one registry; files and
/// helpers are consulted only by [`Lookup::find`], when a registry asks.
#[derive(Clone)]
pub(crate) struct Lookup {
    fixed: Option<Credential>,
    registry: String,
    var: String,
    from_var: Option<String>,
    user_password: Option<(String, String)>,
    docker_config: PathBuf,
    podman: Vec<PathBuf>,
}

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lookup")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Lookup {
    /// Reads the variables (so a build script re-runs when they change).
    pub(crate) fn new(registry: &str, env: &Env) -> Self {
        let var = env::auth_var(registry);
        Lookup {
            fixed: None,
            registry: registry.to_string(),
            from_var: env.get(&var),
            var,
            user_password: env.get(env::USERNAME).zip(env.get(env::PASSWORD)),
            docker_config: docker_config_path(env),
            podman: podman_auth_paths(env),
        }
    }

    /// Only credentials stored for this very host: not `OCIPKG_USERNAME`/
    /// `OCIPKG_PASSWORD`, which are meant for the registries a build names,
    /// not for mirrors.
    pub(crate) fn host_only(mut self) -> Self {
        self.user_password = None;
        self
    }

    /// Uses exactly `credential` (for `ocipkg login`, which checks it).
    #[cfg(feature = "producer")]
    pub(crate) fn fixed(mut self, credential: Credential) -> Self {
        self.fixed = Some(credential);
        self
    }

    /// Finds credentials for the registry, in the documented order.
    pub(crate) fn find(&self) -> Result<Option<Credential>> {
        if let Some(fixed) = &self.fixed {
            return Ok(Some(fixed.clone()));
        }
        if let Some(value) = &self.from_var {
            let Some((user, secret)) = value.split_once(':') else {
                return Err(Error::config(
                    format!("{} is not of the form `user:password`", self.var),
                    format!(
                        "set {}=USER:PASSWORD (or a token as the password)",
                        self.var
                    ),
                ));
            };
            return Ok(Some(Credential {
                username: Some(user.to_string()),
                secret: secret.to_string(),
                source: format!("the environment variable {}", self.var),
            }));
        }
        if let Some((user, secret)) = &self.user_password {
            return Ok(Some(Credential {
                username: Some(user.clone()),
                secret: secret.clone(),
                source: "the environment variables OCIPKG_USERNAME/OCIPKG_PASSWORD".into(),
            }));
        }
        if let Some(found) = from_config_file(&self.docker_config, &self.registry, true)? {
            return Ok(Some(found));
        }
        for podman in &self.podman {
            if let Some(found) = from_config_file(podman, &self.registry, false)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub(crate) fn docker_config_path(env: &Env) -> PathBuf {
    match env.get(env::DOCKER_CONFIG) {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => home().join(".docker").join("config.json"),
    }
}

/// The key a registry's entry gets in Docker's `auths`.
#[cfg(feature = "producer")]
fn auths_key(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_KEY
    } else {
        registry
    }
}

/// Stores `user:password` for `registry` in the Docker config file at
/// `path` (as `docker login` does without a credential store), keeping
/// everything else in it. Returns nothing secret.
#[cfg(feature = "producer")]
pub(crate) fn store(
    path: &std::path::Path,
    registry: &str,
    user: &str,
    password: &str,
) -> Result<()> {
    let mut json = read_config(path)?;
    let auth = base64_encode(format!("{user}:{password}").as_bytes());
    let auths = json
        .as_object_mut()
        .ok_or_else(|| Error::invalid(path.display().to_string(), "it is not a JSON object"))?
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err(Error::invalid(
            path.display().to_string(),
            "its `auths` is not an object",
        ));
    };
    auths.insert(
        auths_key(registry).to_string(),
        serde_json::json!({ "auth": auth }),
    );
    write_config(path, &json)
}

/// Removes `registry`'s entry from the Docker config file; `false` if it had none.
#[cfg(feature = "producer")]
pub(crate) fn remove(path: &std::path::Path, registry: &str) -> Result<bool> {
    let mut json = read_config(path)?;
    let removed = json
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .map(|auths| {
            let before = auths.len();
            for k in keys_for(registry) {
                auths.remove(&k);
            }
            auths.len() < before
        })
        .unwrap_or(false);
    if removed {
        write_config(path, &json)?;
    }
    Ok(removed)
}

#[cfg(feature = "producer")]
fn read_config(path: &std::path::Path) -> Result<serde_json::Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::invalid(path.display().to_string(), format!("it is not JSON: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes the config readable by its owner only, replacing it atomically.
#[cfg(feature = "producer")]
fn write_config(path: &std::path::Path, json: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(json)
        .map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
    crate::files::write_atomic_private(path, text.as_bytes())
}

fn podman_auth_paths(env: &Env) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(dir) = env.get(env::XDG_RUNTIME_DIR) {
        paths.push(PathBuf::from(dir).join("containers").join("auth.json"));
    }
    paths.push(home().join(".config").join("containers").join("auth.json"));
    paths
}

fn home() -> PathBuf {
    directories::BaseDirs::new()
        .map(|d| d.home_dir().to_path_buf())
        .unwrap_or_default()
}

/// The keys a registry may have in `auths`/`credHelpers`.
fn keys_for(registry: &str) -> Vec<String> {
    if registry == DOCKER_HUB {
        return vec![
            DOCKER_HUB_KEY.to_string(),
            "docker.io".into(),
            "index.docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
        format!("https://{registry}/v1/"),
        format!("https://{registry}/v2/"),
    ]
}

fn from_config_file(
    path: &std::path::Path,
    registry: &str,
    helpers: bool,
) -> Result<Option<Credential>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) => return Ok(None),
    };
    let bad = |reason: String| {
        Error::config(
            format!("cannot read credentials from {}: {reason}", path.display()),
            "fix or remove the file, or log in again (`ocipkg login HOST`, `docker login HOST`)",
        )
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("it is not JSON ({e})")))?;
    let keys = keys_for(registry);
    if helpers {
        let helper = keys
            .iter()
            .find_map(|k| json.pointer(&format!("/credHelpers/{}", escape_pointer(k))))
            .or_else(|| json.get("credsStore"))
            .and_then(|h| h.as_str());
        if let Some(helper) = helper.filter(|h| !h.is_empty()) {
            let server = if registry == DOCKER_HUB {
                DOCKER_HUB_KEY
            } else {
                registry
            };
            if let Some(found) = from_helper(helper, server)? {
                return Ok(Some(found));
            }
        }
    }
    let Some(entry) = keys
        .iter()
        .find_map(|k| json.get("auths").and_then(|a| a.get(k)))
    else {
        return Ok(None);
    };
    let source = format!("{} (auths entry for {registry})", path.display());
    if let Some(token) = entry.get("identitytoken").and_then(|t| t.as_str()) {
        if !token.is_empty() {
            return Ok(Some(Credential {
                username: None,
                secret: token.to_string(),
                source,
            }));
        }
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        let decoded = base64_decode(auth)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                bad(format!(
                    "the `auth` of {registry} is not base64 of user:password"
                ))
            })?;
        let Some((user, secret)) = decoded.split_once(':') else {
            return Err(bad(format!(
                "the `auth` of {registry} is not user:password"
            )));
        };
        return Ok(Some(Credential {
            username: Some(user.to_string()),
            secret: secret.to_string(),
            source,
        }));
    }
    if let (Some(user), Some(secret)) = (
        entry.get("username").and_then(|u| u.as_str()),
        entry.get("password").and_then(|p| p.as_str()),
    ) {
        return Ok(Some(Credential {
            username: Some(user.to_string()),
            secret: secret.to_string(),
            source,
        }));
    }
    Ok(None)
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Asks `docker-credential-<helper> get` for the credentials of `server`.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let failed = |detail: String| Error::Command {
        command: format!("{program} get"),
        detail: format!(
            "{detail}\n  help: install {program} or remove `{helper}` from credHelpers/credsStore \
             in the docker config"
        ),
    };
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(format!("it did not finish: {e}")))?;
    if !out.status.success() {
        // "credentials not found" is the normal way of saying: none here.
        return Ok(None);
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| failed("its answer is not the expected JSON".into()))?;
    let secret = json.get("Secret").and_then(|s| s.as_str()).unwrap_or("");
    let user = json.get("Username").and_then(|s| s.as_str()).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: (user != "<token>").then(|| user.to_string()),
        secret: secret.to_string(),
        source: format!("the credential helper {program}"),
    }))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pa:ss wörd"] {
            assert_eq!(
                base64_decode(&base64_encode(s.as_bytes())).unwrap(),
                s.as_bytes()
            );
        }
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_decode("!!"), None);
    }

    #[test]
    fn env_var_names_and_lookup_order() {
        assert_eq!(env::auth_var("ghcr.io"), "OCIPKG_AUTH_GHCR_IO");
        assert_eq!(
            env::auth_var("localhost:5000"),
            "OCIPKG_AUTH_LOCALHOST_5000"
        );
        let env = Env::fake(&[
            ("OCIPKG_AUTH_GHCR_IO", "me:s3cret"),
            ("OCIPKG_USERNAME", "ci"),
            ("OCIPKG_PASSWORD", "other"),
            ("DOCKER_CONFIG", "/nonexistent"),
        ]);
        let c = Lookup::new("ghcr.io", &env).find().unwrap().unwrap();
        assert_eq!(c.username.as_deref(), Some("me"));
        assert!(c.source.contains("OCIPKG_AUTH_GHCR_IO"));
        let c = Lookup::new("quay.io", &env).find().unwrap().unwrap();
        assert_eq!(c.username.as_deref(), Some("ci"));
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("other") && debug.contains("redacted"),
            "{debug}"
        );
    }

    #[test]
    fn docker_config_auths_entries() {
        let dir = std::env::temp_dir().join(format!("ocipkg-cred-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"r.example:5000":{{"identitytoken":"tok"}}}}}}"#,
                base64_encode(b"hub:pw")
            ),
        )
        .unwrap();
        let env = Env::fake(&[
            ("DOCKER_CONFIG", dir.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", "/nonexistent"),
        ]);
        let hub = Lookup::new("docker.io", &env).find().unwrap().unwrap();
        assert_eq!(
            (hub.username.as_deref(), hub.secret.as_str()),
            (Some("hub"), "pw")
        );
        let token = Lookup::new("r.example:5000", &env).find().unwrap().unwrap();
        assert_eq!((token.username, token.secret.as_str()), (None, "tok"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
