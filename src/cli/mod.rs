//! The command-line tools `ocipkg` and `cargo-ocipkg` (feature `cli`).
//!
//! Not a stable API: the binaries call [`ocipkg_main`] and [`cargo_ocipkg_main`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};

/// Pack, push and pull prebuilt libraries as OCI artifacts.
///
/// Exit codes: 0 success, 1 failure (the message says what to do), 2 bad
/// arguments.
#[derive(Parser)]
#[command(
    name = "ocipkg",
    version,
    about,
    long_about,
    after_help = "Example: ocipkg pack ./dist --tag ghcr.io/org/libfoo:1.2 -o libfoo.tar && \
                  ocipkg push libfoo.tar"
)]
struct Ocipkg {
    /// Print the result as JSON on stdout (every command; errors stay text
    /// on stderr).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: OcipkgCommand,
}

#[derive(Subcommand)]
enum OcipkgCommand {
    /// Pack a directory (lib/, include/, ...) into an OCI image layout.
    ///
    /// Example: ocipkg pack ./dist --tag ghcr.io/org/libfoo:1.2 --output libfoo.tar
    Pack {
        /// Directory whose contents form the package.
        dir: PathBuf,
        /// Where the package will be pushed: registry/repository:tag.
        #[arg(long)]
        tag: String,
        /// Output: a directory, or a tar archive if it ends in `.tar`.
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        pack: Box<PackArgs>,
    },
    /// Push a layout written by `ocipkg pack` (or `ocipkg save`) to its
    /// registry. A package built for one target joins the tag's
    /// multi-platform index; a saved multi-platform package goes up whole,
    /// with the same digest.
    ///
    /// Example: ocipkg push libfoo.tar
    Push {
        /// Layout directory or `.tar`.
        path: PathBuf,
        /// Push to this reference (registry/repository[:tag], no digest)
        /// instead of the one given to `pack` or `save`.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Fetch a package into the local cache, verifying every digest, and print
    /// where it was unpacked.
    ///
    /// Example: ocipkg pull ghcr.io/org/libfoo:1.2
    Pull {
        /// Package reference.
        reference: String,
        /// Rust target triple whose build to fetch from a multi-platform
        /// package (default: this machine's).
        #[arg(long)]
        target: Option<String>,
        /// Also copy the package tree into this directory (new or empty).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Describe a package: digests, platforms, annotations, layers, link
    /// metadata and files. Fetches it (verified) into the cache.
    ///
    /// Example: ocipkg inspect ghcr.io/org/libfoo:1.2   or   ocipkg inspect libfoo.tar
    Inspect {
        /// Package reference, or path of an OCI image layout (dir or .tar).
        package: String,
        /// Rust target triple whose build to describe (default: this machine's).
        #[arg(long)]
        target: Option<String>,
    },
    /// List the packages in the local cache, with sizes and tags.
    ///
    /// Example: ocipkg list --json
    List,
    /// Remove cached packages no recorded tag points at any more (older
    /// versions) and leftovers of interrupted fetches; --all empties the cache.
    ///
    /// Example: ocipkg prune
    Prune {
        /// Remove every package and record.
        #[arg(long)]
        all: bool,
    },
    /// Download a package, every platform, into an OCI image layout or
    /// archive, for air-gapped machines (see `load`).
    ///
    /// Example: ocipkg save ghcr.io/org/libfoo:1.2 -o libfoo.tar
    Save {
        /// Package reference.
        reference: String,
        /// Layout directory, or an archive if it ends in `.tar`.
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Put a package from an OCI image layout or archive (from `save` or
    /// `pack`) into the local cache, verified, so that offline builds find it
    /// by its tag.
    ///
    /// Example: ocipkg load libfoo.tar && OCIPKG_OFFLINE=1 cargo build
    Load {
        /// Layout directory or `.tar`.
        path: PathBuf,
        /// The reference builds use (default: the one recorded in the layout).
        #[arg(long)]
        tag: Option<String>,
        /// Rust target triple whose build to load (default: this machine's).
        #[arg(long)]
        target: Option<String>,
    },
    /// Lock package references to their current manifest digests in
    /// ocipkg.lock (fetching and verifying each), for reproducible builds.
    ///
    /// Example: ocipkg lock ghcr.io/org/libfoo:1.2 --dir path/to/ffi-crate
    Lock {
        /// Package references (with tags).
        #[arg(required = true)]
        references: Vec<String>,
        /// Directory of the consumer's Cargo.toml (it must hold one, or an
        /// ocipkg.lock to update).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Check credentials against a registry and store them in Docker's
    /// config file ($DOCKER_CONFIG/config.json or ~/.docker/config.json).
    ///
    /// Example: echo "$TOKEN" | ocipkg login ghcr.io -u me --password-stdin
    Login {
        /// Registry host[:port], e.g. ghcr.io, localhost:5000, docker.io.
        registry: String,
        /// User name.
        #[arg(long, short)]
        username: String,
        /// Read the password (or token) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove stored credentials of a registry from Docker's config file.
    ///
    /// Example: ocipkg logout ghcr.io
    Logout {
        /// Registry host[:port].
        registry: String,
    },
    /// Build a container image: DIR becomes one more layer on top of a base
    /// image, whose layers are never downloaded when pushing (they are
    /// mounted from the base's repository on the same registry).
    ///
    /// Example: ocipkg image ./dist --from 127.0.0.1:5000/base:1 --tag 127.0.0.1:5000/app:1 --root-dir /app --entrypoint /app/hello --push
    Image(Box<ImageArgs>),
    /// List the tags of a repository.
    ///
    /// Example: ocipkg tags ghcr.io/org/libfoo
    Tags {
        /// Repository (registry/repository, without a tag or digest).
        repository: String,
    },
}

/// Build and publish the library of a Cargo package.
#[derive(Parser)]
#[command(name = "cargo", bin_name = "cargo")]
enum CargoCli {
    /// ocipkg's cargo subcommands.
    #[command(
        subcommand,
        version,
        about,
        after_help = "Example: cargo ocipkg publish --release --tag 1.2   (in the directory of a \
                      package with crate-type \"staticlib\" and [package.metadata.ocipkg] \
                      registry = \"ghcr.io/org/libfoo\")"
    )]
    Ocipkg(CargoCommand),
}

#[derive(Subcommand)]
enum CargoCommand {
    /// Run `cargo build` and pack the package's staticlib/cdylib.
    ///
    /// The package is named from `[package.metadata.ocipkg] registry =
    /// "host/path"` in Cargo.toml, tagged with the short git commit hash
    /// unless --tag is given, and records the target it was built for
    /// (--target, default the host), so that publishing several targets
    /// under one tag makes a multi-platform package. `system-libraries` and
    /// `frameworks` in the same table become its link metadata. The layout
    /// is written to `<target-dir>/ocipkg/<package>`.
    ///
    /// Example: cargo ocipkg build --release --target x86_64-unknown-linux-gnu
    Build(BuildArgs),
    /// Like `build`, then push the package to its registry.
    ///
    /// Example: cargo ocipkg publish --release --tag 1.2
    Publish(BuildArgs),
}

/// Arguments of `ocipkg image`.
#[derive(Args)]
struct ImageArgs {
    /// Directory whose files go into the image.
    dir: PathBuf,
    /// Base image reference, or `scratch`.
    #[arg(long)]
    from: String,
    /// The image's reference: registry/repository:tag.
    #[arg(long)]
    tag: String,
    /// Push the image to its registry.
    #[arg(long)]
    push: bool,
    /// Also write it as an OCI image layout (dir or .tar), base layers included.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where the files go in the image (default: /).
    #[arg(long, default_value = "")]
    root_dir: String,
    /// Owner uid of the new files.
    #[arg(long, default_value_t = 0)]
    uid: u64,
    /// Owner gid of the new files.
    #[arg(long, default_value_t = 0)]
    gid: u64,
    /// Entrypoint, one argument per occurrence.
    #[arg(long)]
    entrypoint: Vec<String>,
    /// Default arguments, one per occurrence.
    #[arg(long)]
    cmd: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long)]
    env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// Platform os/arch[/variant] (base choice, and for scratch).
    #[arg(long)]
    platform: Option<String>,
    /// Layer compression: gzip or zstd.
    #[arg(long, default_value = "gzip")]
    compression: String,
}

/// How `pack` builds the package.
#[derive(Args)]
struct PackArgs {
    /// Rust target triple the libraries are built for; `push` then adds the
    /// package to the tag's multi-platform index.
    #[arg(long)]
    target: Option<String>,
    /// A library to link, in link order: NAME or NAME:static / NAME:dylib
    /// (default: every library found, static preferred).
    #[arg(long = "link-lib", value_name = "NAME[:KIND]")]
    link_libs: Vec<String>,
    /// A system library to link after the package's (e.g. stdc++, m).
    #[arg(long = "system-lib", value_name = "NAME")]
    system_libs: Vec<String>,
    /// An Apple framework to link on Apple targets.
    #[arg(long = "framework", value_name = "NAME")]
    frameworks: Vec<String>,
    /// A header directory relative to the package root (default: include).
    #[arg(long = "include-dir", value_name = "DIR")]
    include_dirs: Vec<String>,
    /// A pkg-config file relative to the package root.
    #[arg(long = "pkg-config", value_name = "FILE")]
    pkg_config: Option<String>,
    /// Layer compression: gzip (read by every OCI tool) or zstd (smaller).
    #[arg(long, value_name = "gzip|zstd", default_value = "gzip")]
    compression: String,
    /// Compression level: gzip 0 (store) to 9 (smallest), default 6; zstd 1
    /// (fastest) to 19 (smallest), default 9.
    #[arg(long, value_name = "LEVEL")]
    level: Option<u32>,
    /// Place the files under this directory of the package tree (e.g.
    /// /opt/foo, as a container image would have them); the package records
    /// it, so consumers find lib/ and include/ there. Paths given to the
    /// other flags stay relative to DIR.
    #[arg(long, value_name = "DIR", default_value = "")]
    root_dir: String,
    /// Owner uid of every file (default 0).
    #[arg(long, default_value_t = 0)]
    uid: u64,
    /// Owner gid of every file (default 0).
    #[arg(long, default_value_t = 0)]
    gid: u64,
    /// A manifest annotation KEY=VALUE (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Record this glibc floor (MAJOR.MINOR, e.g. 2.17) instead of the one
    /// read from the binaries: consumers whose glibc is older do not link
    /// this build.
    #[arg(long, value_name = "X.Y")]
    glibc_floor: Option<String>,
}

impl PackArgs {
    fn packer(&self) -> Result<crate::publish::Packer> {
        let mut libraries = Vec::new();
        for spec in &self.link_libs {
            let (name, kind) = match spec.split_once(':') {
                Some((name, kind)) => {
                    let kind = kind.parse().map_err(|reason| {
                        Error::usage(
                            format!("--link-lib {spec}: {reason}"),
                            "write --link-lib NAME, NAME:static or NAME:dylib",
                        )
                    })?;
                    (name, Some(kind))
                }
                None => (spec.as_str(), None),
            };
            libraries.push(crate::oci::format::LibrarySpec {
                name: name.to_string(),
                kind,
            });
        }
        let compression = match (self.compression.as_str(), self.level) {
            ("gzip", level) if level.is_none_or(|l| l <= 9) => {
                crate::publish::LayerCompression::Gzip {
                    level: level.unwrap_or(6),
                }
            }
            ("gzip", Some(level)) => {
                return Err(Error::usage(
                    format!("--level {level} is out of range"),
                    "gzip levels are 0 (store) to 9 (smallest)",
                ))
            }
            ("zstd", level) if level.is_none_or(|l| (1..=19).contains(&l)) => {
                crate::publish::LayerCompression::Zstd {
                    level: level.map_or(crate::publish::ZSTD_DEFAULT_LEVEL, |l| l as i32),
                }
            }
            ("zstd", Some(level)) => {
                return Err(Error::usage(
                    format!("--level {level} is out of range"),
                    "zstd levels are 1 (fastest) to 19 (smallest)",
                ))
            }
            (other, _) => {
                return Err(Error::usage(
                    format!("--compression {other} is unknown"),
                    "use --compression gzip or --compression zstd",
                ))
            }
        };
        let mut packer = crate::publish::Packer::new();
        packer
            .compression(compression)
            .root_dir(self.root_dir.clone())
            .owner(self.uid, self.gid);
        for annotation in &self.annotations {
            let Some((key, value)) = annotation.split_once('=') else {
                return Err(Error::usage(
                    format!("--annotation {annotation} is not KEY=VALUE"),
                    "write e.g. --annotation org.opencontainers.image.version=1.2",
                ));
            };
            packer.annotation(key, value);
        }
        packer.metadata(crate::oci::format::LinkMetadata {
            libraries,
            system_libraries: self.system_libs.clone(),
            frameworks: self.frameworks.clone(),
            include_dirs: self.include_dirs.clone(),
            pkg_config: self.pkg_config.clone(),
            root_dir: None, // the packer records --root-dir
        });
        if let Some(target) = &self.target {
            packer.target(target);
        }
        if let Some(floor) = &self.glibc_floor {
            packer.glibc_floor(floor).map_err(|_| {
                Error::usage(
                    format!("--glibc-floor {floor} is not a glibc version: it needs at least MAJOR.MINOR"),
                    "write e.g. --glibc-floor 2.17 (the glibc of the oldest system the package \
                     runs on)",
                )
            })?;
        }
        Ok(packer)
    }
}

#[derive(Args)]
struct BuildArgs {
    /// Build in release mode.
    #[arg(long, short)]
    release: bool,
    /// The package to build (default: the one in the current directory).
    #[arg(long, short)]
    package: Option<String>,
    /// Tag to publish under (default: short git commit hash).
    #[arg(long)]
    tag: Option<String>,
    /// Target triple to build for.
    #[arg(long)]
    target: Option<String>,
    /// Registry and repository to publish to (`host[:port]/path`), instead of
    /// `[package.metadata.ocipkg] registry`.
    #[arg(long)]
    registry: Option<String>,
}

/// Entry point of the `ocipkg` binary.
pub fn ocipkg_main() -> ExitCode {
    let cli = Ocipkg::parse();
    if !cli.json {
        crate::registry::progress::enable_on_terminal();
    }
    report(run_ocipkg(cli.command, cli.json))
}

/// Prints `value` as JSON, or the human form.
fn show<T: serde::Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> Result<()> {
    if json {
        let text = serde_json::to_string_pretty(value)
            .map_err(|e| Error::invalid("the JSON output", e.to_string()))?;
        println!("{text}");
    } else {
        human(value);
    }
    Ok(())
}

/// Entry point of the `cargo-ocipkg` binary (`cargo ocipkg ...`).
pub fn cargo_ocipkg_main() -> ExitCode {
    let CargoCli::Ocipkg(command) = CargoCli::parse();
    crate::registry::progress::enable_on_terminal();
    report(run_cargo(command))
}

fn report(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.cli_message());
            ExitCode::FAILURE
        }
    }
}

