//! Compiles the C test programs in `c/` and runs each one three ways:
//! against glibc's own malloc (the reference), under
//! `LD_PRELOAD=libptmalloc-rs.so`, and linked with `-lptmalloc-rs`.
//!
//! The library comes from `$PTMALLOC_RS_LIB` (absolute path to
//! `libptmalloc-rs.so`), or else `make -C <workspace root> lib` builds it
//! into `<root>/build/`.  Test names end in the mode (`contract_glibc`,
//! `usable_sizes_preload`, `misuse_invalid_free::linked`, ...), so e.g.
//! `cargo test -p ptmalloc-c-tests glibc` runs the reference alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use ptmalloc_c_tests::{
    c_dir, configure_env, judge, library, parse_report, provider_problem, run, summarize, tail, Mode,
    Outcome, Report, CHILD_TIMEOUT, SIGABRT,
};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    Contract,
    UsableSizes,
    Misuse,
}

impl Program {
    fn name(self) -> &'static str {
        match self {
            Program::Contract => "tst-contract",
            Program::UsableSizes => "tst-usable-sizes",
            Program::Misuse => "tst-misuse",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

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

fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-tests")
}

/// Compile PROGRAM (linked against the library if LINKED), once per process.
fn binary(program: Program, linked: bool) -> Result<&'static Path, String> {
    static BINARIES: [[OnceLock<Result<PathBuf, String>>; 2]; 3] = [
        [OnceLock::new(), OnceLock::new()],
        [OnceLock::new(), OnceLock::new()],
        [OnceLock::new(), OnceLock::new()],
    ];
    BINARIES[program.index()][usize::from(linked)]
        .get_or_init(|| compile(program, linked))
        .as_deref()
        .map_err(Clone::clone)
}

