//! Shared helpers for the C test-suite harness (`tests/suite.rs`).
//!
//! The C programs under `c/` print one line per check (`ok: ...`,
//! `FAIL: ...: ...`, `skip: ...`), free-form `info: ...` lines, and close
//! with `N passed, M failed` (optionally `, K skipped`).  This crate knows
//! how to find `libptmalloc-rs.so`, how to run a child process with a
//! timeout, and how to read that output.  Compiling the programs needs the
//! `cc` crate and lives in the test itself.

use std::env;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How long any one C program may run before it is killed.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `make lib` may take when `PTMALLOC_RS_LIB` is not set.
pub const MAKE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Environment variable naming the library to test (absolute path to
/// `libptmalloc-rs.so`; its directory must also hold `libptmalloc-rs.so.0`).
pub const LIB_ENV: &str = "PTMALLOC_RS_LIB";

/// Environment variable that enables the extension checks in the C programs.
pub const EXT_ENV: &str = "PTMALLOC_RS_TEST_EXT";

/// Environment variables that change glibc's malloc; they are removed from
/// every child so that the glibc reference run is the default glibc.
const MALLOC_ENV: &[&str] = &[
    "GLIBC_TUNABLES",
    "MALLOC_ARENA_MAX",
    "MALLOC_ARENA_TEST",
    "MALLOC_CHECK_",
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_PERTURB_",
    "MALLOC_TOP_PAD_",
    "MALLOC_TRIM_THRESHOLD_",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
];

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory holding the C sources and `tst-support.h`.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c")
}

/// The three ways each program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Plain binary: glibc's own malloc, the reference.
    Glibc,
    /// Plain binary under `LD_PRELOAD=libptmalloc-rs.so`.
    Preload,
    /// Binary linked with `-lptmalloc-rs` (and an rpath to it).
    Linked,
}

impl Mode {
    /// All modes, reference first.
    pub const ALL: [Mode; 3] = [Mode::Glibc, Mode::Preload, Mode::Linked];

    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Glibc => "glibc",
            Mode::Preload => "preload",
            Mode::Linked => "linked",
        }
    }

    /// Whether this mode runs libptmalloc-rs (and so the extension checks).
    pub fn is_ours(self) -> bool {
        self != Mode::Glibc
    }
}

/// The library under test.
#[derive(Debug)]
pub struct Library {
    /// Absolute path of `libptmalloc-rs.so`.
    pub so: PathBuf,
    /// Its directory, for `-L` and the rpath.
    pub dir: PathBuf,
}

/// Find the library: `$PTMALLOC_RS_LIB`, or else build it with
/// `make -C <workspace root> lib` and use `<root>/build/libptmalloc-rs.so`.
/// The result (or the error) is computed once per process.
pub fn library() -> Result<&'static Library, String> {
    static LIB: OnceLock<Result<Library, String>> = OnceLock::new();
    LIB.get_or_init(locate_library).as_ref().map_err(Clone::clone)
}

fn locate_library() -> Result<Library, String> {
    let so = match env::var_os(LIB_ENV) {
        Some(path) => {
            let so = PathBuf::from(path);
            if !so.is_absolute() {
                return Err(format!("{LIB_ENV}={} is not an absolute path", so.display()));
            }
            so
        }
        None => build_library_with_make()?,
    };
    if !so.exists() {
        return Err(format!("{} does not exist", so.display()));
    }
    let dir = so
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", so.display()))?
        .to_path_buf();
    let soname = dir.join("libptmalloc-rs.so.0");
    if !soname.exists() {
        return Err(format!(
            "{} does not exist (needed next to {})",
            soname.display(),
            so.display()
        ));
    }
    Ok(Library { so, dir })
}

fn build_library_with_make() -> Result<PathBuf, String> {
    let root = workspace_root();
    let mut make = Command::new("make");
    make.arg("-C").arg(&root).arg("lib");
    eprintln!("{LIB_ENV} is not set: running make -C {} lib", root.display());
    let out = run(&mut make, MAKE_TIMEOUT)
        .map_err(|e| format!("could not run make -C {} lib: {e}", root.display()))?;
    if !out.success() {
        return Err(format!(
            "make -C {} lib failed ({}); set {LIB_ENV} to test a prebuilt library\n{}",
            root.display(),
            out.describe(),
            tail(&format!("{}{}", out.stdout, out.stderr), 40)
        ));
    }
    Ok(root.join("build").join("libptmalloc-rs.so"))
}

