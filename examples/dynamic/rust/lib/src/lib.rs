//! A tiny C-ABI shared library, built as a `cdylib` and published as an OCI
//! package with `cargo ocipkg publish`.

/// The sum of the squares of `a` and `b`, computed by the shared library.
#[no_mangle]
pub extern "C" fn ocipkg_dynamic_example_sum_of_squares(a: u32, b: u32) -> u32 {
    a.wrapping_mul(a).wrapping_add(b.wrapping_mul(b))
}
