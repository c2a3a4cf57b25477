//! A registry client for one repository: the pull and push endpoints of the
//! OCI distribution spec, with Bearer-token and Basic authentication.

#[cfg(feature = "producer")]
use std::fs::File;
use std::io::Read;
#[cfg(feature = "producer")]
use std::path::Path;
use std::time::{Duration, Instant};

use ureq::http::Response;
use ureq::Body;

use crate::env;
use crate::error::{Error, Missing, NetworkKind, Result};
use crate::oci::manifest::{RawManifest, Source};
use crate::oci::reference::Reference;
use crate::registry::auth;
use crate::registry::config::RegistryConfig;
use crate::registry::credentials::{Credential, Lookup};
#[cfg(feature = "producer")]
use crate::registry::http::absolute;
use crate::registry::http::{host_of, kind_of, registry_message, same_origin, with_auth};
use crate::registry::retry;

/// Media types we accept for manifests, most preferred first.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Times a manifest naming blobs the registry does not see yet is pushed
/// again (after 0.25, 0.5, 1 and 2 s).
#[cfg(feature = "producer")]
const MANIFEST_BLOB_RETRIES: u32 = 4;
/// Manifests larger than this are refused (the spec suggests 4 MiB).
const MANIFEST_LIMIT: u64 = 4 << 20;

/// How a client reaches its registry (from the session).
pub(crate) struct Transport<'a> {
    /// The registry's settings from the configuration file.
    pub settings: &'a RegistryConfig,
    /// `http://` instead of `https://`.
    pub plain_http: bool,
    /// Ask for push rights when a token is needed.
    pub push: bool,
    /// When the operation must be over, and its time limit.
    pub deadline: Instant,
    pub time_limit: Duration,
}

/// Talks to one repository of one registry.
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    registry: String,
    repository: String,
    push: bool,
    credentials: Lookup,
    /// The credentials found, once looked for.
    credential: Option<Option<Credential>>,
    token: Option<auth::Token>,
    basic: Option<String>,
    /// Other repositories whose pull rights the token should carry (mounts).
    also_pull: Vec<String>,
    /// Where the credentials came from that the registry accepted or refused.
    used: Option<String>,
    rejected: Option<String>,
    /// When the operation must be over (`OCIPKG_TIMEOUT_SECS`), and its length.
    deadline: Instant,
    time_limit: Duration,
}

