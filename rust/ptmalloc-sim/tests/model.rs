//! Model-based randomized tests of the allocator core on simulated memory:
//! random sequences of every call, checked after each step against a shadow
//! model (no overlap, contents preserved, alignment, usable size >= request)
//! and by a full walk of every chunk and bin.

use std::collections::{BTreeMap, HashSet};

use ptmalloc_core::inspect::BinKind;
use ptmalloc_core::{Allocator, Memory, Params, Tcache, ThreadCache};
use ptmalloc_sim::{SimError, SimMemory, MAIN_ARENA};

type Heap = Allocator<SimMemory>;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    /// A request size with the shape of real programs: mostly small.
    fn size(&mut self) -> usize {
        match self.below(100) {
            0..=59 => self.below(129),
            60..=84 => self.below(1100),
            85..=96 => self.below(70_000),
            _ => self.below(400_000),
        }
    }
}

struct Block {
    size: usize,
    seed: u8,
}

struct Model {
    heap: Heap,
    threads: Vec<ThreadCache>,
    live: BTreeMap<usize, Block>,
}

fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31))
}

impl Model {
    fn new(params: Params) -> Model {
        let heap = Heap::new(SimMemory::new(), MAIN_ARENA, 0x5eed_cafe_f00d_d00d, params).unwrap();
        Model {
            heap,
            threads: vec![ThreadCache::default(); 3],
            live: BTreeMap::new(),
        }
    }

    fn fill(&mut self, p: usize, b: &Block) {
        let data: Vec<u8> = (0..b.size).map(|i| pattern(b.seed, i)).collect();
        self.heap.mem.write_bytes(p, &data).unwrap();
    }

    fn verify(&self, p: usize, b: &Block, what: &str) {
        let data = self.heap.mem.read_bytes(p, b.size).unwrap();
        for (i, &byte) in data.iter().enumerate() {
            assert_eq!(
                byte,
                pattern(b.seed, i),
                "{what}: block {p:#x} size {} byte {i} changed",
                b.size
            );
        }
    }

    /// Record a new block after checking alignment, usable size and overlap.
    fn add(&mut self, p: usize, size: usize, align: usize, seed: u8, what: &str) {
        assert_ne!(p, 0, "{what}: unexpected failure for {size}");
        assert_eq!(p % align.max(16), 0, "{what}: {p:#x} not aligned to {align}");
        let usable = Heap::usable_size(&self.heap.mem, p).unwrap();
        assert!(usable >= size, "{what}: usable {usable} < request {size}");
        if let Some((&q, qb)) = self.live.range(..=p).next_back() {
            let q_end = q + Heap::usable_size(&self.heap.mem, q).unwrap().max(qb.size);
            assert!(
                q_end <= p,
                "{what}: {p:#x} overlaps live block {q:#x}..{q_end:#x}"
            );
        }
        if let Some((&q, _)) = self.live.range(p..).next() {
            assert!(
                p + usable <= q,
                "{what}: {p:#x}+{usable} overlaps live block {q:#x}"
            );
        }
        let b = Block { size, seed };
        self.fill(p, &b);
        self.live.insert(p, b);
    }

