//! Misuse and exploitation under glibc 2.36 and libptmalloc-rs.
//!
//! Two tables say what each allocator is expected to do:
//! - `MISUSE`: the cases of `c/tst-misuse.c` (double frees, frees of
//!   pointers malloc never returned, overflows, writes after free,
//!   off-by-one NUL bytes, realloc of freed blocks, impossible sizes and
//!   alignments);
//! - `TECHNIQUES`: the programs `c/tech-*.c`, each performing one
//!   published glibc 2.36 heap-exploitation technique and judging it by
//!   its goal.
//!
//! Every case runs in its own process, four ways (`Way`: glibc, and
//! libptmalloc-rs by LD_PRELOAD, linked, and by LD_PRELOAD with its
//! hardening off), and must do what its row says.  Where glibc stops a
//! misuse, libptmalloc-rs must stop it with glibc's very message; where
//! glibc does not, libptmalloc-rs stops it with one of its hardening
//! messages (`HARDENING_MESSAGES`), or the row says "not stopped" and why.
//! With `PTMALLOC_RS_HARDEN=0` libptmalloc-rs must do exactly what glibc
//! does, down to the techniques succeeding.
//! `misuse_table` and `technique_table` print both columns as they ran
//! (to the terminal, past the test harness's capture).

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use common::compile;
use ptmalloc_c_tests::{
    configure_env, judge, library, parse_report, provider_problem, run, signal_name, tail, Mode, Outcome,
    CHILD_TIMEOUT, SIGABRT,
};