impl Client {
    /// A client for `reference`'s repository (see [`Transport`]).
    pub(crate) fn new(
        reference: &Reference,
        transport: Transport<'_>,
        credentials: Lookup,
    ) -> Result<Self> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // No one request outlasts the operation's time limit, however
            // slowly a registry trickles its answer.
            .timeout_global(Some(transport.time_limit))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(user_agent())
            // Never send Authorization to where a registry redirects (S3, CDNs).
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::Never)
            .tls_config(tls_config(reference.registry(), transport.settings)?)
            .build();
        let scheme = if transport.plain_http {
            "http"
        } else {
            "https"
        };
        Ok(Client {
            agent: config.into(),
            base: format!("{scheme}://{}", reference.api_host()),
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            push: transport.push,
            credentials,
            credential: None,
            token: None,
            basic: None,
            also_pull: Vec::new(),
            used: None,
            rejected: None,
            deadline: transport.deadline,
            time_limit: transport.time_limit,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.repository)
    }

    /// Sends a request built by `make` (given the Authorization value, if
    /// any), retrying connection errors, 5xx and 429 (see [`retry`]). A final
    /// 5xx/429 becomes an error; other statuses are the caller's to judge.
    fn execute<F>(&mut self, action: &str, make: F) -> Result<Response<Body>>
    where
        F: Fn(&ureq::Agent, Option<&str>) -> std::result::Result<Response<Body>, ureq::Error>,
    {
        let mut attempt = 1;
        loop {
            if Instant::now() >= self.deadline {
                return Err(self.network(action, "no time left"));
            }
            let outcome = self.send_authorized(action, &make);
            let wait = match &outcome {
                Err(Error::Network {
                    kind: NetworkKind::Transfer,
                    ..
                }) => Some(None),
                Ok(r) if retry::retryable_status(r.status().as_u16()) => {
                    Some(retry::retry_after(r.headers()))
                }
                _ => None,
            };
            match wait {
                None => return outcome,
                Some(after) if attempt < retry::MAX_ATTEMPTS => {
                    std::thread::sleep(retry::backoff(attempt, after));
                    attempt += 1;
                }
                Some(_) => {
                    let action = format!("{action} (tried {attempt} times)");
                    return match outcome {
                        Ok(response) => Err(self.fail(&action, response)),
                        Err(Error::Network {
                            kind,
                            detail,
                            source,
                            ..
                        }) => Err(Error::Network {
                            action,
                            kind,
                            detail,
                            source,
                        }),
                        Err(e) => Err(e),
                    };
                }
            }
        }
    }

    /// [`Client::execute`], then anything but one of the `expected`
    /// statuses becomes an error carrying the registry's message: the one
    /// path of every endpoint.
    fn call<F>(&mut self, action: &str, expected: &[u16], make: F) -> Result<Response<Body>>
    where
        F: Fn(&ureq::Agent, Option<&str>) -> std::result::Result<Response<Body>, ureq::Error>,
    {
        let response = self.execute(action, make)?;
        if expected.contains(&response.status().as_u16()) {
            Ok(response)
        } else {
            Err(self.fail(action, response))
        }
    }

    /// "`what` `registry`/`repository`", the action text of an endpoint.
    fn doing(&self, what: &str) -> String {
        format!("{what} {}/{}", self.registry, self.repository)
    }

    /// One attempt; on a 401 gets a Bearer token (with credentials if any,
    /// anonymously when there are none or, on pulls, when they are refused)
    /// or uses Basic credentials, and sends the request once more.
    fn send_authorized<F>(&mut self, action: &str, make: &F) -> Result<Response<Body>>
    where
        F: Fn(&ureq::Agent, Option<&str>) -> std::result::Result<Response<Body>, ureq::Error>,
    {
        if self
            .token
            .as_ref()
            .is_some_and(|t| t.expires <= std::time::Instant::now())
        {
            self.token = None;
        }
        let response = make(&self.agent, self.authorization().as_deref())
            .map_err(|e| self.network(action, e))?;
        if response.status().as_u16() != 401 {
            return Ok(response);
        }
        // Only the registry itself may ask for credentials: a 401 from where
        // it redirected us, or from an upload URL on another origin, names a
        // token realm of someone else's choosing.
        use ureq::ResponseExt as _;
        if !same_origin(&self.base, &response.get_uri().to_string()) {
            return Ok(response);
        }
        let challenges: Vec<auth::Challenge> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(auth::parse_challenges)
            .collect();
        let credential = self.credential()?;
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let actions = if self.push { "pull,push" } else { "pull" };
            let mut scope = match self.repository.as_str() {
                "" => String::new(),
                repository => format!("repository:{repository}:{actions}"),
            };
            for other in &self.also_pull {
                scope.push_str(&format!(" repository:{other}:pull"));
            }
            let mut token = None;
            // Credentials go to a token realm over HTTPS only, unless the
            // registry itself is plain HTTP (then on its own host only).
            let allow_http = self
                .base
                .starts_with("http://")
                .then(|| host_of(&self.base));
            if let Some(c) = &credential {
                token = auth::fetch_token(
                    &self.agent,
                    bearer,
                    &scope,
                    &self.registry,
                    Some(c),
                    allow_http.as_deref(),
                )?;
                match token {
                    Some(_) => self.used = Some(c.source.clone()),
                    None => self.rejected = Some(c.source.clone()),
                }
            }
            // A public package must not be spoiled by stale stored credentials.
            if token.is_none() && (credential.is_none() || !self.push) {
                token = auth::fetch_token(
                    &self.agent,
                    bearer,
                    &scope,
                    &self.registry,
                    None,
                    allow_http.as_deref(),
                )?;
            }
            match token {
                Some(token) => self.token = Some(token),
                None => return Ok(response),
            }
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(basic) = credential.as_ref().and_then(Credential::basic) else {
                return Ok(response);
            };
            self.basic = Some(basic);
        } else {
            return Ok(response);
        }
        let retried = make(&self.agent, self.authorization().as_deref())
            .map_err(|e| self.network(action, e))?;
        if self.basic.is_some() {
            let source = credential.map(|c| c.source);
            match retried.status().as_u16() {
                401 => self.rejected = source,
                _ => self.used = source,
            }
        }
        Ok(retried)
    }

    /// Asks for pull rights on these repositories too, for mounts from them
    /// (takes effect with the next token).
    #[cfg(feature = "producer")]
    pub(crate) fn also_pull(&mut self, repositories: Vec<String>) {
        self.also_pull = repositories;
    }

    /// The credentials for this registry, looked up once, when first needed.
    fn credential(&mut self) -> Result<Option<Credential>> {
        if self.credential.is_none() {
            self.credential = Some(self.credentials.find()?);
        }
        Ok(self.credential.clone().flatten())
    }

    fn authorization(&self) -> Option<String> {
        match &self.token {
            Some(token) => Some(format!("Bearer {}", token.value)),
            None => self.basic.clone(),
        }
    }

    /// Turns a non-success response into an error carrying the registry's
    /// message, and for 401/403 what was tried and how to log in.
    fn fail(&self, action: &str, mut response: Response<Body>) -> Error {
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 << 10)
            .read_to_string()
            .unwrap_or_default();
        let message = self.scrub(&registry_message(&body));
        if status == 401 || status == 403 {
            let tried = match (&self.rejected, &self.used) {
                (Some(source), _) => format!("the credentials from {source} were refused"),
                (None, Some(source)) => format!(
                    "the credentials from {source} were accepted but do not grant this access"
                ),
                (None, None) => format!("no credentials were found for {}", self.registry),
            };
            return Error::Auth {
                action: action.to_string(),
                status,
                registry: self.registry.clone(),
                tried,
                message,
            };
        }
        if status == 404 {
            let missing = if body.contains("NAME_UNKNOWN") {
                Missing::Repository
            } else if body.contains("MANIFEST_UNKNOWN") || body.contains("BLOB_UNKNOWN") {
                Missing::Content
            } else {
                Missing::Unknown
            };
            return Error::NotFound {
                action: action.to_string(),
                missing,
                message,
            };
        }
        Error::Registry {
            action: action.to_string(),
            status,
            message,
        }
    }

    /// A network failure of `action`; once the operation's time is up, one
    /// that says so and names the setting.
    fn network(&self, action: &str, error: impl Into<Failure>) -> Error {
        let (mut kind, detail, source) = match error.into() {
            Failure::Ureq(e) => (kind_of(&e), e.to_string(), Some(e)),
            Failure::Text(text) => (NetworkKind::Transfer, text, None),
        };
        let detail = if Instant::now() >= self.deadline {
            kind = NetworkKind::TimeLimit;
            format!(
                "the operation's time limit of {} s ran out ({detail}); set {} to allow longer",
                self.time_limit.as_secs(),
                env::TIMEOUT_SECS
            )
        } else {
            detail
        };
        match source {
            Some(source) => Error::network_from(action, kind, self.scrub(&detail), source),
            None => Error::network(action, kind, self.scrub(&detail)),
        }
    }

    /// `text` without this client's credentials or token in it.
    fn scrub(&self, text: &str) -> String {
        let credential = self.credential.clone().flatten();
        let basic = credential.as_ref().and_then(Credential::basic);
        let mut secrets: Vec<&str> = Vec::new();
        if let Some(c) = &credential {
            secrets.push(&c.secret);
        }
        if let Some(b) = &basic {
            secrets.push(b.trim_start_matches("Basic "));
        }
        if let Some(t) = &self.token {
            secrets.push(&t.value);
        }
        auth::scrub(text, &secrets)
    }

    /// `GET /v2/`, authenticating as the registry asks: checks credentials.
    #[cfg(feature = "producer")]
    pub(crate) fn ping(&mut self) -> Result<()> {
        let action = format!("logging in to {}", self.registry);
        let url = format!("{}/v2/", self.base);
        // No repository: a token without scope, as `docker login` asks.
        self.repository.clear();
        self.call(&action, &[200], |agent, auth| {
            with_auth(agent.get(&url), auth).call()
        })?;
        Ok(())
    }

    /// GET a manifest or index by tag or digest.
    pub(crate) fn get_manifest(&mut self, reference: &str) -> Result<RawManifest> {
        let action = format!("{}:{reference}", self.doing("fetching manifest"));
        let url = self.url(&format!("manifests/{reference}"));
        let mut response = self.call(&action, &[200], |agent, auth| {
            with_auth(agent.get(&url).header("Accept", MANIFEST_ACCEPT), auth).call()
        })?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        };
        let media_type = header("content-type");
        let digest_header = header("docker-content-digest");
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MANIFEST_LIMIT)
            .read_to_vec()
            .map_err(|e| self.network(&action, e))?;
        Ok(RawManifest {
            bytes,
            media_type,
            digest_header,
        })
    }

    /// Like [`Client::get_manifest`], `None` when the tag or digest is unknown.
    #[cfg(feature = "producer")]
    pub(crate) fn find_manifest(&mut self, reference: &str) -> Result<Option<RawManifest>> {
        match self.get_manifest(reference) {
            Ok(found) => Ok(Some(found)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a blob of `size` bytes as a stream that resumes (with `Range`)
    /// when the connection breaks. The caller verifies what it reads.
    pub(crate) fn get_blob(&mut self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>> {
        let action = self.doing(&format!("downloading blob {digest} of"));
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.call(&action, &[200], |agent, auth| {
            with_auth(agent.get(&url), auth).call()
        })?;
        Ok(Box::new(ResumingReader {
            agent: self.agent.clone(),
            url,
            authorization: self.authorization(),
            body: Some(response.into_body().into_reader()),
            offset: 0,
            size,
            resumes: 0,
            deadline: self.deadline,
            time_limit: self.time_limit,
        }))
    }

    /// Whether the repository already holds a blob.
    #[cfg(feature = "producer")]
    pub(crate) fn has_blob(&mut self, digest: &str) -> Result<bool> {
        let action = self.doing(&format!("checking for blob {digest} in"));
        let url = self.url(&format!("blobs/{digest}"));
        let response = self.execute(&action, |agent, auth| {
            with_auth(agent.head(&url), auth).call()
        })?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail(&action, response)),
        }
    }

    /// Puts a blob of `size` bytes from a file into the repository: by a
    /// cross-repository mount from `mount_from` when given and the registry
    /// agrees, else by upload: chunks of `chunk_size` bytes (PATCH with
    /// `Content-Range`, memory bounded by one chunk) for larger blobs, one
    /// PUT otherwise or when the registry refuses chunks.
    #[cfg(feature = "producer")]
    pub(crate) fn upload_blob(
        &mut self,
        path: &Path,
        digest: &str,
        size: u64,
        mount_from: Option<&str>,
        chunk_size: u64,
    ) -> Result<Upload> {
        let action = self.doing(&format!("uploading blob {digest} to"));
        let mut url = self.url("blobs/uploads/");
        if let Some(from) = mount_from {
            url = format!("{url}?mount={digest}&from={from}");
        }
        let response = self.execute(&action, |agent, auth| {
            with_auth(agent.post(&url), auth).send_empty()
        })?;
        match response.status().as_u16() {
            201 if mount_from.is_some() => return Ok(Upload::Mounted),
            202 => {}
            _ => return Err(self.fail(&action, response)),
        }
        let mut location = self.session(&action, &response)?;
        if size > chunk_size {
            match self.upload_chunks(&action, &location, path, size, chunk_size)? {
                Some((last, chunks)) => {
                    let put_url = with_digest(&last, digest);
                    let ours = same_origin(&self.base, &put_url);
                    self.call(&action, &[201], |agent, auth| {
                        with_auth(agent.put(&put_url), auth.filter(|_| ours)).send_empty()
                    })?;
                    return Ok(Upload::Uploaded { chunks });
                }
                // Chunks refused: a new session for one PUT.
                None => {
                    let post_url = self.url("blobs/uploads/");
                    let response = self.call(&action, &[202], |agent, auth| {
                        with_auth(agent.post(&post_url), auth).send_empty()
                    })?;
                    location = self.session(&action, &response)?;
                }
            }
        }
        let put_url = with_digest(&location, digest);
        let ours = same_origin(&self.base, &put_url);
        self.call(&action, &[201], |agent, auth| {
            let file = File::open(path).map_err(ureq::Error::Io)?;
            with_auth(agent.put(&put_url), auth.filter(|_| ours))
                .header("Content-Type", "application/octet-stream")
                .send(&file)
        })?;
        Ok(Upload::Uploaded { chunks: 1 })
    }

    /// Mounts a blob from another repository of the registry; `false` when
    /// the registry declines (the upload session it opened is abandoned).
    #[cfg(feature = "producer")]
    pub(crate) fn mount_blob(&mut self, digest: &str, from: &str) -> Result<bool> {
        let action = self.doing(&format!("mounting blob {digest} from {from} into"));
        let url = format!("{}?mount={digest}&from={from}", self.url("blobs/uploads/"));
        let response = self.execute(&action, |agent, auth| {
            with_auth(agent.post(&url), auth).send_empty()
        })?;
        match response.status().as_u16() {
            201 => Ok(true),
            202 => {
                if let Ok(session) = self.session(&action, &response) {
                    let auth = self
                        .authorization()
                        .filter(|_| same_origin(&self.base, &session));
                    let _ = with_auth(self.agent.delete(&session), auth.as_deref()).call();
                }
                Ok(false)
            }
            _ => Err(self.fail(&action, response)),
        }
    }

    /// PATCHes the file in chunks; `None` when the registry refuses chunked
    /// uploads, else the final session URL and the number of chunks.
    #[cfg(feature = "producer")]
    fn upload_chunks(
        &mut self,
        action: &str,
        location: &str,
        path: &Path,
        size: u64,
        chunk_size: u64,
    ) -> Result<Option<(String, usize)>> {
        let io = |e| Error::io(format!("reading {}", path.display()), e);
        let mut file = File::open(path).map_err(io)?;
        let mut buffer = vec![0u8; usize::try_from(chunk_size).unwrap_or(usize::MAX)];
        let mut location = location.to_string();
        let mut offset = 0u64;
        let mut chunks = 0;
        let mut meter = crate::registry::progress::Meter::new(
            format!(
                "uploading {}",
                path.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            size,
        );
        while offset < size {
            let len = chunk_size.min(size - offset) as usize;
            file.read_exact(&mut buffer[..len]).map_err(io)?;
            let range = format!("{offset}-{}", offset + len as u64 - 1);
            let body = &buffer[..len];
            let url = location.clone();
            let ours = same_origin(&self.base, &url);
            let response = self.execute(action, |agent, auth| {
                with_auth(agent.patch(&url), auth.filter(|_| ours))
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Range", &range)
                    .send(body)
            })?;
            match response.status().as_u16() {
                202 => location = self.session(action, &response)?,
                400 | 405 | 416 | 501 if offset == 0 => return Ok(None),
                _ => return Err(self.fail(action, response)),
            }
            offset += len as u64;
            chunks += 1;
            if let Some(meter) = &mut meter {
                meter.update(offset);
            }
        }
        Ok(Some((location, chunks)))
    }

    /// The absolute URL of an upload session from a response's `Location`.
    #[cfg(feature = "producer")]
    fn session(&self, action: &str, response: &Response<Body>) -> Result<String> {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Error::Registry {
                action: action.to_string(),
                status: response.status().as_u16(),
                message: "the upload session has no Location header".into(),
            })?;
        Ok(absolute(&self.base, location))
    }

    /// PUT a manifest under a tag or digest.
    #[cfg(feature = "producer")]
    pub(crate) fn put_manifest(
        &mut self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<()> {
        let action = format!("{}:{reference}", self.doing("pushing manifest"));
        let url = self.url(&format!("manifests/{reference}"));
        for attempt in 0.. {
            let result = self.call(&action, &[201], |agent, auth| {
                with_auth(agent.put(&url), auth)
                    .header("Content-Type", media_type)
                    .send(bytes)
            });
            match result {
                // Blobs just uploaded may briefly be unknown to a registry
                // (eventually consistent storage; Distribution's filesystem
                // storage while another publisher links the same blob): the
                // spec's MANIFEST_BLOB_UNKNOWN is asked again a few times.
                Err(Error::Registry {
                    status: 400,
                    message,
                    ..
                }) if attempt < MANIFEST_BLOB_RETRIES
                    && message.contains("MANIFEST_BLOB_UNKNOWN") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// All tags of the repository, following `Link` pagination on the
    /// registry's own origin (at most [`MAX_TAG_PAGES`] pages, never the
    /// same page twice).
    #[cfg(feature = "producer")]
    pub(crate) fn list_tags(&mut self) -> Result<Vec<String>> {
        let action = self.doing("listing tags of");
        let mut url = self.url("tags/list");
        let mut seen = std::collections::HashSet::new();
        let mut tags = Vec::new();
        while seen.insert(url.clone()) && seen.len() <= MAX_TAG_PAGES {
            let mut response = self.call(&action, &[200], |agent, auth| {
                with_auth(agent.get(&url), auth).call()
            })?;
            let next = response
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = response
                .body_mut()
                .with_config()
                .limit(16 << 20)
                .read_to_string()
                .map_err(|e| self.network(&action, e))?;
            let json: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| Error::invalid("the tag list", e.to_string()))?;
            // Distribution answers `"tags": null` for a repository without tags.
            if let Some(list) = json.get("tags").and_then(|t| t.as_array()) {
                tags.extend(list.iter().filter_map(|t| t.as_str().map(String::from)));
            }
            match next {
                Some(link) => url = absolute(&self.base, &link),
                None => break,
            }
            if !same_origin(&self.base, &url) {
                return Err(Error::refused(
                    format!("the tag list of {}/{}", self.registry, self.repository),
                    format!(
                        "its next page is on another origin ({}); it is not followed, so no \
                         credentials go there",
                        self.scrub(&url)
                    ),
                    "list the tags with the registry's own tools, or ask its operator to \
                     paginate on the registry's own host",
                ));
            }
        }
        Ok(tags)
    }
}

/// A failure [`Client::network`] turns into an error.
enum Failure {
    Ureq(ureq::Error),
    Text(String),
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Self {
        Failure::Ureq(e)
    }
}

impl From<&str> for Failure {
    fn from(text: &str) -> Self {
        Failure::Text(text.to_string())
    }
}

/// Most pages of a tag list followed.
#[cfg(feature = "producer")]
const MAX_TAG_PAGES: usize = 1000;

/// A blob body that, when the connection breaks, asks again from where it
/// broke (`Range`), or from the start skipping what it already delivered
/// when the registry ignores `Range`.
struct ResumingReader {
    agent: ureq::Agent,
    url: String,
    authorization: Option<String>,
    body: Option<ureq::BodyReader<'static>>,
    offset: u64,
    size: u64,
    resumes: u32,
    deadline: Instant,
    time_limit: Duration,
}

impl ResumingReader {
    fn reopen(&mut self) -> std::io::Result<()> {
        let request = with_auth(self.agent.get(&self.url), self.authorization.as_deref())
            .header("Range", format!("bytes={}-", self.offset));
        let response = request.call().map_err(std::io::Error::other)?;
        let status = response.status().as_u16();
        let mut reader = response.into_body().into_reader();
        match status {
            206 => {}
            200 => {
                let wanted = self.offset;
                let skipped = std::io::copy(&mut (&mut reader).take(wanted), &mut std::io::sink())?;
                if skipped != wanted {
                    return Err(std::io::Error::other("the restarted download ended early"));
                }
            }
            _ => {
                return Err(std::io::Error::other(format!(
                    "resuming the download got HTTP {status}"
                )))
            }
        }
        self.body = Some(reader);
        Ok(())
    }
}

impl Read for ResumingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let result = match self.body.as_mut() {
                Some(body) => body.read(buf),
                None => match self.reopen() {
                    Ok(()) => continue,
                    Err(e) => Err(e),
                },
            };
            let error = match result {
                Ok(n) if n > 0 => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Ok(_) if self.offset >= self.size => return Ok(0),
                Ok(_) => std::io::Error::other("the connection closed before the end of the blob"),
                Err(e) => e,
            };
            if Instant::now() >= self.deadline {
                return Err(std::io::Error::other(format!(
                    "the operation's time limit of {} s ran out ({error}); set {} to allow longer",
                    self.time_limit.as_secs(),
                    env::TIMEOUT_SECS
                )));
            }
            if self.resumes >= retry::MAX_RESUMES {
                return Err(error);
            }
            self.resumes += 1;
            self.body = None;
            std::thread::sleep(retry::backoff(self.resumes, None));
        }
    }
}

/// `ocipkg/<version> (<os>; <arch>)`
fn user_agent() -> String {
    format!(
        "ocipkg/{} ({}; {})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// TLS settings of a registry: its own CA certificates, or no verification.
fn tls_config(registry: &str, settings: &RegistryConfig) -> Result<ureq::tls::TlsConfig> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if settings.insecure_tls {
        tls = tls.disable_verification(true);
    }
    if !settings.ca_certs.is_empty() {
        let mut certs = Vec::new();
        for path in &settings.ca_certs {
            let pem = std::fs::read(path).map_err(|e| {
                Error::io(
                    format!(
                        "reading CA certificates of {registry} from {}",
                        path.display()
                    ),
                    e,
                )
            })?;
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => certs.push(cert),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Error::config(
                            format!("{} is not a valid PEM file: {e}", path.display()),
                            format!("fix `ca_certs` of {registry} in the registry configuration"),
                        ))
                    }
                }
            }
        }
        if certs.is_empty() {
            return Err(Error::config(
                format!("the `ca_certs` of {registry} hold no certificate"),
                "give PEM files with CERTIFICATE blocks",
            ));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(tls.build())
}

