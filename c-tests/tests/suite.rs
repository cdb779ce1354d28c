//! Compiles the C test programs in `c/` and runs each one three ways:
//! against glibc's own malloc (the reference), under
//! `LD_PRELOAD=libptmalloc-rs.so`, and linked with `-lptmalloc-rs`.
//!
//! The library comes from `$PTMALLOC_RS_LIB` (absolute path to
//! `libptmalloc-rs.so`), or else `make -C <workspace root> lib` builds it
//! into `<root>/build/`.  Test names end in the mode (`contract_glibc`,
//! `usable_sizes_preload`, `arena_stress::linked`, ...), so e.g.
//! `cargo test -p ptmalloc-c-tests glibc` runs the reference alone.
//! The misuse cases and the exploitation techniques run in
//! `tests/hardening.rs`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{build, compile, out_dir};
use ptmalloc_c_tests::{
    configure_env, judge, library, parse_report, run, summarize, tail, Mode, Outcome, Report, CHILD_TIMEOUT,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Program {
    Contract,
    UsableSizes,
    MallocForkDeadlock,
    Mallocfork2,
    ThreadExitTcache,
    EarlyInit,
    MallocStatsThreads,
    Placement,
    Tunables,
    TrimRss,
    CheckAction,
    AllocFailThreads,
    FreeErrno,
    AlignedOverflow,
    ArenaStress,
    ArenaAccounting,
}

impl Program {
    /// Every program, in declaration order.
    const ALL: [Program; 16] = [
        Program::Contract,
        Program::UsableSizes,
        Program::MallocForkDeadlock,
        Program::Mallocfork2,
        Program::ThreadExitTcache,
        Program::EarlyInit,
        Program::MallocStatsThreads,
        Program::Placement,
        Program::Tunables,
        Program::TrimRss,
        Program::CheckAction,
        Program::AllocFailThreads,
        Program::FreeErrno,
        Program::AlignedOverflow,
        Program::ArenaStress,
        Program::ArenaAccounting,
    ];

    fn name(self) -> &'static str {
        match self {
            Program::Contract => "tst-contract",
            Program::UsableSizes => "tst-usable-sizes",
            Program::MallocForkDeadlock => "tst-malloc-fork-deadlock",
            Program::Mallocfork2 => "tst-mallocfork2",
            Program::ThreadExitTcache => "tst-thread-exit-tcache",
            Program::EarlyInit => "tst-early-init",
            Program::MallocStatsThreads => "tst-malloc-stats-threads",
            Program::Placement => "tst-placement",
            Program::Tunables => "tst-tunables",
            Program::TrimRss => "tst-trim-rss",
            Program::CheckAction => "tst-check-action",
            Program::AllocFailThreads => "tst-alloc-fail-threads",
            Program::FreeErrno => "tst-free-errno",
            Program::AlignedOverflow => "tst-aligned-overflow",
            Program::ArenaStress => "tst-arena-stress",
            Program::ArenaAccounting => "tst-arena-accounting",
        }
    }

    /// A shared object the program dlopens: the stem of its source in
    /// `c/` (built with -shared into `<stem>.so`) and the environment
    /// variable that hands its path to the program.
    fn module(self) -> Option<(&'static str, &'static str)> {
        match self {
            Program::EarlyInit => Some(("tst-early-init-mod", "TST_EARLY_INIT_MOD")),
            _ => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Compile PROGRAM (linked against the library if LINKED), once per process.
fn binary(program: Program, linked: bool) -> Result<&'static Path, String> {
    static BINARIES: [[OnceLock<Result<PathBuf, String>>; 2]; Program::ALL.len()] =
        [const { [const { OnceLock::new() }; 2] }; Program::ALL.len()];
    BINARIES[program.index()][usize::from(linked)]
        .get_or_init(|| compile(program.name(), linked))
        .as_deref()
        .map_err(Clone::clone)
}

/// Build PROGRAM's shared object (see `Program::module`), once per process.
fn module(program: Program) -> Result<Option<(&'static Path, &'static str)>, String> {
    static MODULES: [OnceLock<Result<PathBuf, String>>; Program::ALL.len()] =
        [const { OnceLock::new() }; Program::ALL.len()];
    let Some((stem, var)) = program.module() else {
        return Ok(None);
    };
    let path = MODULES[program.index()]
        .get_or_init(|| {
            let so = out_dir().join(format!("{stem}.so"));
            build(stem, &so, &["-shared"])
        })
        .as_deref()
        .map_err(Clone::clone)?;
    Ok(Some((path, var)))
}

/// Run PROGRAM with ARGS in MODE.
fn run_program(program: Program, mode: Mode, args: &[&str]) -> Result<Outcome, String> {
    run_program_env(program, mode, args, &[])
}

/// Run PROGRAM with ARGS in MODE, with extra environment variables.
fn run_program_env(
    program: Program,
    mode: Mode,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Outcome, String> {
    let lib = if mode.is_ours() { Some(library()?) } else { None };
    let exe = binary(program, mode == Mode::Linked)?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    configure_env(&mut cmd, mode, lib);
    cmd.envs(env.iter().copied());
    if let Some((so, var)) = module(program)? {
        cmd.env(var, so);
    }
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

#[test]
fn program_table_is_in_declaration_order() {
    for (i, program) in Program::ALL.iter().enumerate() {
        assert_eq!(program.index(), i, "Program::ALL is out of order at {program:?}");
    }
}

// ---------------------------------------------------------------------
// Threads, arenas, fork, early initialisation and statistics: programs
// whose only skips against glibc are their extension checks, all of
// which run (so nothing is skipped) in our modes.

fn check_with_extensions(program: Program, mode: Mode) {
    let report = check_program(program, mode, &[]);
    let label = label(program, &[], mode);
    if mode.is_ours() {
        assert_eq!(
            report.skipped, 0,
            "[{label}] skips with extensions enabled: {:?}",
            report.skip_lines
        );
    } else {
        assert!(
            report.skip_lines.iter().all(|l| l.contains("extension")),
            "[{label}] unexpected skips against glibc: {:?}",
            report.skip_lines
        );
    }
}

macro_rules! program_tests {
    ($($module:ident => $program:expr,)*) => {
        $(
            mod $module {
                use super::{check_with_extensions, Mode, Program};

                #[test]
                fn glibc() {
                    check_with_extensions($program, Mode::Glibc);
                }

                #[test]
                fn preload() {
                    check_with_extensions($program, Mode::Preload);
                }

                #[test]
                fn linked() {
                    check_with_extensions($program, Mode::Linked);
                }
            }
        )*
    };
}

program_tests! {
    malloc_fork_deadlock => Program::MallocForkDeadlock,
    mallocfork2 => Program::Mallocfork2,
    thread_exit_tcache => Program::ThreadExitTcache,
    early_init => Program::EarlyInit,
    malloc_stats_threads => Program::MallocStatsThreads,
    alloc_fail_threads => Program::AllocFailThreads,
    aligned_overflow => Program::AlignedOverflow,
    arena_stress => Program::ArenaStress,
    arena_accounting => Program::ArenaAccounting,
}

// ---------------------------------------------------------------------
// tst-free-errno: free preserves errno, also when its munmap fails (at
// vm.max_map_count). The munmap-failure group may skip where the kernel
// does not cooperate; it must then skip in every mode alike.

const FREE_ERRNO_SKIP: &str = "skip: free preserves errno when munmap fails: ";

fn free_errno(mode: Mode) {
    let report = check_program(Program::FreeErrno, mode, &[]);
    assert!(
        report.skip_lines.iter().all(|l| l.starts_with(FREE_ERRNO_SKIP)),
        "[tst-free-errno / {}] unexpected skips: {:?}",
        mode.name(),
        report.skip_lines
    );
    if !report.skip_lines.is_empty() {
        println!(
            "[tst-free-errno / {}] the munmap-failure case did not run here: {:?}",
            mode.name(),
            report.skip_lines
        );
    }
}

#[test]
fn free_errno_glibc() {
    free_errno(Mode::Glibc);
}

#[test]
fn free_errno_preload() {
    free_errno(Mode::Preload);
}

#[test]
fn free_errno_linked() {
    free_errno(Mode::Linked);
}

// ---------------------------------------------------------------------
// tst-placement: a 200000-step trace of every call, with malloc_info and
// malloc_stats at the end. Our output must be byte-identical to glibc's:
// same offsets from the heap start, usable sizes, trim results, statistics.

fn run_ok(program: Program, mode: Mode, args: &[&str], env: &[(&str, &str)]) -> String {
    let label = format!("{} {env:?}", label(program, args, mode));
    let out = run_program_env(program, mode, args, env).unwrap_or_else(|e| panic!("[{label}] {e}"));
    assert!(
        out.success(),
        "[{label}] {}\n{}\n{}",
        out.describe(),
        tail(&out.stdout, 10),
        tail(&out.stderr, 10)
    );
    out.stdout
}

fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}: glibc {w:?}, ours {g:?}", i + 1);
        }
    }
    format!(
        "lengths differ: glibc {} lines, ours {}",
        want.lines().count(),
        got.lines().count()
    )
}