fn run_ocipkg(command: OcipkgCommand, json: bool) -> Result<()> {
    match command {
        OcipkgCommand::Pack {
            dir,
            tag,
            output,
            pack,
        } => {
            let packed = pack.packer()?.pack(&dir, &tag, &output)?;
            warn_all(&packed.warnings);
            show(json, &packed, |p| {
                println!(
                    "packed {} ({}) into {}",
                    p.reference,
                    p.manifest_digest,
                    p.output.display()
                );
                print_floor(&p.floor);
            })?;
        }
        OcipkgCommand::Push { path, tag } => {
            let pushed = crate::publish::push(&path, tag.as_deref())?;
            show(json, &pushed, print_pushed)?;
        }
        OcipkgCommand::Pull {
            reference,
            target,
            output,
        } => {
            let mut linker = crate::Linker::new();
            if let Some(target) = target {
                linker.target(target);
            }
            let fetched = linker.fetch(&reference)?;
            for warning in &fetched.warnings {
                eprintln!("warning: {warning}");
            }
            if let Some(output) = &output {
                copy_out(&fetched.root, output)?;
            }
            show(json, &fetched, |f| {
                println!("{}", output.as_ref().unwrap_or(&f.root).display());
                eprintln!("pulled {reference} ({})", f.manifest_digest);
            })?;
        }
        OcipkgCommand::Inspect { package, target } => {
            let inspection = crate::publish::inspect(&package, target.as_deref())?;
            show(json, &inspection, print_inspection)?;
        }
        OcipkgCommand::List => {
            let packages = crate::publish::list_cache()?;
            show(json, &packages, |packages| {
                for p in packages {
                    println!(
                        "{}  {:>10}  {}",
                        p.digest,
                        human_size(p.size),
                        if p.references.is_empty() {
                            "(no tag)".to_string()
                        } else {
                            p.references.join(", ")
                        }
                    );
                }
            })?;
        }
        OcipkgCommand::Prune { all } => {
            let pruned = crate::publish::prune(all)?;
            show(json, &pruned, |p| {
                println!(
                    "removed {}, freed {}",
                    count(p.removed.len(), "package", "packages"),
                    human_size(p.freed_bytes)
                )
            })?;
        }
        OcipkgCommand::Save { reference, output } => {
            let saved = crate::publish::save(&reference, &output)?;
            show(json, &saved, |s| {
                println!(
                    "saved {reference} ({}, {}) to {}",
                    s.digest,
                    count(s.blobs, "blob", "blobs"),
                    s.output.display()
                )
            })?;
        }
        OcipkgCommand::Load { path, tag, target } => {
            let fetched = crate::publish::load(&path, tag.as_deref(), target.as_deref())?;
            show(json, &fetched, |f| {
                println!("{}", f.root.display());
                eprintln!("loaded {} ({})", path.display(), f.manifest_digest);
            })?;
        }
        OcipkgCommand::Lock { references, dir } => {
            check_lock_dir(&dir)?;
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            let locked = crate::publish::lock(&references, &dir)?;
            show(json, &locked, |locked| {
                for (reference, digest) in locked {
                    println!("locked {reference} to {digest}");
                }
            })?;
        }
        OcipkgCommand::Login {
            registry,
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let path = crate::publish::login(&registry, &username, &password)?;
            let stored = Credentials {
                registry,
                credentials_file: path,
            };
            show(json, &stored, |s| {
                println!(
                    "logged in to {}; credentials stored in {}",
                    s.registry,
                    s.credentials_file.display()
                )
            })?;
        }
        OcipkgCommand::Logout { registry } => {
            let path = crate::publish::logout(&registry)?;
            let removed = Credentials {
                registry,
                credentials_file: path,
            };
            show(json, &removed, |r| {
                println!(
                    "removed the credentials of {} from {}",
                    r.registry,
                    r.credentials_file.display()
                )
            })?;
        }
        OcipkgCommand::Image(args) => {
            let ImageArgs {
                dir,
                from,
                tag,
                push,
                output,
                root_dir,
                uid,
                gid,
                entrypoint,
                cmd,
                env,
                workdir,
                platform,
                compression,
            } = *args;
            let mut builder = crate::publish::ImageBuilder::new(from);
            builder.root_dir(root_dir).owner(uid, gid);
            if !entrypoint.is_empty() {
                builder.entrypoint(entrypoint);
            }
            if !cmd.is_empty() {
                builder.cmd(cmd);
            }
            for pair in env {
                builder.env(pair);
            }
            if let Some(workdir) = workdir {
                builder.workdir(workdir);
            }
            if let Some(platform) = platform {
                builder.platform(platform);
            }
            builder.compression(match compression.as_str() {
                "gzip" => crate::publish::LayerCompression::default(),
                "zstd" => crate::publish::LayerCompression::Zstd {
                    level: crate::publish::ZSTD_DEFAULT_LEVEL,
                },
                other => {
                    return Err(Error::usage(
                        format!("--compression {other} is unknown"),
                        "use --compression gzip or --compression zstd",
                    ))
                }
            });
            let built = builder.build(&dir, &tag, push, output.as_deref())?;
            show(json, &built, |b| {
                println!(
                    "built {} ({}); {} mounted",
                    b.reference,
                    b.manifest_digest,
                    count(b.mounted_base_layers, "base layer", "base layers")
                )
            })?;
        }
        OcipkgCommand::Tags { repository } => {
            let tags = crate::publish::list_tags(&repository)?;
            show(json, &tags, |tags| {
                for tag in tags {
                    println!("{tag}");
                }
            })?;
        }
    }
    Ok(())
}