/// Prepare the environment of a C program for MODE: no malloc tunables, no
/// stray preload, fatal glibc messages on stderr, extensions on for ours.
pub fn configure_env(cmd: &mut Command, mode: Mode, lib: Option<&Library>) {
    for var in MALLOC_ENV {
        cmd.env_remove(var);
    }
    cmd.env("LIBC_FATAL_STDERR_", "1");
    if mode.is_ours() {
        cmd.env(EXT_ENV, "1");
    } else {
        cmd.env_remove(EXT_ENV);
    }
    if let (Mode::Preload, Some(lib)) = (mode, lib) {
        cmd.env("LD_PRELOAD", &lib.so);
    }
}

/// What a finished (or killed) child did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` only if the child could not be reaped.
    pub status: Option<ExitStatus>,
    /// The child ran past its timeout and was killed.
    pub timed_out: bool,
    /// Captured standard output (lossy UTF-8).
    pub stdout: String,
    /// Captured standard error (lossy UTF-8).
    pub stderr: String,
    /// Wall-clock run time.
    pub elapsed: Duration,
}

impl Outcome {
    /// Exited normally with status 0.
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.is_some_and(|s| s.success())
    }

    /// The signal that killed the child, if any.
    pub fn signal(&self) -> Option<i32> {
        self.status.and_then(|s| s.signal())
    }

    /// "exit status 0", "killed by signal 6 (SIGABRT)", "timed out after 60 s"...
    pub fn describe(&self) -> String {
        if self.timed_out {
            return format!("timed out after {} s and was killed", self.elapsed.as_secs());
        }
        match self.status {
            None => "could not be waited for".to_string(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exit status {code}"),
                (None, Some(sig)) => format!(
                    "killed by signal {sig} ({}){}",
                    signal_name(sig),
                    if s.core_dumped() { ", core dumped" } else { "" }
                ),
                _ => format!("{s}"),
            },
        }
    }
}

/// Name of a common signal number (Linux x86_64).
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "?",
    }
}

/// SIGABRT on Linux.
pub const SIGABRT: i32 = 6;

/// Run CMD with stdin closed and stdout/stderr captured, in its own process
/// group; after TIMEOUT the whole group is killed.
pub fn run(cmd: &mut Command, timeout: Duration) -> io::Result<Outcome> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let out_reader = spawn_reader(child.stdout.take());
    let err_reader = spawn_reader(child.stderr.take());

    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() >= timeout => {
                timed_out = true;
                kill_group(&mut child);
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(_) => {
                kill_group(&mut child);
                break child.wait().ok();
            }
        }
    };
    // Grandchildren left behind in the group would keep the pipes open.
    if !timed_out {
        kill_group_quietly(child.id());
    }
    let elapsed = start.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Outcome {
        status,
        timed_out,
        stdout,
        stderr,
        elapsed,
    })
}

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn kill_group(child: &mut Child) {
    kill_group_quietly(child.id());
    let _ = child.kill();
}

/// `kill -KILL -- -PGID`, without unsafe code.
fn kill_group_quietly(pgid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The parsed check output of one run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// From the closing line.
    pub passed: u64,
    /// From the closing line.
    pub failed: u64,
    /// From the closing line (0 when absent).
    pub skipped: u64,
    /// Whether a closing `N passed, M failed` line was found.
    pub has_summary: bool,
    /// Number of `ok:` lines.
    pub ok_lines: u64,
    /// The `FAIL:` lines.
    pub fail_lines: Vec<String>,
    /// The `skip:` lines.
    pub skip_lines: Vec<String>,
    /// From `info: malloc provider: PATH`.
    pub provider: Option<String>,
}

/// Read the check protocol from a program's standard output.
pub fn parse_report(stdout: &str) -> Report {
    let mut r = Report::default();
    for line in stdout.lines() {
        if line.starts_with("ok: ") {
            r.ok_lines += 1;
        } else if line.starts_with("FAIL: ") {
            r.fail_lines.push(line.to_string());
        } else if line.starts_with("skip: ") {
            r.skip_lines.push(line.to_string());
        } else if let Some(p) = line.strip_prefix("info: malloc provider: ") {
            r.provider = Some(p.to_string());
        } else if let Some((passed, failed, skipped)) = parse_summary(line) {
            r.has_summary = true;
            r.passed = passed;
            r.failed = failed;
            r.skipped = skipped;
        }
    }
    r
}

