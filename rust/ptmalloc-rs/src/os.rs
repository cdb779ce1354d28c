//! The process's memory source: raw loads and stores, `brk` and `mmap`.

use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering::*};

use ptmalloc_core::{Arena, Chunk, Memory};

use crate::lock::Lock;
use crate::output::{fatal, report};

/// The lock of the list of arenas (creation, binding, the free list).
pub static ARENA_LIST_LOCK: Lock = Lock::new();

/// The lock of arena `av`: glibc's `mutex`, the arena state's first word.
///
/// # Safety
///
/// `av` is an arena of the process allocator: its state stays mapped for
/// the life of the process, and its first word is only used as this lock.
#[inline(always)]
pub unsafe fn arena_lock<'a>(av: usize) -> &'a Lock {
    // SAFETY: the caller's contract; `Lock` is a `repr(transparent)`
    // AtomicU32 and the state is 64-byte aligned.
    unsafe { &*(av as *const Lock) }
}

/// The head of the frees other threads queued for arena `av`.
///
/// # Safety
///
/// As for [`arena_lock`]; the slot is only accessed atomically.
#[inline(always)]
unsafe fn deferred_head<'a>(av: usize) -> &'a AtomicUsize {
    // SAFETY: the caller's contract; the slot is an aligned word of the state.
    unsafe { &*(Arena(av).deferred_slot() as *const AtomicUsize) }
}

/// The deferred-free head word: a chunk address below, what the queue holds
/// from this bit up, in units of `DEFERRED_UNIT` bytes.
const DEFERRED_SIZE_SHIFT: u32 = 48;
const DEFERRED_ADDR_MASK: usize = (1 << DEFERRED_SIZE_SHIFT) - 1;
const DEFERRED_UNIT: usize = 32;
/// Bytes queued on one arena at most; past it a foreign thread waits for the
/// lock and frees the chunks itself. The queue waits for the owner's next
/// slow call, which may never come (a thread that allocated, handed its
/// blocks over and went idle): this is what such an owner can leave behind
/// unreclaimed, where glibc would have freed it into the arena (and trimmed
/// the heap); the large chunks that matter most skip the queue when the
/// lock is free (`Allocator::free_uncached`). Large enough for many batches
/// in flight: at 256 KiB larson's peak RSS at 4 threads rose by 300-500 KiB
/// (more frees into the arena by foreign threads instead of the owner's
/// cache); the old limit, 4096 chunks, let 60 KiB chunks pile up to 240 MiB.
const DEFERRED_MAX_BYTES: usize = 1024 * 1024;
const _: () = assert!(DEFERRED_MAX_BYTES / DEFERRED_UNIT < 1 << (usize::BITS - DEFERRED_SIZE_SHIFT));

/// Queue on arena `av`'s deferred frees the chunks from `first` to `last`,
/// `bytes` of them in all, linked through their fd words (`last`'s is set
/// here): the chunk that was first in the queue before them (0: it was
/// empty), or `None` when the queue has no room for them.
///
/// A lock-free push (Treiber stack); takers take the whole list at once, so
/// there is no ABA. The head word carries what the queue holds in its top
/// bits (user addresses stay below 2^47), which bounds what an idle owner
/// can leave unreclaimed.
pub fn push_deferred(av: usize, first: usize, last: usize, bytes: usize) -> Option<usize> {
    let fd = last + 2 * core::mem::size_of::<usize>();
    let units = bytes.div_ceil(DEFERRED_UNIT);
    if first >> DEFERRED_SIZE_SHIFT != 0 || bytes > DEFERRED_MAX_BYTES {
        // SAFETY: as below.
        unsafe { (fd as *mut usize).write(0) };
        return None;
    }
    // SAFETY: `av` is an arena of this instance (the arena of the chunks
    // being freed; see arena_lock).
    let head = unsafe { deferred_head(av) };
    let mut old = head.load(Relaxed);
    loop {
        let queued = old >> DEFERRED_SIZE_SHIFT;
        if (queued + units) * DEFERRED_UNIT > DEFERRED_MAX_BYTES {
            // The chain goes back to the caller ending where it ended.
            // SAFETY: as below.
            unsafe { (fd as *mut usize).write(0) };
            return None;
        }
        // SAFETY: the chunks are being freed: their fd words are ours.
        unsafe { (fd as *mut usize).write(old & DEFERRED_ADDR_MASK) };
        let new = first | (queued + units) << DEFERRED_SIZE_SHIFT;
        match head.compare_exchange_weak(old, new, Release, Relaxed) {
            Ok(_) => return Some(old & DEFERRED_ADDR_MASK),
            Err(now) => old = now,
        }
    }
}

