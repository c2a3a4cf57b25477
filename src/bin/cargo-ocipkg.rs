//! `cargo ocipkg build|publish`: build a Cargo package's library and publish it.
fn main() -> std::process::ExitCode {
    ocipkg::cli::cargo_ocipkg_main()
}