/// What `login` stored or `logout` removed (`--json`).
#[derive(serde::Serialize)]
struct Credentials {
    /// The registry as given on the command line.
    registry: String,
    /// Docker's config file that holds (or held) the credentials.
    credentials_file: PathBuf,
}

/// `ocipkg lock --dir`: an existing crate directory (with its Cargo.toml),
/// or a directory that already holds an ocipkg.lock (one given to
/// `Linker::lockfile_dir`). Nothing is created for a mistyped path.
fn check_lock_dir(dir: &Path) -> Result<()> {
    let help = "give --dir the directory of the crate whose build.rs links the package (its \
                Cargo.toml is there, and ocipkg.lock goes beside it), or run ocipkg lock in it";
    if !dir.is_dir() {
        return Err(Error::usage(
            format!("--dir {} is not a directory", dir.display()),
            format!("{help}; ocipkg lock creates no directories"),
        ));
    }
    let lockfile = dir.join(crate::store::lockfile::FILE_NAME);
    if !dir.join("Cargo.toml").is_file() && !lockfile.is_file() {
        return Err(Error::usage(
            format!(
                "{} has no Cargo.toml (nor an ocipkg.lock to update): it is not a crate's \
                 directory",
                dir.display()
            ),
            help,
        ));
    }
    Ok(())
}

