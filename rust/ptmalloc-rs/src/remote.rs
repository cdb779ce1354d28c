//! Frees of chunks that belong to another thread's arena, batched per
//! thread: the chunks wait on a short chain of the freeing thread (one per
//! target arena, a few targets at once) and join the arena's deferred list
//! with one compare-and-swap per batch instead of one per chunk, without
//! the bookkeeping of a slow call (`process::with_alloc`).
//!
//! Nothing is lost: a batch goes out when it is full, when its slot is
//! wanted for another arena, at the start of the thread's next slow call
//! (every call through `with_alloc`, thread exit included), and a batch the
//! deferred list has no room for is freed under the arena's lock. Only small
//! chunks (the tcache's sizes) are batched, so what a thread holds back is
//! bounded: at most `SLOTS * (BATCH - 1)` chunks of at most 1040 bytes.
//! Batched chunks are in use as far as their arena is concerned, as
//! deferred ones are.
//!
//! Nor is anything left waiting for an owner that never comes: a thread
//! watches the last batch it queued on each arena, and frees the queue
//! into the arena itself (if the lock is free) when it finds that batch
//! still first in the queue `SETTLE_MS` later, or when it exits.

use ptmalloc_core::chunk::{IS_MMAPPED, NON_MAIN_ARENA, SIZE_BITS};
use ptmalloc_core::heap::Heap;
use ptmalloc_core::tcache::{csize2tidx, TCACHE_MAX_BINS};
use ptmalloc_core::{Arena, Chunk};

use crate::os::{arena_unattended, coarse_ms, deferred_first, push_deferred, RawMemory};

/// Chunks a batch takes before it goes out.
const BATCH: usize = 32;
/// Target arenas a thread batches for at once (a power of two).
const SLOTS: usize = 4;

/// How long, in milliseconds, a batch this thread queued may stay first in
/// its arena's list, untaken, before this thread frees the list into the
/// arena itself (see `settle`). An owner that allocates takes its list at
/// its next cache miss, within microseconds; one preempted on a busy
/// machine, within a few scheduler ticks.
const SETTLE_MS: u64 = 20;
/// A thread that watches queues looks at them every this many slow calls
/// (the look reads the clock: on every call it cost larson at 8 threads
/// about 10% of its CPU time).
const SETTLE_EVERY: usize = 16;

/// How far ahead, in chunks, each batched chunk's `bk` word points: the
/// owner's walk of the chain fetches that chunk while it handles this one
/// (see `Memory::prefetch_from`), instead of missing the cache on each
/// chunk in turn.
const AHEAD: usize = 4;

/// One batch: chunks of `arena` linked through their `fd` words, `first`
/// the newest, `last` the oldest (whose link the push sets); `count` of
/// them, `bytes` in all. `recent` holds the last `AHEAD` chunks batched, by
/// count modulo `AHEAD`. `sent` is the first chunk of the last batch this
/// thread queued for `arena`, at `sent_at` (ms), while this thread has not
/// seen the queue taken since (0: nothing to watch).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Batch {
    arena: usize,
    first: usize,
    last: usize,
    count: usize,
    bytes: usize,
    sent: usize,
    sent_at: u64,
    recent: [usize; AHEAD],
}

/// A thread's batches (zero at thread start: all empty).
#[repr(C)]
pub struct Batches {
    /// Chunks held in all slots (0: nothing to flush).
    held: usize,
    /// Slots whose `sent` is watched (0: nothing to settle).
    watched: usize,
    /// Slow calls made while watching.
    calls: usize,
    slot: [Batch; SLOTS],
}

/// Which slot batches for `av`: arenas other than the main one sit at the
/// start of a heap, 64 MiB-aligned, so the bits above the alignment differ.
#[inline(always)]
fn slot_of(av: usize) -> usize {
    (av >> ptmalloc_core::heap::HEAP_MAX_SIZE.trailing_zeros()) & (SLOTS - 1)
}

