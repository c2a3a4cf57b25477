//! Calls a function of a shared library that build.rs pulled from a registry.

extern "C" {
    fn ocipkg_dynamic_example_sum_of_squares(a: u32, b: u32) -> u32;
}

fn main() {
    // SAFETY: a pure function of two integers, linked by build.rs.
    let answer = unsafe { ocipkg_dynamic_example_sum_of_squares(3, 4) };
    println!("3² + 4² = {answer} (computed by the shared library from the registry)");
}