fn print_inspection(i: &crate::publish::Inspection) {
    println!("package:   {}", i.source);
    println!("digest:    {}", i.digest);
    if !i.platforms.is_empty() {
        println!("platforms: {}", i.platforms.join(", "));
        println!("manifest:  {} (this target's)", i.manifest_digest);
    }
    for (key, value) in &i.annotations {
        println!("annotation {key}: {value}");
    }
    for layer in &i.layers {
        println!("layer:     {layer}");
    }
    if !i.link_metadata.is_empty() {
        let text = serde_json::to_string(&i.link_metadata).unwrap_or_default();
        println!("link:      {text}");
    }
    println!("files:");
    for file in &i.files {
        println!("  {file}");
    }
}

/// `1 blob`, `2 blobs`, `0 blobs`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Copies a package tree into `output` (which must be new or empty).
fn copy_out(root: &Path, output: &Path) -> Result<()> {
    if output.exists()
        && fs::read_dir(output)
            .map_err(|e| Error::io(format!("reading {}", output.display()), e))?
            .next()
            .is_some()
    {
        return Err(Error::usage(
            format!("{} exists and is not empty", output.display()),
            "give a new or empty directory to --output",
        ));
    }
    copy_tree(root, output)
}

/// The password from stdin (`--password-stdin`), or typed at a prompt
/// without echo. Never from the command line.
fn read_password(from_stdin: bool) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Read};
    let stdin = std::io::stdin();
    let io = |e| Error::io("reading the password", e);
    let password = if from_stdin {
        let mut text = String::new();
        stdin.lock().read_to_string(&mut text).map_err(io)?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if stdin.is_terminal() {
        eprint!("Password: ");
        let echo_off = Command::new("stty")
            .arg("-echo")
            .status()
            .is_ok_and(|s| s.success());
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        if echo_off {
            let _ = Command::new("stty").arg("echo").status();
        }
        eprintln!();
        read.map_err(io)?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        return Err(Error::usage(
            "no password given",
            "pipe it in with --password-stdin (passwords are never taken from the command line)",
        ));
    };
    if password.is_empty() {
        return Err(Error::usage(
            "the password is empty",
            "give a password or token",
        ));
    }
    Ok(password)
}

