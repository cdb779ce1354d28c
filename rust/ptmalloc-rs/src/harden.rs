//! The process allocator's side of the hardening beyond glibc: the secret
//! that keys chunk headers (kept with the published tcache settings, which
//! the same paths load), and the mapped chunks recently unmapped (so a
//! second free of one is reported instead of faulting on its header).

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Slots of the table of unmapped chunks: a direct-mapped cache, so a
/// lookup is one load; an older entry is forgotten when a newer one lands
/// in its slot (the double free then faults, as on glibc).
const UNMAPPED_SLOTS: usize = 256;
static UNMAPPED: [AtomicUsize; UNMAPPED_SLOTS] = [const { AtomicUsize::new(0) }; UNMAPPED_SLOTS];

pub use crate::process::{header_key, set_header_key};

#[inline(always)]
fn slot(chunk: usize) -> &'static AtomicUsize {
    &UNMAPPED[(chunk >> 12) % UNMAPPED_SLOTS]
}

/// Whether `chunk` was a mapped chunk unmapped since (and not mapped again).
/// Mapped chunks start a page (memalign's may not: those are not tracked),
/// so other pointers cost one test.
#[inline(always)]
pub fn was_unmapped(chunk: usize) -> bool {
    // One test on the common path: a chunk not at a page start.
    if chunk & 0xfff != 0 {
        return false;
    }
    page_chunk_was_unmapped(chunk)
}

#[cold]
#[inline(never)]
fn page_chunk_was_unmapped(chunk: usize) -> bool {
    chunk != 0 && header_key() != 0 && slot(chunk).load(Relaxed) == chunk
}

/// Remember `chunk`, about to be unmapped.
pub fn note_unmapped(chunk: usize) {
    if chunk & 0xfff == 0 {
        slot(chunk).store(chunk, Relaxed);
    }
}

/// The range [start, start + len) is mapped again (by the allocator): its
/// chunks are live memory from now on. Called before the range is used.
pub fn mapped(start: usize, len: usize) {
    if header_key() == 0 {
        return;
    }
    for s in UNMAPPED.iter() {
        let c = s.load(Relaxed);
        if c.wrapping_sub(start) < len {
            // Only ever cleared: a racing store of another address wins.
            let _ = s.compare_exchange(c, 0, Relaxed, Relaxed);
        }
    }
}