/// Batch `p`, which `free` could not cache, if it is a small heap chunk of
/// an arena other than `own` (the thread's arena; 0 if it has none yet).
/// `false`: the caller frees it the ordinary way. The caller has checked the
/// pointer and size (the thread has a tcache, so `free_cached` did).
#[inline(always)]
pub fn free_remote(m: &mut RawMemory, own: usize, p: Chunk) -> bool {
    let Ok(raw) = p.size_field(m) else {
        return false;
    };
    if raw & IS_MMAPPED != 0 || csize2tidx(raw & !SIZE_BITS) >= TCACHE_MAX_BINS || own == 0 {
        return false;
    }
    let av = if raw & NON_MAIN_ARENA == 0 {
        crate::process::main_arena()
    } else {
        match Heap::of(p.0).arena(m) {
            Ok(Arena(a)) => a,
            Err(_) => return false,
        }
    };
    if av == own {
        return false;
    }
    // The hardened checks of a freed chunk (in use, a header of ours); a
    // check that did not abort (MALLOC_CHECK_ 0 or 1) leaves the chunk be.
    let cfg = crate::process::tcache_config();
    if crate::process::Alloc::check_foreign_free(m, &cfg, p).is_err() {
        return true;
    }
    let k = slot_of(av);
    // The slot holds another arena's chunks: they go out first.
    if let Some(old) = take_if(k, |s| s.arena != av && s.count != 0) {
        send(old);
    }
    // SAFETY: as below; the reference ends here.
    let (count, was) = unsafe {
        let s = &(*crate::tls::batches()).slot[k];
        (s.count, s.arena)
    };
    // An empty slot taken over for another arena stops watching the old one.
    if count == 0 && was != av {
        unwatch(was);
    }
    // SAFETY: this thread's own storage, which only this thread reaches;
    // the reference ends before anything else (`send`) can form another.
    let full = unsafe {
        let b = &mut *crate::tls::batches();
        let s = &mut b.slot[k];
        if s.count == 0 {
            s.arena = av;
            s.last = p.0;
            s.first = 0;
            s.bytes = 0;
            s.recent = [0; AHEAD];
        }
        // The chunk is being freed: its fd and bk words are ours. The chain
        // ends with 0 until the push links it to the list; bk names the
        // chunk AHEAD places further on (batched AHEAD chunks ago).
        (p.fd_addr() as *mut usize).write(s.first);
        let r = &mut s.recent[s.count % AHEAD];
        (p.bk_addr() as *mut usize).write(*r);
        *r = p.0;
        s.first = p.0;
        s.count += 1;
        s.bytes += raw & !SIZE_BITS;
        b.held += 1;
        s.count >= BATCH
    };
    if full {
        if let Some(b) = take_if(k, |_| true) {
            send(b);
        }
    }
    true
}

/// Take slot `k`'s batch out of it if it is not empty and `want` says so.
#[inline(always)]
fn take_if(k: usize, want: impl FnOnce(&Batch) -> bool) -> Option<Batch> {
    // SAFETY: as in `free_remote`; the reference ends here.
    let b = unsafe { &mut *crate::tls::batches() };
    let s = b.slot[k];
    if s.count == 0 || !want(&s) {
        return None;
    }
    b.held -= s.count;
    b.slot[k].count = 0;
    Some(s)
}

/// Send out every batch of this thread (at a slow call, before it runs).
#[cold]
pub fn flush() {
    for k in 0..SLOTS {
        if let Some(b) = take_if(k, |_| true) {
            send(b);
        }
    }
}

/// Whether this thread holds batched chunks.
#[inline(always)]
pub fn held() -> bool {
    // SAFETY: as in `free_remote`.
    unsafe { (*crate::tls::batches()).held != 0 }
}

