//! The process-wide allocator: one [`Allocator`] over [`RawMemory`], its
//! lock, each thread's cache, lazy initialisation, thread exit and fork.
//!
//! Initialisation happens inside the first call that needs the arena, under
//! the lock, using only system calls: the dynamic loader, `dlsym` and
//! `pthread` may call `malloc` before `main`, and nothing here calls back.
//!
//! Fork: no arena lock is taken before a fork (taking allocator locks in a
//! `pthread_atfork` prepare handler deadlocks against stdio locks and against
//! a fork from a signal handler that interrupted `malloc`). Instead, the
//! child checks whether the arena lock was held at the instant of the fork:
//! if so, the arena may be half-updated, so the child frees the lock and
//! retires the arena (see `Allocator::retire_arenas`); if not, the arena is
//! consistent and the child simply carries on with it, unless its kernel
//! break is stale (see `crate::fork`).

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::*};

use ptmalloc_core::state::ARENA_STATE_SIZE;
use ptmalloc_core::{Allocator, Params, Tcache, TcacheConfig, ThreadCache};

use crate::env;
use crate::lock::Lock;
use crate::os::{Abandoned, RawMemory};

/// The process allocator's type.
pub type Alloc = Allocator<RawMemory>;

/// Storage of the main arena's `malloc_state` (glibc keeps it in libc's data).
#[repr(C, align(64))]
struct ArenaStorage(UnsafeCell<[u8; ARENA_STATE_SIZE]>);

// SAFETY: the storage is only reached through the allocator, under the lock.
unsafe impl Sync for ArenaStorage {}

static MAIN_ARENA: ArenaStorage = ArenaStorage(UnsafeCell::new([0; ARENA_STATE_SIZE]));

struct Global {
    lock: Lock,
    ready: AtomicBool,
    alloc: UnsafeCell<MaybeUninit<Alloc>>,
}

// SAFETY: `alloc` is only touched with `lock` held (see `lock`).
unsafe impl Sync for Global {}

static GLOBAL: Global = Global {
    lock: Lock::new(),
    ready: AtomicBool::new(false),
    alloc: UnsafeCell::new(MaybeUninit::uninit()),
};

// What the lock-free paths need, published whenever the parameters change.
static TCACHE_BINS: AtomicUsize = AtomicUsize::new(0);
static TCACHE_COUNT: AtomicUsize = AtomicUsize::new(0);
static TCACHE_KEY: AtomicUsize = AtomicUsize::new(0);
static SHOW_STATS: AtomicBool = AtomicBool::new(false);
static ENV_SEEN: AtomicBool = AtomicBool::new(false);

extern "C" {
    /// glibc's flag (since 2.32): nonzero until the first thread is created.
    static __libc_single_threaded: libc::c_char;
}

/// Whether this process has a single thread (then no lock is contended).
#[inline(always)]
fn single_threaded() -> bool {
    // SAFETY: reads libc's flag; only this thread can change it (by creating
    // a thread), so a stale value is impossible while it reads 1.
    unsafe { core::ptr::read_volatile(&raw const __libc_single_threaded) != 0 }
}

/// Exclusive access to the allocator; unlocks when dropped.
pub struct Guard {
    alloc: *mut Alloc,
    single: bool,
}

impl core::ops::Deref for Guard {
    type Target = Alloc;
    fn deref(&self) -> &Alloc {
        // SAFETY: the lock is held and the allocator initialised for the
        // guard's whole life.
        unsafe { &*self.alloc }
    }
}

impl core::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Alloc {
        // SAFETY: as for Deref; the lock makes this the only reference.
        unsafe { &mut *self.alloc }
    }
}

impl Drop for Guard {
    #[inline(always)]
    fn drop(&mut self) {
        if self.single {
            GLOBAL.lock.mark_idle();
        } else {
            GLOBAL.lock.unlock();
        }
    }
}