fn compile(program: Program, linked: bool) -> Result<PathBuf, String> {
    let dir = out_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let name = if linked {
        format!("{}-linked", program.name())
    } else {
        program.name().to_string()
    };
    let exe = dir.join(&name);
    // Build under a private name and rename, so that concurrent test
    // processes (e.g. nextest) never run a half-written binary.
    let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
    let src = c_dir().join(format!("{}.c", program.name()));

    let mut cmd = compiler()?.to_command();
    cmd.args(CFLAGS)
        .arg("-I")
        .arg(c_dir())
        .arg(&src)
        .arg("-o")
        .arg(&tmp);
    if linked {
        let lib = library()?;
        cmd.arg("-L")
            .arg(&lib.dir)
            .arg("-Wl,--no-as-needed")
            .arg("-lptmalloc-rs")
            .arg(format!("-Wl,-rpath,{}", lib.dir.display()));
    }
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
    fs::rename(&tmp, &exe).map_err(|e| format!("rename to {}: {e}", exe.display()))?;
    println!("[compile] {} <- {}", exe.display(), command_line(&cmd));
    Ok(exe)
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

/// Run PROGRAM with ARGS in MODE.
fn run_program(program: Program, mode: Mode, args: &[&str]) -> Result<Outcome, String> {
    let lib = if mode.is_ours() { Some(library()?) } else { None };
    let exe = binary(program, mode == Mode::Linked)?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    configure_env(&mut cmd, mode, lib);
    run(&mut cmd, CHILD_TIMEOUT).map_err(|e| format!("cannot run {}: {e}", exe.display()))
}

fn label(program: Program, args: &[&str], mode: Mode) -> String {
    let mut l = program.name().to_string();
    for a in args {
        l.push(' ');
        l.push_str(a);
    }
    format!("{l} / {}", mode.name())
}

/// Run a check program in MODE and fail the test on any problem.
fn check_program(program: Program, mode: Mode, args: &[&str]) -> Report {
    run_checked(program, mode, args).1
}

/// As `check_program`, also returning the raw outcome.
fn run_checked(program: Program, mode: Mode, args: &[&str]) -> (Outcome, Report) {
    let label = label(program, args, mode);
    let out = run_program(program, mode, args).unwrap_or_else(|e| panic!("[{label}] {e}"));
    let report = parse_report(&out.stdout);
    println!("{}", summarize(&label, &out, &report));
    let problems = judge(mode, &out, &report);
    if !problems.is_empty() {
        panic!(
            "[{label}] FAILED in {} mode:\n  - {}\n--- last lines of stdout ---\n{}\n--- stderr ---\n{}",
            mode.name(),
            problems.join("\n  - "),
            tail(&out.stdout, 25),
            tail(&out.stderr, 25)
        );
    }
    (out, report)
}

// ---------------------------------------------------------------------
// tst-contract

#[test]
fn contract_glibc() {
    let report = check_program(Program::Contract, Mode::Glibc, &[]);
    // The extension checks must be the only ones skipped against glibc.
    assert!(
        report.skip_lines.iter().all(|l| l.contains("extension")),
        "unexpected skips against glibc: {:?}",
        report.skip_lines
    );
}

#[test]
fn contract_preload() {
    let report = check_program(Program::Contract, Mode::Preload, &[]);
    assert_eq!(report.skipped, 0, "skips with extensions enabled");
}

#[test]
fn contract_linked() {
    let report = check_program(Program::Contract, Mode::Linked, &[]);
    assert_eq!(report.skipped, 0, "skips with extensions enabled");
}

// ---------------------------------------------------------------------
// tst-usable-sizes: output must be byte-identical to glibc's.

/// The data lines of one run, by pass: (pass, request) -> usable size.
type Sizes = BTreeMap<(String, u64), u64>;

fn parse_sizes(stdout: &str) -> Result<Sizes, String> {
    let mut pass = None;
    let mut sizes = Sizes::new();
    for line in stdout.lines() {
        if let Some(p) = line.strip_prefix("pass ") {
            if p == "end" {
                return Ok(sizes);
            }
            pass = Some(p.to_string());
            continue;
        }
        let pass = pass.as_ref().ok_or("data before the first `pass` line")?;
        let (n, us) = line.split_once(' ').ok_or_else(|| format!("bad line {line:?}"))?;
        let n: u64 = n.parse().map_err(|_| format!("bad line {line:?}"))?;
        let us: u64 = us.parse().map_err(|_| format!("bad line {line:?}"))?;
        sizes.insert((pass.clone(), n), us);
    }
    Err("no `pass end` line: the output was cut short".to_string())
}

fn glibc_usable_sizes() -> &'static (String, Sizes) {
    static REF: OnceLock<(String, Sizes)> = OnceLock::new();
    REF.get_or_init(|| {
        let (out, report) = run_checked(Program::UsableSizes, Mode::Glibc, &[]);
        assert_eq!(report.passed, 2);
        let sizes = parse_sizes(&out.stdout).unwrap_or_else(|e| panic!("[tst-usable-sizes / glibc] {e}"));
        (data_part(&out.stdout), sizes)
    })
}

/// Everything up to and including `pass end`.
fn data_part(stdout: &str) -> String {
    match stdout.find("pass end\n") {
        Some(i) => stdout[..i + "pass end\n".len()].to_string(),
        None => stdout.to_string(),
    }
}

#[test]
fn usable_sizes_glibc() {
    let (_, sizes) = glibc_usable_sizes();
    let free = |n: u64| sizes.get(&("free".to_string(), n)).copied();
    assert_eq!(free(0), Some(24));
    assert_eq!(free(24), Some(24));
    assert_eq!(free(25), Some(40));
    assert_eq!(free(1032), Some(1032));
    assert_eq!(free(1033), Some(1048));
    assert_eq!(sizes.len(), 140_001 + 4_097);
    println!(
        "[tst-usable-sizes / glibc] {} sizes recorded (sanity values match)",
        sizes.len()
    );
}

