//! Parameters of an instance (`mp_` in glibc) and their `mallopt` rules.

use crate::bins::{max_fast_for, DEFAULT_MXFAST, MAX_FAST_SIZE};
use crate::tcache::{usize2tidx, TcacheConfig, MAX_TCACHE_COUNT, TCACHE_FILL_COUNT, TCACHE_MAX_BINS};

/// `mallopt` parameter numbers, as in glibc's `<malloc.h>`.
pub mod opt {
    /// Largest request served by fastbins.
    pub const M_MXFAST: i32 = 1;
    /// Top-chunk size above which `free` trims.
    pub const M_TRIM_THRESHOLD: i32 = -1;
    /// Extra bytes requested with each `sbrk`.
    pub const M_TOP_PAD: i32 = -2;
    /// Requests at least this large are mapped on their own.
    pub const M_MMAP_THRESHOLD: i32 = -3;
    /// Most chunks mapped on their own at once.
    pub const M_MMAP_MAX: i32 = -4;
    /// What to do on detected corruption.
    pub const M_CHECK_ACTION: i32 = -5;
    /// Byte to fill allocated (inverted) and freed memory with.
    pub const M_PERTURB: i32 = -6;
    /// Arenas created before the arena limit is checked.
    pub const M_ARENA_TEST: i32 = -7;
    /// Most arenas.
    pub const M_ARENA_MAX: i32 = -8;
}

/// Default mmap threshold (`DEFAULT_MMAP_THRESHOLD_MIN`).
pub const DEFAULT_MMAP_THRESHOLD: usize = 128 * 1024;
/// Ceiling of the dynamic mmap threshold (`DEFAULT_MMAP_THRESHOLD_MAX`, 64-bit).
pub const DEFAULT_MMAP_THRESHOLD_MAX: usize = 4 * 1024 * 1024 * core::mem::size_of::<usize>();
/// Size of a non-main heap (`HEAP_MAX_SIZE`, 64-bit).
pub const HEAP_MAX_SIZE: usize = 2 * DEFAULT_MMAP_THRESHOLD_MAX;
/// Default trim threshold (`DEFAULT_TRIM_THRESHOLD`).
pub const DEFAULT_TRIM_THRESHOLD: usize = 128 * 1024;
/// Default top pad (`DEFAULT_TOP_PAD`).
pub const DEFAULT_TOP_PAD: usize = 128 * 1024;
/// Default most mmapped chunks (`DEFAULT_MMAP_MAX`).
pub const DEFAULT_MMAP_MAX: usize = 65536;
/// Arenas created before `arena_max` is computed from the core count.
pub const DEFAULT_ARENA_TEST: usize = 8;

/// The tunable parameters of one allocator instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Trim the top chunk when it exceeds this after a large free.
    pub trim_threshold: usize,
    /// Extra bytes obtained with each growth, and kept at each trim.
    pub top_pad: usize,
    /// Requests whose chunk is at least this large are mapped on their own.
    pub mmap_threshold: usize,
    /// Arena-count check threshold (`M_ARENA_TEST`).
    pub arena_test: usize,
    /// Most arenas; 0 means derived from the core count (`M_ARENA_MAX`).
    pub arena_max: usize,
    /// Most simultaneously mapped chunks.
    pub n_mmaps_max: usize,
    /// Set when the user fixed a threshold: no dynamic adjustment any more.
    pub no_dyn_threshold: bool,
    /// Fill byte for perturbation (0: off).
    pub perturb_byte: u8,
    /// Largest chunk size kept in fastbins (`global_max_fast`).
    pub max_fast: usize,
    /// Tcache bins in use.
    pub tcache_bins: usize,
    /// Largest request served by the tcache.
    pub tcache_max_bytes: usize,
    /// Chunks per tcache bin.
    pub tcache_count: usize,
    /// Chunks examined in the unsorted bin before returning a cached one (0: no limit).
    pub tcache_unsorted_limit: usize,
    /// The check action (`M_CHECK_ACTION`), kept for reporting.
    pub check_action: i32,
    /// Checks beyond glibc's (keyed chunk headers, double frees glibc
    /// misses): on in the process allocator, off in glibc's profile.
    pub hardened: bool,
    /// Fill freed memory and verify the fill when the chunk is reused,
    /// reporting writes after free (opt-in: it touches every freed byte).
    pub free_check: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            trim_threshold: DEFAULT_TRIM_THRESHOLD,
            top_pad: DEFAULT_TOP_PAD,
            mmap_threshold: DEFAULT_MMAP_THRESHOLD,
            arena_test: DEFAULT_ARENA_TEST,
            arena_max: 0,
            n_mmaps_max: DEFAULT_MMAP_MAX,
            no_dyn_threshold: false,
            perturb_byte: 0,
            max_fast: max_fast_for(DEFAULT_MXFAST),
            tcache_bins: TCACHE_MAX_BINS,
            tcache_max_bytes: crate::tcache::tidx2usize(TCACHE_MAX_BINS - 1),
            tcache_count: TCACHE_FILL_COUNT,
            tcache_unsorted_limit: 0,
            check_action: 3,
            hardened: false,
            free_check: false,
        }
    }
}

