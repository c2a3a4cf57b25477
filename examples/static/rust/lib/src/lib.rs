//! A tiny C-ABI library, built as a `staticlib` and published as an OCI
//! package with `cargo ocipkg publish`.

/// The answer, computed by the library: `a * b`, wrapping on overflow.
#[no_mangle]
pub extern "C" fn ocipkg_static_example_multiply(a: u32, b: u32) -> u32 {
    a.wrapping_mul(b)
}

/// How many decimal digits `n` has; uses `std` (formatting, allocation) to
/// show that a Rust staticlib's own copy of std links into a Rust binary.
#[no_mangle]
pub extern "C" fn ocipkg_static_example_digits(n: u64) -> u32 {
    n.to_string().len() as u32
}