/// What an allocator is expected to do with a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// It stops the program: SIGABRT, with this line on stderr.
    Stop(&'static str),
    /// glibc lets the misuse through: the call returns.
    Miss,
    /// glibc follows a forged pointer and the program dies by SIGSEGV.
    Segv,
    /// A check case: every impossible request fails cleanly (NULL or an
    /// error number) with this errno.
    Refuse(&'static str),
    /// glibc: the technique reaches its goal.
    Succeed,
    /// libptmalloc-rs does not stop this (the misuse goes through, or the
    /// technique succeeds), for the reason given.
    NotStopped(&'static str),
}

/// One misuse case: its name in `tst-misuse --list`, extra environment
/// for the run, and what glibc 2.36 and libptmalloc-rs do.
struct Misuse {
    name: &'static str,
    env: &'static [(&'static str, &'static str)],
    glibc: Expect,
    ours: Expect,
}

const fn misuse(name: &'static str, glibc: Expect, ours: Expect) -> Misuse {
    Misuse {
        name,
        env: &[],
        glibc,
        ours,
    }
}

use Expect::{Miss, NotStopped, Refuse, Segv, Stop, Succeed};

/// Where glibc stops a misuse, the second column repeats its message:
/// libptmalloc-rs must print the same line.
const MISUSE: &[Misuse] = &[
    // Double frees.
    misuse(
        "double-free-tcache",
        Stop("free(): double free detected in tcache 2"),
        Stop("free(): double free detected in tcache 2"),
    ),
    misuse(
        "double-free-fastbin",
        Stop("double free or corruption (fasttop)"),
        Stop("double free or corruption (fasttop)"),
    ),
    misuse(
        "double-free-normal",
        Stop("double free or corruption (!prev)"),
        Stop("double free or corruption (!prev)"),
    ),
    misuse(
        "double-free-top",
        Stop("double free or corruption (top)"),
        Stop("double free or corruption (top)"),
    ),
    misuse(
        "double-free-interleaved-tcache",
        Stop("free(): double free detected in tcache 2"),
        Stop("free(): double free detected in tcache 2"),
    ),
    misuse(
        "double-free-interleaved-fastbin",
        Miss,
        Stop("free(): double free detected"),
    ),
    misuse(
        "double-free-tcache-key",
        Miss,
        Stop("malloc(): corrupted tcache entry"),
    ),
    misuse(
        "double-free-large",
        Stop("double free or corruption (!prev)"),
        Stop("double free or corruption (!prev)"),
    ),
    misuse(
        "double-free-mmapped",
        Segv,
        Stop("munmap_chunk(): double free detected"),
    ),
    // Frees of pointers malloc never returned.
    misuse(
        "invalid-free",
        Stop("free(): invalid pointer"),
        Stop("free(): invalid pointer"),
    ),
    misuse(
        "invalid-free-misaligned",
        Stop("free(): invalid pointer"),
        Stop("free(): invalid pointer"),
    ),
    misuse(
        "invalid-free-stack",
        Stop("free(): invalid pointer"),
        Stop("free(): invalid pointer"),
    ),
    misuse(
        "invalid-free-stack-header",
        Miss,
        Stop("free(): invalid chunk header"),
    ),
    misuse(
        "invalid-free-interior-header",
        Miss,
        Stop("free(): invalid chunk header"),
    ),
    // Overwritten chunk headers.
    misuse(
        "corrupt-size",
        Stop("free(): invalid size"),
        Stop("free(): invalid size"),
    ),
    misuse(
        "corrupt-next-size-fast",
        Stop("free(): invalid next size (fast)"),
        Stop("free(): invalid next size (fast)"),
    ),
    misuse(
        "corrupt-next-size-normal",
        Stop("free(): invalid next size (normal)"),
        Stop("free(): invalid next size (normal)"),
    ),
    misuse(
        "munmap-invalid",
        Stop("munmap_chunk(): invalid pointer"),
        Stop("munmap_chunk(): invalid pointer"),
    ),
    misuse(
        "realloc-invalid",
        Stop("realloc(): invalid pointer"),
        Stop("realloc(): invalid pointer"),
    ),
    // Linear overflows into the next chunk's header.
    misuse(
        "overflow-next-header",
        Stop("double free or corruption (out)"),
        Stop("double free or corruption (out)"),
    ),
    misuse("overflow-next-size", Miss, Stop("free(): invalid chunk header")),
    misuse(
        "overflow-next-header-normal",
        Miss,
        Stop("free(): corrupted next chunk header"),
    ),
    // Writes after free, then malloc.
    misuse(
        "write-after-free-tcache-next",
        Stop("malloc(): unaligned tcache chunk detected"),
        Stop("malloc(): unaligned tcache chunk detected"),
    ),
    misuse(
        "write-after-free-fastbin-fd",
        Stop("malloc(): unaligned fastbin chunk detected 2"),
        Stop("malloc(): unaligned fastbin chunk detected 2"),
    ),
    misuse(
        "write-after-free-fastbin-size",
        Stop("malloc(): memory corruption (fast)"),
        Stop("malloc(): memory corruption (fast)"),
    ),
    misuse(
        "write-after-free-unsorted-bk",
        Stop("malloc(): unsorted double linked list corrupted"),
        Stop("malloc(): unsorted double linked list corrupted"),
    ),
    misuse(
        "write-after-free-smallbin-bk",
        Stop("malloc(): smallbin double linked list corrupted"),
        Stop("malloc(): smallbin double linked list corrupted"),
    ),
    misuse(
        "write-after-free-unlink",
        Stop("corrupted double-linked list"),
        Stop("corrupted double-linked list"),
    ),
    misuse(
        "overflow-top-size",
        Stop("malloc(): corrupted top size"),
        Stop("malloc(): corrupted top size"),
    ),
    misuse(
        "overflow-fastbin-size",
        Stop("malloc_consolidate(): invalid chunk size"),
        Stop("malloc_consolidate(): invalid chunk size"),
    ),
    misuse(
        "write-after-free",
        Miss,
        NotStopped("by design: freed memory is verified only with PTMALLOC_RS_FREE_CHECK=1 (next row)"),
    ),
    Misuse {
        name: "write-after-free-free-check",
        env: &[("PTMALLOC_RS_FREE_CHECK", "1")],
        glibc: Miss,
        ours: Stop("malloc(): write after free detected"),
    },
    // Off-by-one NUL bytes into the next chunk's size.
    misuse(
        "off-by-one-nul-tcache",
        Miss,
        Stop("free(): invalid chunk header"),
    ),
    misuse(
        "off-by-one-nul-consolidate",
        Segv,
        Stop("free(): invalid chunk header"),
    ),
    // realloc of a freed block.
    misuse(
        "realloc-freed-tcache",
        Miss,
        Stop("realloc(): block already freed"),
    ),
    // A chunk in the unsorted bin keeps a valid header; its successor's
    // PREV_INUSE, clear, says it is free.
    misuse(
        "realloc-freed-unsorted",
        Miss,
        Stop("realloc(): block already freed"),
    ),
    // Impossible sizes and alignments.
    misuse("huge", Refuse("ENOMEM"), Refuse("ENOMEM")),
    misuse("calloc-overflow", Refuse("ENOMEM"), Refuse("ENOMEM")),
    misuse("memalign-overflow", Refuse("ENOMEM"), Refuse("ENOMEM")),
    misuse("realloc-overflow", Refuse("ENOMEM"), Refuse("ENOMEM")),
    misuse("bad-alignment", Refuse("EINVAL"), Refuse("EINVAL")),
];

/// One technique: its program (`c/<program>.c`), its name, and what glibc
/// 2.36 and libptmalloc-rs do.
struct Technique {
    program: &'static str,
    title: &'static str,
    glibc: Expect,
    ours: Expect,
}

const fn technique(program: &'static str, title: &'static str, ours: Expect) -> Technique {
    Technique {
        program,
        title,
        glibc: Succeed,
        ours,
    }
}

const TECHNIQUES: &[Technique] = &[
    technique(
        "tech-tcache-poisoning",
        "tcache poisoning",
        Stop("malloc(): corrupted tcache entry"),
    ),
    technique(
        "tech-fastbin-dup-into-stack",
        "fastbin dup into stack",
        Stop("free(): double free detected"),
    ),
    // The fake chunk's own header fails its check value.
    technique(
        "tech-house-of-spirit",
        "house of spirit",
        Stop("free(): invalid chunk header"),
    ),
    technique(
        "tech-tcache-house-of-spirit",
        "tcache house of spirit",
        Stop("free(): invalid chunk header"),
    ),
    // Stopped late: the second free of A (merged into its free neighbour)
    // goes to the tcache, whose path does not read the successor's header
    // (another cache line on every free); the poisoned tcache entry is
    // caught when malloc takes A, whose header the overlapping allocation no
    // longer keeps valid.
    technique(
        "tech-house-of-botcake",
        "house of botcake",
        Stop("malloc(): corrupted tcache entry"),
    ),
    technique(
        "tech-unsafe-unlink",
        "unsafe unlink",
        Stop("free(): invalid chunk header"),
    ),
    technique(
        "tech-poison-null-byte",
        "poison null byte",
        Stop("free(): invalid chunk header"),
    ),
    technique(
        "tech-overlapping-chunks",
        "overlapping chunks",
        Stop("free(): invalid chunk header"),
    ),
    technique(
        "tech-large-bin-attack",
        "large bin attack",
        Stop("malloc(): largebin double linked list corrupted (nextsize)"),
    ),
    technique(
        "tech-house-of-einherjar",
        "house of einherjar",
        Stop("free(): invalid chunk header"),
    ),
];

/// The messages of libptmalloc-rs's checks beyond glibc's (the hardened
/// process allocator, and its opt-in free check; the core's
/// `rust/ptmalloc-core/src/harden.rs` and their callers).
const HARDENING_MESSAGES: &[&str] = &[
    "free(): double free detected",
    "free(): invalid chunk header",
    "free(): corrupted next chunk header",
    "realloc(): block already freed",
    "realloc(): invalid chunk header",
    "malloc(): corrupted tcache entry",
    "malloc(): corrupted fastbin entry",
    "malloc(): corrupted free chunk header",
    "munmap_chunk(): double free detected",
    "malloc(): write after free detected",
    "malloc(): largebin double linked list corrupted (nextsize)",
    "malloc(): corrupted top chunk header",
];

/// Variables that switch libptmalloc-rs's hardening; a run sets only
/// those its row asks for.
const HARDENING_ENV: &[&str] = &["PTMALLOC_RS_HARDEN", "PTMALLOC_RS_FREE_CHECK"];

// ---------------------------------------------------------------------
// Running a case.

/// What one run did.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// SIGABRT, with the last line of stderr (the allocator's message).
    Stopped(String),
    /// Killed by another signal.
    Signal(i32),
    /// The misuse went through: "misuse not detected", exit 1.
    NotDetected,
    /// A check case: all its checks passed (this many).
    ChecksPassed(u64),
    /// The technique reached its goal (what it achieved).
    Succeeded(String),
    /// The technique ran to its end without reaching its goal.
    GoalMissed(String),
    /// The run cannot be judged: a setup assumption failed, the preload
    /// did not take effect, a timeout, an unexpected exit.
    Broken(String),
}

/// A finished run: its verdict and its raw output (for failure reports).
struct Run {
    seen: Seen,
    out: Outcome,
    command: String,
}

/// The binary of `c/<STEM>.c`, plain or linked, compiled once per process.
fn binary(stem: &'static str, linked: bool) -> Result<&'static Path, String> {
    type Cell = &'static OnceLock<Result<PathBuf, String>>;
    static CELLS: OnceLock<Mutex<HashMap<(&'static str, bool), Cell>>> = OnceLock::new();
    let cell: Cell = *CELLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((stem, linked))
        .or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    cell.get_or_init(|| compile(stem, linked))
        .as_deref()
        .map_err(Clone::clone)
}

/// Run `c/<STEM>.c` with ARGS and ENV in MODE.
fn run_case(
    stem: &'static str,
    args: &[&str],
    env: &[(&str, &str)],
    mode: Mode,
) -> Result<(Outcome, String), String> {
    let lib = if mode.is_ours() { Some(library()?) } else { None };
    let exe = binary(stem, mode == Mode::Linked)?;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    configure_env(&mut cmd, mode, lib);
    for var in HARDENING_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let mut command = String::new();
    for (k, v) in env {
        let _ = write!(command, "{k}={v} ");
    }
    if mode == Mode::Preload {
        command.push_str("LD_PRELOAD=libptmalloc-rs.so ");
    }
    let _ = write!(command, "{}", exe.display());
    for a in args {
        let _ = write!(command, " {a}");
    }
    let out = run(&mut cmd, CHILD_TIMEOUT).map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    Ok((out, command))
}

/// The verdict common to both kinds: a signal, or a run that cannot be judged.
fn classify_common(mode: Mode, out: &Outcome) -> Option<Seen> {
    if out.timed_out {
        return Some(Seen::Broken(out.describe()));
    }
    let report = parse_report(&out.stdout);
    // Without this, a preload that silently did not take effect would
    // pass every row glibc and we agree on.
    if let Some(p) = provider_problem(mode, report.provider.as_deref()) {
        return Some(Seen::Broken(p));
    }
    match out.signal() {
        Some(SIGABRT) => {
            let line = out.stderr.lines().rev().find(|l| !l.trim().is_empty());
            Some(Seen::Stopped(line.unwrap_or("").to_string()))
        }
        Some(sig) => Some(Seen::Signal(sig)),
        None => None,
    }
}

fn classify_misuse(mode: Mode, out: &Outcome) -> Seen {
    if let Some(seen) = classify_common(mode, out) {
        return seen;
    }
    let report = parse_report(&out.stdout);
    match out.status.and_then(|s| s.code()) {
        Some(0) => {
            let problems = judge(mode, out, &report);
            if problems.is_empty() {
                Seen::ChecksPassed(report.passed)
            } else {
                Seen::Broken(problems.join("; "))
            }
        }
        Some(1)
            if report.fail_lines.len() == 1
                && report.fail_lines[0].ends_with("misuse not detected, the call returned") =>
        {
            Seen::NotDetected
        }
        _ => Seen::Broken(match report.fail_lines.first() {
            Some(line) => format!("{}: {line}", out.describe()),
            None => out.describe(),
        }),
    }
}

fn classify_technique(mode: Mode, out: &Outcome) -> Seen {
    if let Some(seen) = classify_common(mode, out) {
        return seen;
    }
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
    };
    match (
        out.status.and_then(|s| s.code()),
        line("technique succeeded: "),
        line("technique failed: "),
    ) {
        (Some(0), Some(what), None) => Seen::Succeeded(what),
        (Some(1), None, Some(what)) => Seen::GoalMissed(what),
        _ => Seen::Broken(match line("technique setup failed: ") {
            Some(why) => format!("setup failed: {why}"),
            None => out.describe(),
        }),
    }
}

/// The four ways each case runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Way {
    /// glibc's own malloc: the reference column.
    Glibc,
    /// libptmalloc-rs by LD_PRELOAD, hardened (the default).
    Preload,
    /// libptmalloc-rs linked (-lptmalloc-rs), hardened.
    Linked,
    /// libptmalloc-rs by LD_PRELOAD with `PTMALLOC_RS_HARDEN=0`: glibc's
    /// checks only, so it must do what glibc does.
    Unhardened,
}

impl Way {
    const ALL: [Way; 4] = [Way::Glibc, Way::Preload, Way::Linked, Way::Unhardened];

    fn mode(self) -> Mode {
        match self {
            Way::Glibc => Mode::Glibc,
            Way::Preload | Way::Unhardened => Mode::Preload,
            Way::Linked => Mode::Linked,
        }
    }

    fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Way::Unhardened => &[("PTMALLOC_RS_HARDEN", "0")],
            _ => &[],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Way::Glibc => "glibc",
            Way::Preload => "preload",
            Way::Linked => "linked",
            Way::Unhardened => "preload, PTMALLOC_RS_HARDEN=0",
        }
    }

    /// Whether this way runs the hardened libptmalloc-rs.
    fn hardened(self) -> bool {
        matches!(self, Way::Preload | Way::Linked)
    }

    /// What a row with these columns expects of this way.  Unhardened, we
    /// are glibc, apart from rows that switch on an opt-in check of ours
    /// (which `PTMALLOC_RS_HARDEN=0` leaves on).
    fn expect(self, glibc: Expect, ours: Expect, env: &[(&str, &str)]) -> Expect {
        match self {
            Way::Glibc => glibc,
            Way::Preload | Way::Linked => ours,
            Way::Unhardened if env.is_empty() => glibc,
            Way::Unhardened => ours,
        }
    }
}

