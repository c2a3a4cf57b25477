//! Hostile packages, registries and mirrors: what a malicious or broken
//! source may try, and what ocipkg must not let happen. Every package here is
//! written by hand (an OCI image layout with tar layers built byte by byte),
//! pushed to a real registry on loopback and pulled into a cache that already
//! holds an honest package, next to a "victim" directory: after each refusal
//! both are byte-identical and the cache holds nothing of the hostile package.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const FILE_GZ: &str = "application/vnd.ocipkg.v1.file+gzip";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const VICTIM: &[u8] = b"the victim's own data\n";
const PASSWORD: &str = "secretpw";

// ---------------------------------------------------------------------------
// Packages written by hand

/// One tar entry; names and link targets are written raw into the header,
/// so names the `tar` crate refuses (`..`, newlines, absolute) are possible.
enum Entry {
    File(String, Vec<u8>),
    Dir(String),
    Sym(String, String),
    Hard(String, String),
    /// A GNU sparse file ('S') claiming this real size.
    Sparse(String, u64),
}

fn file(name: &str, bytes: impl Into<Vec<u8>>) -> Entry {
    Entry::File(name.into(), bytes.into())
}
fn sym(name: &str, target: &str) -> Entry {
    Entry::Sym(name.into(), target.into())
}
fn hard(name: &str, target: &str) -> Entry {
    Entry::Hard(name.into(), target.into())
}

fn header(name: &str, kind: tar::EntryType, link: &str, size: u64) -> tar::Header {
    assert!(name.len() < 100 && link.len() < 100, "{name} -> {link}");
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(size);
    h.set_entry_type(kind);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h
}

/// `value` as a NUL-terminated octal header field.
fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0w$o}\0", w = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

fn tar_of(entries: &[Entry]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut out = Vec::new();
    for entry in entries {
        let (h, data) = match entry {
            Entry::File(name, bytes) => (
                header(name, T::Regular, "", bytes.len() as u64),
                bytes.clone(),
            ),
            Entry::Dir(name) => (header(name, T::Directory, "", 0), Vec::new()),
            Entry::Sym(name, target) => (header(name, T::Symlink, target, 0), Vec::new()),
            Entry::Hard(name, target) => (header(name, T::Link, target, 0), Vec::new()),
            Entry::Sparse(name, real) => {
                let mut h = header(name, T::GNUSparse, "", 512);
                let gnu = h.as_gnu_mut().unwrap();
                octal(&mut gnu.sparse[0].offset, real - 512);
                octal(&mut gnu.sparse[0].numbytes, 512);
                octal(&mut gnu.realsize, *real);
                h.set_cksum();
                (h, vec![b'x'; 512])
            }
        };
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

struct Layer {
    media_type: &'static str,
    blob: Vec<u8>,
    title: Option<String>,
}

fn tar_layer(entries: &[Entry]) -> Layer {
    Layer {
        media_type: TAR_GZ,
        blob: gz(&tar_of(entries)),
        title: None,
    }
}

/// A file layer as upstream ocipkg writes it: the gzipped file, named by its title.
fn file_layer(path: &str, content: &[u8]) -> Layer {
    Layer {
        media_type: FILE_GZ,
        blob: gz(content),
        title: Some(path.into()),
    }
}

/// A file layer as ORAS pushes it: the file as is under the plain tar media
/// type (the manifest then is no ocipkg artifact).
fn oras_file(path: &str, content: &[u8]) -> Layer {
    Layer {
        media_type: TAR,
        blob: content.to_vec(),
        title: Some(path.into()),
    }
}

/// Writes an OCI image layout for `reference` by hand: the layers, the link
/// metadata `config` (or the OCI empty config), index.json naming the tag
/// and the full reference, so `ocipkg push LAYOUT` uploads it.
fn write_layout(reference: &str, layers: Vec<Layer>, config: Option<serde_json::Value>) -> PathBuf {
    let dir = temp_dir("hostile-layout");
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256_of(bytes);
        fs::write(dir.join("blobs/sha256").join(&digest[7..]), bytes).unwrap();
        digest
    };
    let (config_type, config_bytes) = match config {
        Some(value) => (
            "application/vnd.ocipkg.config.v1+json",
            serde_json::to_vec(&value).unwrap(),
        ),
        None => ("application/vnd.oci.empty.v1+json", b"{}".to_vec()),
    };
    let oras = layers
        .iter()
        .any(|l| l.media_type == TAR && l.title.is_some());
    let descriptors: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            let mut d =
                json!({"mediaType": l.media_type, "digest": put(&l.blob), "size": l.blob.len()});
            if let Some(title) = &l.title {
                d["annotations"] = json!({"org.opencontainers.image.title": title});
            }
            d
        })
        .collect();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": if oras { "application/vnd.unknown.artifact.v1" } else { "application/vnd.ocipkg.v1.artifact" },
        "config": {"mediaType": config_type, "digest": put(&config_bytes), "size": config_bytes.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let tag = reference.rsplit_once(':').unwrap().1;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": MANIFEST, "digest": put(&manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag, "vnd.ocipkg.reference": reference},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir
}

/// Writes and pushes a package to `host/repo_tag`; returns reference and layout.
fn publish(
    host: &str,
    repo_tag: &str,
    layers: Vec<Layer>,
    config: Option<serde_json::Value>,
) -> (String, PathBuf) {
    let reference = format!("{host}/{repo_tag}");
    let layout = write_layout(&reference, layers, config);
    run(ocipkg()
        .arg("push")
        .arg(&layout)
        .env("OCIPKG_CACHE_DIR", temp_dir("push-cache")));
    (reference, layout)
}

/// The C library `ocipkg_c_answer` and its header (compiled once).
fn honest() -> Vec<Entry> {
    static LIB: OnceLock<Vec<u8>> = OnceLock::new();
    let lib = LIB.get_or_init(|| {
        fs::read(stage_c_package("hostile-honest").join("lib/libanswer.a")).unwrap()
    });
    vec![
        Entry::Dir("lib".into()),
        file("lib/libanswer.a", lib.clone()),
        Entry::Dir("include".into()),
        file("include/answer.h", "int ocipkg_c_answer(int x);\n"),
    ]
}

fn with(mut entries: Vec<Entry>, more: Vec<Entry>) -> Vec<Entry> {
    entries.extend(more);
    entries
}

/// gzip members of 16 MiB of zeros each (deflate's ~1000:1).
fn zeros_member() -> &'static [u8] {
    static MEMBER: OnceLock<Vec<u8>> = OnceLock::new();
    MEMBER.get_or_init(|| gz(&vec![0; 16 << 20]))
}

/// A gzipped tar of one file of `chunks` × 16 MiB zeros: a tar header member,
/// then that many zero members (gzip streams may have several members).
fn gzip_bomb(chunks: u64) -> Vec<u8> {
    let mut out = gz(header("lib/zeros.bin", tar::EntryType::Regular, "", chunks << 24).as_bytes());
    for _ in 0..chunks {
        out.extend_from_slice(zeros_member());
    }
    out
}