/// The chunk first in arena `av`'s deferred frees (0: none queued).
#[inline(always)]
pub fn deferred_first(av: usize) -> usize {
    // SAFETY: as in push_deferred.
    unsafe { deferred_head(av) }.load(Relaxed) & DEFERRED_ADDR_MASK
}

/// A coarse monotonic clock in milliseconds (the kernel's tick: a few ms).
pub fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Whether no thread is attached to arena `av`, read after a push on its
/// deferred list. The fence pairs with the one between the last thread's
/// detach and its emptying of the list (`Allocator::detach_thread`): either
/// that emptying sees the push, or this read sees the detach.
#[inline(always)]
pub fn arena_unattended(av: usize) -> bool {
    core::sync::atomic::fence(SeqCst);
    // SAFETY: `av` is an arena of this instance (see arena_lock); the count
    // is an aligned word of its state, written under the list lock.
    let attached = unsafe { &*(Arena(av).attached_slot() as *const AtomicUsize) };
    attached.load(Relaxed) == 0
}

/// A fresh private anonymous read-write mapping of `len` bytes.
pub fn map_anonymous(len: usize) -> Option<usize> {
    // SAFETY: a fresh anonymous private mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p as usize)
}

/// Processors this process may run on (for the default arena limit).
static CPUS: AtomicU32 = AtomicU32::new(0);

fn cpu_count() -> usize {
    let cached = CPUS.load(Relaxed);
    if cached != 0 {
        return cached as usize;
    }
    let mut mask = [0u64; 16];
    // SAFETY: the kernel writes at most size_of_val(&mask) bytes into it;
    // a raw syscall, so nothing can allocate.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            0,
            core::mem::size_of_val(&mask),
            mask.as_mut_ptr(),
        )
    };
    let count = if n > 0 {
        let words = (n as usize).div_ceil(8).min(mask.len());
        mask[..words].iter().map(|w| w.count_ones()).sum::<u32>().max(1)
    } else {
        1
    };
    CPUS.store(count, Relaxed);
    count as usize
}

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// What a detected corruption does (`M_CHECK_ACTION`, `MALLOC_CHECK_`):
/// bit 0 prints glibc's message, bit 1 aborts. 3 (both) is the default;
/// with 0 or 1 the operation that found the corruption is abandoned.
static CHECK_ACTION: AtomicI32 = AtomicI32::new(3);

/// Set the check action (published from the parameters).
pub fn set_check_action(action: i32) {
    CHECK_ACTION.store(action, Relaxed);
}

/// A corruption was detected and the check action says carry on: the
/// operation stops where the check failed (a free is dropped, an
/// allocation returns NULL), before it changed anything further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abandoned;

/// The system page size, read once from the auxiliary vector.
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: getauxval only reads the auxiliary vector; it never allocates.
    let page = match unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize {
        0 => 4096,
        p => p,
    };
    PAGE_SIZE.store(page, Relaxed);
    page
}

/// Direct access to this process's memory.
pub struct RawMemory(());

impl RawMemory {
    /// The process memory source.
    ///
    /// # Safety
    ///
    /// Every address the allocator passes to the accessors must be readable
    /// and writable: true while the heap metadata is written only by the
    /// allocator. A program that corrupts its heap gets what it gets from
    /// glibc: an integrity check where one exists, else undefined behaviour.
    #[inline(always)]
    pub const unsafe fn new() -> Self {
        RawMemory(())
    }
}

// SAFETY: ranges come from the kernel's brk and mmap and stay mapped until
// the allocator releases them; see `RawMemory::new` for the accessors.
unsafe impl Memory for RawMemory {
    type Error = Abandoned;

