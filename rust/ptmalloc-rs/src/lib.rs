//! libptmalloc-rs: the ptmalloc2 allocator as a drop-in replacement for the
//! C library's `malloc`, by linking (`-lptmalloc-rs`) or `LD_PRELOAD`.
//!
//! This crate is the process front: one `ptmalloc_core::Allocator` over raw
//! memory ([`os`]), behind a futex lock ([`lock`]), with per-thread caches,
//! lazy initialisation, thread exit and fork handling ([`process`]), each thread's
//! state in initial-exec TLS ([`tls`]), settings
//! from the environment ([`env`]), allocation-free output ([`output`]), and
//! the exported C functions ([`exports`]).
//!
//! Built to abort on panic for x86_64 Linux (the library as shipped), the
//! crate is `no_std`: the library then links libc alone (std brings
//! libgcc_s and its backtrace symboliser, some 470 KiB of pages resident in
//! every process that loads us, a quarter of a small program's RSS), and a
//! panic goes straight to [`panic`]'s handler. Otherwise (other targets,
//! whose TLS fallback in [`tls`] needs std; test builds, which unwind) std
//! is linked.
#![cfg_attr(
    all(not(test), panic = "abort", target_arch = "x86_64", target_os = "linux"),
    no_std
)]

#[cfg(all(
    not(test),
    not(all(panic = "abort", target_arch = "x86_64", target_os = "linux"))
))]
extern crate std;

pub mod env;
pub mod exports;
pub mod fork;
pub mod harden;
pub mod lock;
pub mod os;
pub mod output;
pub mod panic;
pub mod process;
pub mod remote;
pub mod tls;
pub mod valgrind;
