//! Settings from the environment, read by scanning `environ` (no `getenv`:
//! it may not be usable while the library is being preloaded).
//!
//! glibc's own variables (`MALLOC_TOP_PAD_`, `MALLOC_MMAP_THRESHOLD_`, ...,
//! and `GLIBC_TUNABLES=glibc.malloc.*`) plus ours (`PTMALLOC_RS_*`).

use ptmalloc_core::params::opt;
use ptmalloc_core::Params;

extern "C" {
    static environ: *const *const libc::c_char;
}

/// What the environment asked of the process allocator beyond `Params`.
#[derive(Clone, Copy, Default)]
pub struct Extras {
    /// `PTMALLOC_RS_SHOW_STATS=1`: print `malloc_stats` at exit.
    pub show_stats: bool,
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

/// A number as glibc's tunables read it: decimal, `0x` hex or `0` octal.
fn parse_number(s: &[u8]) -> Option<usize> {
    let (digits, radix) = if let Some(h) = s.strip_prefix(b"0x").or_else(|| s.strip_prefix(b"0X")) {
        (h, 16)
    } else if s.len() > 1 && s[0] == b'0' {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: usize = 0;
    for &c in digits {
        let d = (c as char).to_digit(radix)? as usize;
        v = v.checked_mul(radix as usize)?.checked_add(d)?;
    }
    Some(v)
}

fn clamp_int(v: usize) -> i32 {
    v.min(i32::MAX as usize) as i32
}

/// Apply one glibc tunable (`glibc.malloc.<name>`) or legacy variable.
fn apply(params: &mut Params, name: &[u8], v: usize) {
    let set = |p: &mut Params, o, v| {
        p.set(o, clamp_int(v));
    };
    match name {
        b"top_pad" => set(params, opt::M_TOP_PAD, v),
        b"trim_threshold" => set(params, opt::M_TRIM_THRESHOLD, v),
        b"mmap_threshold" => set(params, opt::M_MMAP_THRESHOLD, v),
        b"mmap_max" => set(params, opt::M_MMAP_MAX, v),
        b"perturb" if v <= 0xff => set(params, opt::M_PERTURB, v),
        b"arena_max" if v > 0 => set(params, opt::M_ARENA_MAX, v),
        b"arena_test" if v > 0 => set(params, opt::M_ARENA_TEST, v),
        b"mxfast" => set(params, opt::M_MXFAST, v),
        b"check" if v <= 3 => set(params, opt::M_CHECK_ACTION, v),
        b"tcache_max" => {
            params.set_tcache_max(v);
        }
        b"tcache_count" => {
            params.set_tcache_count(v);
        }
        b"tcache_unsorted_limit" => params.tcache_unsorted_limit = v,
        _ => {}
    }
}

/// Read every setting from the environment into `params`.
pub fn read(params: &mut Params) -> Extras {
    let mut extras = Extras::default();
    for_each(|name, value| {
        let legacy: Option<&[u8]> = match name {
            b"MALLOC_TOP_PAD_" => Some(b"top_pad"),
            b"MALLOC_TRIM_THRESHOLD_" => Some(b"trim_threshold"),
            b"MALLOC_MMAP_THRESHOLD_" => Some(b"mmap_threshold"),
            b"MALLOC_MMAP_MAX_" => Some(b"mmap_max"),
            b"MALLOC_PERTURB_" => Some(b"perturb"),
            b"MALLOC_ARENA_MAX" => Some(b"arena_max"),
            b"MALLOC_ARENA_TEST" => Some(b"arena_test"),
            b"MALLOC_CHECK_" => Some(b"check"),
            _ => None,
        };
        if let (Some(tunable), Some(v)) = (legacy, parse_number(value)) {
            apply(params, tunable, v);
        }
        if name == b"GLIBC_TUNABLES" {
            for item in value.split(|&b| b == b':') {
                let Some(eq) = item.iter().position(|&b| b == b'=') else {
                    continue;
                };
                if let (Some(tunable), Some(v)) = (
                    item[..eq].strip_prefix(b"glibc.malloc."),
                    parse_number(&item[eq + 1..]),
                ) {
                    apply(params, tunable, v);
                }
            }
        }
        if name == b"PTMALLOC_RS_SHOW_STATS" {
            extras.show_stats = !value.is_empty() && value != b"0";
        }
    });
    extras
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_like_glibc_tunables() {
        assert_eq!(parse_number(b"4096"), Some(4096));
        assert_eq!(parse_number(b"0x1000"), Some(4096));
        assert_eq!(parse_number(b"010"), Some(8));
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b"12k"), None);
        assert_eq!(parse_number(b""), None);
        assert_eq!(parse_number(b"99999999999999999999999"), None);
    }

    #[test]
    fn tunables_reach_params() {
        let mut p = Params::default();
        apply(&mut p, b"tcache_count", 3);
        apply(&mut p, b"mmap_threshold", 65536);
        apply(&mut p, b"perturb", 0x1ff);
        assert_eq!(p.tcache_count, 3);
        assert_eq!(p.mmap_threshold, 65536);
        assert!(p.no_dyn_threshold);
        assert_eq!(p.perturb_byte, 0);
    }
}