/// Take the lock, initialising the allocator on first use. While the process
/// has one thread the lock is only marked (as glibc skips locking then).
#[inline(always)]
pub fn lock() -> Guard {
    let single = single_threaded();
    if single {
        GLOBAL.lock.mark_busy();
    } else {
        GLOBAL.lock.lock();
    }
    let alloc = GLOBAL.alloc.get();
    if !GLOBAL.ready.load(Relaxed) {
        crate::valgrind::detect();
        let mut params = Params::default();
        let extras = env::read(&mut params);
        ENV_SEEN.store(env::available(), Relaxed);
        SHOW_STATS.store(extras.show_stats, Relaxed);
        // SAFETY: RawMemory's contract holds for the allocator's own metadata;
        // the arena storage is ours, and the lock gives exclusive access.
        let a = unsafe {
            Alloc::new(
                RawMemory::new(),
                MAIN_ARENA.0.get() as usize,
                tcache_key(),
                params,
            )
        };
        let Ok(a) = a else {
            crate::output::fatal("ptmalloc-rs: cannot initialise the main arena");
        };
        publish(&a);
        // SAFETY: exclusive under the lock; written once before `ready`.
        unsafe { (*alloc).write(a) };
        GLOBAL.ready.store(true, Release);
    }
    // SAFETY: initialised above or earlier (ready is only set after the write).
    let alloc = unsafe { (*alloc).as_mut_ptr() };
    Guard { alloc, single }
}

/// Publish the settings the lock-free paths and the corruption path read.
pub fn publish(a: &Alloc) {
    crate::os::set_check_action(a.params.check_action);
    let cfg = a.tcache_config();
    TCACHE_BINS.store(cfg.bins, Relaxed);
    TCACHE_COUNT.store(cfg.count, Relaxed);
    TCACHE_KEY.store(cfg.key, Relaxed);
}

/// The tcache settings of the lock-free paths (bins = 0 before init).
#[inline(always)]
pub fn tcache_config() -> TcacheConfig {
    TcacheConfig {
        bins: TCACHE_BINS.load(Relaxed),
        count: TCACHE_COUNT.load(Relaxed),
        key: TCACHE_KEY.load(Relaxed),
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

/// Run `f` on the allocator under the lock with this thread's cache; returns
/// its result (`Err` when a corruption check abandoned it) and the
/// allocator's errno for the call.
#[inline(always)]
pub fn with_lock<R>(
    f: impl FnOnce(&mut Alloc, &mut ThreadCache) -> Result<R, Abandoned>,
) -> (Result<R, Abandoned>, i32) {
    let before = thread();
    let mut tc = before;
    let (r, err) = {
        let mut g = lock();
        g.last_error = 0;
        let r = f(&mut g, &mut tc);
        (r, g.last_error)
    };
    set_thread(tc, before);
    (r, err)
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
    let _ = with_lock(|a, tc| a.thread_exit(tc));
}

/// In the child after `fork`: free the lock, and retire the arena if the
/// lock was held when the process was copied (see the module comment).
unsafe extern "C" fn after_fork_child() {
    crate::fork::check_break_after_fork();
    if GLOBAL.lock.is_held() {
        GLOBAL.lock.reset();
        if GLOBAL.ready.load(Relaxed) {
            lock().retire_arenas();
        }
    }
}

/// Library constructor: fork handler, thread-exit key, a panic hook that
/// cannot allocate, and the environment if it was not readable at init.
extern "C" fn on_load() {
    std::panic::set_hook(std::boxed::Box::new(|_| {
        crate::output::fatal("ptmalloc-rs: internal error")
    }));
    // SAFETY: registers a child handler only: no lock is taken before fork.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
    thread_exit_key();
    if GLOBAL.ready.load(Acquire) && !ENV_SEEN.load(Relaxed) && env::available() {
        let mut g = lock();
        let mut params = g.params;
        let extras = env::read(&mut params);
        g.params = params;
        SHOW_STATS.store(extras.show_stats, Relaxed);
        ENV_SEEN.store(true, Relaxed);
        publish(&g);
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