fn run_or_broken(result: Result<(Outcome, String), String>, classify: impl Fn(&Outcome) -> Seen) -> Run {
    match result {
        Ok((out, command)) => Run {
            seen: classify(&out),
            out,
            command,
        },
        Err(e) => Run {
            seen: Seen::Broken(e.clone()),
            out: Outcome {
                status: None,
                timed_out: false,
                stdout: String::new(),
                stderr: e,
                elapsed: Default::default(),
            },
            command: String::new(),
        },
    }
}

/// The row's environment, then the way's.
fn env_of(row_env: &[(&'static str, &'static str)], way: Way) -> Vec<(&'static str, &'static str)> {
    row_env.iter().chain(way.env()).copied().collect()
}

/// The run of misuse row I in WAY, made once per process.
fn misuse_run(i: usize, way: Way) -> &'static Run {
    static RUNS: [[OnceLock<Run>; 4]; MISUSE.len()] =
        [const { [const { OnceLock::new() }; 4] }; MISUSE.len()];
    RUNS[i][way as usize].get_or_init(|| {
        let row = &MISUSE[i];
        let env = env_of(row.env, way);
        run_or_broken(run_case("tst-misuse", &[row.name], &env, way.mode()), |out| {
            classify_misuse(way.mode(), out)
        })
    })
}

