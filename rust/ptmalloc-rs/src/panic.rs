//! What a panic does: report and abort, never unwind and never allocate.
//! Without std (see the crate's documentation) this is the crate's panic
//! handler; with std a hook set at load.

const MESSAGE: &str = "ptmalloc-rs: internal error";

#[cfg(all(not(test), panic = "abort", target_arch = "x86_64", target_os = "linux"))]
#[panic_handler]
fn on_panic(_: &core::panic::PanicInfo) -> ! {
    crate::output::fatal(MESSAGE)
}

/// Make std's panics report and abort without allocating (a no-op when the
/// handler above is in charge).
pub fn install_hook() {
    #[cfg(any(test, not(all(panic = "abort", target_arch = "x86_64", target_os = "linux"))))]
    std::panic::set_hook(std::boxed::Box::new(|_| crate::output::fatal(MESSAGE)));
}

// The precompiled `core` is built for unwinding, so its landing pads name
// a personality routine that std would define. Nothing here unwinds (panics
// abort, and no foreign code calls back through us), so it is never called;
// it is hidden so that it cannot interpose another library's.
#[cfg(all(not(test), panic = "abort", target_arch = "x86_64", target_os = "linux"))]
core::arch::global_asm!(
    ".globl rust_eh_personality",
    ".hidden rust_eh_personality",
    ".type rust_eh_personality,@function",
    "rust_eh_personality:",
    "jmp {unreachable}",
    ".size rust_eh_personality, . - rust_eh_personality",
    unreachable = sym personality_called,
);

#[cfg(all(not(test), panic = "abort", target_arch = "x86_64", target_os = "linux"))]
extern "C" fn personality_called() -> ! {
    crate::output::fatal(MESSAGE)
}
