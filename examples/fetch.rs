//! Fetches a package into the cache through the consumer API, as a build
//! script does (`ocipkg::Linker::fetch`), and prints where it landed.
//!
//! ```sh
//! cargo run --example fetch -- ghcr.io/org/libfoo:1.2
//! ```
//!
//! Built without features it decodes zstd layers with the pure-Rust decoder
//! every -sys crate's build script compiles; `benches/peer.rs` times it next
//! to `ocipkg pull` (which has libzstd).

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(reference) = std::env::args().nth(1) else {
        eprintln!("usage: fetch REFERENCE   (for example ghcr.io/org/libfoo:1.2)");
        return ExitCode::from(2);
    };
    match ocipkg::Linker::new().fetch(&reference) {
        Ok(fetched) => {
            for warning in &fetched.warnings {
                eprintln!("warning: {warning}");
            }
            println!("{} {}", fetched.manifest_digest, fetched.root.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
