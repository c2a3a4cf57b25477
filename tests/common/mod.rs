//! Test harness: a real CNCF Distribution registry on loopback, temp dirs,
//! and helpers to run the ocipkg binaries and scratch cargo projects.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A fresh directory under cargo's integration-test temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Distribution registry serving 127.0.0.1 on a free port; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

impl Registry {
    /// An open registry (no authentication).
    pub fn start() -> Registry {
        Registry::start_with("", "")
    }

    /// A registry serving HTTPS with a certificate for 127.0.0.1 issued by a
    /// test CA; returns it and the CA certificate (PEM) to trust.
    pub fn start_tls() -> (Registry, PathBuf) {
        let dir = temp_dir("tls");
        let path = |name: &str| dir.join(name).display().to_string();
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args));
        openssl(
            &[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ]
            .into_iter()
            .chain([
                "-subj",
                "/CN=ocipkg test CA",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.pem"),
            ])
            .collect::<Vec<_>>(),
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ]
            .into_iter()
            .chain(["-keyout", &path("key.pem"), "-out", &path("leaf.csr")])
            .collect::<Vec<_>>(),
        );
        fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &["x509", "-req", "-days", "2", "-CAcreateserial"]
                .into_iter()
                .chain([
                    "-in",
                    &path("leaf.csr"),
                    "-CA",
                    &path("ca.pem"),
                    "-CAkey",
                    &path("ca.key"),
                ])
                .chain(["-extfile", &path("ext.cnf"), "-out", &path("cert.pem")])
                .collect::<Vec<_>>(),
        );
        let registry = Registry::start_with(
            &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                path("cert.pem"),
                path("key.pem")
            ),
            "",
        );
        (registry, dir.join("ca.pem"))
    }

    /// A registry requiring HTTP Basic auth for `user`/`password` (htpasswd, bcrypt).
    pub fn start_htpasswd(user: &str, password: &str) -> Registry {
        let dir = temp_dir("htpasswd");
        let out = run(Command::new("htpasswd").args(["-Bbn", user, password]));
        let file = dir.join("htpasswd");
        fs::write(&file, stdout(&out).trim()).unwrap();
        Registry::start_with(
            "",
            &format!(
                "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                file.display()
            ),
        )
    }

    /// A registry requiring tokens from `server` (Distribution's token auth).
    pub fn start_token(server: &TokenServer) -> Registry {
        Registry::start_with(
            "",
            &format!(
                "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {}\n    \
             issuer: {}\n    rootcertbundle: {}\n",
                server.port,
                TOKEN_SERVICE,
                TOKEN_ISSUER,
                server.cert.display()
            ),
        )
    }

    /// A registry with extra configuration (YAML): `http_extra` inside the
    /// `http:` section, `extra` at the top level.
    pub fn start_with(http_extra: &str, extra: &str) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install it with \
             `apt-get install -y --no-install-recommends docker-registry skopeo`"
        );
        let dir = temp_dir("registry");
        let storage = dir.join("storage");
        fs::create_dir_all(&storage).unwrap();
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:0\n{http_extra}{extra}",
                storage.display()
            ),
        )
        .unwrap();
        let log = dir.join("registry.log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdout(fs::File::create(dir.join("stdout.log")).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("start docker-registry");
        let mut registry = Registry {
            child,
            port: 0,
            dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while registry.port == 0 {
            assert!(
                Instant::now() < deadline,
                "registry did not start:\n{}",
                registry.log()
            );
            if let Ok(Some(status)) = registry.child.try_wait() {
                panic!("registry exited with {status}:\n{}", registry.log());
            }
            let text = registry.log();
            if let Some(i) = text.find("listening on 127.0.0.1:") {
                let rest = &text[i + "listening on 127.0.0.1:".len()..];
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                registry.port = digits.parse().unwrap();
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        while TcpStream::connect(("127.0.0.1", registry.port)).is_err() {
            assert!(Instant::now() < deadline, "registry not reachable");
            std::thread::sleep(Duration::from_millis(20));
        }
        registry
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's own log.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The access log: one line per request, `"METHOD PATH HTTP/1.1" STATUS ...`.
    pub fn access_log(&self) -> String {
        fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// The file in which the registry stores a blob.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command, panicking with its output if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ocipkg` from this build.
pub fn ocipkg() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocipkg"))
}

/// `cargo-ocipkg` from this build.
pub fn cargo_ocipkg() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cargo-ocipkg"));
    cmd.arg("ocipkg");
    cmd
}

/// The one target dir shared by every scratch cargo project, so ocipkg and
/// its dependencies are compiled once for all of them.
pub fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("scratch-target")
}

/// `cargo` with the shared target dir, a private cache dir and no
/// inherited build-script variables.
pub fn cargo(dir: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env("OCIPKG_CACHE_DIR", cache)
        .env_remove("OCIPKG_INSECURE_REGISTRIES");
    cmd
}

/// Copies the root Cargo.lock so a scratch project resolves the same versions
/// (and reuses the compiled dependencies in the shared target dir).
pub fn copy_lockfile(dir: &Path) {
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
}

/// Publishes the library crate of `examples/<kind>/rust/lib` with
/// `cargo ocipkg publish --release` to `repository:tag`; returns its output.
pub fn publish_example(kind: &str, repository: &str, tag: &str) -> String {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(kind)
        .join("rust/lib");
    stdout(&run(cargo_ocipkg()
        .args([
            "publish",
            "--release",
            "--registry",
            repository,
            "--tag",
            tag,
        ])
        .current_dir(lib)
        .env("CARGO_TARGET_DIR", shared_target_dir())))
}

fn compile_static(dir: &Path, name: &str, source: &str, cpp: bool) {
    let src_dir = temp_dir("c-src");
    let file = src_dir.join(format!("{name}.{}", if cpp { "cpp" } else { "c" }));
    fs::write(&file, source).unwrap();
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    let host = host_triple();
    let host = host.as_str();
    cc::Build::new()
        .cpp(cpp)
        .cpp_link_stdlib(None)
        .file(&file)
        .target(host)
        .host(host)
        .opt_level(2)
        .debug(false)
        .out_dir(&lib)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .try_compile(name)
        .unwrap_or_else(|e| panic!("compiling {name}: {e}"));
    // cc leaves the object files next to the archive; a package holds only the archive.
    for entry in fs::read_dir(&lib).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e != "a") || path.is_dir() {
            let _ = fs::remove_file(&path).or_else(|_| fs::remove_dir_all(&path));
        }
    }
}

