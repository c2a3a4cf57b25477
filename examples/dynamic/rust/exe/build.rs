//! Fetches the shared library published from `../lib` and links it.
//!
//! The reference comes from `OCIPKG_DYNAMIC_EXAMPLE_REF`, default
//! `localhost:5000/ocipkg/dynamic-example:latest`.
//!
//! `install_dylibs(true)` copies the library next to the binary in
//! `target/<profile>/` and gives the binary an rpath of its own directory,
//! so it runs with no environment variables, from `cargo run` and after
//! being copied anywhere together with the library.

const DEFAULT_REF: &str = "localhost:5000/ocipkg/dynamic-example:latest";

fn main() {
    println!("cargo:rerun-if-env-changed=OCIPKG_DYNAMIC_EXAMPLE_REF");
    let reference =
        std::env::var("OCIPKG_DYNAMIC_EXAMPLE_REF").unwrap_or_else(|_| DEFAULT_REF.to_string());
    if let Err(e) = ocipkg::Linker::new().install_dylibs(true).link(&reference) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
