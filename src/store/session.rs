//! The one value an operation (link, fetch, push, pack, save, load, image,
//! inspect) runs in: the environment reader, the registry configuration and
//! the cache, each read once, on first use, and every setting that comes
//! from the environment. Tests build it from a fake environment.

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::env::{self, Env};
use crate::error::Result;
use crate::oci::reference::Reference;
use crate::registry::client::{Client, Transport};
use crate::registry::config::Config;
use crate::registry::credentials::Lookup;
use crate::store::cache::Cache;
use crate::store::unpack::Limits;

/// One operation's settings and shared state.
pub(crate) struct Session {
    env: Env,
    cache_dir: Option<PathBuf>,
    cache: OnceCell<Cache>,
    config: OnceCell<Config>,
    /// When every request of the operation must be over, and the limit.
    deadline: OnceCell<(Instant, Duration)>,
}

impl Session {
    /// A session over `env`.
    pub(crate) fn new(env: Env) -> Self {
        Session {
            env,
            cache_dir: None,
            cache: OnceCell::new(),
            config: OnceCell::new(),
            deadline: OnceCell::new(),
        }
    }

    /// A session over the process environment; `record` makes every read
    /// variable a `cargo:rerun-if-env-changed` line (build scripts). The only
    /// place ocipkg reads the process environment.
    pub(crate) fn process(record: bool) -> Self {
        Session::new(Env::process(record))
    }

    /// Uses `dir` as the cache root instead of `OCIPKG_CACHE_DIR` / the
    /// per-user cache directory.
    pub(crate) fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    pub(crate) fn env(&self) -> &Env {
        &self.env
    }

    /// The cache, opened on first use, with the unpack limits of the environment.
    pub(crate) fn cache(&self) -> Result<&Cache> {
        if let Some(cache) = self.cache.get() {
            return Ok(cache);
        }
        let cache = match &self.cache_dir {
            Some(dir) => Cache::new(dir.clone(), Limits::from_env(&self.env)?),
            None => Cache::from_env(&self.env)?,
        };
        Ok(self.cache.get_or_init(|| cache))
    }

    /// The registry configuration file, read on first use.
    pub(crate) fn config(&self) -> Result<&Config> {
        if let Some(config) = self.config.get() {
            return Ok(config);
        }
        let config = Config::load(&self.env)?;
        Ok(self.config.get_or_init(|| config))
    }

    /// A client for `reference`'s repository, with its credentials: HTTPS,
    /// except for loopback registries, those in `OCIPKG_INSECURE_REGISTRIES`
    /// and those configured with `plain_http`. `push` asks for push rights.
    pub(crate) fn client(&self, reference: &Reference, push: bool) -> Result<Client> {
        let credentials = Lookup::new(reference.registry(), &self.env);
        self.client_with(reference, push, credentials)
    }

    /// A client for a mirror: only credentials stored for the mirror's own
    /// host, never the `OCIPKG_USERNAME`/`OCIPKG_PASSWORD` pair.
    pub(crate) fn mirror_client(&self, on_mirror: &Reference) -> Result<Client> {
        let credentials = Lookup::new(on_mirror.registry(), &self.env).host_only();
        self.client_with(on_mirror, false, credentials)
    }

    /// A client with the given credentials (`ocipkg login` checks fixed ones).
    pub(crate) fn client_with(
        &self,
        reference: &Reference,
        push: bool,
        credentials: Lookup,
    ) -> Result<Client> {
        for name in env::PROXY_VARS {
            let _ = self.env.get(name);
        }
        let settings = self.config()?.registry(reference.registry());
        let plain_http = settings
            .plain_http
            .unwrap_or_else(|| self.insecure(reference));
        let (deadline, time_limit) = self.deadline()?;
        Client::new(
            reference,
            Transport {
                settings: &settings,
                plain_http,
                push,
                deadline,
                time_limit,
            },
            credentials,
        )
    }

    /// Whether a registry is reached over plain HTTP by default: loopback
    /// ones and those listed in `OCIPKG_INSECURE_REGISTRIES` (a host
    /// without a port: every port of it).
    fn insecure(&self, reference: &Reference) -> bool {
        let listed = self.env.get(env::INSECURE_REGISTRIES).is_some_and(|list| {
            crate::registry::config::listed_insecure(
                &list,
                reference.registry(),
                reference.api_host(),
            )
        });
        reference.is_loopback() || listed
    }

    /// `OCIPKG_TIMEOUT_SECS` (default 30 min), counted from the first
    /// request of the operation, for all its clients together.
    fn deadline(&self) -> Result<(Instant, Duration)> {
        if let Some(deadline) = self.deadline.get() {
            return Ok(*deadline);
        }
        let limit = Duration::from_secs(env::number(&self.env, env::TIMEOUT_SECS, 1800, u64::MAX)?);
        Ok(*self
            .deadline
            .get_or_init(|| (Instant::now() + limit, limit)))
    }

    /// `OCIPKG_UPLOAD_CHUNK_MIB` (default 16, at most 1024) in bytes: blobs
    /// larger than this are uploaded in chunks of this size.
    #[cfg(feature = "producer")]
    pub(crate) fn upload_chunk(&self) -> Result<u64> {
        Ok(env::number(&self.env, env::UPLOAD_CHUNK_MIB, 16, 1024)? << 20)
    }

    /// `SOURCE_DATE_EPOCH`: the timestamp of packed files and `created`.
    #[cfg(feature = "producer")]
    pub(crate) fn source_date_epoch(&self) -> Result<Option<u64>> {
        match self.env.get(env::SOURCE_DATE_EPOCH) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                crate::error::Error::config(
                    format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds"),
                    "set SOURCE_DATE_EPOCH to a Unix timestamp, e.g. `$(git log -1 --format=%ct)`",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_given_environment() {
        let session = Session::new(Env::fake(&[
            ("OCIPKG_CACHE_DIR", "/proc/ocipkg-test-cache"),
            ("OCIPKG_TIMEOUT_SECS", "nope"),
        ]));
        let err = session.cache().err().unwrap().to_string();
        assert!(err.contains("OCIPKG_CACHE_DIR"), "{err}");
        let reference = Reference::parse("127.0.0.1:5000/a:1").unwrap();
        let err = session.client(&reference, false).err().unwrap().to_string();
        assert!(err.contains("OCIPKG_TIMEOUT_SECS"), "{err}");
    }
}
