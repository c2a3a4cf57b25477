//! Tools around packages: lock references to digests, log in and out of
//! registries, list a repository's tags.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::oci::reference::Reference;
use crate::registry::credentials;
use crate::store::session::Session;
use crate::store::{fetch, lockfile};

/// Asks the registry what each reference's tag names now (the manifest or
/// multi-platform index, verified; no layers are downloaded, so a tag with
/// builds only for other targets locks too) and locks it to that digest in
/// `dir/ocipkg.lock`, creating or updating the file; `dir` must exist.
/// Returns `(reference, digest)` pairs.
///
/// A build script watches a lockfile only once one exists; so that cargo
/// reruns the build script of the crate in `dir` and the new lockfile takes
/// effect, creating it also updates the modification time of `dir/build.rs`
/// (its content is untouched).
pub fn lock(references: &[&str], dir: &Path) -> Result<Vec<(String, String)>> {
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("cannot lock into {}: it is not a directory", dir.display()),
            "give the directory of the consumer crate's Cargo.toml (no directory is created)",
        ));
    }
    let mut lockfile = lockfile::Lockfile::load(dir)?;
    let created = !lockfile.exists();
    let mut locked = Vec::new();
    let session = Session::process(false);
    for reference in references {
        let parsed = Reference::parse(reference)?;
        if parsed.digest().is_some() {
            return Err(Error::usage(
                format!("{reference} is already pinned to a digest"),
                "lock tag references (`registry/repository:tag`)",
            ));
        }
        // From the registry itself: an outage must not lock a stale digest.
        let digest = fetch::resolve_online(&session, &parsed)?;
        lockfile.set(&parsed, &digest);
        locked.push((parsed.to_string(), digest));
    }
    lockfile.save()?;
    if created {
        // A missed rerun only delays the lock to the next build-script run.
        let _ = std::fs::File::options()
            .append(true)
            .open(dir.join("build.rs"))
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    }
    Ok(locked)
}

/// Checks `username`/`password` against `registry` (`ghcr.io`,
/// `localhost:5000`, `docker.io`, ...) and stores them in Docker's config
/// file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), where
/// ocipkg, docker, podman and skopeo find them. Returns the file's path.
pub fn login(registry: &str, username: &str, password: &str) -> Result<PathBuf> {
    let reference = registry_reference(registry, "login")?;
    let session = Session::process(false);
    let credential = credentials::Credential {
        username: Some(username.to_string()),
        secret: password.to_string(),
        source: "the given user name and password".into(),
    };
    let lookup = credentials::Lookup::new(reference.registry(), session.env()).fixed(credential);
    session.client_with(&reference, false, lookup)?.ping()?;
    let path = credentials::docker_config_path(session.env());
    credentials::store(&path, reference.registry(), username, password)?;
    Ok(path)
}

/// Removes the stored credentials of `registry` from Docker's config file.
pub fn logout(registry: &str) -> Result<PathBuf> {
    let reference = registry_reference(registry, "logout")?;
    let path = credentials::docker_config_path(Session::process(false).env());
    if !credentials::remove(&path, reference.registry())? {
        return Err(Error::usage(
            format!(
                "{} holds no credentials for {}",
                path.display(),
                reference.registry()
            ),
            "nothing to do; `docker logout` removes credentials kept by a credential helper",
        ));
    }
    Ok(path)
}

/// A reference to a made-up repository of `registry` (`host[:port]`), to
/// reach the registry with; a URL is refused, saying what to write.
fn registry_reference(registry: &str, repository: &str) -> Result<Reference> {
    if let Some((scheme, rest)) = registry.split_once("://") {
        return Err(Error::usage(
            format!(
                "`{registry}` is a URL, not a registry: a registry has no scheme (`{scheme}://`)"
            ),
            format!(
                "write it as host[:port]: `{}`. Registries other than loopback ones are reached \
                 over HTTPS; list those reached over plain HTTP in {}",
                rest.trim_end_matches('/'),
                crate::env::INSECURE_REGISTRIES
            ),
        ));
    }
    Reference::parse(&format!("{registry}/{repository}"))
}

/// Lists the tags of a repository (`registry/repository`, with no tag or
/// digest).
pub fn list_tags(repository: &str) -> Result<Vec<String>> {
    let reference = Reference::parse(repository)?;
    if reference.tag().is_some() || reference.digest().is_some() {
        return Err(Error::usage(
            format!("`{repository}` names a tag or digest, not only a repository"),
            format!(
                "give the repository alone: `{}/{}`",
                reference.registry(),
                reference.repository()
            ),
        ));
    }
    Session::process(false)
        .client(&reference, false)?
        .list_tags()
}
