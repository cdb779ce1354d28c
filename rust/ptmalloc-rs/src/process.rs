//! The process-wide allocator: the instance-wide values (glibc's `mp_`),
//! each thread's cache and arena, lazy initialisation, thread exit and fork.
//!
//! The arenas live in memory (the main arena's state in this library's data,
//! the others at the start of their heaps) and each has its own lock, which
//! the core takes through [`RawMemory`]. What is not in an arena (the
//! parameters, the counters of mapped chunks, where the break started) sits
//! in a prototype [`Alloc`] published with a sequence lock: each thread
//! keeps a copy, refreshed when the version has moved on, without writing a
//! shared cache line, and a call
//! that changed it (a mapped chunk came or went, the dynamic threshold
//! moved) merges its changes back under the instance lock. Several threads
//! thus run in different arenas at once.
//!
//! Initialisation happens inside the first call that needs the arena, under
//! the instance lock, using only system calls: the dynamic loader, `dlsym`
//! and `pthread` may call `malloc` before `main`, and nothing here calls back.
//!
//! Fork: no lock is taken before a fork (taking allocator locks in a
//! `pthread_atfork` prepare handler deadlocks against stdio locks and against
//! a fork from a signal handler that interrupted `malloc`). Instead, the
//! child checks whether any allocator lock was held at the instant of the
//! fork: if so, an arena may be half-updated, so the child frees the locks
//! and retires the arenas (see `Allocator::retire_arenas`); if not, the
//! arenas are consistent and the child simply carries on with them, unless
//! its kernel break is stale (see `crate::fork`).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::*};

use ptmalloc_core::state::MAIN_ARENA_STORAGE;
use ptmalloc_core::{Allocator, MmapStats, Params, Tcache, TcacheConfig, ThreadCache};

use crate::env;
use crate::lock::Lock;
use crate::os::{arena_lock, Abandoned, RawMemory, ARENA_LIST_LOCK};

/// The process allocator's type.
pub type Alloc = Allocator<RawMemory>;

/// Storage of the main arena's `malloc_state` and the instance's arena
/// bookkeeping (glibc keeps them in libc's data).
#[repr(C, align(64))]
struct ArenaStorage(UnsafeCell<[u8; MAIN_ARENA_STORAGE]>);

// SAFETY: the storage is only reached through the allocator, under the
// main arena's lock (or the arena list's lock for the bookkeeping).
unsafe impl Sync for ArenaStorage {}

static MAIN_ARENA: ArenaStorage = ArenaStorage(UnsafeCell::new([0; MAIN_ARENA_STORAGE]));

/// The main arena's address.
#[inline(always)]
pub fn main_arena() -> usize {
    MAIN_ARENA.0.get() as usize
}

struct Global {
    /// Held by initialisation and by every writer of `proto`.
    lock: Lock,
    /// Sequence number of `proto`: odd while a writer is changing it.
    version: AtomicUsize,
    ready: AtomicBool,
    /// The instance-wide values, as a handle that each call copies.
    proto: UnsafeCell<MaybeUninit<Alloc>>,
}

// SAFETY: `proto` is written only under `lock` with `version` odd, and read
// as a whole by readers that retry when `version` changed (a sequence lock).
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    version: AtomicUsize::new(0),
    ready: AtomicBool::new(false),
    proto: UnsafeCell::new(MaybeUninit::uninit()),
};

// What the lock-free paths need, published whenever the parameters change.
// One static, so the fast paths find them all with one address load.
// The header key (harden.rs) lives here too: the same paths check headers.
struct PublishedTcache {
    bins: AtomicUsize,
    count: AtomicUsize,
    key: AtomicUsize,
    fill: AtomicBool,
    header_key: AtomicUsize,
}
static TCACHE: PublishedTcache = PublishedTcache {
    bins: AtomicUsize::new(0),
    count: AtomicUsize::new(0),
    key: AtomicUsize::new(0),
    fill: AtomicBool::new(false),
    header_key: AtomicUsize::new(0),
};

/// The key chunk headers are checked with (0: not keyed).
#[inline(always)]
pub fn header_key() -> usize {
    TCACHE.header_key.load(Relaxed)
}

