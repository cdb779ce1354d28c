//! Gives the shared object its soname, derived from the crate version (the
//! one place the version lives): `libptmalloc-rs.so.<major>`.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libptmalloc-rs.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
