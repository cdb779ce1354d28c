//! Hands the target and host triples to the test harness, which compiles
//! the C programs with the `cc` crate at test time (when cargo no longer
//! sets `TARGET`/`HOST` in the environment).

fn main() {
    for var in ["TARGET", "HOST"] {
        let value = std::env::var(var).unwrap_or_else(|_| panic!("cargo did not set {var}"));
        println!("cargo:rustc-env=PTMALLOC_C_TESTS_{var}={value}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
