//! Fetches the static library published from `../lib`, compiles a C file
//! against the header the package ships in `include/`, and links both.
//!
//! The reference comes from `OCIPKG_STATIC_EXAMPLE_REF`, default
//! `localhost:5000/ocipkg/static-example:latest`.

const DEFAULT_REF: &str = "localhost:5000/ocipkg/static-example:latest";

fn main() {
    println!("cargo:rerun-if-env-changed=OCIPKG_STATIC_EXAMPLE_REF");
    println!("cargo:rerun-if-changed=src/answer.c");
    let reference =
        std::env::var("OCIPKG_STATIC_EXAMPLE_REF").unwrap_or_else(|_| DEFAULT_REF.to_string());
    // Quiet: the package's link lines are printed after the C code's, so the
    // linker sees the library after the code that calls it.
    let package = match ocipkg::Linker::new().quiet(true).link(&reference) {
        Ok(package) => package,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    cc::Build::new()
        .file("src/answer.c")
        .include(package.include_dir())
        .compile("answer");
    for directive in package.directives() {
        println!("{directive}");
    }
}