/// How a blob got into a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg(feature = "producer")]
pub(crate) enum Upload {
    /// Mounted from another repository of the registry: no bytes sent.
    Mounted,
    /// Sent in this many requests.
    Uploaded { chunks: usize },
}

/// The URL that completes an upload; the session URL may already carry a query.
#[cfg(feature = "producer")]
fn with_digest(session: &str, digest: &str) -> String {
    let separator = if session.contains('?') { '&' } else { '?' };
    // A digest holds only `[a-z0-9:]`; `:` is allowed in a query unescaped.
    format!("{session}{separator}digest={digest}")
}

/// The target of `Link: <url>; rel="next"`, if any.
#[cfg(feature = "producer")]
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.replace(' ', "").contains("rel=\"next\"") {
            return None;
        }
        let t = target.trim();
        Some(t.strip_prefix('<')?.strip_suffix('>')?.to_string())
    })
}

impl Source for Client {
    fn manifest(&mut self, reference: &str) -> Result<RawManifest> {
        self.get_manifest(reference)
    }
    fn blob(&mut self, digest: &str, size: u64) -> Result<Box<dyn Read + Send>> {
        self.get_blob(digest, size)
    }
}

/// The upload and pagination helpers are the producer's.
#[cfg(all(test, feature = "producer"))]
mod tests {
    use super::*;

    #[test]
    fn upload_url_handles_every_location_form() {
        let d = "sha256:ab";
        let url = |base, location| with_digest(&absolute(base, location), d);
        assert_eq!(
            url("http://h:1", "http://h:1/v2/r/blobs/uploads/u?_state=x"),
            "http://h:1/v2/r/blobs/uploads/u?_state=x&digest=sha256:ab"
        );
        assert_eq!(
            url("https://h", "/v2/r/blobs/uploads/u"),
            "https://h/v2/r/blobs/uploads/u?digest=sha256:ab"
        );
    }

    #[test]
    fn link_header_pagination() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/r/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