fn usable_sizes_match(mode: Mode) {
    let (ref_data, ref_sizes) = glibc_usable_sizes();
    let label = label(Program::UsableSizes, &[], mode);
    let out = run_program(Program::UsableSizes, mode, &[]).unwrap_or_else(|e| panic!("[{label}] {e}"));
    let report = parse_report(&out.stdout);
    println!("{}", summarize(&label, &out, &report));
    let mut problems = judge(mode, &out, &report);

    let data = data_part(&out.stdout);
    if &data == ref_data {
        println!(
            "[{label}] output byte-identical to glibc ({} sizes)",
            ref_sizes.len()
        );
    } else {
        match parse_sizes(&out.stdout) {
            Err(e) => problems.push(format!("output differs from glibc's: {e}")),
            Ok(sizes) => problems.push(describe_size_diffs(ref_sizes, &sizes, mode)),
        }
    }
    if !problems.is_empty() {
        panic!(
            "[{label}] FAILED in {} mode:\n  - {}\n--- stderr ---\n{}",
            mode.name(),
            problems.join("\n  - "),
            tail(&out.stderr, 25)
        );
    }
}

fn describe_size_diffs(want: &Sizes, got: &Sizes, mode: Mode) -> String {
    let mut diffs = Vec::new();
    let mut count = 0usize;
    for (key, w) in want {
        let g = got.get(key);
        if g != Some(w) {
            count += 1;
            if diffs.len() < 20 {
                let g = g.map_or("missing".to_string(), |g| g.to_string());
                diffs.push(format!(
                    "pass {} n={}: glibc {w}, {} {g}",
                    key.0,
                    key.1,
                    mode.name()
                ));
            }
        }
    }
    let extra = got.keys().filter(|k| !want.contains_key(k)).count();
    format!(
        "usable sizes differ from glibc for {count} request(s){}; first {}:\n      {}",
        if extra > 0 {
            format!(" (and {extra} extra lines)")
        } else {
            String::new()
        },
        diffs.len(),
        diffs.join("\n      ")
    )
}

#[test]
fn usable_sizes_preload() {
    usable_sizes_match(Mode::Preload);
}

#[test]
fn usable_sizes_linked() {
    usable_sizes_match(Mode::Linked);
}

// ---------------------------------------------------------------------
// tst-misuse: each case in its own process; abort cases must die by
// SIGABRT with glibc's message on stderr.

/// Every case, with the message glibc 2.36 prints (None: no abort).
const MISUSE_CASES: &[(&str, Option<&str>)] = &[
    (
        "double-free-tcache",
        Some("free(): double free detected in tcache 2"),
    ),
    ("double-free-fastbin", Some("double free or corruption (fasttop)")),
    ("double-free-normal", Some("double free or corruption (!prev)")),
    ("double-free-top", Some("double free or corruption (top)")),
    ("invalid-free", Some("free(): invalid pointer")),
    ("invalid-free-misaligned", Some("free(): invalid pointer")),
    ("invalid-free-stack", Some("free(): invalid pointer")),
    ("corrupt-size", Some("free(): invalid size")),
    ("corrupt-next-size-fast", Some("free(): invalid next size (fast)")),
    (
        "corrupt-next-size-normal",
        Some("free(): invalid next size (normal)"),
    ),
    ("munmap-invalid", Some("munmap_chunk(): invalid pointer")),
    ("realloc-invalid", Some("realloc(): invalid pointer")),
    ("huge", None),
];

fn expected_message(case: &str) -> Option<&'static str> {
    MISUSE_CASES
        .iter()
        .find(|(name, _)| *name == case)
        .unwrap_or_else(|| panic!("unknown misuse case {case}"))
        .1
}