    #[cold]
    fn corruption(&mut self, message: &'static str) -> Abandoned {
        let action = CHECK_ACTION.load(Relaxed);
        if action & 2 != 0 {
            if action & 1 != 0 {
                fatal(message);
            }
            // SAFETY: abort never returns and needs no allocation.
            unsafe { libc::abort() }
        }
        if action & 1 != 0 {
            report(message);
        }
        Abandoned
    }

    #[inline(always)]
    fn read(&self, addr: usize) -> Result<usize, Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        Ok(unsafe { (addr as *const usize).read_unaligned() })
    }

    #[inline(always)]
    fn write(&mut self, addr: usize, value: usize) -> Result<(), Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        unsafe { (addr as *mut usize).write_unaligned(value) };
        Ok(())
    }

    #[inline(always)]
    fn read_u16(&self, addr: usize) -> Result<u16, Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        Ok(unsafe { (addr as *const u16).read_unaligned() })
    }

    #[inline(always)]
    fn write_u16(&mut self, addr: usize, value: u16) -> Result<(), Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        unsafe { (addr as *mut u16).write_unaligned(value) };
        Ok(())
    }

    #[inline(always)]
    fn read_u32(&self, addr: usize) -> Result<u32, Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        Ok(unsafe { (addr as *const u32).read_unaligned() })
    }

    #[inline(always)]
    fn write_u32(&mut self, addr: usize, value: u32) -> Result<(), Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        unsafe { (addr as *mut u32).write_unaligned(value) };
        Ok(())
    }

    #[inline(always)]
    fn copy(&mut self, dst: usize, src: usize, len: usize) -> Result<(), Abandoned> {
        // SAFETY: the contract of `RawMemory::new`; the allocator copies
        // between distinct chunks, which never overlap.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, dst as *mut u8, len) };
        Ok(())
    }

    #[inline(always)]
    fn fill(&mut self, dst: usize, byte: u8, len: usize) -> Result<(), Abandoned> {
        // SAFETY: the contract of `RawMemory::new`.
        unsafe { core::ptr::write_bytes(dst as *mut u8, byte, len) };
        Ok(())
    }

    fn sbrk(&mut self, increment: isize) -> Option<usize> {
        crate::tls::count_system_call();
        if !crate::fork::brk_usable() {
            return None;
        }
        // SAFETY: sbrk only moves the program break; it never allocates.
        let old = unsafe { libc::sbrk(increment as libc::intptr_t) };
        if old as isize == -1 {
            None
        } else {
            // New break pages are zero (the kernel's promise, which calloc
            // relies on); memcheck marks them undefined unless told.
            if increment > 0 {
                crate::valgrind::make_defined(old as usize, increment as usize);
                crate::harden::mapped(old as usize, increment as usize);
            }
            Some(old as usize)
        }
    }

    fn mmap(&mut self, len: usize) -> Option<usize> {
        crate::tls::count_system_call();
        let p = map_anonymous(len)?;
        crate::harden::mapped(p, len);
        Some(p)
    }

    fn munmap(&mut self, addr: usize, len: usize) -> bool {
        crate::tls::count_system_call();
        // SAFETY: the allocator unmaps only mappings it made, once.
        unsafe { libc::munmap(addr as *mut libc::c_void, len) == 0 }
    }

    fn mremap(&mut self, addr: usize, old_len: usize, new_len: usize) -> Option<usize> {
        crate::tls::count_system_call();
        // SAFETY: resizes a mapping the allocator made; the chunk moves with it.
        let p = unsafe { libc::mremap(addr as *mut libc::c_void, old_len, new_len, libc::MREMAP_MAYMOVE) };
        if p == libc::MAP_FAILED {
            None
        } else {
            crate::harden::mapped(p as usize, new_len);
            Some(p as usize)
        }
    }

    fn discard(&mut self, addr: usize, len: usize) {
        // SAFETY: the range is whole pages inside a free chunk, which nobody reads.
        unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    }

    #[inline(always)]
    fn page_size(&self) -> usize {
        page_size()
    }

    #[inline(always)]
    fn header_key(&self) -> usize {
        crate::harden::header_key()
    }

    fn set_header_key(&mut self, key: usize) {
        crate::harden::set_header_key(key);
    }

    // User addresses stay below 2^48 whether or not headers are keyed, so
    // the mask is a constant: no load on the paths that read sizes.
    #[inline(always)]
    fn header_mask(&self) -> usize {
        ptmalloc_core::chunk::HEADER_SIZE_BITS
    }

    #[inline(always)]
    fn was_unmapped(&self, chunk: usize) -> bool {
        crate::harden::was_unmapped(chunk)
    }

    fn note_unmapped(&mut self, chunk: usize) {
        crate::harden::note_unmapped(chunk);
    }

    fn map_heap(&mut self, max: usize, size: usize) -> Option<usize> {
        // Reserve twice the size without access and keep the aligned half,
        // as glibc's new_heap does; only `size` bytes become accessible.
        // SAFETY: a fresh private reservation touches no existing memory.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                2 * max,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        let start = p as usize;
        let base = (start + max - 1) & !(max - 1);
        // SAFETY: both ranges lie inside the reservation just made.
        unsafe {
            if base > start {
                libc::munmap(start as *mut libc::c_void, base - start);
            }
            let end = start + 2 * max;
            if end > base + max {
                libc::munmap((base + max) as *mut libc::c_void, end - base - max);
            }
        }
        if !self.extend_heap(base, size) {
            // SAFETY: the heap's reservation is ours and unused.
            unsafe { libc::munmap(base as *mut libc::c_void, max) };
            return None;
        }
        crate::harden::mapped(base, max);
        Some(base)
    }

    fn extend_heap(&mut self, base: usize, size: usize) -> bool {
        // SAFETY: the range is the start of a heap reservation of ours.
        unsafe {
            libc::mprotect(
                base as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
            ) == 0
        }
    }

    #[inline(always)]
    fn lock_arena(&self, av: usize) {
        // SAFETY: the core locks only arenas of this instance.
        let lock = unsafe { arena_lock(av) };
        if crate::process::single_threaded() {
            lock.mark_busy();
        } else {
            lock.lock();
        }
    }

    #[inline(always)]
    fn try_lock_arena(&self, av: usize) -> bool {
        // SAFETY: as in lock_arena.
        let lock = unsafe { arena_lock(av) };
        if crate::process::single_threaded() {
            lock.mark_busy();
            true
        } else {
            lock.try_lock()
        }
    }

    #[inline(always)]
    fn unlock_arena(&self, av: usize) {
        // SAFETY: as in lock_arena.
        let lock = unsafe { arena_lock(av) };
        if crate::process::single_threaded() {
            lock.mark_idle();
        } else {
            lock.unlock();
        }
    }

    #[inline(always)]
    fn lock_arena_list(&self) {
        ARENA_LIST_LOCK.lock();
    }

    #[inline(always)]
    fn unlock_arena_list(&self) {
        ARENA_LIST_LOCK.unlock();
    }

    fn defer_free(&mut self, av: usize, chunk: usize) -> Result<bool, Abandoned> {
        let size = Chunk(chunk).size(self)?;
        // Nothing to fetch ahead of a lone chunk (see `prefetch_from`).
        // SAFETY: the chunk is being freed: its bk word is ours.
        unsafe { (Chunk(chunk).bk_addr() as *mut usize).write(0) };
        Ok(push_deferred(av, chunk, chunk, size).is_some())
    }

    #[inline(always)]
    fn prefetch_from(&self, addr: usize) {
        // SAFETY: `addr` is the bk word of a queued chunk: heap memory of
        // ours that every queueing path wrote (0 or a chunk address).
        let target = unsafe { (addr as *const usize).read() };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it never faults, whatever the address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(target as *const i8)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = target;
    }

    #[inline(always)]
    fn take_deferred(&mut self, av: usize) -> Result<usize, Abandoned> {
        // SAFETY: as in defer_free.
        let head = unsafe { deferred_head(av) };
        if head.load(Relaxed) == 0 {
            return Ok(0);
        }
        Ok(head.swap(0, Acquire) & DEFERRED_ADDR_MASK)
    }

    #[inline(always)]
    fn arena_unattended(&self, av: usize) -> bool {
        arena_unattended(av)
    }

    #[inline(always)]
    fn release_fence(&self) {
        core::sync::atomic::fence(Release);
    }

    #[inline(always)]
    fn full_fence(&self) {
        core::sync::atomic::fence(SeqCst);
    }

    fn cpu_count(&self) -> usize {
        cpu_count()
    }
}