/// Parse `N passed, M failed` or `N passed, M failed, K skipped`.
pub fn parse_summary(line: &str) -> Option<(u64, u64, u64)> {
    let mut parts = line.split(", ");
    let passed = parts.next()?.strip_suffix(" passed")?.parse().ok()?;
    let failed = parts.next()?.strip_suffix(" failed")?.parse().ok()?;
    let skipped = match parts.next() {
        Some(s) => s.strip_suffix(" skipped")?.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((passed, failed, skipped))
}

/// Check that a check program ran cleanly in MODE: exit 0, a closing line
/// with no failures and at least one pass, consistent counts, and malloc
/// provided by the right object.  Returns the problems found (empty = good).
pub fn judge(mode: Mode, out: &Outcome, report: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    if !out.success() {
        problems.push(format!("the program {}", out.describe()));
    }
    if !report.has_summary {
        problems.push("no closing `N passed, M failed` line".to_string());
    } else {
        if report.failed > 0 {
            problems.push(format!("{} check(s) failed", report.failed));
        }
        if report.passed == 0 {
            problems.push("no check passed".to_string());
        }
        if report.ok_lines != report.passed {
            problems.push(format!(
                "{} `ok:` lines but the closing line says {} passed",
                report.ok_lines, report.passed
            ));
        }
        if report.fail_lines.len() as u64 != report.failed {
            problems.push(format!(
                "{} `FAIL:` lines but the closing line says {} failed",
                report.fail_lines.len(),
                report.failed
            ));
        }
    }
    if let Some(p) = provider_problem(mode, report.provider.as_deref()) {
        problems.push(p);
    }
    problems
}

/// In glibc mode malloc must come from libc.so.6; in our modes it must not.
pub fn provider_problem(mode: Mode, provider: Option<&str>) -> Option<String> {
    let provider = match provider {
        None => return Some("no `info: malloc provider:` line".to_string()),
        Some(p) => p,
    };
    let from_libc = Path::new(provider)
        .file_name()
        .is_some_and(|f| f.to_string_lossy().starts_with("libc.so"));
    match (mode.is_ours(), from_libc) {
        (false, false) => Some(format!("the glibc run got malloc from {provider}, not libc.so.6")),
        (true, true) => Some(format!(
            "malloc still comes from {provider}: the {} mode did not replace glibc's malloc",
            mode.name()
        )),
        _ => None,
    }
}

/// A short multi-line account of a run, for the test log.
pub fn summarize(label: &str, out: &Outcome, report: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "[{label}] {} in {:.2} s",
        out.describe(),
        out.elapsed.as_secs_f64()
    );
    if report.has_summary {
        let _ = write!(
            s,
            ": {} passed, {} failed, {} skipped",
            report.passed, report.failed, report.skipped
        );
    }
    if let Some(p) = &report.provider {
        let _ = write!(s, " (malloc from {p})");
    }
    for line in report.skip_lines.iter().chain(&report.fail_lines) {
        let _ = write!(s, "\n  {line}");
    }
    s
}

/// The last N lines of TEXT.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines() {
        assert_eq!(parse_summary("37 passed, 0 failed"), Some((37, 0, 0)));
        assert_eq!(
            parse_summary("132 passed, 1 failed, 9 skipped"),
            Some((132, 1, 9))
        );
        assert_eq!(parse_summary("ok: 3 passed, 0 failed"), None);
        assert_eq!(parse_summary("3 passed"), None);
        assert_eq!(parse_summary("3 passed, 0 failed, x skipped"), None);
    }

    #[test]
    fn report_parsing() {
        let out = "info: malloc provider: /lib/x86_64-linux-gnu/libc.so.6\n\
                   ok: a\nFAIL: b: c\nskip: d: e\nok: f\n2 passed, 1 failed, 1 skipped\n";
        let r = parse_report(out);
        assert_eq!((r.passed, r.failed, r.skipped), (2, 1, 1));
        assert_eq!(r.ok_lines, 2);
        assert_eq!(r.fail_lines, vec!["FAIL: b: c".to_string()]);
        assert_eq!(r.skip_lines.len(), 1);
        assert!(provider_problem(Mode::Glibc, r.provider.as_deref()).is_none());
        assert!(provider_problem(Mode::Preload, r.provider.as_deref()).is_some());
        assert!(provider_problem(Mode::Linked, Some("/x/libptmalloc-rs.so.0")).is_none());
    }

    #[test]
    fn run_captures_and_times_out() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("sh runs");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));

        let out = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .expect("sh runs");
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(10));
    }
}
