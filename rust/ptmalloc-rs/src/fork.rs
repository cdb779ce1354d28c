//! Fork children: how one finds out that it is one, and keeping its
//! program break in step with its heap.
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

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::*};

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

/// How a fork child finds out that it is one: a page the kernel hands the
/// child zeroed (`MADV_WIPEONFORK`, Linux 4.14), read at the start of every
/// call that may take an allocator lock (`process::ensure_ready`). A
/// `pthread_atfork` child handler would learn it sooner, but glibc's
/// `__register_atfork` and the read-only data it reads lie in 64 KiB
/// stretches of libc that a process on glibc's own malloc never maps: with
/// the kernel's fault-around, 60-100 KiB more of every process resident
/// (measured with /proc/self/pagemap). Where the kernel cannot wipe a page,
/// the handler is registered after all.
///
/// The mark is 1 in a process that has nothing to do about a fork, 0 in a
/// child that has not yet dealt with its fork, 2 while one thread deals
/// with it (a child may have started threads before its first slow call:
/// exactly one runs the handler, and the others wait for it). Until the
/// page is armed the mark is a static 1: a process that never armed it
/// never reads a fork.
static NOT_ARMED: AtomicUsize = AtomicUsize::new(1);
static MARK: AtomicPtr<AtomicUsize> = AtomicPtr::new(&NOT_ARMED as *const AtomicUsize as *mut AtomicUsize);

/// Arm the mark (once, from the library constructor, while the process has
/// one thread: no fork before it can have copied a held lock), or register
/// `child` to run in fork children if the kernel cannot wipe a page.
pub fn arm(child: unsafe extern "C" fn()) {
    let len = 4096;
    if let Some(page) = crate::os::map_anonymous(len) {
        let page = page as *mut libc::c_void;
        // SAFETY: advice on the mapping just made.
        if unsafe { libc::madvise(page, len, libc::MADV_WIPEONFORK) } == 0 {
            let mark = page as *mut AtomicUsize;
            // SAFETY: the page is mapped, writable and aligned for a word.
            unsafe { (*mark).store(1, Relaxed) };
            MARK.store(mark, Release);
            return;
        }
        // SAFETY: the mapping just made, used by nothing.
        unsafe { libc::munmap(page, len) };
    }
    // SAFETY: registers a child handler only: no lock is taken before fork.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// The mark (see `MARK`).
#[inline(always)]
fn mark() -> &'static AtomicUsize {
    // SAFETY: MARK points to NOT_ARMED or to the armed page, which stays
    // mapped for the life of the process (and in its fork children).
    unsafe { &*MARK.load(Relaxed) }
}

/// Whether the fork of this process, a fork child, is not dealt with yet
/// (then the caller goes to `claim_fork`).
#[inline(always)]
pub fn fork_pending() -> bool {
    mark().load(Acquire) != 1
}

/// `true`: the caller is the one thread that deals with the fork, and
/// calls `fork_handled` when done. `false`: it was dealt with (this call
/// waited while another thread did it).
#[cold]
pub fn claim_fork() -> bool {
    loop {
        match mark().compare_exchange(0, 2, Acquire, Acquire) {
            Ok(_) => return true,
            Err(1) => return false,
            Err(_) => core::hint::spin_loop(),
        }
    }
}

/// The fork was dealt with: a later fork wipes the mark again.
pub fn fork_handled() {
    mark().store(1, Release);
}