/// A zstd frame holding a tar of one file of `total` zeros, written by hand:
/// a raw block with the tar header, then RLE blocks of 128 KiB (4 bytes each).
fn zstd_bomb(total: u64) -> Vec<u8> {
    // Magic, frame header descriptor (no content size, not single segment),
    // window descriptor 2^(10+7) = 128 KiB.
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3];
    let block = |out: &mut Vec<u8>, last: bool, kind: u32, size: u32| {
        out.extend_from_slice(&(last as u32 | kind << 1 | size << 3).to_le_bytes()[..3]);
    };
    let head = header("lib/zeros.bin", tar::EntryType::Regular, "", total);
    block(&mut out, false, 0, 512);
    out.extend_from_slice(head.as_bytes());
    let blocks = total / (128 << 10);
    for i in 0..blocks {
        block(&mut out, i + 1 == blocks, 1, 128 << 10);
        out.push(0);
    }
    out
}

// ---------------------------------------------------------------------------
// Processes and servers, all bounded in time

/// Runs `cmd`, killing it (and failing the test) after `limit` seconds.
fn finish(cmd: &mut Command, limit: u64) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(limit);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What a [`Fake`] server answers.
enum Reply {
    /// Status, extra header lines, body.
    Now(&'static str, String, Vec<u8>),
    /// 200 promising 1000 bytes, then one byte a second (40 at most).
    Trickle,
}

fn json_reply(body: serde_json::Value) -> Reply {
    Reply::Now(
        "200 OK",
        "Content-Type: application/json\r\n".into(),
        body.to_string().into_bytes(),
    )
}

/// A tiny HTTP server on loopback recording every request; it stops
/// accepting after 120 s.
struct Fake {
    port: u16,
    seen: Arc<Mutex<Vec<ProxyRequest>>>,
}

impl Fake {
    fn start(handler: impl Fn(&ProxyRequest) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (log, handler) = (seen.clone(), Arc::new(handler));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, port, &*handler, &log));
            }
        });
        Fake { port, seen }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The Authorization headers it was sent.
    fn authorizations(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter_map(|r| r.header("authorization").map(String::from))
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn serve(
    stream: TcpStream,
    port: u16,
    handler: &(dyn Fn(&ProxyRequest) -> Reply + Send + Sync),
    log: &Mutex<Vec<ProxyRequest>>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let Some(request) = read_request(&mut reader, port) else {
        return;
    };
    let length: u64 = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let _ = std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink());
    let reply = handler(&request);
    let head_only = request.method() == "HEAD";
    log.lock().unwrap().push(request);
    let mut stream = stream;
    match reply {
        Reply::Now(status, extra, body) => {
            let head = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if !head_only {
                let _ = stream.write_all(&body);
            }
        }
        Reply::Trickle => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {MANIFEST}\r\nContent-Length: 1000\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            for _ in 0..40 {
                std::thread::sleep(Duration::from_secs(1));
                if stream
                    .write_all(b" ")
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// `ocipkg` with credentials u/secretpw from the environment and nothing else.
fn ocipkg_with_password() -> Command {
    let home = temp_dir("home-hostile");
    let mut cmd = ocipkg();
    cmd.env("HOME", &home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("OCIPKG_CACHE_DIR", home.join("cache"))
        .env("OCIPKG_USERNAME", "u")
        .env("OCIPKG_PASSWORD", PASSWORD);
    cmd
}

fn basic_challenge() -> Reply {
    Reply::Now(
        "401 Unauthorized",
        "WWW-Authenticate: Basic realm=\"fake\"\r\n".into(),
        b"{}".to_vec(),
    )
}

/// A free loopback port with nothing listening.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_file(json: serde_json::Value) -> PathBuf {
    let path = temp_dir("hostile-config").join("registries.json");
    fs::write(&path, json.to_string()).unwrap();
    path
}

// ---------------------------------------------------------------------------
// The scene: a registry, a cache holding an honest package, a victim dir

/// Every file under `dir` (not following symlinks): content hash, link target or `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("-> {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                "dir".into()
            } else {
                sha256_of(&fs::read(&path).unwrap())
            };
            out.insert(path, what);
        }
    }
    out
}

struct Scene {
    registry: Registry,
    cache: PathBuf,
    victim: PathBuf,
    honest_root: PathBuf,
    honest_hex: String,
    before: BTreeMap<PathBuf, String>,
}

impl Scene {
    fn new() -> Scene {
        let registry = Registry::start();
        let victim = temp_dir("victim");
        fs::create_dir_all(victim.join("lib")).unwrap();
        fs::write(victim.join("secret.txt"), VICTIM).unwrap();
        fs::write(victim.join("lib/libanswer.a"), VICTIM).unwrap();
        let (reference, _) = publish(
            &registry.host(),
            "honest/answer:1",
            vec![tar_layer(&honest())],
            None,
        );
        let cache = temp_dir("cache-hostile");
        let fetched = ocipkg::Linker::new()
            .cache_dir(&cache)
            .quiet(true)
            .fetch(&reference)
            .unwrap();
        let mut scene = Scene {
            registry,
            cache,
            victim,
            honest_root: fetched.root,
            honest_hex: fetched.manifest_digest[7..].to_string(),
            before: BTreeMap::new(),
        };
        scene.before = scene.state();
        scene
    }

    fn state(&self) -> BTreeMap<PathBuf, String> {
        let mut state = snapshot(&self.victim);
        state.extend(snapshot(&self.honest_root));
        state
    }

    /// The victim directory's name, reached from a package root being staged
    /// in `<cache>/tmp/<dir>/root`: four levels up is the temp dir holding both.
    fn victim_relative(&self) -> String {
        format!(
            "../../../../{}",
            self.victim.file_name().unwrap().to_string_lossy()
        )
    }

    fn publish(
        &self,
        repo_tag: &str,
        layers: Vec<Layer>,
        config: Option<serde_json::Value>,
    ) -> String {
        publish(&self.registry.host(), repo_tag, layers, config).0
    }

    /// A package of an honest tar layer, then `media_type` layer `blob`.
    fn publish_after_honest(
        &self,
        repo_tag: &str,
        media_type: &'static str,
        blob: Vec<u8>,
    ) -> String {
        let layer = Layer {
            media_type,
            blob,
            title: None,
        };
        self.publish(repo_tag, vec![tar_layer(&honest()), layer], None)
    }

    fn pull(&self, reference: &str) -> Output {
        finish(
            ocipkg()
                .args(["pull", reference])
                .env("OCIPKG_CACHE_DIR", &self.cache),
            90,
        )
    }

    /// Pulls a hostile package: it must fail with `phrase` and change nothing.
    fn refused(&self, reference: &str, phrase: &str) -> String {
        self.refused_with(ocipkg().args(["pull", reference]), phrase)
    }

