//! The checked-in header is what cbindgen makes of this crate, and it
//! compiles alone and beside the system headers, as C and C++.
//! `PTMALLOC_RS_BLESS=1` rewrites it (that is what `make header` does).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn header_path() -> PathBuf {
    root().join("include/ptmalloc-rs/ptmalloc.h")
}

fn generate() -> String {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(Path::new(crate_dir).join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen runs")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn header_is_current() {
    let fresh = generate();
    let path = header_path();
    if std::env::var_os("PTMALLOC_RS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/ptmalloc-rs/ptmalloc.h is stale: run `make header`"
    );
    for name in [
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "memalign",
        "aligned_alloc",
        "posix_memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "free_sized",
        "free_aligned_sized",
        "mallopt",
        "mallinfo",
        "mallinfo2",
        "malloc_trim",
        "malloc_stats",
        "malloc_info",
    ] {
        let declared = fresh.contains(&format!(" {name}(")) || fresh.contains(&format!("*{name}("));
        assert!(declared, "header lacks {name}");
    }
    println!("header current and complete");
}

#[test]
fn header_compiles_with_system_headers_in_any_order() {
    let dir = std::env::temp_dir().join(format!("ptm-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let include = root().join("include");
    let orders: [&[&str]; 5] = [
        &["ptmalloc-rs/ptmalloc.h"],
        &["ptmalloc-rs/ptmalloc.h", "malloc.h", "stdlib.h"],
        &["malloc.h", "stdlib.h", "ptmalloc-rs/ptmalloc.h"],
        &["stdlib.h", "ptmalloc-rs/ptmalloc.h", "malloc.h"],
        &["ptmalloc.h"],
    ];
    let mut n = 0;
    for (i, headers) in orders.iter().enumerate() {
        let mut src: String = headers.iter().map(|h| format!("#include <{h}>\n")).collect();
        src.push_str(
            "int main(void) {\n  struct mallinfo2 mi = mallinfo2();\n  void *p = malloc(M_MXFAST);\n  \
             free_sized(p, 1);\n  return (int)mi.arena * 0 + mallopt(M_PERTURB, 0) - 1;\n}\n",
        );
        for (compiler, ext, std) in [("cc", "c", "-std=c11"), ("c++", "cc", "-std=c++17")] {
            let file = dir.join(format!("t{i}.{ext}"));
            std::fs::write(&file, &src).unwrap();
            let mut cmd = Command::new(compiler);
            cmd.args([std, "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
                .arg("-I")
                .arg(&include);
            cmd.arg("-I").arg(include.join("ptmalloc-rs")).arg(&file);
            let out = cmd.output().expect("a C compiler");
            assert!(
                out.status.success(),
                "{compiler} {headers:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    println!("{n} header compilations (C and C++, every include order) passed");
}