    fn step(&mut self, rng: &mut Rng) -> Result<(), SimError> {
        let t = rng.below(self.threads.len() as u64);
        let mut tc = self.threads[t];
        let seed = rng.next() as u8;
        match rng.below(100) {
            0..=39 => {
                let n = rng.size();
                let p = self.heap.malloc(&mut tc, n)?;
                self.add(p, n, 16, seed, "malloc");
            }
            40..=44 => {
                let (n, s) = (rng.below(64), rng.below(300));
                let p = self.heap.calloc(&mut tc, n, s)?;
                let data = self.heap.mem.read_bytes(p, n * s).unwrap();
                assert!(
                    data.iter().all(|&b| b == 0),
                    "calloc({n}, {s}) returned dirty memory"
                );
                self.add(p, n * s, 16, seed, "calloc");
            }
            45..=54 if !self.live.is_empty() => {
                let p = *self.live.keys().nth(rng.below(self.live.len() as u64)).unwrap();
                let b = self.live.remove(&p).unwrap();
                self.verify(p, &b, "before realloc");
                let n = rng.size();
                let q = self.heap.realloc(&mut tc, p, n)?;
                if n == 0 {
                    assert_eq!(q, 0);
                } else {
                    let keep = b.size.min(n);
                    let kept = Block {
                        size: keep,
                        seed: b.seed,
                    };
                    self.verify(q, &kept, "realloc kept contents");
                    self.add(q, n, 16, b.seed, "realloc");
                }
            }
            55..=59 => {
                let align = 1usize << (4 + rng.below(9));
                let n = rng.size();
                let p = self.heap.memalign(&mut tc, align, n)?;
                self.add(p, n, align, seed, "memalign");
            }
            60..=61 => {
                let p = self.heap.malloc(&mut tc, usize::MAX - rng.below(1 << 20))?;
                assert_eq!(p, 0, "impossible request succeeded");
                assert_eq!(
                    self.heap.posix_memalign(&mut tc, 24, 10)?,
                    Err(ptmalloc_core::EINVAL)
                );
                let p = self.heap.calloc(&mut tc, 1 << 33, 1 << 33)?;
                assert_eq!(p, 0, "overflowing calloc succeeded");
            }
            62 => {
                self.heap.trim(rng.below(1 << 17))?;
            }
            63 => {
                let v = [0, 64, 128, 160][rng.below(4)];
                assert!(self.heap.mallopt(1, v)?);
            }
            64 if rng.below(10) == 0 => {
                // A thread exits: its cache goes back to the arena.
                self.heap.thread_exit(&mut tc)?;
                tc = ThreadCache::default();
            }
            _ if !self.live.is_empty() => {
                let p = *self.live.keys().nth(rng.below(self.live.len() as u64)).unwrap();
                let b = self.live.remove(&p).unwrap();
                self.verify(p, &b, "before free");
                self.heap.free(&mut tc, p)?;
            }
            _ => {}
        }
        self.threads[t] = tc;
        Ok(())
    }

    /// Walk everything: heap invariants, each free chunk on exactly one list,
    /// and no free chunk overlapping a live block.
    fn check(&self, step: usize) {
        let caches: Vec<Tcache> = self.threads.iter().map(|t| t.tcache).collect();
        let summary = self.heap.check_heap(&caches).unwrap();
        let summary = summary.unwrap_or_else(|v| panic!("step {step}: heap invariant broken: {v:?}"));
        // The threads' other arenas, on heaps of their own.
        for av in self.heap.arenas().skip(1) {
            if let Err(v) = self.heap.check_arena(av, &caches).unwrap() {
                panic!("step {step}: invariant broken in arena {:#x}: {v:?}", av.0);
            }
        }
        let mut seen = HashSet::new();
        self.heap
            .walk_bins(&caches, 1 << 20, |kind, _, c| {
                assert!(
                    seen.insert(c.0),
                    "step {step}: chunk {:#x} on two free lists ({kind:?})",
                    c.0
                );
                let mem = c.mem();
                if let Some((&q, b)) = self.live.range(..=mem).next_back() {
                    // A live block may use the next chunk's prev_size word, no more.
                    assert!(
                        q + b.size <= c.0 + 8,
                        "step {step}: free {:#x} inside live {q:#x}",
                        c.0
                    );
                }
                if kind == BinKind::Tcache || kind == BinKind::Fast {
                    assert!(
                        !self.live.contains_key(&mem),
                        "step {step}: live block {mem:#x} is cached"
                    );
                }
            })
            .unwrap()
            .unwrap();
        assert!(summary.top_size >= 32 || self.heap.heap_start() == 0);
    }

    fn verify_all(&self) {
        for (&p, b) in &self.live {
            self.verify(p, b, "sweep");
        }
    }
}

fn run(seed: u64, steps: usize, params: Params) {
    let mut model = Model::new(params);
    let mut rng = Rng(seed);
    for step in 0..steps {
        if let Err(e) = model.step(&mut rng) {
            panic!("seed {seed} step {step}: allocator reported {e:?} on a valid sequence");
        }
        model.check(step);
        if step % 64 == 0 {
            model.verify_all();
        }
    }
    model.verify_all();
    let mut tc = model.threads[0];
    let live: Vec<usize> = model.live.keys().copied().collect();
    for p in live {
        model.heap.free(&mut tc, p).unwrap();
    }
    model.live.clear();
    model.threads[0] = tc;
    model.check(steps);
}