/// Key chunk headers from now on (at init, before the first allocation).
pub fn set_header_key(key: usize) {
    TCACHE.header_key.store(key, Relaxed);
}
static SHOW_STATS: AtomicBool = AtomicBool::new(false);
static ENV_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// glibc's flag (since 2.32): nonzero until the first thread is created.
    static __libc_single_threaded: libc::c_char;
}

/// Whether this process has a single thread (then no lock is contended).
#[inline(always)]
pub fn single_threaded() -> bool {
    // SAFETY: reads libc's flag; only this thread can change it (by creating
    // a thread), so a stale value is impossible while it reads 1.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

/// Deal with a fork first if this is a fork child (see `fork::arm`), and
/// initialise the instance on first use. Every call that may take an
/// allocator lock comes here first.
#[inline(always)]
pub(crate) fn ensure_ready() {
    if crate::fork::fork_pending() && crate::fork::claim_fork() {
        after_fork_child();
        crate::fork::fork_handled();
    }
    if !GLOBAL.ready.load(Acquire) {
        init();
    }
}

#[cold]
fn init() {
    GLOBAL.lock.lock();
    if !GLOBAL.ready.load(Relaxed) {
        crate::valgrind::detect();
        // The process allocator is hardened unless PTMALLOC_RS_HARDEN=0.
        let mut params = Params {
            hardened: true,
            ..Params::default()
        };
        let extras = env::read(&mut params);
        ENV_SEEN.store(env::available(), Relaxed);
        SHOW_STATS.store(extras.show_stats, Relaxed);
        // SAFETY: RawMemory's contract holds for the allocator's own metadata;
        // the arena storage is ours, and the instance lock is held.
        let a = unsafe { Alloc::new(RawMemory::new(), main_arena(), tcache_key(), params) };
        let Ok(a) = a else {
            crate::output::fatal("ptmalloc-rs: cannot initialise the main arena");
        };
        if a.params.hardened {
            // A secret of its own: the tcache key shows in every cached chunk.
            crate::harden::set_header_key(tcache_key() | ptmalloc_core::chunk::KEY_BITS);
        }
        publish(&a);
        // SAFETY: nobody reads `proto` before `ready` is set.
        unsafe { (*GLOBAL.proto.get()).write(a) };
        GLOBAL.ready.store(true, Release);
    }
    GLOBAL.lock.unlock();
}

/// Copy the instance-wide values into `dst` under the sequence lock;
/// returns the (even) version copied.
fn copy_instance(dst: &mut MaybeUninit<Alloc>) -> usize {
    loop {
        let v1 = GLOBAL.version.load(Acquire);
        if v1 & 1 == 0 {
            // SAFETY: a bitwise copy of plain data (the memory source is a
            // unit struct, nothing owns a resource), initialised before
            // `ready`; a copy torn by a concurrent writer is retried before
            // anyone reads it.
            unsafe { core::ptr::copy_nonoverlapping(GLOBAL.proto.get(), dst, 1) };
            fence(Acquire);
            if GLOBAL.version.load(Relaxed) == v1 {
                return v1;
            }
        }
        core::hint::spin_loop();
    }
}

/// A handle on the allocator with a consistent copy of the instance-wide
/// values (initialised).
fn handle() -> Alloc {
    let mut a = MaybeUninit::uninit();
    copy_instance(&mut a);
    // SAFETY: `copy_instance` filled it with an untorn copy.
    unsafe { a.assume_init() }
}

/// Change the instance-wide values under the instance lock.
fn write_instance<R>(f: impl FnOnce(&mut Alloc) -> R) -> R {
    GLOBAL.lock.lock();
    let v = GLOBAL.version.load(Relaxed);
    GLOBAL.version.store(v.wrapping_add(1), Relaxed);
    fence(Release);
    // SAFETY: the lock makes this the only writer; readers retry while the
    // version is odd.
    let r = f(unsafe { (*GLOBAL.proto.get()).assume_init_mut() });
    GLOBAL.version.store(v.wrapping_add(2), Release);
    GLOBAL.lock.unlock();
    r
}

/// The instance-wide values a call may change, as its handle had them
/// (all zero is a valid value: the TLS slot starts zeroed).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
struct Shared {
    mmaps: MmapStats,
    mmap_threshold: usize,
    trim_threshold: usize,
    sbrk_base: usize,
}

impl Shared {
    #[inline(always)]
    fn of(a: &Alloc) -> Shared {
        Shared {
            mmaps: a.mmaps,
            mmap_threshold: a.params.mmap_threshold,
            trim_threshold: a.params.trim_threshold,
            sbrk_base: a.sbrk_base,
        }
    }
}

/// Fold what a call changed in its handle into the instance: the
/// mapped-chunk counters as deltas (other threads moved them meanwhile),
/// the dynamic thresholds, the start of the break.
#[cold]
fn merge(was: Shared, now: Shared) {
    write_instance(|inst| {
        let m = &mut inst.mmaps;
        m.count = m
            .count
            .wrapping_add(now.mmaps.count.wrapping_sub(was.mmaps.count));
        m.bytes = m
            .bytes
            .wrapping_add(now.mmaps.bytes.wrapping_sub(was.mmaps.bytes));
        m.max_count = m.max_count.max(m.count).max(now.mmaps.max_count);
        m.max_bytes = m.max_bytes.max(m.bytes).max(now.mmaps.max_bytes);
        if now.mmap_threshold != was.mmap_threshold || now.trim_threshold != was.trim_threshold {
            inst.params.mmap_threshold = now.mmap_threshold;
            inst.params.trim_threshold = now.trim_threshold;
        }
        if inst.sbrk_base == 0 {
            inst.sbrk_base = now.sbrk_base;
        }
    });
}

/// A thread's copy of the instance-wide values, kept from call to call and
/// refreshed only when the instance's version has moved on: copying the
/// whole instance on every call cost a quarter of a free/malloc pair that
/// misses the tcache.
///
/// A call changes those values only next to a system call of the memory
/// source (a chunk mapped or unmapped, the break's first move, a threshold
/// raised by the unmapping free), which counts them per thread: a call
/// that made none has nothing to merge, and only one that did compares the
/// copy with `synced`. (Snapshotting and comparing on every call cost 40
/// instructions of each slow malloc or free.)
#[repr(C)]
pub struct InstanceCache {
    /// The version of the copy plus one (0: no copy yet); versions read
    /// are even, so a valid mark is odd.
    copied: usize,
    /// Nonzero while a call of this thread uses the copy: a nested call
    /// (from a signal handler) takes a copy of its own.
    busy: usize,
    /// The copy's values as the instance has them (at refresh or merge).
    synced: Shared,
    alloc: MaybeUninit<Alloc>,
}

/// Bring this thread's copy up to date with the instance.
#[cold]
fn refresh(cache: &mut InstanceCache) {
    cache.copied = copy_instance(&mut cache.alloc).wrapping_add(1);
    // SAFETY: just filled.
    cache.synced = Shared::of(unsafe { cache.alloc.assume_init_ref() });
}

/// After a call that made system calls: merge what it changed.
#[cold]
#[inline(never)]
fn sync(cache: &mut InstanceCache) {
    // SAFETY: the copy is initialised (`with_alloc` refreshed it).
    let now = Shared::of(unsafe { cache.alloc.assume_init_ref() });
    if now != cache.synced {
        // The instance's version moves on, so the next call recopies.
        merge(cache.synced, now);
        cache.synced = now;
    }
}

/// Run `f` on a handle of the allocator with this thread's cache state;
/// the parameters are those of the instance as it is now. Returns `f`'s
/// result (`Err` when a corruption check abandoned it) and the errno for
/// the call.
///
/// `f` is called from one place only: each caller instantiates this, and
/// a second call site (for the nested case) had doubled the code of every
/// operation (11 KiB of the library's text, resident in every process).
#[inline(always)]
pub fn with_alloc<R>(
    f: impl FnOnce(&mut Alloc, &mut ThreadCache) -> Result<R, Abandoned>,
) -> (Result<R, Abandoned>, i32) {
    ensure_ready();
    // SAFETY: this thread's own storage, alive as long as the thread; no
    // other thread reaches it, and `busy` keeps a nested call off it.
    let cache = unsafe { &mut *crate::tls::instance_cache() };
    // A nested call (from a signal handler) works on a copy of its own.
    let mut fresh = MaybeUninit::<Alloc>::uninit();
    let mut fresh_was = MaybeUninit::<Shared>::uninit();
    let nested = cache.busy != 0;
    let (a, calls) = if nested {
        (enter_fresh(&mut fresh, &mut fresh_was), 0)
    } else {
        (enter(cache), crate::tls::system_calls())
    };
    // SAFETY: `a` points to an initialised copy (the thread's or `fresh`)
    // that nothing else uses during the call.
    let r = run(unsafe { &mut *a }, f);
    if nested {
        // SAFETY: `enter_fresh` filled both.
        unsafe { leave_fresh(fresh.assume_init_ref(), fresh_was.assume_init_ref()) };
    } else {
        if crate::tls::system_calls() != calls {
            sync(cache);
        }
        // SAFETY: a volatile store, as in `enter`.
        unsafe { core::ptr::write_volatile(&mut cache.busy, 0) };
    }
    r
}

/// Start a call on this thread's copy: send out batched remote frees,
/// mark the copy taken, refresh it if the instance moved on.
#[inline(always)]
fn enter(cache: &mut InstanceCache) -> *mut Alloc {
    // Chunks this thread batched for other arenas go out before the call
    // (see `remote`): at thread exit, and whenever the thread is here anyway.
    if crate::remote::held() {
        crate::remote::flush();
    }
    crate::remote::settle_now_and_then();
    // SAFETY: a volatile store, so that a signal handler arriving from here
    // on sees the copy taken.
    unsafe { core::ptr::write_volatile(&mut cache.busy, 1) };
    if cache.copied != GLOBAL.version.load(Acquire).wrapping_add(1) {
        refresh(cache);
    }
    cache.alloc.as_mut_ptr()
}

/// Start a nested call: a copy of the instance on the caller's stack.
#[cold]
#[inline(never)]
fn enter_fresh(fresh: &mut MaybeUninit<Alloc>, was: &mut MaybeUninit<Shared>) -> *mut Alloc {
    copy_instance(fresh);
    // SAFETY: just filled with an untorn copy.
    was.write(Shared::of(unsafe { fresh.assume_init_ref() }));
    fresh.as_mut_ptr()
}

/// End a nested call: merge what it changed.
#[cold]
#[inline(never)]
fn leave_fresh(a: &Alloc, was: &Shared) {
    let now = Shared::of(a);
    if now != *was {
        merge(*was, now);
    }
}

#[inline(always)]
fn run<R>(
    a: &mut Alloc,
    f: impl FnOnce(&mut Alloc, &mut ThreadCache) -> Result<R, Abandoned>,
) -> (Result<R, Abandoned>, i32) {
    a.last_error = 0;
    let before = thread();
    let mut tc = before;
    let r = f(a, &mut tc);
    set_thread(tc, before);
    (r, a.last_error)
}

/// Run `f` on the instance itself, for calls that change its parameters
/// (`mallopt`, settings read late) or retire it: under the instance lock,
/// so no other change interleaves; the new parameters are published.
pub fn with_params<R>(f: impl FnOnce(&mut Alloc) -> R) -> R {
    ensure_ready();
    write_instance(|a| {
        let r = f(a);
        publish(a);
        r
    })
}

/// Publish the settings the lock-free paths and the corruption path read.
pub fn publish(a: &Alloc) {
    crate::os::set_check_action(a.params.check_action);
    let cfg = a.tcache_config();
    TCACHE.bins.store(cfg.bins, Relaxed);
    TCACHE.count.store(cfg.count, Relaxed);
    TCACHE.key.store(cfg.key, Relaxed);
    TCACHE.fill.store(cfg.fill, Relaxed);
}

/// The tcache settings of the lock-free paths (bins = 0 before init).
#[inline(always)]
pub fn tcache_config() -> TcacheConfig {
    TcacheConfig {
        bins: TCACHE.bins.load(Relaxed),
        count: TCACHE.count.load(Relaxed),
        key: TCACHE.key.load(Relaxed),
        fill: TCACHE.fill.load(Relaxed),
    }
}

/// This thread's cache state.
#[inline(always)]
pub fn thread() -> ThreadCache {
    crate::tls::get()
}

/// Store this thread's cache state; a newly made cache gets a thread-exit hook.
fn set_thread(now: ThreadCache, before: ThreadCache) {
    if now == before {
        return;
    }
    crate::tls::set(now);
    if now.tcache.exists() && now.tcache != before.tcache {
        register_thread_exit(now.tcache);
    }
}

/// The key for cached chunks, from getrandom (glibc's source too).
fn tcache_key() -> usize {
    let mut key: usize = 0;
    // SAFETY: getrandom writes at most size_of::<usize>() bytes into `key`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_getrandom,
            &mut key as *mut usize,
            core::mem::size_of::<usize>(),
            libc::GRND_NONBLOCK,
        )
    };
    if n != core::mem::size_of::<usize>() as libc::c_long {
        // No entropy yet: mix the clock and an address, as glibc's random_bits does.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime fills the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        key = (ts.tv_nsec as usize).rotate_left(32) ^ (ts.tv_sec as usize) ^ (&key as *const usize as usize);
    }
    key
}