fn print_pushed(pushed: &crate::publish::Pushed) {
    let repository = pushed
        .reference
        .rsplit_once(':')
        .map_or(&*pushed.reference, |(r, _)| r);
    println!(
        "pushed {} ({}, {} mounted)",
        pushed.reference,
        count(pushed.uploaded_blobs, "new blob", "new blobs"),
        pushed.mounted_blobs
    );
    match &pushed.index_digest {
        Some(index) => println!(
            "pin all platforms with: {repository}@{index}\npin this one with: {repository}@{}",
            pushed.manifest_digest
        ),
        None => println!("pin it with: {repository}@{}", pushed.manifest_digest),
    }
}

/// Manifest annotation recording the cargo profile `cargo ocipkg` built.
const PROFILE_ANNOTATION: &str = "vnd.ocipkg.cargo.profile";

/// Prints the runtime floor a pack recorded.
fn print_floor(floor: &std::collections::BTreeMap<String, String>) {
    if !floor.is_empty() {
        let parts: Vec<String> = floor.iter().map(|(k, v)| format!("{k} >= {v}")).collect();
        println!("needs {}", parts.join(", "));
    }
}

/// Prints each warning on stderr.
fn warn_all(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
}

fn run_cargo(command: CargoCommand) -> Result<()> {
    match command {
        CargoCommand::Build(args) => {
            let packed = build(&args)?;
            warn_all(&packed.warnings);
            println!(
                "packed {} ({}) into {}",
                packed.reference,
                packed.manifest_digest,
                packed.output.display()
            );
            print_floor(&packed.floor);
        }
        CargoCommand::Publish(args) => {
            let packed = build(&args)?;
            warn_all(&packed.warnings);
            let pushed = crate::publish::push(&packed.output, None)?;
            print_pushed(&pushed);
        }
    }
    Ok(())
}

