//! Calls a static library that build.rs pulled from a registry, directly and
//! through C code compiled against the header the package ships.

extern "C" {
    fn ocipkg_static_example_digits(n: u64) -> u32;
    /// In src/answer.c, which calls the library through its C header.
    fn ocipkg_example_answer() -> u32;
}

fn main() {
    // SAFETY: pure functions of integers, linked by build.rs.
    let (answer, digits) = unsafe {
        (
            ocipkg_example_answer(),
            ocipkg_static_example_digits(1_000_000),
        )
    };
    println!("6 * 7 = {answer} (computed by the library from the registry)");
    println!("1000000 has {digits} digits");
}