#[test]
fn random_sequences_keep_every_invariant() {
    for seed in 1..=12u64 {
        run(seed * 0x9e37_79b9_7f4a_7c15, 3000, Params::default());
    }
    println!("12 seeds x 3000 steps with default tunables: every step checked");
}

#[test]
fn random_sequences_with_other_tunables() {
    let mut p = Params::default();
    p.set_tcache_count(0);
    p.set(ptmalloc_core::params::opt::M_MXFAST, 0);
    run(77, 3000, p);
    let mut p = Params::default();
    p.set_tcache_max(64);
    p.set(ptmalloc_core::params::opt::M_MMAP_THRESHOLD, 4096);
    p.set(ptmalloc_core::params::opt::M_TRIM_THRESHOLD, 0);
    p.set(ptmalloc_core::params::opt::M_TOP_PAD, 0);
    run(78, 3000, p);
    println!("no tcache/no fastbins and tiny thresholds: every step checked");
}

#[test]
fn two_instances_side_by_side_are_independent() {
    let mut a = Model::new(Params::default());
    let mut b = Model::new(Params::default());
    let (mut ra, mut rb) = (Rng(5), Rng(5));
    for step in 0..2000 {
        a.step(&mut ra).unwrap();
        b.step(&mut rb).unwrap();
        if step % 100 == 0 {
            a.check(step);
            b.check(step);
        }
    }
    // Same calls, same addresses, yet separate memory.
    let ka: Vec<_> = a.live.keys().copied().collect();
    let kb: Vec<_> = b.live.keys().copied().collect();
    assert_eq!(ka, kb);
    let p = ka[0];
    b.heap.mem.write_bytes(p, &[0xAB; 8]).unwrap();
    assert_ne!(a.heap.mem.read_bytes(p, 8).unwrap(), &[0xAB; 8]);
    a.verify_all();
    println!("two instances: identical placement, independent memory");
}

#[test]
fn corruption_is_an_error_value_not_a_crash() {
    let mut m = Model::new(Params::default());
    let mut tc = ThreadCache::default();
    let p = m.heap.malloc(&mut tc, 24).unwrap();
    m.heap.free(&mut tc, p).unwrap();
    let e = m.heap.free(&mut tc, p).unwrap_err();
    assert_eq!(
        e,
        SimError::Abort {
            message: "free(): double free detected in tcache 2"
        }
    );

    let mut m = Model::new(Params::default());
    let p = m.heap.malloc(&mut tc, 5000).unwrap();
    let _guard = m.heap.malloc(&mut tc, 10).unwrap();
    m.heap.mem.write(p - 8, 0x41414140).unwrap();
    let e = m.heap.free(&mut tc, p).unwrap_err();
    assert!(
        matches!(e, SimError::Abort { .. } | SimError::SegFault { .. }),
        "{e:?}"
    );

    let e = m.heap.free(&mut tc, 0x1234_5670).unwrap_err();
    assert_eq!(e, SimError::SegFault { addr: 0x1234_5668 });
    println!("double free, forged size and wild pointer: error values");
}

#[test]
fn placement_matches_glibc_for_a_classic_sequence() {
    // Offsets from the heap start observed on glibc 2.36 for this sequence.
    let mut m = Model::new(Params::default());
    let mut tc = ThreadCache::default();
    let base = ptmalloc_sim::HEAP_BASE;
    let a = m.heap.malloc(&mut tc, 24).unwrap();
    let b = m.heap.malloc(&mut tc, 25).unwrap();
    assert_eq!((a - base, b - base), (0x2a0, 0x2c0));
    m.heap.free(&mut tc, a).unwrap();
    assert_eq!(m.heap.malloc(&mut tc, 20).unwrap(), a, "tcache is LIFO per size");
    let big = m.heap.malloc(&mut tc, 200_000).unwrap();
    assert_eq!(Heap::usable_size(&m.heap.mem, big).unwrap(), 200_688);
    assert_eq!(m.heap.sbrk_base, base);
    assert_eq!(m.heap.mem.brk() - base, 0x21000, "first sbrk: 132 KiB like glibc");
}

fn hardened() -> Params {
    Params {
        hardened: true,
        free_check: true,
        ..Params::default()
    }
}

