#!/usr/bin/env python3
"""Replay an allocation trace under different tunables and compare the series.

    python examples/replay_trace.py                     # a generated trace
    python examples/replay_trace.py prog.trace          # a trace file (slot format)
    python examples/replay_trace.py --mtrace mtrace.log # a glibc MALLOC_TRACE log
    python examples/replay_trace.py --ltrace ltrace.log # an ltrace log of the malloc family
    python examples/replay_trace.py --bench 1000000     # time a replay of N random operations

Writes replay.png (with matplotlib) and timeline.svg (the first 80 operations)
into the current directory, or the directory given with --out.
"""

import argparse
import os
import random

from ptmalloc_rs import Trace, load_ltrace, load_mtrace, replay, timeline


def generated(n_ops, target_live=2000, seed=7):
    """A program-like mix around a steady population of ``target_live`` objects.

    Mostly small short-lived objects, some medium ones, a few big buffers
    (some above the mmap threshold), reallocs now and then; frees pick a
    random live object, so the heap gets holes.
    """
    rng = random.Random(seed)
    trace = Trace()
    live = []
    for _ in range(n_ops):
        roll = rng.random()
        if live and roll < len(live) / (2 * target_live):
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            trace.free(live.pop())
        elif live and roll > 0.98:
            trace.realloc(rng.choice(live), rng.randrange(16, 4096))
        else:
            kind = rng.random()
            if kind < 0.7:
                size = rng.randrange(8, 128)
            elif kind < 0.97:
                size = rng.randrange(128, 1024)
            else:
                size = rng.randrange(1024, 300000)
            live.append(trace.malloc(size))
    return trace


CONFIGS = {
    "glibc defaults": {},
    "no tcache, no fastbins": {"tcache_count": 0, "mxfast": 0},
    "mmap_threshold 4 KiB": {"mmap_threshold": 4096},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trace", nargs="?")
    parser.add_argument("--mtrace")
    parser.add_argument("--ltrace")
    parser.add_argument("--bench", type=int, metavar="N")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()

    if args.bench:
        trace = generated(args.bench, seed=1)
        for every, what in ((0, "live bytes and footprint"), (None, "and ~200 free-bytes samples")):
            rep = replay(trace, every=every)
            print(
                f"replay of {len(trace)} ops ({what}): {rep.seconds:.2f} s wall, {rep.cpu_seconds:.2f} s CPU, "
                f"{1e9 * rep.cpu_seconds / len(trace):.0f} CPU ns/op; peak live {rep.peak_live}, "
                f"peak footprint {rep.peak_footprint}, final fragmentation {rep.fragmentation[-1]:.3f}"
            )
        return

    if args.mtrace:
        trace = load_mtrace(args.mtrace)
    elif args.ltrace:
        trace = load_ltrace(args.ltrace)
    elif args.trace:
        trace = Trace.load(args.trace)
    else:
        trace = generated(20000)
    print(f"{trace!r}; {len(trace.skipped)} calls not expressible in slots")
    print("first operations:\n" + "".join(f"  {op}\n" for op in trace.ops[:8]))

    results = {}
    for name, tunables in CONFIGS.items():
        rep = replay(trace, **tunables)
        results[name] = rep
        print(f"[{name}] {tunables}\n  " + rep.summary().replace("\n", "\n  "))
        print(f"  counters: {dict(sorted(rep.counters.items()))}")

    os.makedirs(args.out, exist_ok=True)
    try:
        path = os.path.join(args.out, "replay.png")
        results["glibc defaults"].plot(path, title="glibc defaults")
        print(f"wrote {path}")
    except ImportError as exc:
        print(f"no plot: {exc}")
    path = os.path.join(args.out, "timeline.svg")
    with open(path, "w", encoding="utf-8") as out:
        out.write(timeline(trace[:80]))
    print(f"wrote {path} (the first 80 operations)")


if __name__ == "__main__":
    main()