impl Params {
    /// The tcache settings the lock-free paths use.
    pub const fn tcache_config(&self, key: usize) -> TcacheConfig {
        TcacheConfig {
            bins: self.tcache_bins,
            count: self.tcache_count,
            key,
            fill: self.free_check,
        }
    }

    /// Apply one `mallopt` setting with glibc's validation; `true` on success.
    /// (Consolidating before a change of `max_fast` is the caller's job.)
    pub fn set(&mut self, param: i32, value: i32) -> bool {
        // glibc passes the int on as size_t: negative values become huge.
        let wide = value as isize as usize;
        match param {
            opt::M_MXFAST => {
                if wide <= MAX_FAST_SIZE {
                    self.max_fast = max_fast_for(wide);
                    true
                } else {
                    false
                }
            }
            opt::M_TRIM_THRESHOLD => {
                self.trim_threshold = wide;
                self.no_dyn_threshold = true;
                true
            }
            opt::M_TOP_PAD => {
                self.top_pad = wide;
                self.no_dyn_threshold = true;
                true
            }
            opt::M_MMAP_THRESHOLD => {
                // glibc 2.36 accepts any value here (only the tunable is capped).
                self.mmap_threshold = wide;
                self.no_dyn_threshold = true;
                true
            }
            opt::M_MMAP_MAX => {
                self.n_mmaps_max = wide;
                self.no_dyn_threshold = true;
                true
            }
            opt::M_CHECK_ACTION => {
                self.check_action = value;
                true
            }
            opt::M_PERTURB => {
                self.perturb_byte = value as u8;
                true
            }
            opt::M_ARENA_TEST => {
                if value > 0 {
                    self.arena_test = wide;
                }
                true
            }
            opt::M_ARENA_MAX => {
                if value > 0 {
                    self.arena_max = wide;
                }
                true
            }
            // glibc ignores parameters it does not know and reports success.
            _ => true,
        }
    }

    /// Set the largest request the tcache serves (`glibc.malloc.tcache_max`).
    pub fn set_tcache_max(&mut self, bytes: usize) -> bool {
        if bytes <= self.tcache_max_limit() {
            self.tcache_max_bytes = bytes;
            self.tcache_bins = usize2tidx(bytes) + 1;
            true
        } else {
            false
        }
    }

    /// The largest `tcache_max` glibc accepts.
    pub const fn tcache_max_limit(&self) -> usize {
        crate::tcache::tidx2usize(TCACHE_MAX_BINS - 1)
    }

    /// Set the chunks per tcache bin (`glibc.malloc.tcache_count`).
    pub fn set_tcache_count(&mut self, count: usize) -> bool {
        if count <= MAX_TCACHE_COUNT {
            self.tcache_count = count;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::opt::*;
    use super::*;

    #[test]
    fn mallopt_validation_follows_glibc() {
        let mut p = Params::default();
        assert_eq!(p.max_fast, 128);
        assert!(p.set(M_MXFAST, 0));
        assert_eq!(p.max_fast, 16);
        assert!(p.set(M_MXFAST, 160));
        assert!(!p.set(M_MXFAST, 161));
        assert!(!p.set(M_MXFAST, -1));
        assert!(p.set(M_MMAP_THRESHOLD, 64 * 1024 * 1024));
        assert!(p.no_dyn_threshold);
        assert!(p.set(M_ARENA_MAX, 0));
        assert_eq!(p.arena_max, 0);
        assert!(p.set(12345, 1));
        assert!(p.set_tcache_max(0));
        assert_eq!(p.tcache_bins, 1);
        assert!(!p.set_tcache_max(1033));
    }
}