/// The message line glibc printed for CASE (checked against the table).
fn glibc_message(case: &str, expected: &str) -> String {
    let label = label(Program::Misuse, &[case], Mode::Glibc);
    let out = run_program(Program::Misuse, Mode::Glibc, &[case]).unwrap_or_else(|e| panic!("[{label}] {e}"));
    if out.signal() != Some(SIGABRT) {
        panic!(
            "[{label}] glibc did not abort: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.describe(),
            tail(&out.stdout, 20),
            tail(&out.stderr, 20)
        );
    }
    if let Some(p) = provider_problem(Mode::Glibc, parse_report(&out.stdout).provider.as_deref()) {
        panic!("[{label}] {p}");
    }
    let line = out
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        line, expected,
        "[{label}] glibc printed a different message than the table says"
    );
    line
}

fn misuse(case: &str, mode: Mode) {
    let label = label(Program::Misuse, &[case], mode);
    let Some(expected) = expected_message(case) else {
        check_program(Program::Misuse, mode, &[case]);
        return;
    };
    let reference = glibc_message(case, expected);
    if mode == Mode::Glibc {
        println!("[{label}] SIGABRT with \"{reference}\"");
        return;
    }
    let out = run_program(Program::Misuse, mode, &[case]).unwrap_or_else(|e| panic!("[{label}] {e}"));
    let mut problems = Vec::new();
    // Without this, a preload that silently did not take effect would pass:
    // glibc prints the very same message.
    let provider = parse_report(&out.stdout).provider;
    if let Some(p) = provider_problem(mode, provider.as_deref()) {
        problems.push(p);
    }
    if out.signal() != Some(SIGABRT) {
        problems.push(format!("expected death by SIGABRT, but it {}", out.describe()));
    }
    if !out.stderr.lines().any(|l| l == reference) {
        problems.push(format!(
            "stderr lacks glibc's line \"{reference}\" (expected text \"{expected}\")"
        ));
    }
    if out.stdout.lines().any(|l| l.starts_with("FAIL: setup")) {
        problems.push("the case's setup did not hold (see stdout)".to_string());
    }
    if problems.is_empty() {
        println!("[{label}] SIGABRT with \"{reference}\" as glibc");
        return;
    }
    panic!(
        "[{label}] FAILED in {} mode:\n  - {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        mode.name(),
        problems.join("\n  - "),
        tail(&out.stdout, 20),
        tail(&out.stderr, 20)
    );
}

#[test]
fn misuse_case_list_matches_program() {
    let exe = binary(Program::Misuse, false).unwrap_or_else(|e| panic!("{e}"));
    let out = run(Command::new(exe).arg("--list"), CHILD_TIMEOUT).expect("run --list");
    assert!(out.success(), "tst-misuse --list {}", out.describe());
    let listed: Vec<&str> = out.stdout.lines().collect();
    let table: Vec<&str> = MISUSE_CASES.iter().map(|(name, _)| *name).collect();
    assert_eq!(listed, table, "tst-misuse.c and MISUSE_CASES disagree");
}

macro_rules! misuse_tests {
    ($($module:ident => $case:literal,)*) => {
        $(
            mod $module {
                use super::{misuse, Mode};

                #[test]
                fn glibc() {
                    misuse($case, Mode::Glibc);
                }

                #[test]
                fn preload() {
                    misuse($case, Mode::Preload);
                }

                #[test]
                fn linked() {
                    misuse($case, Mode::Linked);
                }
            }
        )*
    };
}

misuse_tests! {
    misuse_double_free_tcache => "double-free-tcache",
    misuse_double_free_fastbin => "double-free-fastbin",
    misuse_double_free_normal => "double-free-normal",
    misuse_double_free_top => "double-free-top",
    misuse_invalid_free => "invalid-free",
    misuse_invalid_free_misaligned => "invalid-free-misaligned",
    misuse_invalid_free_stack => "invalid-free-stack",
    misuse_corrupt_size => "corrupt-size",
    misuse_corrupt_next_size_fast => "corrupt-next-size-fast",
    misuse_corrupt_next_size_normal => "corrupt-next-size-normal",
    misuse_munmap_invalid => "munmap-invalid",
    misuse_realloc_invalid => "realloc-invalid",
    misuse_huge => "huge",
}
