//! Valgrind client requests: telling memcheck what it cannot see.
//!
//! memcheck watches every load and store of the library, but does not know
//! that fresh `brk` pages are zero: it marks them undefined, and then calloc
//! (which trusts them) and every read of a never-written word in a chunk (the
//! tcache key check of free) look like uses of undefined data. Mapped pages
//! it already knows to be zero. A client request is a no-op instruction
//! sequence that valgrind's JIT recognises; natively it leaves the default
//! result in place. We ask once whether memcheck is there; the requests are
//! made only on `brk` growth, never on the malloc/free fast paths.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// `VG_USERREQ__RUNNING_ON_VALGRIND` (valgrind.h).
const RUNNING_ON_VALGRIND: usize = 0x1001;
/// `VG_USERREQ__MAKE_MEM_DEFINED` (memcheck.h): tool base 'M','C', third request.
const MAKE_MEM_DEFINED: usize = (((b'M' as usize) << 24) | ((b'C' as usize) << 16)) + 2;

static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Ask whether memcheck is there; called once at initialisation. Only
/// memcheck answers its own requests (with -1); other tools such as
/// callgrind leave the default, and we stay off their instruction counts.
pub fn detect() {
    if client_request(0, [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0]) == 0 {
        return;
    }
    let probe = 0usize;
    let addr = &probe as *const usize as usize;
    let answer = client_request(
        0,
        [MAKE_MEM_DEFINED, addr, core::mem::size_of::<usize>(), 0, 0, 0],
    );
    ACTIVE.store(answer != 0, Relaxed);
}

/// True when running under valgrind's memcheck.
#[inline(always)]
pub fn active() -> bool {
    ACTIVE.load(Relaxed)
}

/// Tell memcheck that `len` bytes at `addr` hold defined values.
#[inline(always)]
pub fn make_defined(addr: usize, len: usize) {
    if active() {
        client_request(0, [MAKE_MEM_DEFINED, addr, len, 0, 0, 0]);
    }
}

/// One client request: the request word and five arguments, `default` back
/// when not under valgrind.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn client_request(default: usize, args: [usize; 6]) -> usize {
    let mut result = default;
    // SAFETY: the rotations of rdi by 3+13+61+51 = 128 bits leave it as it
    // was and `xchg rbx, rbx` changes nothing, so natively the sequence has
    // no effect; valgrind reads the request from the array at rax and puts
    // its answer in rdx. The array lives for the whole asm block.
    unsafe {
        core::arch::asm!(
            "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") result,
            in("rax") args.as_ptr(),
            out("rdi") _,
            options(nostack, preserves_flags),
        );
    }
    result
}

#[cfg(target_arch = "aarch64")]
#[inline(never)]
fn client_request(default: usize, args: [usize; 6]) -> usize {
    let mut result = default;
    // SAFETY: rotating x12 by 3+13+51+61 = 128 bits and `orr x10, x10, x10`
    // change nothing natively; valgrind reads the array at x4 and answers in x3.
    unsafe {
        core::arch::asm!(
            "ror x12, x12, #3", "ror x12, x12, #13", "ror x12, x12, #51", "ror x12, x12, #61",
            "orr x10, x10, x10",
            inout("x3") result,
            in("x4") args.as_ptr(),
            out("x12") _,
            options(nostack, preserves_flags),
        );
    }
    result
}

/// Elsewhere there is no request sequence: never under valgrind.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn client_request(default: usize, _args: [usize; 6]) -> usize {
    default
}
