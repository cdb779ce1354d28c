//! A futex lock that never allocates (std's locks are off limits under
//! `malloc`): 0 free, 1 held, 2 held with waiters.

use core::sync::atomic::{AtomicU32, Ordering};

/// A lock (an arena's, the arena list's, the instance's). Transparent, so
/// that an arena's lock can live in the first word of its state.
#[repr(transparent)]
pub struct Lock(AtomicU32);

impl Default for Lock {
    fn default() -> Self {
        Self::new()
    }
}

impl Lock {
    /// A free lock.
    pub const fn new() -> Self {
        Lock(AtomicU32::new(0))
    }

    /// Take the lock.
    #[inline(always)]
    pub fn lock(&self) {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    /// Take the lock if it is free.
    #[inline(always)]
    pub fn try_lock(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
            && self
                .0
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    #[cold]
    fn lock_contended(&self) {
        for _ in 0..100 {
            core::hint::spin_loop();
            if self.0.load(Ordering::Relaxed) == 0
                && self
                    .0
                    .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        while self.0.swap(2, Ordering::Acquire) != 0 {
            // SAFETY: FUTEX_WAIT on our own word; it returns on a wake, a
            // signal, or when the word is no longer 2.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.0.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    2u32,
                    core::ptr::null::<libc::timespec>(),
                );
            }
        }
    }

    /// Release the lock.
    #[inline(always)]
    pub fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            // SAFETY: FUTEX_WAKE on our own word wakes one waiter.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.0.as_ptr(),
                    libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                    1u32,
                );
            }
        }
    }

    /// Mark the lock held without an atomic read-modify-write, for a process
    /// with a single thread: nobody can contend, but a fork from a signal
    /// handler must still see that an operation was under way.
    #[inline(always)]
    pub fn mark_busy(&self) {
        self.0.store(1, Ordering::Relaxed);
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }

    /// Undo [`Lock::mark_busy`].
    #[inline(always)]
    pub fn mark_idle(&self) {
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
        self.0.store(0, Ordering::Relaxed);
    }

    /// Whether somebody holds the lock (meaningful in a fork child, where
    /// nobody can release it any more).
    pub fn is_held(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Make the lock free again (fork child only: its holders are gone).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}