/// Put a batch (already taken out of its slot) on its arena's deferred
/// list, or free it under the arena's lock when the list is full.
///
/// The list waits for its owner's next slow call, which may never come: an
/// owner that has gone idle (alive, allocating nothing) would keep the
/// chunks, and the last ones freed, at the top of its heap, would keep the
/// heap from shrinking. So this thread watches the batch it queued: when
/// it finds it still first in the list `SETTLE_MS` later (at its next push
/// there, or at every `SETTLE_EVERY`th slow call; at once when it exits),
/// nobody took the list, and it frees the list into the arena itself if
/// the lock is free.
#[inline(never)]
fn send(b: Batch) {
    let Some(previous) = push_deferred(b.arena, b.first, b.last, b.bytes) else {
        unwatch(b.arena);
        let _ = crate::process::with_alloc(|a, _| a.free_chain_locked(Arena(b.arena), b.first));
        return;
    };
    let now = coarse_ms();
    let untaken = previous != 0 && previous == b.sent && now.saturating_sub(b.sent_at) >= SETTLE_MS;
    if untaken {
        unwatch(b.arena);
    } else {
        watch(b.arena, b.first, now);
    }
    if arena_unattended(b.arena) {
        // The arena's last thread has exited: nobody would take the batch.
        let _ = crate::process::with_alloc(|a, _| a.drain_if_unattended(Arena(b.arena)));
    } else if untaken {
        let _ = crate::process::with_alloc(|a, _| a.drain_if_unlocked(Arena(b.arena)));
    }
}

/// Watch `first`, just queued for `av`, if `av`'s slot still batches for it.
fn watch(av: usize, first: usize, now: u64) {
    // SAFETY: as in `free_remote`; the reference ends here.
    let b = unsafe { &mut *crate::tls::batches() };
    let s = &mut b.slot[slot_of(av)];
    if s.arena != av {
        return;
    }
    if s.sent == 0 {
        b.watched += 1;
    }
    s.sent = first;
    s.sent_at = now;
}

/// Stop watching `av`'s queue.
fn unwatch(av: usize) {
    // SAFETY: as in `free_remote`; the reference ends here.
    let b = unsafe { &mut *crate::tls::batches() };
    let s = &mut b.slot[slot_of(av)];
    if s.arena == av && s.sent != 0 {
        s.sent = 0;
        b.watched -= 1;
    }
}

/// At a slow call: now and then, look at the queues this thread watches
/// (see `settle`).
#[inline(always)]
pub fn settle_now_and_then() {
    // SAFETY: as in `free_remote`; the reference ends before `settle`.
    let due = unsafe {
        let b = &mut *crate::tls::batches();
        if b.watched == 0 {
            return;
        }
        b.calls += 1;
        b.calls % SETTLE_EVERY == 0
    };
    if due {
        settle(false);
    }
}

/// Free, if their locks are free, the queues in which the batch this thread
/// queued last is still first after `SETTLE_MS`: their owners have not come
/// for them. A queue someone took, or pushed onto since, is no longer
/// watched. A thread that is `exiting` frees every queue it watches.
#[cold]
pub fn settle(exiting: bool) {
    let mut drain = [0usize; SLOTS];
    let now = coarse_ms();
    for (k, d) in drain.iter_mut().enumerate() {
        // SAFETY: as in `free_remote`; the copy ends the borrow.
        let s = unsafe { (*crate::tls::batches()).slot[k] };
        if s.sent == 0 {
            continue;
        }
        if exiting {
            // Its own cache, flushed on the way out, may sit on top.
            *d = s.arena;
        } else if now.saturating_sub(s.sent_at) < SETTLE_MS {
            // Too early to tell (and no need to read the owner's line).
            continue;
        } else if deferred_first(s.arena) == s.sent {
            *d = s.arena;
        }
        unwatch(s.arena);
    }
    // Unwatched first: the slow calls below start by settling again.
    for av in drain {
        if av != 0 {
            let _ = crate::process::with_alloc(|a, _| a.drain_if_unlocked(Arena(av)));
        }
    }
}