/// Reads a whole file as a string.
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// The host's target triple, from `rustc -vV`.
/// A Linux target that is not this machine's.
pub fn other_triple() -> &'static str {
    if host_triple().starts_with("x86_64") {
        "aarch64-unknown-linux-gnu"
    } else {
        "x86_64-unknown-linux-gnu"
    }
}

pub fn host_triple() -> String {
    let out = run(Command::new("rustc").arg("-vV"));
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV prints the host")
        .to_string()
}

/// A request seen by a [`Proxy`].
pub struct ProxyRequest {
    /// e.g. `GET /v2/repo/manifests/1 HTTP/1.1`
    pub line: String,
    /// `Name: value` lines.
    pub headers: Vec<String>,
    /// The proxy's own port (for URLs that point back at it).
    pub port: u16,
}

impl ProxyRequest {
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }
    pub fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("/")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The request line and headers of one HTTP request (`None` when the
/// connection closes first); `port` is the server's own.
pub fn read_request(reader: &mut impl std::io::BufRead, port: u16) -> Option<ProxyRequest> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    Some(ProxyRequest {
        line: lines.first()?.clone(),
        headers: lines[1..].to_vec(),
        port,
    })
}

/// What a [`Proxy`] does with a request.
pub enum Action {
    /// Pass it to the registry and its answer back.
    Forward,
    /// Pass it on without its `Range` header (a registry ignoring ranges).
    ForwardWithoutRange,
    /// Pass it on, but send back only the headers and this many body bytes,
    /// then drop the connection.
    ForwardTruncated(usize),
    /// Pass it on, send back the headers and this many body bytes, then
    /// hold the connection open without sending more (for 60 s).
    ForwardThenStall(usize),
    /// Answer directly: status line text, extra header lines, body.
    Respond(&'static str, String, String),
}

/// A loopback HTTP proxy in front of a real registry, for fault injection.
/// One request per connection (it answers `Connection: close`); request
/// bodies with a `Content-Length` are passed on.
pub struct Proxy {
    pub port: u16,
}

impl Proxy {
    pub fn start<F>(upstream: u16, policy: F) -> Proxy
    where
        F: Fn(&ProxyRequest) -> Action + Send + Sync + 'static,
    {
        use std::io::{BufReader, Write};
        use std::net::TcpListener;
        use std::sync::Arc;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let policy = Arc::new(policy);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { return };
                let policy = policy.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let Some(request) = read_request(&mut reader, port) else {
                        return;
                    };
                    let action = policy(&request);
                    let (strip_range, truncate, stall) = match action {
                        Action::Respond(status, extra, body) => {
                            let _ = write!(
                                client,
                                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\
                                 Connection: close\r\n\r\n{body}",
                                body.len()
                            );
                            return;
                        }
                        Action::Forward => (false, None, false),
                        Action::ForwardWithoutRange => (true, None, false),
                        Action::ForwardTruncated(n) => (false, Some(n), false),
                        Action::ForwardThenStall(n) => (false, Some(n), true),
                    };
                    let mut upstream = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    let mut head = format!("{}\r\n", request.line);
                    for h in &request.headers {
                        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
                        if name == "connection" || (strip_range && name == "range") {
                            continue;
                        }
                        head.push_str(&format!("{h}\r\n"));
                    }
                    head.push_str("Connection: close\r\n\r\n");
                    upstream.write_all(head.as_bytes()).unwrap();
                    // A request body (pushes) goes on as it came.
                    let length: u64 = request
                        .header("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if length > 0 {
                        let _ = std::io::copy(&mut (&mut reader).take(length), &mut upstream);
                    }
                    match truncate {
                        None => {
                            let _ = std::io::copy(&mut upstream, &mut client);
                        }
                        Some(n) => {
                            let mut answer = Vec::new();
                            let _ = upstream.read_to_end(&mut answer);
                            let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                            let _ = client.write_all(&answer[..(end + n).min(answer.len())]);
                            let _ = client.flush();
                            if stall {
                                std::thread::sleep(Duration::from_secs(60));
                            }
                            let _ = client.shutdown(std::net::Shutdown::Both);
                        }
                    }
                });
            }
        });
        Proxy { port }
    }
}

