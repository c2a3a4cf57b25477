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
    pub fn start() -> Registry {
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
                 http:\n  addr: 127.0.0.1:0\n",
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

    /// The registry's log, access log included.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
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

/// Compiles `source` (C) into `dir/lib/lib<name>.a` with the cc crate.
pub fn compile_c_static(dir: &Path, name: &str, source: &str) {
    let src_dir = temp_dir("c-src");
    let file = src_dir.join(format!("{name}.c"));
    fs::write(&file, source).unwrap();
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    let host = host_triple();
    let host = host.as_str();
    cc::Build::new()
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
pub fn host_triple() -> String {
    let out = run(Command::new("rustc").arg("-vV"));
    stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV prints the host")
        .to_string()
}