/// The run of technique row I in WAY, made once per process.
fn technique_run(i: usize, way: Way) -> &'static Run {
    static RUNS: [[OnceLock<Run>; 4]; TECHNIQUES.len()] =
        [const { [const { OnceLock::new() }; 4] }; TECHNIQUES.len()];
    RUNS[i][way as usize].get_or_init(|| {
        run_or_broken(
            run_case(TECHNIQUES[i].program, &[], way.env(), way.mode()),
            |out| classify_technique(way.mode(), out),
        )
    })
}

/// Whether SEEN is what EXPECT says.
fn fulfils(seen: &Seen, expect: Expect) -> bool {
    match (expect, seen) {
        (Stop(want), Seen::Stopped(got)) => want == got,
        (Miss, Seen::NotDetected) => true,
        (Segv, Seen::Signal(sig)) => *sig == 11,
        (Refuse(_), Seen::ChecksPassed(n)) => *n > 0,
        (Succeed, Seen::Succeeded(_)) => true,
        (NotStopped(_), Seen::NotDetected | Seen::Succeeded(_)) => true,
        _ => false,
    }
}

/// Fail the test unless RUN of LABEL in WAY is what EXPECT says.
fn require(label: &str, way: Way, run: &Run, expect: Expect) {
    if fulfils(&run.seen, expect) {
        println!("[{label} / {}] {}", way.name(), cell(&run.seen, way));
        return;
    }
    panic!(
        "[{label} / {}] expected {}, but: {:?}\n$ {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        way.name(),
        describe(expect),
        run.seen,
        run.command,
        tail(&run.out.stdout, 20),
        tail(&run.out.stderr, 20)
    );
}

