//! Settings from the environment, read by scanning `environ` (no `getenv`:
//! it may not be usable while the library is being preloaded).
//!
//! glibc's tunables (`GLIBC_TUNABLES=glibc.malloc.<name>=<value>:...`) and
//! their legacy aliases (`MALLOC_TOP_PAD_`, ...) with glibc's value ranges,
//! plus ours: `PTMALLOC_RS_SHOW_STATS` (statistics at exit),
//! `PTMALLOC_RS_HARDEN=0` (glibc's checks only), `PTMALLOC_RS_FREE_CHECK=1`
//! (freed memory filled and verified on reuse) and
//! `PTMALLOC_RS_VERBOSE` (the settings in force and where each came from,
//! and a warning for every value that was ignored).

use core::fmt::Write;

use ptmalloc_core::params::opt;
use ptmalloc_core::Params;

use crate::output::{Sink, Writer};

extern "C" {
    static environ: *const *const libc::c_char;
}

/// One glibc malloc tunable.
struct Tunable {
    /// The name after `glibc.malloc.`.
    name: &'static str,
    /// The legacy environment variable, if any.
    legacy: Option<&'static str>,
    /// glibc's accepted range.
    min: usize,
    max: usize,
    /// Apply a value in range; false when the allocator refuses it.
    apply: fn(&mut Params, usize) -> bool,
    /// The value in force, for the verbose report.
    show: fn(&Params) -> usize,
}

fn int(v: usize) -> i32 {
    v.min(i32::MAX as usize) as i32
}

const TUNABLES: &[Tunable] = &[
    Tunable {
        name: "check",
        legacy: Some("MALLOC_CHECK_"),
        min: 0,
        max: 3,
        apply: |p, v| p.set(opt::M_CHECK_ACTION, int(v)),
        show: |p| p.check_action as usize,
    },
    Tunable {
        name: "top_pad",
        legacy: Some("MALLOC_TOP_PAD_"),
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_TOP_PAD, int(v)),
        show: |p| p.top_pad,
    },
    Tunable {
        name: "perturb",
        legacy: Some("MALLOC_PERTURB_"),
        min: 0,
        max: 0xff,
        apply: |p, v| p.set(opt::M_PERTURB, int(v)),
        show: |p| p.perturb_byte as usize,
    },
    Tunable {
        name: "mmap_threshold",
        legacy: Some("MALLOC_MMAP_THRESHOLD_"),
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_MMAP_THRESHOLD, int(v)),
        show: |p| p.mmap_threshold,
    },
    Tunable {
        name: "trim_threshold",
        legacy: Some("MALLOC_TRIM_THRESHOLD_"),
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_TRIM_THRESHOLD, int(v)),
        show: |p| p.trim_threshold,
    },
    Tunable {
        name: "mmap_max",
        legacy: Some("MALLOC_MMAP_MAX_"),
        min: 0,
        max: i32::MAX as usize,
        apply: |p, v| p.set(opt::M_MMAP_MAX, int(v)),
        show: |p| p.n_mmaps_max,
    },
    Tunable {
        name: "arena_max",
        legacy: Some("MALLOC_ARENA_MAX"),
        min: 1,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_ARENA_MAX, int(v)),
        show: |p| p.arena_max,
    },
    Tunable {
        name: "arena_test",
        legacy: Some("MALLOC_ARENA_TEST"),
        min: 1,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_ARENA_TEST, int(v)),
        show: |p| p.arena_test,
    },
    Tunable {
        name: "tcache_max",
        legacy: None,
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set_tcache_max(v),
        show: |p| p.tcache_max_bytes,
    },
    Tunable {
        name: "tcache_count",
        legacy: None,
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set_tcache_count(v),
        show: |p| p.tcache_count,
    },
    Tunable {
        name: "tcache_unsorted_limit",
        legacy: None,
        min: 0,
        max: usize::MAX,
        apply: |p, v| {
            p.tcache_unsorted_limit = v;
            true
        },
        show: |p| p.tcache_unsorted_limit,
    },
    Tunable {
        name: "mxfast",
        legacy: None,
        min: 0,
        max: usize::MAX,
        apply: |p, v| p.set(opt::M_MXFAST, int(v)),
        show: |p| p.max_fast,
    },
];

/// Where a setting came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    Default,
    Legacy,
    Tunables,
}

/// What the environment asked of the process allocator beyond `Params`.
#[derive(Clone, Copy, Default)]
pub struct Extras {
    /// `PTMALLOC_RS_SHOW_STATS=1`: print `malloc_stats` at exit.
    pub show_stats: bool,
    /// `PTMALLOC_RS_VERBOSE=1`: report the settings at start.
    pub verbose: bool,
}

/// Whether `environ` is set up yet.
pub fn available() -> bool {
    // SAFETY: reads the pointer value of libc's environ.
    unsafe { !environ.is_null() }
}

/// Visit each `NAME=value` entry of the environment.
fn for_each(mut f: impl FnMut(&[u8], &[u8])) {
    // SAFETY: environ is a null-terminated array of NUL-terminated strings
    // owned by libc; we only read it.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let entry = core::ffi::CStr::from_ptr(*p).to_bytes();
            if let Some(eq) = entry.iter().position(|&b| b == b'=') {
                f(&entry[..eq], &entry[eq + 1..]);
            }
            p = p.add(1);
        }
    }
}

