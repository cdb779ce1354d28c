//! Signature compile check: `c/abi-signatures.c` (C11) and
//! `c/abi-signatures.cc` (C++17) include <malloc.h>, <stdlib.h> and
//! `include/ptmalloc-rs/ptmalloc.h` (in opposite orders) and store the
//! address of every exported function in a pointer of glibc's exact type.
//! Both are compiled with -Wall -Wextra -Werror, linked with -lptmalloc-rs
//! and run (every pointer must be non-null).

use std::path::Path;
use std::process::Command;

use ptmalloc_c_tests::{c_dir, library, run, workspace_root, CHILD_TIMEOUT};

fn check(cpp: bool) {
    let lib = library().unwrap_or_else(|e| panic!("{e}"));
    let (src, std, exe) = if cpp {
        ("abi-signatures.cc", "-std=c++17", "abi-signatures-cxx")
    } else {
        ("abi-signatures.c", "-std=c11", "abi-signatures-c")
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("signatures");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(exe);
    let tool = cc::Build::new()
        .target(env!("PTMALLOC_C_TESTS_TARGET"))
        .host(env!("PTMALLOC_C_TESTS_HOST"))
        .opt_level(1)
        .cpp(cpp)
        .cargo_metadata(false)
        .try_get_compiler()
        .unwrap_or_else(|e| panic!("no compiler: {e}"));
    let mut cmd = tool.to_command();
    cmd.args([std, "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(workspace_root().join("include/ptmalloc-rs"))
        .arg(c_dir().join(src))
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib.dir.display()))
        .arg("-lptmalloc-rs")
        .arg(format!("-Wl,-rpath,{}", lib.dir.display()));
    let out = run(&mut cmd, CHILD_TIMEOUT).expect("run the compiler");
    assert!(
        out.success(),
        "{src} does not compile cleanly ({}):\n{}{}",
        out.describe(),
        out.stdout,
        out.stderr
    );
    let out = run(&mut Command::new(&exe), CHILD_TIMEOUT).expect("run the program");
    println!("[{src}] {}: {}", out.describe(), out.stdout.trim());
    assert!(
        out.success(),
        "{src}: {}\n{}{}",
        out.describe(),
        out.stdout,
        out.stderr
    );
    assert_eq!(out.stdout.trim(), "19 functions, 0 null");
}

#[test]
fn c_signatures() {
    check(false);
}

#[test]
fn cxx_signatures() {
    check(true);
}