pub const PROXY_TOKEN: &str = "anonymous-token-123";

/// A proxy demanding an anonymous Bearer token, as ghcr.io does for public
/// pulls: requests without `Authorization: Bearer PROXY_TOKEN` get a 401
/// challenge naming its `/token` endpoint, which hands out the token.
/// Returns the proxy and the query strings of the token requests it got.
pub fn bearer_proxy(upstream: u16) -> (Proxy, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let token_requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = token_requests.clone();
    let proxy = Proxy::start(upstream, move |request| {
        if let Some(query) = request.path().strip_prefix("/token?") {
            log.lock().unwrap().push(query.to_string());
            let body = format!("{{\"token\":\"{PROXY_TOKEN}\",\"expires_in\":300}}");
            return Action::Respond("200 OK", "Content-Type: application/json\r\n".into(), body);
        }
        if request.header("authorization") == Some(&format!("Bearer {PROXY_TOKEN}")) {
            return Action::Forward;
        }
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{}/token\",\
             service=\"test-registry\"\r\n",
            request.port
        );
        Action::Respond("401 Unauthorized", challenge, "{}".into())
    });
    (proxy, token_requests)
}

pub const C_SOURCE: &str = "int ocipkg_c_answer(int x) { return 2 * x + 1; }\n";

/// A C static library and its header, staged as a package directory.
pub fn stage_c_package(name: &str) -> std::path::PathBuf {
    stage_package(name, C_SOURCE, false)
}

/// `ocipkg_c_answer` compiled from C or C++ `source` into `lib/libanswer.a`,
/// with its header in `include/`, staged as a package directory.
pub fn stage_package(name: &str, source: &str, cpp: bool) -> std::path::PathBuf {
    let dir = temp_dir(name);
    compile_static(&dir, "answer", source, cpp);
    fs::create_dir_all(dir.join("include")).unwrap();
    fs::write(
        dir.join("include/answer.h"),
        "int ocipkg_c_answer(int x);\n",
    )
    .unwrap();
    dir
}