/// The package being built, from `cargo metadata`.
struct CargoPackage {
    link: crate::oci::format::LinkMetadata,
    /// OCI annotations from Cargo.toml (version, licenses, source).
    annotations: Vec<(String, String)>,
    id: String,
    name: String,
    dir: PathBuf,
    registry: String,
}

fn build(args: &BuildArgs) -> Result<crate::publish::Packed> {
    let metadata = cargo_json(&["metadata", "--format-version", "1", "--no-deps"])?;
    let package = select_package(&metadata, args.package.as_deref(), args.registry.as_deref())?;
    let tag = match &args.tag {
        Some(tag) => tag.clone(),
        None => git_short_hash(&package.dir)?,
    };
    let reference = format!("{}:{tag}", package.registry);
    crate::publish::Reference::parse(&reference)?;

    let mut cmd = vec!["build", "--message-format=json-render-diagnostics", "-p"];
    cmd.push(&package.name);
    if args.release {
        cmd.push("--release");
    } else {
        eprintln!(
            "warning: packing a debug build of {} (unoptimized, with debug info); pass \
             --release to publish an optimized one",
            package.name
        );
    }
    if let Some(target) = &args.target {
        cmd.extend(["--target", target]);
    }
    let libraries = built_libraries(&cmd, &package.id)?;
    if libraries.is_empty() {
        return Err(Error::usage(
            format!(
                "`cargo build` of {} produced no staticlib or cdylib",
                package.name
            ),
            "add `crate-type = [\"staticlib\"]` (or \"cdylib\") to the [lib] section of its \
             Cargo.toml",
        ));
    }

    let target_dir = metadata
        .get("target_directory")
        .and_then(|t| t.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| package.dir.join("target"));
    let out_root = target_dir.join("ocipkg");
    let staging = out_root.join(format!("{}.staging", package.name));
    let output = out_root.join(&package.name);
    for dir in [&staging, &output] {
        if dir.exists() {
            fs::remove_dir_all(dir)
                .map_err(|e| Error::io(format!("removing old {}", dir.display()), e))?;
        }
    }
    let lib_dir = staging.join("lib");
    crate::files::create_dir_all(&lib_dir)?;
    for lib in &libraries {
        let Some(name) = lib.file_name() else {
            continue;
        };
        fs::copy(lib, lib_dir.join(name))
            .map_err(|e| Error::io(format!("copying {}", lib.display()), e))?;
    }
    let include = package.dir.join("include");
    if include.is_dir() {
        copy_tree(&include, &staging.join("include"))?;
    }
    let triple = match &args.target {
        Some(target) => target.clone(),
        None => host_triple()?,
    };
    let mut packer = crate::publish::Packer::new();
    packer.target(triple).metadata(package.link.clone());
    for (key, value) in &package.annotations {
        packer.annotation(key, value);
    }
    if let Some(revision) = git_revision(&package.dir) {
        packer.annotation("org.opencontainers.image.revision", revision);
    }
    let profile = if args.release { "release" } else { "debug" };
    packer.annotation(PROFILE_ANNOTATION, profile);
    let packed = packer.pack(&staging, &reference, &output);
    let _ = fs::remove_dir_all(&staging);
    packed
}