    fn refused_with(&self, cmd: &mut Command, phrase: &str) -> String {
        let out = finish(cmd.env("OCIPKG_CACHE_DIR", &self.cache), 90);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "the hostile package was accepted:\n{}{err}",
            stdout(&out)
        );
        assert!(err.contains(phrase), "expected `{phrase}` in:\n{err}");
        self.assert_untouched();
        err
    }

    /// The victim and the honest package are byte-identical.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            self.state(),
            self.before,
            "files outside the package changed"
        );
    }

    /// Nothing outside changed, and the cache holds nothing of the refused package.
    fn assert_untouched(&self) {
        self.assert_outside_untouched();
        let names = |dir: &str| -> Vec<String> {
            fs::read_dir(self.cache.join(dir))
                .map(|d| {
                    d.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(
            names("pkgs/sha256"),
            std::slice::from_ref(&self.honest_hex),
            "a refused package was cached"
        );
        assert_eq!(
            names("tmp"),
            Vec::<String>::new(),
            "a refused package left staging files"
        );
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        // Bombs may have left big files behind when they were not stopped.
        let _ = fs::remove_dir_all(&self.cache);
    }
}

// ---------------------------------------------------------------------------
// 1. Unpacking

#[test]
fn tar_entries_with_absolute_or_dotdot_paths_are_refused() {
    let scene = Scene::new();
    let escape = format!("{}/evil.txt", scene.victim_relative());
    let dotdot = scene.publish(
        "evil/dotdot:1",
        vec![tar_layer(&with(honest(), vec![file(&escape, "x")]))],
        None,
    );
    scene.refused(&dotdot, "");
    let absolute = format!("{}/evil.txt", scene.victim.display());
    let abs = scene.publish(
        "evil/absolute:1",
        vec![tar_layer(&with(honest(), vec![file(&absolute, "x")]))],
        None,
    );
    scene.refused(&abs, "");
}

#[test]
fn file_layer_through_planted_symlink_is_refused() {
    let scene = Scene::new();
    let victim = scene.victim.display().to_string();
    // The absolute link is re-rooted (harmless), but writing through it is refused.
    let by_file_layer = scene.publish(
        "evil/abs-file-layer:1",
        vec![
            tar_layer(&[sym("lib", &victim)]),
            file_layer("lib/evil.txt", b"pwned"),
        ],
        None,
    );
    scene.refused(&by_file_layer, "through the symlink");
    let by_entry = scene.publish(
        "evil/abs-entry:1",
        vec![tar_layer(&[
            sym("lib", &victim),
            file("lib/evil.txt", "pwned"),
        ])],
        None,
    );
    scene.refused(&by_entry, "through the symlink");
    let by_later_entry = scene.publish(
        "evil/abs-later-entry:1",
        vec![
            tar_layer(&[sym("lib", &victim)]),
            tar_layer(&[file("lib/secret.txt", "pwned")]),
        ],
        None,
    );
    scene.refused(&by_later_entry, "through the symlink");
}

#[test]
fn relative_symlink_out_of_the_package_is_refused() {
    let scene = Scene::new();
    let out = scene.victim_relative();
    let entry = scene.publish(
        "evil/rel-entry:1",
        vec![tar_layer(&[sym("lib", &out), file("lib/evil.txt", "x")])],
        None,
    );
    scene.refused(&entry, "points outside the package");
    let layer = scene.publish(
        "evil/rel-file-layer:1",
        vec![
            tar_layer(&[sym("lib", &out)]),
            file_layer("lib/secret.txt", b"pwned"),
        ],
        None,
    );
    scene.refused(&layer, "points outside the package");
}

#[test]
fn symlink_into_a_cached_package_cannot_overwrite_it() {
    let scene = Scene::new();
    // From <cache>/tmp/<staging>/root, three levels up is the cache root.
    let into_honest = format!("../../../pkgs/sha256/{}/root/lib", scene.honest_hex);
    let reference = scene.publish(
        "evil/into-cache:1",
        vec![
            tar_layer(&[sym("lib", &into_honest)]),
            oras_file("lib/libanswer.a", b"EVIL"),
        ],
        None,
    );
    scene.refused(&reference, "points outside the package");
}

#[test]
fn symlink_into_the_cache_cannot_plant_a_future_package() {
    let scene = Scene::new();
    // A package the user will fetch later.
    let (future, layout) = publish(
        &scene.registry.host(),
        "future/answer:1",
        vec![tar_layer(&with(
            honest(),
            vec![file("lib/VERSION", "genuine")],
        ))],
        None,
    );
    let future_hex = layout_digests(&layout).0[7..].to_string();
    let reference = scene.publish(
        "evil/plant:1",
        vec![
            tar_layer(&[sym("lib", "../../../pkgs/sha256")]),
            file_layer(&format!("lib/{future_hex}/root/lib/VERSION"), b"planted"),
            file_layer(&format!("lib/{future_hex}/root/lib/libanswer.a"), b"EVIL"),
        ],
        None,
    );
    scene.refused(&reference, "points outside the package");
    let root = stdout(&run(ocipkg()
        .args(["pull", &future])
        .env("OCIPKG_CACHE_DIR", &scene.cache)));
    assert_eq!(
        fs::read_to_string(Path::new(root.trim()).join("lib/VERSION")).unwrap(),
        "genuine"
    );
}

#[test]
fn symlink_chains_and_dotdot_after_a_name_are_refused() {
    let scene = Scene::new();
    let chain = scene.publish(
        "evil/chain:1",
        vec![tar_layer(&[
            sym("a", "b"),
            sym("b", "../.."),
            file("a/evil.txt", "x"),
        ])],
        None,
    );
    scene.refused(&chain, "points outside the package");
    let name_then_up = scene.publish(
        "evil/name-up:1",
        vec![tar_layer(&[sym("x", "a/../../x")])],
        None,
    );
    scene.refused(&name_then_up, "points outside the package");
}

#[test]
fn hard_links_must_name_a_file_inside_the_package() {
    let scene = Scene::new();
    let secret = format!("{}/secret.txt", scene.victim_relative());
    let absolute = format!("{}/secret.txt", scene.victim.display());
    let mut unnamed = Vec::new();
    for (name, target) in [
        ("rel", secret.as_str()),
        ("abs", absolute.as_str()),
        ("dir", "lib"),
    ] {
        let reference = scene.publish(
            &format!("evil/hard-{name}:1"),
            vec![tar_layer(&with(
                honest(),
                vec![hard("lib/libhard.a", target)],
            ))],
            None,
        );
        let err = scene.refused(&reference, "");
        if !err.contains("hard link") {
            unnamed.push(err);
        }
    }
    assert!(
        unnamed.is_empty(),
        "errors not saying `hard link`:\n{}",
        unnamed.join("\n")
    );
    // Through a symlink to outside: refused too (the link itself, or the hard link).
    let reference = scene.publish(
        "evil/hard-via-link:1",
        vec![tar_layer(&with(
            honest(),
            vec![sym("s", &absolute), hard("lib/libhard.a", "s")],
        ))],
        None,
    );
    scene.refused(&reference, "");
}

#[test]
fn absolute_symlinks_are_rerooted_and_copied_out_as_symlinks() {
    let scene = Scene::new();
    let reference = scene.publish(
        "odd/links:1",
        vec![tar_layer(&with(
            honest(),
            vec![
                sym("etc-passwd", "/etc/passwd"),
                sym("lib/libalias.a", "libanswer.a"),
                Entry::Dir("share".into()),
                hard("share/answer-copy.h", "include/answer.h"),
            ],
        ))],
        None,
    );
    let out = scene.pull(&reference);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = PathBuf::from(stdout(&out).trim());
    // The link names <root>/etc/passwd, which does not exist.
    let link = root.join("etc-passwd");
    let target = fs::read_link(&link).unwrap();
    let resolved = root.join(&target); // an absolute target replaces root
    let mut lexical = PathBuf::new();
    for c in resolved.components() {
        match c {
            std::path::Component::ParentDir => {
                lexical.pop();
            }
            std::path::Component::CurDir => {}
            c => lexical.push(c),
        }
    }
    assert_eq!(lexical, root.join("etc/passwd"), "{}", target.display());
    assert!(fs::read(&link).is_err(), "the link reaches a host file");
    assert_eq!(
        fs::read(root.join("share/answer-copy.h")).unwrap(),
        b"int ocipkg_c_answer(int x);\n"
    );

    // --output copies symlinks as symlinks, never what they point at.
    let output = temp_dir("hostile-output").join("copy");
    run(ocipkg()
        .args(["pull", &reference, "--output"])
        .arg(&output)
        .env("OCIPKG_CACHE_DIR", &scene.cache));
    for name in ["etc-passwd", "lib/libalias.a"] {
        let meta = fs::symlink_metadata(output.join(name)).unwrap();
        assert!(meta.is_symlink(), "{name} was copied as a file");
    }
    assert!(
        !fs::read(output.join("etc-passwd")).is_ok_and(|b| b == fs::read("/etc/passwd").unwrap())
    );
    assert_eq!(
        fs::read(output.join("lib/libalias.a")).unwrap(),
        fs::read(root.join("lib/libanswer.a")).unwrap()
    );
    scene.assert_outside_untouched();
}

#[test]
fn gnu_sparse_entries_are_refused() {
    let scene = Scene::new();
    let reference = scene.publish(
        "evil/sparse:1",
        vec![tar_layer(&with(
            honest(),
            vec![Entry::Sparse("lib/huge.bin".into(), 4 << 30)],
        ))],
        None,
    );
    scene.refused(&reference, "sparse");
}

#[test]
fn too_many_entries_are_refused_naming_the_limit() {
    let scene = Scene::new();
    let many: Vec<Entry> = (0..300).map(|i| file(&format!("share/f{i}"), "")).collect();
    let reference = scene.publish("evil/many:1", vec![tar_layer(&with(honest(), many))], None);
    scene.refused_with(
        ocipkg()
            .args(["pull", &reference])
            .env("OCIPKG_MAX_FILES", "100"),
        "OCIPKG_MAX_FILES",
    );
}

#[test]
fn a_gzip_bomb_stops_at_the_unpacked_size_limit() {
    let scene = Scene::new();
    let bomb = gzip_bomb(192); // ~3 MB inflating to 3 GiB
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    let reference = scene.publish_after_honest("evil/gzip-bomb:1", TAR_GZ, bomb);
    let started = Instant::now();
    scene.refused_with(
        ocipkg()
            .args(["pull", &reference])
            .env("OCIPKG_MAX_UNPACKED_MIB", "64"),
        "OCIPKG_MAX_UNPACKED_MIB",
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_gzip_bomb_stops_at_the_expansion_ratio_by_default() {
    let scene = Scene::new();
    let reference = scene.publish_after_honest("evil/gzip-ratio:1", TAR_GZ, gzip_bomb(192));
    scene.refused(&reference, "OCIPKG_MAX_EXPANSION");
}

#[test]
fn a_zstd_bomb_stops_at_the_unpacked_size_limit() {
    let scene = Scene::new();
    let bomb = zstd_bomb(2 << 30); // 64 KiB RLE blocks: ~64 KB inflating to 2 GiB
    let reference = scene.publish_after_honest("evil/zstd-bomb:1", TAR_ZSTD, bomb);
    scene.refused_with(
        ocipkg()
            .args(["pull", &reference])
            .env("OCIPKG_MAX_UNPACKED_MIB", "64"),
        "OCIPKG_MAX_UNPACKED_MIB",
    );
}

/// The layer `ocipkg pack` writes for 12 MiB of library-like bytes (three
/// 4 MiB pieces), with 64 bytes in the middle piece flipped.
fn packed_layer_corrupted_in_the_middle(compression: &str) -> Vec<u8> {
    let dir = temp_dir(&format!("corrupt-{compression}"));
    fs::create_dir_all(dir.join("lib")).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..12 << 20)
        .map(|i: u32| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            // Runs of one byte between random ones: compressible, not trivial.
            if i % 16 < 12 {
                (i / 4096) as u8
            } else {
                (state >> 56) as u8
            }
        })
        .collect();
    fs::write(dir.join("lib/libbig.a"), &bytes).unwrap();
    let layout = temp_dir(&format!("corrupt-{compression}-layout")).join("oci");
    run(ocipkg()
        .arg("pack")
        .arg(&dir)
        .args(["--tag", "x/y:1", "--compression", compression, "--output"])
        .arg(&layout));
    let mut blob = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| fs::read(e.unwrap().path()).unwrap())
        .max_by_key(|b| b.len())
        .unwrap();
    assert!(blob.len() > 1 << 20, "{}", blob.len());
    let middle = blob.len() / 2;
    for b in &mut blob[middle..middle + 64] {
        *b ^= 0x5a;
    }
    blob
}

#[test]
fn a_corrupt_piece_in_the_middle_of_a_layer_fails_the_pull_and_caches_nothing() {
    // The registry serves the corrupt layer under its own (matching) digest:
    // the producer wrote it so. Decoding must fail; nothing may land.
    let scene = Scene::new();
    for (compression, media_type) in [("gzip", TAR_GZ), ("zstd", TAR_ZSTD)] {
        let reference = scene.publish_after_honest(
            &format!("evil/corrupt-{compression}:1"),
            media_type,
            packed_layer_corrupted_in_the_middle(compression),
        );
        let err = scene.refused(&reference, "layer");
        assert!(err.lines().count() >= 2, "a multi-line error: {err}");
    }
}

#[test]
fn a_corrupt_layer_from_another_tool_fails_the_pull_at_its_checksum() {
    // One stored gzip member, one zstd frame of raw blocks (as `zstd` writes
    // incompressible data): a flipped byte in the file still decodes, and
    // only the member's CRC or the frame's checksum at the stream's very
    // end tells; that end comes after the tar's, so it must still be read.
    let scene = Scene::new();
    let tar = tar_of(&[file("lib/libnoise.a", noise(1 << 20, 7))]);
    let mut stored = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    stored.write_all(&tar).unwrap();
    let gzip = stored.finish().unwrap();
    let mut zstd = Command::new("zstd")
        .args(["-q", "-1", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd (apt-get install zstd)");
    let mut input = zstd.stdin.take().unwrap();
    let feed = std::thread::spawn(move || input.write_all(&tar).unwrap());
    let zstd_out = zstd.wait_with_output().unwrap();
    feed.join().unwrap();
    assert!(zstd_out.status.success());
    for (name, media_type, mut blob) in
        [("gzip", TAR_GZ, gzip), ("zstd", TAR_ZSTD, zstd_out.stdout)]
    {
        let middle = blob.len() / 2;
        blob[middle] ^= 0x20;
        let reference = scene.publish_after_honest(&format!("evil/one-{name}:1"), media_type, blob);
        let err = scene.refused(&reference, "layer");
        assert!(
            err.contains("checksum") || err.contains("corrupt"),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_soname_chain_package_links_and_runs() {
    let registry = Registry::start();
    let src = temp_dir("soname-src");
    fs::write(src.join("answer.c"), C_SOURCE).unwrap();
    let so = src.join("libfoo.so.1.2.3");
    run(Command::new("cc")
        .args(["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", "-o"])
        .arg(&so)
        .arg(src.join("answer.c")));
    let (reference, _) = publish(
        &registry.host(),
        "soname/foo:1",
        vec![tar_layer(&[
            Entry::Dir("lib".into()),
            file("lib/libfoo.so.1.2.3", fs::read(&so).unwrap()),
            sym("lib/libfoo.so.1", "libfoo.so.1.2.3"),
            sym("lib/libfoo.so", "libfoo.so.1"),
            Entry::Dir("include".into()),
            file("include/answer.h", "int ocipkg_c_answer(int x);\n"),
        ])],
        None,
    );
    let consumer = consumer_crate("consumer-soname");
    let out = run(cargo(&consumer, &temp_dir("cache-soname"))
        .arg("run")
        .env("CONSUMER_REF", &reference)
        .env_remove("LD_LIBRARY_PATH"));
    assert_eq!(stdout(&out).trim(), "answer=41");
}

// ---------------------------------------------------------------------------
// 2. The cache

#[test]
fn a_planted_package_directory_is_not_trusted() {
    let registry = Registry::start();
    let (reference, layout) = publish(
        &registry.host(),
        "planted/answer:1",
        vec![tar_layer(&honest())],
        None,
    );
    let digest = layout_digests(&layout).0;
    let plant = |cache: &Path, manifest: Option<&[u8]>| {
        let dir = cache.join("pkgs/sha256").join(&digest[7..]);
        fs::create_dir_all(dir.join("root/lib")).unwrap();
        fs::create_dir_all(dir.join("root/include")).unwrap();
        fs::write(dir.join("root/lib/libanswer.a"), b"EVIL").unwrap();
        fs::write(dir.join("root/include/answer.h"), b"EVIL").unwrap();
        if let Some(manifest) = manifest {
            fs::write(dir.join("manifest.json"), manifest).unwrap();
            fs::write(dir.join("config.json"), b"{}").unwrap();
        }
    };
    let check = |package: ocipkg::Package| {
        let lib = fs::read(package.root().join("lib/libanswer.a")).unwrap();
        assert_ne!(lib, b"EVIL", "the planted package was used");
        assert!(lib.starts_with(b"!<arch>\n"));
    };
    // Without a manifest, by digest and by tag.
    let pinned = format!("{reference}@{digest}");
    for (name, r) in [("pinned", &pinned), ("tag", &reference)] {
        let cache = temp_dir(&format!("cache-planted-{name}"));
        plant(&cache, None);
        check(link_in(&cache, r).unwrap());
    }
    // With a manifest that is not the one of its digest.
    let cache = temp_dir("cache-planted-wrong");
    plant(&cache, Some(br#"{"schemaVersion":2,"layers":[]}"#));
    check(link_in(&cache, &pinned).unwrap());
}

#[test]
fn tags_of_nested_repositories_do_not_collide() {
    let registry = Registry::start();
    let host = registry.host();
    let (short, _) = publish(&host, "r/x:y", vec![tar_layer(&honest())], None);
    let (long, _) = publish(
        &host,
        "r/x/y:1",
        vec![tar_layer(&with(honest(), vec![file("lib/LONG", "1")]))],
        None,
    );
    for (name, order) in [
        ("short-first", [&short, &long]),
        ("long-first", [&long, &short]),
    ] {
        let cache = temp_dir(&format!("cache-nested-{name}"));
        for reference in order {
            let out = finish(
                ocipkg()
                    .args(["pull", reference])
                    .env("OCIPKG_CACHE_DIR", &cache),
                60,
            );
            assert!(
                out.status.success(),
                "{name}: {reference}: {}",
                stderr(&out)
            );
        }
        let refs = cache.join("refs").join(host.replace(':', "_"));
        assert!(refs.join("r/x/_tags/y").is_file(), "{name}");
        assert!(refs.join("r/x/y/_tags/1").is_file(), "{name}");
        // Offline, each tag still finds its own package.
        for reference in order {
            let out = run(ocipkg()
                .args(["pull", reference])
                .env("OCIPKG_CACHE_DIR", &cache)
                .env("OCIPKG_OFFLINE", "1"));
            let long_file = Path::new(stdout(&out).trim()).join("lib/LONG").exists();
            assert_eq!(long_file, reference == &long, "{name}: {reference}");
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Directives

#[test]
fn strings_that_would_inject_cargo_directives_fail_the_build() {
    let scene = Scene::new();
    let newline_syslib = scene.publish(
        "evil/syslib-newline:1",
        vec![tar_layer(&honest())],
        Some(json!({"system_libraries": ["m\ncargo:rustc-env=PWNED=1"], "include_dirs": ["include"]})),
    );
    let newline_file = scene.publish(
        "evil/file-newline:1",
        vec![tar_layer(&with(
            honest(),
            vec![file("lib/libx\ncargo:warning=pwned\nx.a", "!<arch>\n")],
        ))],
        None,
    );
    let consumer = consumer_crate("consumer-hostile");
    // The program tells whether the injected variable reached its compilation.
    fs::write(
        consumer.join("src/main.rs"),
        "fn main() { println!(\"{}\", option_env!(\"PWNED\").unwrap_or(\"clean\")); }\n",
    )
    .unwrap();
    for (reference, named) in [
        (&newline_syslib, "system_libraries"),
        (&newline_file, "libx"),
    ] {
        let out = cargo(&consumer, &scene.cache)
            .arg("run")
            .env("CONSUMER_REF", reference)
            .output()
            .unwrap();
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "the build went through:\n{text}");
        assert!(
            text.contains(named),
            "the error does not name `{named}`:\n{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("warning") && l.contains("pwned")),
            "an injected directive took effect:\n{text}"
        );
    }
    scene.assert_outside_untouched();
}

#[test]
fn link_metadata_strings_are_validated() {
    let scene = Scene::new();
    let cases = [
        (
            "static-kind",
            json!({"system_libraries": ["static=foo"]}),
            "system_libraries",
        ),
        (
            "colon",
            json!({"system_libraries": ["foo:bar"]}),
            "system_libraries",
        ),
        (
            "abs-include",
            json!({"include_dirs": ["/etc"]}),
            "include_dirs",
        ),
        (
            "up-include",
            json!({"include_dirs": ["../x"]}),
            "include_dirs",
        ),
    ];
    for (name, config, field) in cases {
        let reference = scene.publish(
            &format!("evil/meta-{name}:1"),
            vec![tar_layer(&honest())],
            Some(config),
        );
        match link_in(&scene.cache, &reference) {
            Ok(package) => panic!("{name}: accepted, directives {:?}", package.directives()),
            Err(e) => assert!(e.to_string().contains(field), "{name}: {e}"),
        }
    }
    scene.assert_outside_untouched();
}

// ---------------------------------------------------------------------------
// 4. Out-pointing links are never followed

#[test]
fn inspect_terminates_on_symlink_loops() {
    let scene = Scene::new();
    let reference = scene.publish(
        "odd/loops:1",
        vec![tar_layer(&with(
            honest(),
            vec![sym("a", "."), sym("b", "."), sym("lib/c", "..")],
        ))],
        None,
    );
    let started = Instant::now();
    let out = finish(
        ocipkg()
            .args(["inspect", &reference])
            .env("OCIPKG_CACHE_DIR", &scene.cache),
        30,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("lib/libanswer.a"), "{}", stdout(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn loading_a_hostile_layout_archive_is_refused_like_a_pull() {
    let scene = Scene::new();
    let reference = format!("{}/evil/load:1", scene.registry.host());
    let layout = write_layout(
        &reference,
        vec![
            tar_layer(&[sym("lib", &scene.victim_relative())]),
            file_layer("lib/secret.txt", b"pwned"),
        ],
        None,
    );
    let archive = layout.with_extension("tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.append_dir_all(".", &layout).unwrap();
    builder.into_inner().unwrap().flush().unwrap();
    scene.refused_with(
        ocipkg().arg("load").arg(&archive),
        "points outside the package",
    );
}

// ---------------------------------------------------------------------------
// 5. Credentials

/// A plain-HTTP (loopback) registry may name a token realm on another port:
/// credentials go there. (A realm that downgrades an HTTPS registry to HTTP
/// is refused; that case needs a TLS registry and is covered by a unit test
/// in src/auth.rs.)
#[test]
fn a_plain_http_registry_may_send_to_a_token_realm_on_another_port() {
    let registry = Registry::start();
    let (_, reference) = publish_c_package(&registry, "realm/answer:1");
    let tokens = Fake::start(|_| json_reply(json!({"token": "tok-b", "expires_in": 300})));
    let realm = format!("http://{}/token", tokens.host());
    let proxy = Proxy::start(registry.port, move |request| {
        if request.header("authorization") == Some("Bearer tok-b") {
            return Action::Forward;
        }
        let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n");
        Action::Respond("401 Unauthorized", challenge, "{}".into())
    });
    let through = reference.replace(&registry.host(), &format!("127.0.0.1:{}", proxy.port));
    let out = finish(ocipkg_with_password().args(["pull", &through]), 60);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(tokens.count() > 0);
}

#[test]
fn tag_pagination_never_sends_credentials_to_another_origin() {
    let other = Fake::start(|_| json_reply(json!({"name": "x", "tags": ["from-other"]})));
    let next = format!(
        "Link: <http://{}/v2/x/tags/list?n=1>; rel=\"next\"\r\n",
        other.host()
    );
    let registry = Fake::start(move |request| {
        if request.header("authorization").is_none() {
            return basic_challenge();
        }
        let extra = format!("Content-Type: application/json\r\n{next}");
        Reply::Now(
            "200 OK",
            extra,
            json!({"name": "x", "tags": ["from-registry"]})
                .to_string()
                .into_bytes(),
        )
    });
    let out = finish(
        ocipkg_with_password().args(["tags", &format!("{}/x", registry.host())]),
        30,
    );
    assert_eq!(
        other.authorizations(),
        Vec::<String>::new(),
        "credentials went to another origin"
    );
    if out.status.success() {
        assert!(!stdout(&out).contains("from-other"), "{}", stdout(&out));
    } else {
        assert!(stderr(&out).contains("another origin"), "{}", stderr(&out));
    }
    assert_eq!(other.count(), 0, "the link to another origin was followed");
}

#[test]
fn a_self_referencing_tag_link_terminates() {
    let registry = Fake::start(|_| {
        let extra =
            "Content-Type: application/json\r\nLink: </v2/x/tags/list?n=1>; rel=\"next\"\r\n";
        Reply::Now(
            "200 OK",
            extra.into(),
            json!({"name": "x", "tags": ["a"]}).to_string().into_bytes(),
        )
    });
    let started = Instant::now();
    let out = finish(
        ocipkg().args(["tags", &format!("{}/x", registry.host())]),
        30,
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{}",
        stderr(&out)
    );
    assert!(registry.count() < 10_000);
}

#[test]
fn an_upload_location_on_another_origin_gets_no_credentials() {
    // The other origin fails, or asks for credentials for its own token realm.
    upload_elsewhere(Fake::start(|_| {
        Reply::Now("500 Internal Server Error", String::new(), Vec::new())
    }));
    upload_elsewhere(Fake::start(own_realm_challenge));
}

fn upload_elsewhere(other: Fake) {
    let location = format!("Location: http://{}/upload/abc?_state=1\r\n", other.host());
    let registry = Fake::start(move |request| {
        if request.header("authorization").is_none() {
            return basic_challenge();
        }
        match request.method() {
            "HEAD" | "GET" => Reply::Now("404 Not Found", String::new(), Vec::new()),
            "POST" => Reply::Now(
                "202 Accepted",
                format!("{location}Docker-Upload-UUID: abc\r\n"),
                Vec::new(),
            ),
            _ => Reply::Now("201 Created", String::new(), Vec::new()),
        }
    });
    let layout = write_layout(
        &format!("{}/x:1", registry.host()),
        vec![tar_layer(&honest())],
        None,
    );
    let out = finish(ocipkg_with_password().arg("push").arg(&layout), 60);
    assert!(!out.status.success());
    assert!(
        registry
            .authorizations()
            .iter()
            .any(|a| a.starts_with("Basic ")),
        "{}",
        stderr(&out)
    );
    assert!(
        other.count() > 0,
        "the upload never reached the other origin"
    );
    assert_eq!(
        other.authorizations(),
        Vec::<String>::new(),
        "credentials went to another origin"
    );
}

#[test]
fn a_token_server_echoing_credentials_does_not_leak_them() {
    let tokens = Fake::start(|request| {
        let echoed = request
            .header("authorization")
            .unwrap_or("none")
            .to_string();
        let body = json!({"errors": [{"code": "DENIED", "message": format!("refused {echoed} (password {PASSWORD})")}]});
        Reply::Now(
            "500 Internal Server Error",
            "Content-Type: application/json\r\n".into(),
            body.to_string().into_bytes(),
        )
    });
    let realm = format!("http://{}/token", tokens.host());
    let registry = Fake::start(move |_| {
        let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"\r\n");
        Reply::Now("401 Unauthorized", challenge, b"{}".to_vec())
    });
    let out = finish(
        ocipkg_with_password().args(["pull", &format!("{}/x:1", registry.host())]),
        60,
    );
    let basic = base64(format!("u:{PASSWORD}").as_bytes(), false);
    assert_eq!(
        tokens.authorizations(),
        [format!("Basic {basic}")],
        "the test needs the token server to get them"
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success());
    assert!(
        !text.contains(PASSWORD) && !text.contains(&basic),
        "a secret leaked:\n{text}"
    );
}

// ---------------------------------------------------------------------------
// 6. Mirrors

fn mirrors_config(origin: &str, mirror: &str, trust_tags: bool) -> PathBuf {
    let mut entry = json!({"mirrors": [mirror]});
    if trust_tags {
        entry["trust_mirror_tags"] = json!(true);
    }
    config_file(json!({"registries": {origin: entry}}))
}

#[test]
fn a_mirror_cannot_change_what_a_tag_resolves_to() {
    let origin = Registry::start();
    let mirror = Registry::start();
    let (reference, layout) = publish(
        &origin.host(),
        "mirrored/answer:1",
        vec![tar_layer(&honest())],
        None,
    );
    publish(
        &mirror.host(),
        "mirrored/answer:1",
        vec![tar_layer(&with(
            honest(),
            vec![file("lib/MIRROR", "other package")],
        ))],
        None,
    );
    let config = mirrors_config(&origin.host(), &mirror.host(), false);
    let out = run(ocipkg()
        .args(["--json", "pull", &reference])
        .env("OCIPKG_CONFIG", &config)
        .env("OCIPKG_CACHE_DIR", temp_dir("cache-mirror-tag")));
    let fetched: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(fetched["manifest_digest"], layout_digests(&layout).0);
    assert!(!Path::new(fetched["root"].as_str().unwrap())
        .join("lib/MIRROR")
        .exists());
    let log = mirror.access_log();
    assert!(
        !log.contains("GET /v2/mirrored/answer/manifests/1 "),
        "the mirror was asked for the tag:\n{log}"
    );
}

#[test]
fn a_mirror_serving_a_bomb_is_skipped_and_the_origin_serves() {
    let origin = Registry::start();
    let noise = noise(1 << 20, 7);
    let (reference, layout) = publish(
        &origin.host(),
        "bombed/answer:1",
        vec![tar_layer(&with(
            honest(),
            vec![file("lib/noise.bin", noise.clone())],
        ))],
        None,
    );
    let (digest, layers) = layout_digests(&layout);
    let blob = |d: &str| fs::read(layout.join("blobs/sha256").join(&d[7..])).unwrap();
    let layer = layers[0].clone();
    let size = blob(&layer).len();
    // A bomb exactly as long as the layer: zero members, then zero padding.
    let mut bomb = gzip_bomb(((size - 1024) / zeros_member().len()) as u64);
    bomb.resize(size, 0);
    let manifest = blob(&digest);
    let config: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let config_digest = config["config"]["digest"].as_str().unwrap().to_string();
    let config_bytes = blob(&config_digest);
    let mirror = Fake::start(move |request| {
        let path = request.path();
        let body = if path.ends_with(&format!("/manifests/{digest}")) {
            return Reply::Now(
                "200 OK",
                format!("Content-Type: {MANIFEST}\r\n"),
                manifest.clone(),
            );
        } else if path.ends_with(&layer) {
            bomb.clone()
        } else if path.ends_with(&config_digest) {
            config_bytes.clone()
        } else {
            return Reply::Now("404 Not Found", String::new(), Vec::new());
        };
        Reply::Now(
            "200 OK",
            "Content-Type: application/octet-stream\r\n".into(),
            body,
        )
    });
    let config = mirrors_config(&origin.host(), &mirror.host(), false);
    let out = finish(
        ocipkg()
            .args(["pull", &reference])
            .env("OCIPKG_CONFIG", &config)
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-mirror-bomb")),
        90,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let root = PathBuf::from(stdout(&out).trim());
    assert_eq!(fs::read(root.join("lib/noise.bin")).unwrap(), noise);
    assert!(mirror.count() > 0, "the mirror was not tried");
    assert!(
        stderr(&out).contains(&mirror.host()),
        "no warning names the mirror:\n{}",
        stderr(&out)
    );
    let _ = fs::remove_dir_all(root.parent().unwrap());
}

#[test]
fn a_tag_only_the_mirror_knows_needs_trust_mirror_tags() {
    let mirror = Registry::start();
    let origin = format!("127.0.0.1:{}", dead_port());
    let (_, layout) = publish(
        &mirror.host(),
        "gone/answer:1",
        vec![tar_layer(&honest())],
        None,
    );
    let digest = layout_digests(&layout).0;
    let reference = format!("{origin}/gone/answer:1");
    let pull = |reference: &str, trust: bool| {
        finish(
            ocipkg()
                .args(["pull", reference])
                .env(
                    "OCIPKG_CONFIG",
                    mirrors_config(&origin, &mirror.host(), trust),
                )
                .env("OCIPKG_CACHE_DIR", temp_dir("cache-mirror-down")),
            60,
        )
    };
    let out = pull(&reference, false);
    assert!(!out.status.success(), "a tag was taken from a mirror");
    assert!(
        stderr(&out).contains("trust_mirror_tags"),
        "{}",
        stderr(&out)
    );
    // By digest the mirror may serve: what it serves is verified.
    let out = pull(&format!("{reference}@{digest}"), false);
    assert!(out.status.success(), "{}", stderr(&out));
    // Opting in, the mirror's tag is used.
    let out = pull(&reference, true);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// 7. Timeouts

#[test]
fn a_trickling_registry_times_out_naming_the_setting() {
    let registry = Fake::start(|_| Reply::Trickle);
    let started = Instant::now();
    let out = finish(
        ocipkg()
            .args(["pull", &format!("{}/slow/answer:1", registry.host())])
            .env("OCIPKG_CACHE_DIR", temp_dir("cache-trickle"))
            .env("OCIPKG_TIMEOUT_SECS", "3"),
        30,
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("OCIPKG_TIMEOUT_SECS"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------
// 8. Lockfiles

#[test]
fn a_lockfile_symlinked_to_dev_zero_fails_promptly() {
    // The library call runs in a child process (this test, re-run) with
    // bounded memory, so reading /dev/zero to the end cannot hurt the machine.
    #[allow(clippy::disallowed_methods)] // the test's own switch, not a build input
    let child = std::env::var("HOSTILE_LOCKFILE_DIR");
    if let Ok(dir) = child {
        let err = ocipkg::Linker::new()
            .cache_dir(Path::new(&dir).join("cache"))
            .lockfile_dir(&dir)
            .quiet(true)
            .link("127.0.0.1:9/x/y:1")
            .unwrap_err()
            .to_string();
        println!("ERROR: {err}");
        return;
    }
    let dir = temp_dir("lock-dev-zero");
    std::os::unix::fs::symlink("/dev/zero", dir.join("ocipkg.lock")).unwrap();
    let started = Instant::now();
    let out = finish(
        Command::new("sh")
            .args(["-c", "ulimit -v 2097152; exec \"$0\" \"$@\""])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_lockfile_symlinked_to_dev_zero_fails_promptly",
                "--nocapture",
            ])
            .env("HOSTILE_LOCKFILE_DIR", &dir),
        30,
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("ERROR: ") && text.contains("not a regular file"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_lockfile_digest_in_upper_case_is_refused() {
    let dir = temp_dir("lock-upper");
    let digest = format!("sha256:{}", "AB".repeat(32));
    fs::write(
        dir.join("ocipkg.lock"),
        format!("127.0.0.1:9/x/y:1 {digest}\n"),
    )
    .unwrap();
    let err = ocipkg::Linker::new()
        .cache_dir(dir.join("cache"))
        .lockfile_dir(&dir)
        .quiet(true)
        .link("127.0.0.1:9/x/y:1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("lower-case"), "{err}");
}

// ---------------------------------------------------------------------------
// 9. Regressions from a security review

/// `cmd` run by `sh` under `ulimit LIMIT` (`-v KiB`: address space,
/// `-f KiB`: file size), so a regression cannot exhaust the machine.
fn limited(limit: &str, cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit {limit}; exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => sh.env(key, value),
            None => sh.env_remove(key),
        };
    }
    sh
}

const TWO_GIB_OF_MEMORY: &str = "-v 2097152";

/// A tar of the layout directory, its symlinks kept as symlinks.
fn archive(layout: &Path) -> PathBuf {
    let archive = layout.with_extension("tar");
    let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", layout).unwrap();
    builder.into_inner().unwrap().flush().unwrap();
    archive
}

/// A 401 Bearer challenge naming a token realm on the answering server itself.
fn own_realm_challenge(request: &ProxyRequest) -> Reply {
    let realm = format!("http://127.0.0.1:{}/token", request.port);
    if request.path().starts_with("/token") {
        return Reply::Now("401 Unauthorized", String::new(), Vec::new());
    }
    let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"evil\"\r\n");
    Reply::Now("401 Unauthorized", challenge, b"{}".to_vec())
}

#[test]
fn a_redirect_to_another_origin_does_not_earn_its_token_realm_credentials() {
    let other = Fake::start(own_realm_challenge);
    let to = other.host();
    let registry = Fake::start(move |request| {
        let location = format!("Location: http://{to}{}\r\n", request.path());
        Reply::Now("302 Found", location, Vec::new())
    });
    let auth_var = format!("OCIPKG_AUTH_127_0_0_1_{}", registry.port);
    for args in [
        ["pull", &format!("{}/x:1", registry.host())],
        ["tags", &format!("{}/x", registry.host())],
    ] {
        let out = finish(
            ocipkg_with_password()
                .args(args)
                .env(&auth_var, "alice:s3cretPW"),
            60,
        );
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(other.count() > 0, "{args:?}: the redirect was not followed");
    }
    assert_eq!(
        other.authorizations(),
        Vec::<String>::new(),
        "credentials went to another origin"
    );
}

#[test]
fn a_mirror_gets_no_origin_credentials() {
    let origin = Registry::start();
    let (reference, layout) = publish(
        &origin.host(),
        "mirrored/creds:1",
        vec![tar_layer(&honest())],
        None,
    );
    let digest = layout_digests(&layout).0;
    let mirror = Fake::start(|_| {
        let challenge = "WWW-Authenticate: Basic realm=\"m\"\r\n".to_string();
        Reply::Now("401 Unauthorized", challenge, b"{}".to_vec())
    });
    let out = finish(
        ocipkg_with_password()
            .args(["pull", &format!("{reference}@{digest}")])
            .env(
                "OCIPKG_CONFIG",
                mirrors_config(&origin.host(), &mirror.host(), false),
            )
            .env("OCIPKG_USERNAME", "ci-user")
            .env("OCIPKG_PASSWORD", "originOnlyPW"),
        60,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(mirror.count() > 0, "the mirror was not tried");
    assert_eq!(
        mirror.authorizations(),
        Vec::<String>::new(),
        "the origin's credentials went to a mirror"
    );
}

#[test]
fn oversized_tar_metadata_entries_are_refused_before_reading_them() {
    let scene = Scene::new();
    // A GNU long name of 2 GiB: ~2 MB of gzip.
    let mut bomb = gz(header("././@LongLink", tar::EntryType::GNULongName, "", 2 << 30).as_bytes());
    for _ in 0..128 {
        bomb.extend_from_slice(zeros_member());
    }
    bomb.extend_from_slice(&gz(&tar_of(&[file("lib/x.txt", "hi")])));
    assert!(bomb.len() < 3 << 20, "{}", bomb.len());
    let layer = || Layer {
        media_type: TAR_GZ,
        blob: bomb.clone(),
        title: None,
    };
    // A PAX header of 1 MiB: one well-formed `comment` record.
    let record = format!("1048576 comment={}\n", "x".repeat((1 << 20) - 17));
    let mut pax = header("././@PaxHeader", tar::EntryType::XHeader, "", 1 << 20)
        .as_bytes()
        .to_vec();
    pax.extend_from_slice(record.as_bytes());
    pax.extend_from_slice(&tar_of(&honest()));
    let pax = Layer {
        media_type: TAR_GZ,
        blob: gz(&pax),
        title: None,
    };
    let longname = scene.publish("evil/longname:1", vec![layer()], None);
    let pax = scene.publish("evil/pax:1", vec![pax], None);
    let layout = write_layout(
        &format!("{}/evil/longname-load:1", scene.registry.host()),
        vec![layer()],
        None,
    );
    for cmd in [
        ocipkg().args(["pull", &longname]),
        ocipkg().args(["pull", &pax]),
        ocipkg().arg("load").arg(archive(&layout)),
    ] {
        let started = Instant::now();
        scene.refused_with(&mut limited(TWO_GIB_OF_MEMORY, cmd), "metadata entry");
        assert!(started.elapsed() < Duration::from_secs(30), "{cmd:?}");
    }
}

#[test]
fn a_layout_blob_symlinked_to_dev_zero_fails_promptly() {
    let layout = write_layout("127.0.0.1:9/evil/zero:1", vec![tar_layer(&honest())], None);
    let blob = layout
        .join("blobs/sha256")
        .join(&layout_digests(&layout).0[7..]);
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();
    for path in [archive(&layout), layout] {
        let started = Instant::now();
        let out = finish(
            &mut limited(
                TWO_GIB_OF_MEMORY,
                ocipkg()
                    .arg("load")
                    .arg(&path)
                    .env("OCIPKG_CACHE_DIR", temp_dir("cache-dev-zero")),
            ),
            30,
        );
        let err = stderr(&out);
        assert!(!out.status.success(), "{}: accepted", path.display());
        assert!(
            err.contains("not a regular file"),
            "{}: {err}",
            path.display()
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
}

/// A registry serving the layout's one manifest, by tag or digest, and its
/// blobs, with that manifest's layer `i` rewritten to declare `size` bytes
/// (which `ocipkg push` would refuse to upload).
fn serve_declaring(layout: &Path, i: usize, size: u64) -> Fake {
    let (digest, _) = layout_digests(layout);
    let blobs = layout.join("blobs/sha256");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(&digest[7..])).unwrap()).unwrap();
    manifest["layers"][i]["size"] = json!(size);
    let manifest = serde_json::to_vec(&manifest).unwrap();
    Fake::start(move |request| {
        let path = request.path();
        let (kind, body) = if path.contains("/manifests/") {
            (MANIFEST, manifest.clone())
        } else if let Some((_, hex)) = path.split_once("/blobs/sha256:") {
            match fs::read(blobs.join(hex)) {
                Ok(blob) => ("application/octet-stream", blob),
                Err(_) => return Reply::Now("404 Not Found", String::new(), Vec::new()),
            }
        } else {
            ("application/json", b"{}".to_vec())
        };
        Reply::Now("200 OK", format!("Content-Type: {kind}\r\n"), body)
    })
}

#[test]
fn a_declared_layer_size_does_not_raise_the_expansion_budget() {
    let scene = Scene::new();
    let bomb = Layer {
        media_type: TAR_GZ,
        blob: gzip_bomb(64), // ~1 MB inflating to 1 GiB
        title: None,
    };
    let layout = write_layout("127.0.0.1:9/evil/declared:1", vec![bomb], None);
    let registry = serve_declaring(&layout, 0, 1_000_000_000_000);
    // The budget is 100 × the bytes received, not declared: it stops near
    // 100 MB, and a file past 400 MiB would kill it (SIGXFSZ, no message).
    let started = Instant::now();
    let reference = format!("{}/evil/declared:1", registry.host());
    let err = scene.refused_with(
        &mut limited("-f 409600", ocipkg().args(["pull", &reference])),
        "",
    );
    // The short download is reported before the refusal it caused.
    assert!(
        [
            "OCIPKG_MAX_EXPANSION",
            "before the end of the blob",
            "size mismatch"
        ]
        .iter()
        .any(|phrase| err.contains(phrase)),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn refusals_escape_control_characters_in_names() {
    let scene = Scene::new();
    let name = "lib/a\x1b[31mred\nx/../../../x";
    let reference = scene.publish(
        "evil/escape:1",
        vec![tar_layer(&with(honest(), vec![file(name, "x")]))],
        None,
    );
    let err = scene.refused(&reference, r"a\u{1b}[31mred\nx/../../../x");
    assert!(
        !err.contains('\x1b'),
        "a raw ESC reached the terminal: {err:?}"
    );
}
