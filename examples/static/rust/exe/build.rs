//! Fetches the static library published from `../lib` and links it.
//!
//! The reference comes from `OCIPKG_STATIC_EXAMPLE_REF`, default
//! `localhost:5000/ocipkg/static-example:latest`.

const DEFAULT_REF: &str = "localhost:5000/ocipkg/static-example:latest";

fn main() {
    println!("cargo:rerun-if-env-changed=OCIPKG_STATIC_EXAMPLE_REF");
    let reference =
        std::env::var("OCIPKG_STATIC_EXAMPLE_REF").unwrap_or_else(|_| DEFAULT_REF.to_string());
    if let Err(e) = ocipkg::link_package(&reference) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