fn check_misuse(name: &str, way: Way) {
    let i = MISUSE
        .iter()
        .position(|row| row.name == name)
        .unwrap_or_else(|| panic!("no misuse row {name}"));
    let row = &MISUSE[i];
    require(
        name,
        way,
        misuse_run(i, way),
        way.expect(row.glibc, row.ours, row.env),
    );
}

fn check_technique(program: &str, way: Way) {
    let i = TECHNIQUES
        .iter()
        .position(|row| row.program == program)
        .unwrap_or_else(|| panic!("no technique row {program}"));
    let row = &TECHNIQUES[i];
    require(
        row.title,
        way,
        technique_run(i, way),
        way.expect(row.glibc, row.ours, &[]),
    );
}

// ---------------------------------------------------------------------
// The printed tables.

fn describe(expect: Expect) -> String {
    match expect {
        Stop(m) => format!("SIGABRT with \"{m}\""),
        Miss => "not detected".to_string(),
        Segv => "SIGSEGV".to_string(),
        Refuse(errno) => format!("NULL / {errno} for every request"),
        Succeed => "the technique succeeds".to_string(),
        NotStopped(why) => format!("not stopped ({why})"),
    }
}

/// A table cell for what a run did in WAY.
fn cell(seen: &Seen, way: Way) -> String {
    match seen {
        Seen::Stopped(m) => m.clone(),
        Seen::Signal(sig) => signal_name(*sig).to_string(),
        Seen::NotDetected if way.hardened() => "NOT STOPPED".to_string(),
        Seen::NotDetected => "not detected".to_string(),
        Seen::ChecksPassed(n) => format!("NULL + errno ({n} checks pass)"),
        Seen::Succeeded(_) if way.hardened() => "NOT STOPPED (technique succeeded)".to_string(),
        Seen::Succeeded(_) => "succeeded".to_string(),
        Seen::GoalMissed(_) => "ran through, goal not reached".to_string(),
        Seen::Broken(why) => format!("BROKEN: {why}"),
    }
}

