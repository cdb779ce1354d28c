//! The exported C ABI: glibc's malloc family with glibc's prototypes, errno
//! rules and results. Each function is a thin shell over the instance in
//! [`crate::process`]; `malloc` and `free` try the thread's cache without
//! the lock first.

use core::ffi::{c_int, c_void};
use core::fmt::Write;

use ptmalloc_core::stats::{write_malloc_info, Mallinfo2};
use ptmalloc_core::Allocator;

use crate::os::{Abandoned, RawMemory};
use crate::output::{Sink, Writer, STATS_OUTPUT_LOCK};
use crate::process::{tcache_config, thread, with_alloc, with_params};

/// `M_MXFAST`: largest request served by fastbins (0 to 160).
#[cfg(not(feature = "system-malloc-h"))]
pub const M_MXFAST: c_int = 1;
/// `M_TRIM_THRESHOLD`: top-chunk size above which `free` trims.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_TRIM_THRESHOLD: c_int = -1;
/// `M_TOP_PAD`: extra bytes obtained with each growth.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_TOP_PAD: c_int = -2;
/// `M_MMAP_THRESHOLD`: requests at least this large are mapped on their own.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_MMAP_THRESHOLD: c_int = -3;
/// `M_MMAP_MAX`: most chunks mapped on their own at once.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_MMAP_MAX: c_int = -4;
/// `M_CHECK_ACTION`: what to do on detected corruption.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_CHECK_ACTION: c_int = -5;
/// `M_PERTURB`: fill byte for allocated and freed memory.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_PERTURB: c_int = -6;
/// `M_ARENA_TEST`: arenas created before the arena limit is checked.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_ARENA_TEST: c_int = -7;
/// `M_ARENA_MAX`: most arenas.
#[cfg(not(feature = "system-malloc-h"))]
pub const M_ARENA_MAX: c_int = -8;

/// `struct mallinfo`: the historical statistics, with `int` fields
/// (values that do not fit saturate at `INT_MAX`).
#[allow(non_camel_case_types)]
#[cfg(not(feature = "system-malloc-h"))]
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mallinfo {
    /// Non-mmapped space allocated (bytes).
    pub arena: c_int,
    /// Number of free chunks.
    pub ordblks: c_int,
    /// Number of free fastbin blocks.
    pub smblks: c_int,
    /// Number of mmapped regions.
    pub hblks: c_int,
    /// Space allocated in mmapped regions (bytes).
    pub hblkhd: c_int,
    /// Always 0.
    pub usmblks: c_int,
    /// Space in freed fastbin blocks (bytes).
    pub fsmblks: c_int,
    /// Total allocated space (bytes).
    pub uordblks: c_int,
    /// Total free space (bytes).
    pub fordblks: c_int,
    /// Top-most, releasable space (bytes).
    pub keepcost: c_int,
}

/// `struct mallinfo2`: the statistics with `size_t` fields.
#[allow(non_camel_case_types)]
#[cfg(not(feature = "system-malloc-h"))]
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct mallinfo2 {
    /// Non-mmapped space allocated (bytes).
    pub arena: usize,
    /// Number of free chunks.
    pub ordblks: usize,
    /// Number of free fastbin blocks.
    pub smblks: usize,
    /// Number of mmapped regions.
    pub hblks: usize,
    /// Space allocated in mmapped regions (bytes).
    pub hblkhd: usize,
    /// Always 0.
    pub usmblks: usize,
    /// Space in freed fastbin blocks (bytes).
    pub fsmblks: usize,
    /// Total allocated space (bytes).
    pub uordblks: usize,
    /// Total free space (bytes).
    pub fordblks: usize,
    /// Top-most, releasable space (bytes).
    pub keepcost: usize,
}

impl From<Mallinfo2> for mallinfo2 {
    fn from(m: Mallinfo2) -> Self {
        mallinfo2 {
            arena: m.arena,
            ordblks: m.ordblks,
            smblks: m.smblks,
            hblks: m.hblks,
            hblkhd: m.hblkhd,
            usmblks: m.usmblks,
            fsmblks: m.fsmblks,
            uordblks: m.uordblks,
            fordblks: m.fordblks,
            keepcost: m.keepcost,
        }
    }
}

