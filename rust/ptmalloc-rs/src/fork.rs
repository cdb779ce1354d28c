//! Keeping a fork child's program break in step with its heap.
//!
//! Linux copies a process's recorded break before it copies the memory and
//! the mappings. Every `sbrk` of ours runs under the arena lock, so if the
//! lock was held when memory was copied the child retires the arena (see
//! `process`). What remains is a `brk` by another thread that completed in
//! the window between the two copies: the child's memory and mappings then
//! agree with each other (and with the arena), but the kernel's break is
//! stale, and the child's next `sbrk` could "succeed" without mapping
//! anything. Its signature is that glibc's cached break (in the copied
//! memory) differs from the kernel's. A child that sees it stops using
//! `brk` and grows the heap with `mmap`, as glibc does when `brk` fails.
//!
//! No lock is taken before a fork: any lock held across `fork` can deadlock
//! against glibc's stdio lock, which `fork` takes after the prepare handlers.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Set in a child whose kernel break disagrees with its memory.
static BRK_UNUSABLE: AtomicBool = AtomicBool::new(false);

/// Whether `sbrk` may be used.
#[inline(always)]
pub fn brk_usable() -> bool {
    !BRK_UNUSABLE.load(Relaxed)
}

/// In the child after `fork`: compare the kernel's break with glibc's.
pub fn check_break_after_fork() {
    // SAFETY: brk(0) only reports the kernel's break.
    let kernel = unsafe { libc::syscall(libc::SYS_brk, 0usize) } as usize;
    // SAFETY: sbrk(0) only reports glibc's cached break.
    let cached = unsafe { libc::sbrk(0) } as usize;
    if kernel != cached {
        BRK_UNUSABLE.store(true, Relaxed);
    }
}