// Thread exit: a pthread key whose destructor flushes the thread's cache.
const KEY_NONE: u8 = 0;
const KEY_BUSY: u8 = 1;
const KEY_READY: u8 = 2;
const KEY_FAILED: u8 = 3;
static KEY_STATE: AtomicU8 = AtomicU8::new(KEY_NONE);
static KEY: AtomicU32 = AtomicU32::new(0);

fn thread_exit_key() -> Option<libc::pthread_key_t> {
    loop {
        match KEY_STATE.load(Acquire) {
            KEY_READY => return Some(KEY.load(Relaxed)),
            KEY_FAILED => return None,
            KEY_NONE => {
                if KEY_STATE
                    .compare_exchange(KEY_NONE, KEY_BUSY, Acquire, Relaxed)
                    .is_ok()
                {
                    let mut key: libc::pthread_key_t = 0;
                    // SAFETY: creates a key with our destructor; glibc's
                    // pthread_key_create does not allocate.
                    let r = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) };
                    KEY.store(key, Relaxed);
                    KEY_STATE.store(if r == 0 { KEY_READY } else { KEY_FAILED }, Release);
                }
            }
            _ => core::hint::spin_loop(),
        }
    }
}

fn register_thread_exit(tcache: Tcache) {
    if let Some(key) = thread_exit_key() {
        // SAFETY: a non-null value makes the destructor run at thread exit.
        unsafe { libc::pthread_setspecific(key, tcache.0 as *const libc::c_void) };
    }
}

