//! Each thread's cache state, in thread-local storage read with one
//! `%fs`-relative load on x86_64.
//!
//! A Rust `thread_local!` in a shared object uses the general-dynamic TLS
//! model: every access calls `__tls_get_addr` (measured at 6% of all
//! instructions of an allocation-heavy loop). glibc reads its own tcache
//! pointer with the initial-exec model, and so do we: the slot is defined in
//! `.tbss` and addressed through its GOT offset from the thread pointer. The
//! cost is the one glibc's own libraries pay: the object must be loaded at
//! startup (linked or `LD_PRELOAD`) or fit the static TLS surplus when
//! `dlopen`ed. Ours is 32 bytes of cache state, 376 of batched frees and
//! the thread's copy of the instance (about 240 bytes), well within glibc's surplus (1664 bytes
//! by default).

use ptmalloc_core::{Arena, Tcache, ThreadCache};

use crate::process::InstanceCache;
use crate::remote::Batches;

/// The stored form of a thread's state: the tcache address, the arena
/// address, a flag word, a count of system calls, the batched frees for other arenas, then the
/// thread's copy of the instance. Zero at thread start.
#[repr(C)]
struct Slot {
    tcache: usize,
    arena: usize,
    shutting_down: usize,
    system_calls: usize,
    batches: Batches,
    instance: InstanceCache,
}

/// Size of the slot, for the assembler.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
const SLOT_BYTES: usize = core::mem::size_of::<Slot>();

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use super::{Slot, SLOT_BYTES};

    core::arch::global_asm!(
        ".section .tbss,\"awT\",@nobits",
        ".p2align 6",
        ".hidden ptmalloc_rs_thread_slot",
        "ptmalloc_rs_thread_slot:",
        ".zero {slot}",
        ".text",
        slot = const SLOT_BYTES,
    );

    /// The address of this thread's slot.
    #[inline(always)]
    pub fn slot() -> *mut Slot {
        let offset: usize;
        let base: usize;
        // SAFETY: loads the slot's offset from the thread pointer (resolved
        // by the dynamic linker at load time) and the thread pointer itself
        // (`%fs:0` holds it on x86_64 glibc); no memory is written.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + ptmalloc_rs_thread_slot@GOTTPOFF]",
                "mov {base}, qword ptr fs:[0]",
                off = out(reg) offset,
                base = out(reg) base,
                options(nostack, preserves_flags, readonly, pure),
            );
        }
        base.wrapping_add(offset) as *mut Slot
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod imp {
    use super::Slot;
    use core::cell::UnsafeCell;
    use core::mem::MaybeUninit;

    std::thread_local! {
        // Const-initialised and without Drop: no destructor, no allocation.
        static SLOT: UnsafeCell<MaybeUninit<Slot>> = const { UnsafeCell::new(MaybeUninit::zeroed()) };
    }

    /// The address of this thread's slot.
    #[inline(always)]
    pub fn slot() -> *mut Slot {
        SLOT.with(|s| s.get().cast())
    }
}

/// This thread's cache state.
#[inline(always)]
pub fn get() -> ThreadCache {
    // SAFETY: the slot belongs to this thread and lives as long as it does.
    let s = unsafe { &*imp::slot() };
    ThreadCache {
        tcache: Tcache(s.tcache),
        arena: Arena(s.arena),
        shutting_down: s.shutting_down != 0,
    }
}

/// Replace this thread's cache state.
#[inline(always)]
pub fn set(tc: ThreadCache) {
    // SAFETY: as in `get`; only this thread writes its slot.
    let s = unsafe { &mut *imp::slot() };
    s.tcache = tc.tcache.0;
    s.arena = tc.arena.0;
    s.shutting_down = tc.shutting_down as usize;
}

/// System calls the memory source made on this thread so far (wrapping).
#[inline(always)]
pub fn system_calls() -> usize {
    // SAFETY: a field of this thread's slot, only this thread writes it.
    unsafe { (*imp::slot()).system_calls }
}

/// Count a system call of the memory source (see `process::with_alloc`).
#[inline(always)]
pub fn count_system_call() {
    // SAFETY: as in `system_calls`.
    unsafe {
        let s = &raw mut (*imp::slot()).system_calls;
        *s = (*s).wrapping_add(1);
    }
}

/// This thread's batches of frees for other arenas (see `remote`).
#[inline(always)]
pub fn batches() -> *mut Batches {
    // SAFETY: a field of this thread's slot; no reference is formed.
    unsafe { &raw mut (*imp::slot()).batches }
}

/// This thread's copy of the instance (see `process::with_alloc`).
#[inline(always)]
pub fn instance_cache() -> *mut InstanceCache {
    // SAFETY: a field of this thread's slot; no reference is formed.
    unsafe { &raw mut (*imp::slot()).instance }
}