fn glibc_placement() -> &'static str {
    static OUT: OnceLock<String> = OnceLock::new();
    OUT.get_or_init(|| run_ok(Program::Placement, Mode::Glibc, &[], &[]))
}

fn placement_matches(mode: Mode) {
    let want = glibc_placement();
    let got = run_ok(Program::Placement, mode, &[], &[]);
    assert!(
        want == got,
        "placement differs from glibc in {} mode: {}",
        mode.name(),
        first_difference(want, &got)
    );
    println!(
        "tst-placement / {}: {} lines identical to glibc",
        mode.name(),
        got.lines().count()
    );
}

#[test]
fn placement_glibc() {
    let out = glibc_placement();
    assert!(
        out.contains("</malloc>") && out.contains("Total (incl. mmap):"),
        "statistics missing"
    );
}

#[test]
fn placement_preload() {
    placement_matches(Mode::Preload);
}

#[test]
fn placement_linked() {
    placement_matches(Mode::Linked);
}

// ---------------------------------------------------------------------
// tst-tunables: each knob, set through GLIBC_TUNABLES, its legacy variable
// or mallopt, changes behaviour exactly as it does in glibc; a bad value
// behaves as glibc reads it.

/// Environment, arguments, and whether the output must differ from the default.
type TunableCase = (
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    bool,
);

