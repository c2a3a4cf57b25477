//! Calls functions of a static library that build.rs pulled from a registry.

extern "C" {
    fn ocipkg_static_example_multiply(a: u32, b: u32) -> u32;
    fn ocipkg_static_example_digits(n: u64) -> u32;
}

fn main() {
    // SAFETY: pure functions of integers, linked by build.rs.
    let (answer, digits) = unsafe {
        (
            ocipkg_static_example_multiply(6, 7),
            ocipkg_static_example_digits(1_000_000),
        )
    };
    println!("6 * 7 = {answer} (computed by the library from the registry)");
    println!("1000000 has {digits} digits");
}