#[test]
fn random_sequences_hardened_and_free_checked() {
    // Keyed headers and the free fill must never reject a valid sequence,
    // and the walk checks every header's state after every step.
    for seed in 1..=4u64 {
        run(seed * 0x2545_f491_4f6c_dd1d, 3000, hardened());
    }
    let mut p = hardened();
    p.set_tcache_count(0);
    run(79, 3000, p);
    println!("4 seeds x 3000 steps hardened + free check, and without a tcache: every step checked");
}

/// The message a hardened instance stops `f` with.
fn hardened_abort(f: impl FnOnce(&mut Heap, &mut ThreadCache) -> Result<(), SimError>) -> &'static str {
    let mut m = Model::new(hardened());
    let mut tc = ThreadCache::default();
    match f(&mut m.heap, &mut tc) {
        Err(SimError::Abort { message }) => message,
        other => panic!("not stopped: {other:?}"),
    }
}

#[test]
fn hardened_instance_stops_what_glibc_lets_through() {
    // A, B, A into a fastbin (the tcache bin full): glibc sees only the top.
    let msg = hardened_abort(|h, tc| {
        let t: Vec<usize> = (0..7).map(|_| h.malloc(tc, 24).unwrap()).collect();
        let (a, b) = (h.malloc(tc, 24)?, h.malloc(tc, 24)?);
        for p in t {
            h.free(tc, p)?;
        }
        h.free(tc, a)?;
        h.free(tc, b)?;
        h.free(tc, a)
    });
    assert_eq!(msg, "free(): double free detected");

    // realloc of a block in the tcache.
    let msg = hardened_abort(|h, tc| {
        let p = h.malloc(tc, 100)?;
        h.free(tc, p)?;
        h.realloc(tc, p, 50).map(|_| ())
    });
    assert_eq!(msg, "realloc(): block already freed");

    // A fake chunk (house of spirit) with a plausible size and neighbour.
    let msg = hardened_abort(|h, tc| {
        let area = h.malloc(tc, 0x200)?;
        h.mem.write(area + 8, 0x41)?;
        h.mem.write(area + 0x48, 0x41)?;
        h.free(tc, area + 0x10)
    });
    assert_eq!(msg, "free(): invalid chunk header");

    // Off-by-one NUL into the next size, freed on the tcache path.
    let msg = hardened_abort(|h, tc| {
        let a = h.malloc(tc, 0x108)?;
        let b = h.malloc(tc, 0x100)?;
        h.mem.write_bytes(a + 0x108, &[0])?;
        h.free(tc, b)
    });
    assert_eq!(msg, "free(): invalid chunk header");

    // Tcache poisoning: the entry's link pointed at a target (here inside
    // a block, where no chunk starts).
    let msg = hardened_abort(|h, tc| {
        let target = h.malloc(tc, 0x80)? + 0x20;
        let a = h.malloc(tc, 40)?;
        let b = h.malloc(tc, 40)?;
        h.free(tc, a)?;
        h.free(tc, b)?;
        h.mem.write(b, ptmalloc_core::chunk::protect_ptr(b, target))?;
        h.malloc(tc, 40)?;
        h.malloc(tc, 40).map(|_| ())
    });
    assert_eq!(msg, "malloc(): corrupted tcache entry");

    // A write after free, seen by the free check at the next malloc.
    let msg = hardened_abort(|h, tc| {
        let a = h.malloc(tc, 64)?;
        h.free(tc, a)?;
        h.mem.write_bytes(a + 40, b"x")?;
        h.malloc(tc, 64).map(|_| ())
    });
    assert_eq!(msg, "malloc(): write after free detected");

    // The size of a free chunk in the unsorted bin enlarged (overlapping chunks).
    let msg = hardened_abort(|h, tc| {
        let a = h.malloc(tc, 0x500)?;
        let _b = h.malloc(tc, 0x500)?;
        let guard = h.malloc(tc, 0x20)?;
        h.free(tc, a)?;
        // Every glibc check satisfied: the size, the foot, the next P bit.
        let raw = h.mem.read(a - 8)?;
        h.mem.write(a - 8, raw + 0x510)?;
        h.mem.write(guard - 16, 0xa20)?;
        let g = h.mem.read(guard - 8)?;
        h.mem.write(guard - 8, g & !1)?;
        h.malloc(tc, 0x9f0).map(|_| ())
    });
    assert_eq!(msg, "malloc(): corrupted free chunk header");
    println!("fastbin dup, realloc of a freed block, fake chunk, off-by-one NUL, tcache poisoning, write after free, overlap: stopped");
}
