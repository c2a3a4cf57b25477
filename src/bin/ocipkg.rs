//! `ocipkg`: pack, push and pull prebuilt libraries as OCI artifacts.
fn main() -> std::process::ExitCode {
    ocipkg::cli::ocipkg_main()
}