/// A number as glibc reads a tunable: leading spaces skipped, then the
/// longest prefix of digits (decimal, `0x` hex or `0` octal); no digits read
/// as 0 and trailing text is ignored, exactly like glibc. The flag says
/// whether the whole text was a clean number (for the verbose warning).
fn parse_number(s: &[u8]) -> (usize, bool) {
    let t = s.trim_ascii_start();
    let (digits, radix) = if let Some(h) = t.strip_prefix(b"0x").or_else(|| t.strip_prefix(b"0X")) {
        (h, 16)
    } else if t.len() > 1 && t[0] == b'0' {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    let mut v: usize = 0;
    let mut used = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            break;
        };
        v = v.saturating_mul(radix as usize).saturating_add(d as usize);
        used += 1;
    }
    let clean = !s.is_empty() && t.len() == s.len() && used == digits.len() && (used > 0 || radix == 8);
    (v, clean)
}

fn truthy(value: &[u8]) -> bool {
    !value.is_empty() && value != b"0"
}

/// Read every setting from the environment into `params`; with
/// `PTMALLOC_RS_VERBOSE`, report them on standard error.
pub fn read(params: &mut Params) -> Extras {
    let mut extras = Extras::default();
    for_each(|name, value| match name {
        b"PTMALLOC_RS_SHOW_STATS" => extras.show_stats = truthy(value),
        b"PTMALLOC_RS_VERBOSE" => extras.verbose = truthy(value),
        b"PTMALLOC_RS_HARDEN" => params.hardened = truthy(value),
        b"PTMALLOC_RS_FREE_CHECK" => params.free_check = truthy(value),
        _ => {}
    });
    let mut out = Writer::new(Sink::Fd(2));
    let mut sources = [Source::Default; TUNABLES.len()];
    let mut set = |i: usize, origin: Source, shown: &[u8], raw: &[u8], params: &mut Params| {
        let t = &TUNABLES[i];
        let (v, clean) = parse_number(raw);
        let why = if v < t.min || v > t.max {
            Some("out of glibc's range")
        } else if !(t.apply)(params, v) {
            Some("refused")
        } else {
            None
        };
        if why.is_none() && !clean && extras.verbose {
            let _ = writeln!(
                out,
                "ptmalloc-rs: {}={} read as {} (as glibc reads it)",
                Text(shown),
                Text(raw),
                v
            );
        }
        match why {
            None => sources[i] = origin,
            Some(why) if extras.verbose => {
                let _ = writeln!(
                    out,
                    "ptmalloc-rs: ignoring {}={}: {}",
                    Text(shown),
                    Text(raw),
                    why
                );
            }
            Some(_) => {}
        }
    };
    for_each(|name, value| {
        if let Some(i) = TUNABLES
            .iter()
            .position(|t| t.legacy.is_some_and(|l| l.as_bytes() == name))
        {
            set(i, Source::Legacy, name, value, params);
        }
        if name == b"GLIBC_TUNABLES" {
            for item in value.split(|&b| b == b':') {
                let Some(eq) = item.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let Some(tunable) = item[..eq].strip_prefix(b"glibc.malloc.") else {
                    continue;
                };
                if let Some(i) = TUNABLES.iter().position(|t| t.name.as_bytes() == tunable) {
                    set(i, Source::Tunables, &item[..eq], &item[eq + 1..], params);
                }
            }
        }
    });
    if extras.verbose {
        for (t, source) in TUNABLES.iter().zip(sources) {
            let from = match source {
                Source::Default => "default",
                Source::Legacy => t.legacy.unwrap_or("environment"),
                Source::Tunables => "GLIBC_TUNABLES",
            };
            let _ = writeln!(
                out,
                "ptmalloc-rs: glibc.malloc.{} = {} ({})",
                t.name,
                (t.show)(params),
                from
            );
        }
        let _ = writeln!(out, "ptmalloc-rs: show_stats = {}", extras.show_stats as u8);
    }
    out.flush();
    extras
}

/// Bytes from the environment shown as text (invalid UTF-8 as `?`).
struct Text<'a>(&'a [u8]);

impl core::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("?")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_glibc_tunables() {
        assert_eq!(parse_number(b"4096"), (4096, true));
        assert_eq!(parse_number(b"0x1000"), (4096, true));
        assert_eq!(parse_number(b"010"), (8, true));
        assert_eq!(parse_number(b"0"), (0, true));
        // glibc takes the numeric prefix and reads garbage as 0.
        assert_eq!(parse_number(b"12k"), (12, false));
        assert_eq!(parse_number(b"abc"), (0, false));
        assert_eq!(parse_number(b""), (0, false));
        assert_eq!(parse_number(b" 65536"), (65536, false));
        assert_eq!(parse_number(b"-5"), (0, false));
        assert_eq!(parse_number(b"99999999999999999999999").0, usize::MAX);
    }

    #[test]
    fn every_tunable_reaches_params() {
        for (i, t) in TUNABLES.iter().enumerate() {
            let mut p = Params::default();
            let v = t.min.max(1).min(t.max);
            assert!((t.apply)(&mut p, v), "{} refused {v}", t.name);
            let _ = i;
        }
        let mut p = Params::default();
        assert!((TUNABLES[9].apply)(&mut p, 3));
        assert_eq!(p.tcache_count, 3);
        assert!(!(TUNABLES[11].apply)(&mut p, 161), "mxfast above 160 is refused");
    }
}