fn select_package(
    metadata: &serde_json::Value,
    wanted: Option<&str>,
    registry: Option<&str>,
) -> Result<CargoPackage> {
    let packages = metadata
        .get("packages")
        .and_then(|p| p.as_array())
        .cloned()
        .unwrap_or_default();
    let chosen = match wanted {
        Some(name) => packages
            .iter()
            .find(|p| p.get("name").and_then(|n| n.as_str()) == Some(name))
            .ok_or_else(|| {
                Error::usage(
                    format!("no package `{name}` in this workspace"),
                    "check the name given to -p",
                )
            })?,
        None => {
            let here = cargo_json(&["locate-project", "--message-format", "json"])?;
            let manifest = here.get("root").and_then(|r| r.as_str()).unwrap_or("");
            packages
                .iter()
                .find(|p| p.get("manifest_path").and_then(|m| m.as_str()) == Some(manifest))
                .ok_or_else(|| {
                    Error::usage(
                        "the current directory is not a package (a virtual workspace?)",
                        "choose the package with -p NAME",
                    )
                })?
        }
    };
    let name = chosen
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let dir = chosen
        .get("manifest_path")
        .and_then(|m| m.as_str())
        .and_then(|m| Path::new(m).parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let registry = registry
        .or_else(|| {
            chosen
                .pointer("/metadata/ocipkg/registry")
                .and_then(|r| r.as_str())
        })
        .ok_or_else(|| {
            Error::usage(
                format!("package {name} has no `[package.metadata.ocipkg] registry`"),
                "add to its Cargo.toml:\n\n    [package.metadata.ocipkg]\n    registry = \
                 \"ghcr.io/org/libname\"\n\n  or pass --registry ghcr.io/org/libname",
            )
        })?
        .to_string();
    let id = chosen
        .get("id")
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_string();
    let strings = |key: &str| -> Vec<String> {
        chosen
            .pointer(&format!("/metadata/ocipkg/{key}"))
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let link = crate::oci::format::LinkMetadata {
        system_libraries: strings("system-libraries"),
        frameworks: strings("frameworks"),
        ..Default::default()
    };
    let mut annotations = Vec::new();
    for (field, key) in [
        ("version", "org.opencontainers.image.version"),
        ("license", "org.opencontainers.image.licenses"),
        ("repository", "org.opencontainers.image.source"),
        ("description", "org.opencontainers.image.description"),
    ] {
        if let Some(value) = chosen.get(field).and_then(|v| v.as_str()) {
            annotations.push((key.to_string(), value.to_string()));
        }
    }
    Ok(CargoPackage {
        link,
        annotations,
        id,
        name,
        dir,
        registry,
    })
}

/// The cargo that runs us (`cargo ocipkg` sets `CARGO`), else `cargo` on PATH.
fn cargo_program() -> String {
    crate::store::session::Session::process(false)
        .env()
        .get(crate::env::CARGO)
        .unwrap_or_else(|| "cargo".into())
}

/// Runs cargo (stderr shown to the user) and returns its stdout.
fn cargo_stdout(args: &[&str]) -> Result<(String, Vec<u8>)> {
    let command = format!("cargo {}", args.join(" "));
    let out = Command::new(cargo_program())
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command,
            detail: format!("it failed ({}); see the messages above", out.status),
        });
    }
    Ok((command, out.stdout))
}