/// One table row: the label, then the glibc, hardened (LD_PRELOAD, and
/// linked where it differs) and unhardened cells; and whether every way
/// did what the row expects.
fn table_row(
    label: String,
    runs: [&Run; 4],
    glibc: Expect,
    ours: Expect,
    env: &[(&str, &str)],
) -> (Vec<String>, bool) {
    let [g, p, l, u] = runs;
    let ok = Way::ALL
        .iter()
        .zip(runs)
        .all(|(way, run)| fulfils(&run.seen, way.expect(glibc, ours, env)));
    let glibc_cell = cell(&g.seen, Way::Glibc);
    let (pc, lc) = (cell(&p.seen, Way::Preload), cell(&l.seen, Way::Linked));
    let ours_cell = match ours {
        NotStopped(why) if fulfils(&p.seen, ours) && fulfils(&l.seen, ours) => format!("not stopped ({why})"),
        _ if pc == lc => pc,
        _ => format!("{pc} (linked: {lc})"),
    };
    let unhardened = cell(&u.seen, Way::Unhardened);
    let unhardened = if unhardened == glibc_cell {
        "as glibc".to_string()
    } else {
        unhardened
    };
    (vec![label, glibc_cell, ours_cell, unhardened], ok)
}

/// A table with a mark on the rows not as expected, and a note under it.
fn print_table(title: &str, header: &[&str], rows: &[(Vec<String>, bool)], note: &str) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for (cells, _) in rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>, mark: &str| {
        let mut l = String::from("|");
        for (c, w) in cells.zip(&widths) {
            let _ = write!(l, " {c:w$} |");
        }
        l.push_str(mark);
        l.push('\n');
        l
    };
    let mut s = format!("\n{title}\n");
    s.push_str(&line(&mut header.iter().copied(), ""));
    s.push('|');
    for w in &widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('|');
    }
    s.push('\n');
    for (cells, ok) in rows {
        let mark = if *ok { "" } else { " <- NOT AS EXPECTED" };
        s.push_str(&line(&mut cells.iter().map(String::as_str), mark));
    }
    s.push_str(note);
    s.push('\n');
    // Straight to the terminal: the test harness captures println!.
    let _ = std::io::stderr().lock().write_all(s.as_bytes());
}

const TABLE_NOTE: &str =
    "(libptmalloc-rs: hardened, the default; LD_PRELOAD and linked runs, identical unless \
                          shown. Last column: LD_PRELOAD with PTMALLOC_RS_HARDEN=0, glibc's checks only.)";