#[inline(always)]
fn errno() -> c_int {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

#[inline(always)]
fn set_errno(e: c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// A null pointer for a failed call, errno set to the allocator's reason.
#[cold]
fn fail(err: i32) -> *mut c_void {
    set_errno(if err != 0 { err } else { libc::ENOMEM });
    core::ptr::null_mut()
}

/// The pointer an allocating call returns: NULL with errno set on failure,
/// NULL alone when a corruption check abandoned the call.
#[inline(always)]
fn result(r: Result<usize, Abandoned>, err: i32) -> *mut c_void {
    match r {
        Ok(0) => fail(err),
        Ok(p) => p as *mut c_void,
        Err(Abandoned) => core::ptr::null_mut(),
    }
}

/// Allocate `size` bytes of uninitialised memory, aligned to 16 bytes.
/// `malloc(0)` returns a unique pointer; sizes above `PTRDIFF_MAX` fail
/// with `ENOMEM`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: the memory source is only used on allocator metadata.
    let mut m = unsafe { RawMemory::new() };
    match Allocator::malloc_cached(&mut m, &tcache_config(), thread().tcache, size) {
        Ok(Some(p)) => p as *mut c_void,
        Ok(None) => malloc_slow(size),
        Err(Abandoned) => core::ptr::null_mut(),
    }
}

#[cold]
fn malloc_slow(size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.malloc_uncached(tc, size));
    result(p, err)
}

/// Free memory from this allocator; `free(NULL)` does nothing. errno is preserved.
///
/// # Safety
///
/// `ptr` is null or a live pointer returned by this allocator.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: as in malloc.
    let mut m = unsafe { RawMemory::new() };
    if let Ok(Some(p)) = Allocator::free_cached(&mut m, &tcache_config(), thread().tcache, ptr as usize) {
        free_not_cached(p);
    }
}

/// `free` of a chunk the tcache did not take: batched for its arena if it
/// is another thread's (see `remote`), else the slow path. Out of line, so
/// that the cached path saves no registers.
#[inline(never)]
fn free_not_cached(p: ptmalloc_core::Chunk) {
    // SAFETY: as in malloc.
    let mut m = unsafe { RawMemory::new() };
    let tc = thread();
    // With a tcache, free_cached has checked the pointer and size.
    if !(tc.tcache.exists() && crate::remote::free_remote(&mut m, tc.arena.0, p)) {
        free_slow(p);
    }
}

#[cold]
fn free_slow(p: ptmalloc_core::Chunk) {
    let saved = errno();
    // An abandoned free leaves the chunk where it is (MALLOC_CHECK_ 0 or 1).
    let _ = with_alloc(|a, tc| a.free_uncached(tc, p));
    set_errno(saved);
}

/// Allocate zeroed memory for `nmemb` elements of `size` bytes; an overflowing
/// product fails with `ENOMEM`.
#[no_mangle]
pub extern "C" fn calloc(nmemb: usize, size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.calloc(tc, nmemb, size));
    result(p, err)
}

/// Resize a block. `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees
/// `p` and returns NULL; on failure the old block is untouched (errno `ENOMEM`).
///
/// # Safety
///
/// `ptr` is null or a live pointer returned by this allocator.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: the caller's contract.
        unsafe { free(ptr) };
        return core::ptr::null_mut();
    }
    let (p, err) = with_alloc(|a, tc| a.realloc_block(tc, ptr as usize, size));
    result(p, err)
}

/// `realloc` of an array, failing with `ENOMEM` when `nmemb * size` overflows.
///
/// # Safety
///
/// `ptr` is null or a live pointer returned by this allocator.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, nmemb: usize, size: usize) -> *mut c_void {
    match nmemb.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(bytes) => unsafe { realloc(ptr, bytes) },
        None => fail(libc::ENOMEM),
    }
}

/// Allocate `size` bytes aligned to `alignment` (a non-power-of-two
/// alignment is rounded up to the next power of two).
#[no_mangle]
pub extern "C" fn memalign(alignment: usize, size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.memalign(tc, alignment, size));
    result(p, err)
}

/// C11 `aligned_alloc`: `alignment` must be a power of two (else `EINVAL`).
#[no_mangle]
pub extern "C" fn aligned_alloc(alignment: usize, size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.aligned_alloc(tc, alignment, size));
    result(p, err)
}

