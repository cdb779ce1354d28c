//! The ptmalloc2 allocator (the design of glibc's malloc) as an *instance*:
//! arena state, parameters and a memory source, with no global state.
//!
//! `#![no_std]` and free of any heap allocation of its own, so it can sit
//! under a process's `malloc`. The memory source ([`Memory`]) decides what
//! memory is: the process allocator runs it over raw pointers with `brk` and
//! `mmap`; a private heap runs it over a simulated, bounds-checked address
//! space. The allocator code is the same, monomorphised.
//!
//! Map of the modules (see ARCHITECTURE.md for the whole picture):
//! - [`chunk`]: chunk header layout, flags, request-to-size, safe-linking;
//! - [`state`]: the arena state (`malloc_state`) at an address in memory;
//! - [`bins`]: bin geometry and list surgery;
//! - [`tcache`]: the per-thread cache;
//! - `malloc`, `free`, `sysmalloc`, `resize`: `_int_malloc`, `_int_free` and
//!   consolidation, growth and trimming, realloc and memalign;
//! - [`arena`], [`heap`]: arenas beyond the main one, on heaps aligned to
//!   their size; binding threads to arenas; the arena of a chunk;
//! - [`api`]: the glibc front ends (`__libc_malloc` and friends);
//! - [`params`]: tunables and `mallopt`;
//! - [`stats`]: `mallinfo2`, `malloc_stats`, `malloc_info`;
//! - [`harden`]: the checks beyond glibc's (keyed headers, free check);
//! - [`inspect`]: walking chunks and bins for tests and tools.
#![no_std]
#![warn(missing_docs)]

pub mod api;
pub mod arena;
pub mod bins;
pub mod chunk;
mod free;
pub mod harden;
pub mod heap;
pub mod inspect;
mod malloc;
pub mod memory;
pub mod params;
mod resize;
pub mod state;
pub mod stats;
mod sysmalloc;
pub mod tcache;

pub use api::ThreadCache;
pub use chunk::Chunk;
pub use memory::Memory;
pub use params::Params;
pub use state::Arena;
pub use sysmalloc::MmapStats;
pub use tcache::{Tcache, TcacheConfig};

/// Result of an operation on memory source `M`.
pub type Res<T, M> = Result<T, <M as Memory>::Error>;

/// errno for "out of memory" (Linux value).
pub const ENOMEM: i32 = 12;
/// errno for "invalid argument" (Linux value).
pub const EINVAL: i32 = 22;

/// One allocator instance: the main arena's state lives in `mem` at
/// [`Allocator::main_arena`]; the rest of the instance-wide state (glibc's
/// `mp_`) is here.
pub struct Allocator<M: Memory> {
    /// The memory source.
    pub mem: M,
    /// Tunable parameters.
    pub params: Params,
    /// Chunks mapped on their own.
    pub mmaps: MmapStats,
    /// Where the main arena's memory starts (first address `brk` returned).
    pub sbrk_base: usize,
    /// errno of the last failed call (ENOMEM or EINVAL); callers reset it.
    pub last_error: i32,
    /// Set when the arenas may be half-updated (a fork interrupted them):
    /// requests are then served by mapped chunks and heap frees leak.
    retired: bool,
    main: Arena,
    tcache_key: usize,
}