#[test]
fn misuse_table() {
    let mut rows = Vec::new();
    for (i, row) in MISUSE.iter().enumerate() {
        let mut label = row.name.to_string();
        for (k, v) in row.env {
            let _ = write!(label, " ({k}={v})");
        }
        let runs = Way::ALL.map(|way| misuse_run(i, way));
        rows.push(table_row(label, runs, row.glibc, row.ours, row.env));
    }
    print_table(
        "Misuse suite (c-tests/c/tst-misuse.c), each case in its own process:",
        &["case", "glibc 2.36", "libptmalloc-rs", "PTMALLOC_RS_HARDEN=0"],
        &rows,
        TABLE_NOTE,
    );
    let wrong: Vec<&str> = rows
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(c, _)| c[0].as_str())
        .collect();
    assert!(wrong.is_empty(), "rows not as expected: {wrong:?}");
}

#[test]
fn technique_table() {
    let mut rows = Vec::new();
    for (i, row) in TECHNIQUES.iter().enumerate() {
        let runs = Way::ALL.map(|way| technique_run(i, way));
        rows.push(table_row(row.title.to_string(), runs, row.glibc, row.ours, &[]));
    }
    print_table(
        "Heap-exploitation techniques (c-tests/c/tech-*.c); succeeded: the program reached the technique's goal:",
        &["technique", "glibc 2.36", "libptmalloc-rs (message)", "PTMALLOC_RS_HARDEN=0"],
        &rows,
        TABLE_NOTE,
    );
    let wrong: Vec<&str> = rows
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(c, _)| c[0].as_str())
        .collect();
    assert!(wrong.is_empty(), "rows not as expected: {wrong:?}");
}

// ---------------------------------------------------------------------
// The tables themselves.

#[test]
fn expectations_follow_the_rules() {
    for row in MISUSE {
        match row.glibc {
            // Where glibc stops a misuse (or refuses a request), we do the same.
            Stop(_) | Refuse(_) => assert_eq!(row.ours, row.glibc, "{}: ours must be glibc's", row.name),
            Miss | Segv => match row.ours {
                Stop(m) => assert!(
                    HARDENING_MESSAGES.contains(&m),
                    "{}: \"{m}\" is not a hardening message",
                    row.name
                ),
                NotStopped(why) => assert!(!why.is_empty(), "{}: say why it is not stopped", row.name),
                other => panic!("{}: ours is {other:?}", row.name),
            },
            other => panic!("{}: glibc's column is {other:?}", row.name),
        }
    }
    for row in TECHNIQUES {
        assert_eq!(
            row.glibc, Succeed,
            "{}: every technique succeeds against glibc 2.36",
            row.title
        );
        assert!(
            matches!(row.ours, Stop(_) | NotStopped(_)),
            "{}: ours is {:?}",
            row.title,
            row.ours
        );
    }
}

#[test]
fn misuse_rows_match_the_program() {
    let exe = binary("tst-misuse", false).unwrap_or_else(|e| panic!("{e}"));
    let out = run(Command::new(exe).arg("--list"), CHILD_TIMEOUT).expect("run --list");
    assert!(out.success(), "tst-misuse --list {}", out.describe());
    let listed: Vec<&str> = out.stdout.lines().collect();
    let table: Vec<&str> = MISUSE.iter().map(|row| row.name).collect();
    assert_eq!(listed, table, "tst-misuse.c and MISUSE disagree");
    assert_eq!(
        MISUSE_TESTS,
        table.as_slice(),
        "misuse_tests! and MISUSE disagree"
    );
}