/// Runs cargo with JSON on stdout and parses it.
fn cargo_json(args: &[&str]) -> Result<serde_json::Value> {
    let (command, stdout) = cargo_stdout(args)?;
    serde_json::from_slice(&stdout).map_err(|e| Error::Command {
        command,
        detail: format!("its output is not JSON: {e}"),
    })
}

/// Runs `cargo build` and returns the staticlib/cdylib files of the package.
fn built_libraries(args: &[&str], package_id: &str) -> Result<Vec<PathBuf>> {
    let (_, stdout) = cargo_stdout(args)?;
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg.get("reason").and_then(|r| r.as_str()) != Some("compiler-artifact") {
            continue;
        }
        if msg.get("package_id").and_then(|n| n.as_str()) != Some(package_id) {
            continue;
        }
        let kinds: Vec<&str> = msg
            .pointer("/target/crate_types")
            .and_then(|k| k.as_array())
            .map(|k| k.iter().filter_map(|s| s.as_str()).collect())
            .unwrap_or_default();
        if !kinds.iter().any(|k| *k == "staticlib" || *k == "cdylib") {
            continue;
        }
        for f in msg
            .get("filenames")
            .and_then(|f| f.as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
        {
            let is_lib = [".a", ".lib", ".so", ".dylib", ".dll"]
                .iter()
                .any(|ext| f.ends_with(ext))
                && !f.ends_with(".rlib");
            if is_lib {
                files.push(PathBuf::from(f));
            }
        }
    }
    Ok(files)
}

/// The host's target triple, from `rustc -vV` (what `cargo build` builds for
/// without --target).
fn host_triple() -> Result<String> {
    let rustc = crate::store::session::Session::process(false)
        .env()
        .get(crate::env::RUSTC)
        .unwrap_or_else(|| "rustc".into());
    let failed = |detail: String| Error::Command {
        command: format!("{rustc} -vV"),
        detail,
    };
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .map_err(|e| failed(e.to_string()))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| failed("it printed no `host:` line; pass --target".into()))
}

/// The full commit hash of HEAD, if `dir` is in a git checkout.
fn git_revision(dir: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_short_hash(dir: &Path) -> Result<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(dir)
        .output();
    match out {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        _ => Err(Error::usage(
            format!(
                "cannot tag the package with a git commit: {} is not in a git repository with \
                 commits",
                dir.display()
            ),
            "give the tag explicitly with --tag TAG",
        )),
    }
}

fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    crate::files::create_dir_all(dest)?;
    let entries =
        fs::read_dir(src).map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("reading {}", src.display()), e))?;
        let path = entry.path();
        let target = dest.join(entry.file_name());
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        // Symlinks are copied as symlinks, never followed: the cache checked
        // that they point inside the package, and so they do in the copy.
        if kind.is_symlink() {
            let link = fs::read_link(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            let _ = fs::remove_file(&target);
            crate::files::symlink(&link, &target)
                .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
        } else if kind.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            fs::copy(&path, &target)
                .map_err(|e| Error::io(format!("copying {}", path.display()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(0, "blob", "blobs"), "0 blobs");
        assert_eq!(count(1, "new blob", "new blobs"), "1 new blob");
        assert_eq!(count(2, "package", "packages"), "2 packages");
    }
}