const TUNABLE_CASES: &[TunableCase] = &[
    (&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")], &[], true),
    (&[("GLIBC_TUNABLES", "glibc.malloc.tcache_max=64")], &[], true),
    (&[("GLIBC_TUNABLES", "glibc.malloc.mxfast=0")], &[], true),
    (
        &[("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")],
        &[],
        true,
    ),
    (&[("MALLOC_MMAP_THRESHOLD_", "4000000")], &[], true),
    (&[("MALLOC_MMAP_MAX_", "0")], &[], true),
    (&[("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")], &[], true),
    (&[("MALLOC_TOP_PAD_", "0")], &[], true),
    (&[("GLIBC_TUNABLES", "glibc.malloc.top_pad=0x10000")], &[], true),
    (&[("MALLOC_TRIM_THRESHOLD_", "67108864")], &[], true),
    (
        &[("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=67108864")],
        &[],
        true,
    ),
    (&[("MALLOC_PERTURB_", "85")], &[], true),
    (&[("GLIBC_TUNABLES", "glibc.malloc.perturb=0x55")], &[], true),
    (&[], &["mallopt:1=0"], true),
    (&[], &["mallopt:-1=67108864"], true),
    (&[], &["mallopt:-2=0"], true),
    (&[], &["mallopt:-3=1048576"], true),
    (&[], &["mallopt:-4=0"], true),
    (&[], &["mallopt:-6=85"], true),
    // Out of glibc's range: ignored.
    (&[("MALLOC_PERTURB_", "300")], &[], false),
    (&[("GLIBC_TUNABLES", "glibc.malloc.mxfast=999")], &[], false),
    (&[("GLIBC_TUNABLES", "glibc.malloc.perturb=300")], &[], false),
    (&[], &["mallopt:1=161"], false),
    // Text glibc reads as a number prefix (here, 0 and 12).
    (&[("MALLOC_TOP_PAD_", "abc")], &[], true),
    (&[("MALLOC_TOP_PAD_", "12abc")], &[], true),
];

/// Keep only the observation lines (mallopt's own report line differs in
/// content between the default run and a mallopt run by construction).
fn observations(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("mallopt("))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tunables(mode: Mode) {
    let default = observations(&run_ok(Program::Tunables, Mode::Glibc, &[], &[]));
    let mut checked = 0;
    for (env, args, changes) in TUNABLE_CASES {
        let want = run_ok(Program::Tunables, Mode::Glibc, args, env);
        let got = if mode == Mode::Glibc {
            want.clone()
        } else {
            run_ok(Program::Tunables, mode, args, env)
        };
        assert!(
            want == got,
            "{env:?} {args:?} in {} mode: {}",
            mode.name(),
            first_difference(&want, &got)
        );
        assert_eq!(
            observations(&got) != default,
            *changes,
            "{env:?} {args:?}: expected the setting to {}change behaviour",
            if *changes { "" } else { "not " }
        );
        checked += 1;
    }
    println!(
        "tst-tunables / {}: {checked} settings behave as in glibc",
        mode.name()
    );
}

#[test]
fn tunables_glibc() {
    tunables(Mode::Glibc);
}

#[test]
fn tunables_preload() {
    tunables(Mode::Preload);
}

#[test]
fn tunables_linked() {
    tunables(Mode::Linked);
}

// ---------------------------------------------------------------------
// tst-trim-rss: malloc_trim gives back at least as much as glibc's.

fn trim_drop_kib(mode: Mode) -> i64 {
    let out = run_ok(Program::TrimRss, mode, &[], &[]);
    let line = out
        .lines()
        .find(|l| l.starts_with("blocks "))
        .expect("a result line");
    let field = |name: &str| -> i64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        let i = words
            .iter()
            .position(|w| *w == name)
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        words[i + 1].parse().unwrap()
    };
    let drop = field("freed") - field("trimmed");
    println!("tst-trim-rss / {}: {line} (released {drop} KiB)", mode.name());
    drop
}