#[test]
fn technique_rows_match_the_programs() {
    let mut programs: Vec<String> = std::fs::read_dir(ptmalloc_c_tests::c_dir())
        .expect("c/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| Some(n.strip_prefix("tech-")?.strip_suffix(".c")?.to_string()))
        .map(|n| format!("tech-{n}"))
        .collect();
    programs.sort();
    let mut table: Vec<String> = TECHNIQUES.iter().map(|row| row.program.to_string()).collect();
    table.sort();
    assert_eq!(programs, table, "c/tech-*.c and TECHNIQUES disagree");
    let tested: Vec<&str> = TECHNIQUE_TESTS.to_vec();
    let rows: Vec<&str> = TECHNIQUES.iter().map(|row| row.program).collect();
    assert_eq!(tested, rows, "technique_tests! and TECHNIQUES disagree");
}

// ---------------------------------------------------------------------
// One test per case and mode.

macro_rules! misuse_tests {
    ($($module:ident => $case:literal,)*) => {
        const MISUSE_TESTS: &[&str] = &[$($case),*];
        $(
            mod $module {
                use super::{check_misuse, Way};

                #[test]
                fn glibc() {
                    check_misuse($case, Way::Glibc);
                }

                #[test]
                fn preload() {
                    check_misuse($case, Way::Preload);
                }

                #[test]
                fn linked() {
                    check_misuse($case, Way::Linked);
                }

                #[test]
                fn unhardened() {
                    check_misuse($case, Way::Unhardened);
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
    misuse_double_free_interleaved_tcache => "double-free-interleaved-tcache",
    misuse_double_free_interleaved_fastbin => "double-free-interleaved-fastbin",
    misuse_double_free_tcache_key => "double-free-tcache-key",
    misuse_double_free_large => "double-free-large",
    misuse_double_free_mmapped => "double-free-mmapped",
    misuse_invalid_free => "invalid-free",
    misuse_invalid_free_misaligned => "invalid-free-misaligned",
    misuse_invalid_free_stack => "invalid-free-stack",
    misuse_invalid_free_stack_header => "invalid-free-stack-header",
    misuse_invalid_free_interior_header => "invalid-free-interior-header",
    misuse_corrupt_size => "corrupt-size",
    misuse_corrupt_next_size_fast => "corrupt-next-size-fast",
    misuse_corrupt_next_size_normal => "corrupt-next-size-normal",
    misuse_munmap_invalid => "munmap-invalid",
    misuse_realloc_invalid => "realloc-invalid",
    misuse_overflow_next_header => "overflow-next-header",
    misuse_overflow_next_size => "overflow-next-size",
    misuse_overflow_next_header_normal => "overflow-next-header-normal",
    misuse_write_after_free_tcache_next => "write-after-free-tcache-next",
    misuse_write_after_free_fastbin_fd => "write-after-free-fastbin-fd",
    misuse_write_after_free_fastbin_size => "write-after-free-fastbin-size",
    misuse_write_after_free_unsorted_bk => "write-after-free-unsorted-bk",
    misuse_write_after_free_smallbin_bk => "write-after-free-smallbin-bk",
    misuse_write_after_free_unlink => "write-after-free-unlink",
    misuse_overflow_top_size => "overflow-top-size",
    misuse_overflow_fastbin_size => "overflow-fastbin-size",
    misuse_write_after_free => "write-after-free",
    misuse_write_after_free_free_check => "write-after-free-free-check",
    misuse_off_by_one_nul_tcache => "off-by-one-nul-tcache",
    misuse_off_by_one_nul_consolidate => "off-by-one-nul-consolidate",
    misuse_realloc_freed_tcache => "realloc-freed-tcache",
    misuse_realloc_freed_unsorted => "realloc-freed-unsorted",
    misuse_huge => "huge",
    misuse_calloc_overflow => "calloc-overflow",
    misuse_memalign_overflow => "memalign-overflow",
    misuse_realloc_overflow => "realloc-overflow",
    misuse_bad_alignment => "bad-alignment",
}

macro_rules! technique_tests {
    ($($module:ident => $program:literal,)*) => {
        const TECHNIQUE_TESTS: &[&str] = &[$($program),*];
        $(
            mod $module {
                use super::{check_technique, Way};

                #[test]
                fn glibc() {
                    check_technique($program, Way::Glibc);
                }

                #[test]
                fn preload() {
                    check_technique($program, Way::Preload);
                }

                #[test]
                fn linked() {
                    check_technique($program, Way::Linked);
                }

                #[test]
                fn unhardened() {
                    check_technique($program, Way::Unhardened);
                }
            }
        )*
    };
}

technique_tests! {
    technique_tcache_poisoning => "tech-tcache-poisoning",
    technique_fastbin_dup_into_stack => "tech-fastbin-dup-into-stack",
    technique_house_of_spirit => "tech-house-of-spirit",
    technique_tcache_house_of_spirit => "tech-tcache-house-of-spirit",
    technique_house_of_botcake => "tech-house-of-botcake",
    technique_unsafe_unlink => "tech-unsafe-unlink",
    technique_poison_null_byte => "tech-poison-null-byte",
    technique_overlapping_chunks => "tech-overlapping-chunks",
    technique_large_bin_attack => "tech-large-bin-attack",
    technique_house_of_einherjar => "tech-house-of-einherjar",
}
