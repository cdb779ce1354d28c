//! Compiling the C programs of `c/` for the test files (`suite.rs`,
//! `hardening.rs`): the flags, the compiler from the `cc` crate, and the
//! build of a plain or a library-linked binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ptmalloc_c_tests::{c_dir, library, run};

const COMPILE_TIMEOUT: Duration = Duration::from_secs(180);

/// Flags for every program (cc adds its own -O/-g/-fPIC/-m64 as well).
const CFLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-O1",
    "-g",
    // Let every allocator call really happen: with builtins GCC may drop
    // malloc/free pairs and assumes, e.g., that posix_memalign never
    // writes errno.
    "-fno-builtin",
    "-pthread",
];

fn compiler() -> Result<&'static cc::Tool, String> {
    static TOOL: OnceLock<Result<cc::Tool, String>> = OnceLock::new();
    TOOL.get_or_init(|| {
        cc::Build::new()
            .target(env!("PTMALLOC_C_TESTS_TARGET"))
            .host(env!("PTMALLOC_C_TESTS_HOST"))
            .opt_level(1)
            .debug(true)
            // (not `.warnings(false)`: that adds -w, which silences -Werror)
            .cargo_metadata(false)
            .try_get_compiler()
            .map_err(|e| format!("no C compiler: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Where the binaries go.
pub fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-tests")
}

/// Compile `c/<STEM>.c` into `<out_dir>/<STEM>`, or, if LINKED, into
/// `<STEM>-linked` linked with `-lptmalloc-rs` (and an rpath to it).
pub fn compile(stem: &str, linked: bool) -> Result<PathBuf, String> {
    let name = if linked {
        format!("{stem}-linked")
    } else {
        stem.to_string()
    };
    let exe = out_dir().join(&name);
    let mut extra = Vec::new();
    if linked {
        let lib = library()?;
        extra.push(format!("-L{}", lib.dir.display()));
        extra.push("-Wl,--no-as-needed".to_string());
        extra.push("-lptmalloc-rs".to_string());
        extra.push(format!("-Wl,-rpath,{}", lib.dir.display()));
    }
    build(stem, &exe, &extra)
}

/// Compile `c/<STEM>.c` into OUTPUT with CFLAGS, then EXTRA.
pub fn build(stem: &str, output: &Path, extra: &[impl AsRef<std::ffi::OsStr>]) -> Result<PathBuf, String> {
    let dir = out_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let name = output
        .file_name()
        .map_or_else(|| stem.to_string(), |n| n.to_string_lossy().into_owned());
    // Build under a private name and rename, so that concurrent test
    // processes (e.g. nextest) never run a half-written binary.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let src = c_dir().join(format!("{stem}.c"));

    let mut cmd = compiler()?.to_command();
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(c_dir())
        .arg(&src)
        .arg("-o")
        .arg(&tmp)
        .args(extra);
    let out = run(&mut cmd, COMPILE_TIMEOUT).map_err(|e| format!("cannot run the compiler: {e}"))?;
    if !out.success() {
        let _ = fs::remove_file(&tmp);
        return Err(format!(
            "compiling {} failed ({}):\n{}\n{}{}",
            src.display(),
            out.describe(),
            command_line(&cmd),
            out.stdout,
            out.stderr
        ));
    }
    fs::rename(&tmp, output).map_err(|e| format!("rename to {}: {e}", output.display()))?;
    println!("[compile] {} <- {}", output.display(), command_line(&cmd));
    Ok(output.to_path_buf())
}

/// The program and arguments of CMD (its Debug form also lists the environment).
fn command_line(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}