fn trim_at_least_glibc(mode: Mode) {
    static GLIBC: OnceLock<i64> = OnceLock::new();
    let glibc = *GLIBC.get_or_init(|| trim_drop_kib(Mode::Glibc));
    let ours = trim_drop_kib(mode);
    assert!(
        ours * 100 >= glibc * 98,
        "malloc_trim released {ours} KiB, glibc {glibc} KiB"
    );
}

#[test]
fn trim_rss_glibc() {
    assert!(trim_drop_kib(Mode::Glibc) > 0);
}

#[test]
fn trim_rss_preload() {
    trim_at_least_glibc(Mode::Preload);
}

#[test]
fn trim_rss_linked() {
    trim_at_least_glibc(Mode::Linked);
}

// ---------------------------------------------------------------------
// tst-check-action (EXTENSION, ours only): MALLOC_CHECK_ / M_CHECK_ACTION
// 0 and 1 let the program survive corruption; glibc 2.36 always aborts.

fn check_action(mode: Mode) {
    for (env, args, message) in [
        (&[("MALLOC_CHECK_", "0")][..], &["env"][..], false),
        (&[("MALLOC_CHECK_", "1")][..], &["env"][..], true),
        (&[][..], &["mallopt:0"][..], false),
        (&[][..], &["mallopt:1"][..], true),
    ] {
        let out = run_program_env(Program::CheckAction, mode, args, env).unwrap();
        let label = format!("tst-check-action {env:?} {args:?} / {}", mode.name());
        assert!(
            out.success(),
            "[{label}] {}\n{}\n{}",
            out.describe(),
            out.stdout,
            out.stderr
        );
        assert_eq!(
            out.stderr.contains("free(): double free detected in tcache 2"),
            message,
            "[{label}] message expected: {message}; stderr: {}",
            out.stderr
        );
        println!("{}", summarize(&label, &out, &parse_report(&out.stdout)));
    }
}

#[test]
fn check_action_preload() {
    check_action(Mode::Preload);
}

#[test]
fn check_action_linked() {
    check_action(Mode::Linked);
}