/// Packs `dir` for `reference` into a layout directory; returns its path.
pub fn pack(dir: &Path, reference: &str) -> std::path::PathBuf {
    let out = dir.with_extension("oci");
    run(ocipkg()
        .arg("pack")
        .arg(dir)
        .args(["--tag", reference, "--output"])
        .arg(&out));
    out
}

/// Stages, packs and pushes the C package as `<registry>/<repository>`;
/// returns the layout and the reference.
pub fn publish_c_package(registry: &Registry, repository: &str) -> (std::path::PathBuf, String) {
    let staged = stage_c_package(&repository.replace(['/', ':'], "-"));
    let reference = format!("{}/{repository}", registry.host());
    let layout = pack(&staged, &reference);
    run(ocipkg().arg("push").arg(&layout));
    (layout, reference)
}

/// The manifest digest and layer digests of the package in a layout directory.
pub fn layout_digests(layout: &Path) -> (String, Vec<String>) {
    let json = |path: &Path| -> serde_json::Value { serde_json::from_str(&read(path)).unwrap() };
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let index = json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = json(&blob(&digest));
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (digest, layers)
}

pub const TOKEN_SERVICE: &str = "test-service";
pub const TOKEN_ISSUER: &str = "test-issuer";

/// A token server for Distribution's `auth: token`, issuing RS256 JWTs
/// signed (with openssl) by a key whose self-signed certificate the registry
/// trusts. Anonymous requests get `pull` on every repository; `user` with
/// `password` gets what it asks for; wrong credentials get 401.
pub struct TokenServer {
    pub port: u16,
    pub cert: PathBuf,
    /// Each request: (query, Authorization header or empty).
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    /// Every token handed out.
    pub issued: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TokenServer {
    pub fn start(user: &str, password: &str) -> TokenServer {
        use std::io::{BufRead, BufReader, Write};
        let dir = temp_dir("token-server");
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=ocipkg-test-token"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert))
        .stdout;
        let x5c = base64(&der, false);
        let expected = format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes(), false)
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let issued = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tokens = issued.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { return };
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut lines = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    lines.push(line.trim_end().to_string());
                }
                let Some(first) = lines.first() else { continue };
                let target = first.split(' ').nth(1).unwrap_or("").to_string();
                let query = target.split_once('?').map_or("", |(_, q)| q).to_string();
                let auth = lines
                    .iter()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("authorization")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_default();
                log.lock().unwrap().push((query.clone(), auth.clone()));
                let reply = |client: &mut TcpStream, status: &str, body: &str| {
                    let _ = write!(
                        client,
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                };
                let authenticated = auth == expected;
                if !auth.is_empty() && !authenticated {
                    reply(
                        &mut client,
                        "401 Unauthorized",
                        "{\"details\":\"bad credentials\"}",
                    );
                    continue;
                }
                let mut access = Vec::new();
                for pair in query.split('&') {
                    let Some(scope) = pair.strip_prefix("scope=") else {
                        continue;
                    };
                    let scope = percent_decode(scope);
                    let parts: Vec<&str> = scope.split(':').collect();
                    if parts.len() != 3 || parts[0] != "repository" {
                        continue;
                    }
                    let actions: Vec<String> = parts[2]
                        .split(',')
                        .filter(|a| authenticated || *a == "pull")
                        .map(|a| format!("\"{a}\""))
                        .collect();
                    access.push(format!(
                        "{{\"type\":\"repository\",\"name\":\"{}\",\"actions\":[{}]}}",
                        parts[1],
                        actions.join(",")
                    ));
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let header = format!("{{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5c\":[\"{x5c}\"]}}");
                let claims = format!(
                    "{{\"iss\":\"{TOKEN_ISSUER}\",\"sub\":\"{}\",\"aud\":\"{TOKEN_SERVICE}\",\
                     \"exp\":{},\"nbf\":{},\"iat\":{now},\"jti\":\"{now}-{}\",\"access\":[{}]}}",
                    if authenticated { "user" } else { "" },
                    now + 300,
                    now - 10,
                    log.lock().unwrap().len(),
                    access.join(",")
                );
                let signing_input = format!(
                    "{}.{}",
                    base64(header.as_bytes(), true),
                    base64(claims.as_bytes(), true)
                );
                let mut openssl = Command::new("openssl")
                    .args(["dgst", "-sha256", "-sign"])
                    .arg(&key)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                openssl
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(signing_input.as_bytes())
                    .unwrap();
                let signature = openssl.wait_with_output().unwrap().stdout;
                let jwt = format!("{signing_input}.{}", base64(&signature, true));
                tokens.lock().unwrap().push(jwt.clone());
                reply(
                    &mut client,
                    "200 OK",
                    &format!("{{\"token\":\"{jwt}\",\"expires_in\":300}}"),
                );
            }
        });
        TokenServer {
            port,
            cert,
            requests,
            issued,
        }
    }
}