unsafe extern "C" fn on_thread_exit(_value: *mut libc::c_void) {
    // A corrupt cache abandons the flush (check action 0 or 1): the thread
    // is exiting, its remaining cached chunks are lost, nothing else.
    let _ = with_alloc(|a, tc| a.thread_exit(tc));
    // What this thread queued and nobody took yet would wait for owners
    // that may never come; it will not be here to see.
    crate::remote::settle(true);
}

/// In the child after `fork`, before it takes any allocator lock: free the
/// locks, and retire the arenas if any allocator lock was held when the
/// process was copied (see the module comment).
#[cold]
extern "C" fn after_fork_child() {
    crate::fork::check_break_after_fork();
    let mut held = GLOBAL.lock.is_held() || GLOBAL.version.load(Relaxed) & 1 != 0;
    GLOBAL.lock.reset();
    if GLOBAL.version.load(Relaxed) & 1 != 0 {
        GLOBAL.version.fetch_add(1, Relaxed);
    }
    held |= ARENA_LIST_LOCK.is_held();
    ARENA_LIST_LOCK.reset();
    crate::output::STATS_OUTPUT_LOCK.reset();
    if !GLOBAL.ready.load(Relaxed) {
        return;
    }
    let a = handle();
    for av in a.arenas() {
        // SAFETY: an arena of this instance.
        let lock = unsafe { arena_lock(av.0) };
        held |= lock.is_held();
        lock.reset();
    }
    if held {
        write_instance(|a| a.retire_arenas());
    }
}

/// Library constructor: fork detection, thread-exit key, the panic hook
/// where std is linked, and the environment if it was not readable at init.
extern "C" fn on_load() {
    crate::panic::install_hook();
    crate::fork::arm(after_fork_child);
    thread_exit_key();
    if GLOBAL.ready.load(Acquire) && !ENV_SEEN.load(Relaxed) && env::available() {
        with_params(|a| {
            let extras = env::read(&mut a.params);
            SHOW_STATS.store(extras.show_stats, Relaxed);
        });
        ENV_SEEN.store(true, Relaxed);
    }
}

/// Library destructor: statistics at exit when asked for.
extern "C" fn on_unload() {
    if SHOW_STATS.load(Relaxed) {
        crate::exports::print_stats();
    }
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

#[used]
#[link_section = ".fini_array"]
static ON_UNLOAD: extern "C" fn() = on_unload;