/// POSIX `posix_memalign`: returns 0, `EINVAL` (alignment not a power-of-two
/// multiple of `sizeof(void *)`) or `ENOMEM`; errno is left alone.
///
/// # Safety
///
/// `memptr` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, alignment: usize, size: usize) -> c_int {
    let saved = errno();
    let (r, _) = with_alloc(|a, tc| a.posix_memalign(tc, alignment, size));
    set_errno(saved);
    match r.unwrap_or(Err(libc::ENOMEM)) {
        Ok(p) => {
            // SAFETY: the caller's contract.
            unsafe { *memptr = p as *mut c_void };
            0
        }
        Err(code) => code,
    }
}

/// Page-aligned allocation.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.valloc(tc, size));
    result(p, err)
}

/// Page-aligned allocation of whole pages.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let (p, err) = with_alloc(|a, tc| a.pvalloc(tc, size));
    result(p, err)
}

/// Bytes usable in the block at `ptr` (0 for NULL).
///
/// # Safety
///
/// `ptr` is null or a live pointer returned by this allocator.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: as in malloc.
    let m = unsafe { RawMemory::new() };
    Allocator::usable_size(&m, ptr as usize).unwrap_or(0)
}

/// C23 `free_sized`: free a block allocated with `size` bytes.
///
/// # Safety
///
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn free_sized(ptr: *mut c_void, _size: usize) {
    // SAFETY: the caller's contract.
    unsafe { free(ptr) }
}

/// C23 `free_aligned_sized`: free a block from `aligned_alloc`.
///
/// # Safety
///
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(ptr: *mut c_void, _alignment: usize, _size: usize) {
    // SAFETY: the caller's contract.
    unsafe { free(ptr) }
}

/// Set a parameter (`M_*`); returns 1 on success, 0 for a bad value.
#[no_mangle]
pub extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    with_params(|a| a.mallopt(param, value).unwrap_or(false)) as c_int
}

/// Statistics with `size_t` fields.
#[no_mangle]
pub extern "C" fn mallinfo2() -> mallinfo2 {
    let (mi, _) = with_alloc(|a, _| a.mallinfo2());
    mi.unwrap_or_default().into()
}

/// Statistics with `int` fields (saturating at `INT_MAX`).
#[no_mangle]
pub extern "C" fn mallinfo() -> mallinfo {
    let m = mallinfo2();
    let c = |v: usize| v.min(c_int::MAX as usize) as c_int;
    mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        smblks: c(m.smblks),
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        fsmblks: c(m.fsmblks),
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: c(m.keepcost),
    }
}

/// Return free memory to the system, keeping `pad` bytes at the top; 1 if
/// any memory was released.
#[no_mangle]
pub extern "C" fn malloc_trim(pad: usize) -> c_int {
    let (released, _) = with_alloc(|a, _| a.trim(pad));
    released.unwrap_or(false) as c_int
}

/// Print statistics to standard error in glibc's format.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    print_stats();
}

/// `malloc_stats` to file descriptor 2 (also used at exit).
pub fn print_stats() {
    let saved = errno();
    // With several arenas the text outgrows the writer's buffer and goes
    // out in several writes: one caller at a time keeps blocks whole, as
    // glibc's lock on stderr does.
    crate::process::ensure_ready();
    STATS_OUTPUT_LOCK.lock();
    let mut w = Writer::new(Sink::Fd(2));
    let _ = with_alloc(|a, _| Ok(a.write_malloc_stats(&mut w)));
    w.flush();
    STATS_OUTPUT_LOCK.unlock();
    set_errno(saved);
}

/// Write the allocator's state as XML (glibc's schema) to `fp`. `options`
/// must be 0 (else the result is `EINVAL`, as in glibc).
///
/// # Safety
///
/// `fp` is a valid, writable stdio stream.
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, fp: *mut libc::FILE) -> c_int {
    if options != 0 {
        return libc::EINVAL;
    }
    // Each arena's numbers are gathered under its lock, and written after
    // it is released: stdio may call malloc.
    let mut w = Writer::new(Sink::File(fp));
    let _ = with_alloc(|a, _| {
        let heaps = a.arenas().map_while(|av| a.heap_info(av).ok());
        Ok(write_malloc_info(&mut w, heaps, a.mmaps))
    });
    let _ = w.write_str("");
    if w.flush() {
        0
    } else {
        -1
    }
}