/// base64 (standard with padding, or URL-safe without).
pub fn base64(bytes: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if !url {
            out.push_str(&"=".repeat(3 - chunk.len()));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A consumer crate whose build.rs links the package named by CONSUMER_REF.
pub fn consumer_crate(name: &str) -> std::path::PathBuf {
    let dir = temp_dir(name);
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [build-dependencies]\nocipkg = {{ path = {:?} }}\n\n[workspace]\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    fs::write(
        dir.join("build.rs"),
        r#"fn main() {
    println!("cargo:rerun-if-env-changed=CONSUMER_REF");
    let reference = std::env::var("CONSUMER_REF").unwrap();
    match ocipkg::link_package(&reference) {
        Ok(package) => {
            // The headers are there for cc/bindgen.
            assert!(package.include_dir().join("answer.h").is_file());
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
"#,
    )
    .unwrap();
    fs::write(
        dir.join("src/main.rs"),
        r#"extern "C" {
    fn ocipkg_c_answer(x: i32) -> i32;
}
fn main() {
    println!("answer={}", unsafe { ocipkg_c_answer(20) });
}
"#,
    )
    .unwrap();
    copy_lockfile(&dir);
    dir
}

/// The Python of a venv (shared by all tests, made once) with the `oras`
/// package from PyPI, the peer client ORAS.
pub fn oras_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oras-venv");
    let python = venv.join("bin/python");
    let lock =
        fs::File::create(Path::new(env!("CARGO_TARGET_TMPDIR")).join("oras-venv.lock")).unwrap();
    lock.lock().unwrap();
    if !venv.join("ready").exists() {
        let _ = fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args(["install", "-q", "oras==0.2.43"]));
        fs::write(venv.join("ready"), "").unwrap();
    }
    python
}

/// `len` bytes that do not compress (xorshift), different for each seed.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Links `reference` with a private cache, printing nothing (the library
/// call a build script makes).
pub fn link_in(cache: impl Into<PathBuf>, reference: &str) -> ocipkg::Result<ocipkg::Package> {
    ocipkg::Linker::new()
        .cache_dir(cache)
        .quiet(true)
        .link(reference)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Clean build of a crate whose build.rs uses ocipkg (`dependency` line,
/// `OURS` standing for this crate's path): (crates compiled, seconds).
pub fn consumer_build(dependency: &str, call: &str) -> (usize, f64) {
    let dir = temp_dir("consumer-build");
    fs::create_dir_all(dir.join("src")).unwrap();
    let dependency = dependency.replace("OURS", env!("CARGO_MANIFEST_DIR"));
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench-consumer\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
             [build-dependencies]\n{dependency}\n[workspace]\n"
        ),
    )
    .unwrap();
    // Compiled and linked, never run to the fetch.
    fs::write(
        dir.join("build.rs"),
        format!("fn main() {{ if std::env::var(\"NEVER\").is_ok() {{ ocipkg::{call} }} }}\n"),
    )
    .unwrap();
    fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO"))
        .arg("build")
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let compiled = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.trim_start().starts_with("Compiling"))
        .count();
    let _ = fs::remove_dir_all(&dir);
    if !out.status.success() {
        return (0, seconds);
    }
    (compiled, seconds)
}
