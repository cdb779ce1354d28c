#!/usr/bin/env python3
"""The benchmark report: build/bench.md (and build/bench.png) from the raw
figures of bench/run-suite.sh and bench/run-instr.sh.

    report.py --runs RUNS.TSV [--instr INSTR.TSV] --out BENCH.MD [--png BENCH.PNG]
              [--note TEXT]...

Per workload: the median over the repetitions of each allocator's elapsed
time and peak RSS, ours against glibc and against the best of the four
peers, and the spread (max/min over the repetitions, the worst allocator of
the row; flagged `!` above 1.15). Geometric means of the ratios close each
table. The chart needs matplotlib (the runner installs it in a venv); without
it the Markdown is written all the same and says so.
"""
import argparse
import csv
import math
import statistics
import sys

ALLOCATORS = ["ptmalloc-rs", "glibc", "jemalloc", "tcmalloc", "mimalloc"]
OURS, GLIBC = ALLOCATORS[0], ALLOCATORS[1]
PEERS = ALLOCATORS[1:]
NOISY = 1.15
# The figures for instructions per pair (callgrind, call included).
TARGETS = {"fixed": "glibc 135, jemalloc 73, tcmalloc 72, mimalloc 49",
           "cycling": "mimalloc 79",
           "calloc": "-"}


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}"


class Suite:
    """Medians and spreads of one column (seconds or peak_rss_kib)."""

    def __init__(self, rows, column):
        self.workloads = []
        self.values = {}   # (workload, allocator) -> [values]
        self.failed = {}   # (workload, allocator) -> count
        for r in rows:
            w, a = r["workload"], r["allocator"]
            if w not in self.workloads:
                self.workloads.append(w)
            if r["status"] != "ok":
                self.failed[w, a] = self.failed.get((w, a), 0) + 1
            v = r[column]
            if v not in ("", "-"):
                self.values.setdefault((w, a), []).append(float(v))
        self.present = {a for (_, a) in self.values}

    def median(self, w, a):
        v = self.values.get((w, a))
        return statistics.median(v) if v else None

    def spread(self, w):
        worst, who = None, None
        for a in ALLOCATORS:
            v = self.values.get((w, a))
            if v and min(v) > 0:
                s = max(v) / min(v)
                if worst is None or s > worst:
                    worst, who = s, a
        return worst, who

    def best_peer(self, w):
        meds = [(self.median(w, a), a) for a in PEERS if self.median(w, a) is not None]
        return min(meds) if meds else (None, None)


def table(suite, unit, fmt):
    head = "| workload | " + " | ".join(f"{a} {unit}" for a in ALLOCATORS)
    head += " | ours/glibc | ours/best peer | spread |"
    lines = [head, "|---|" + "--:|" * (len(ALLOCATORS) + 3)]
    to_glibc = {a: [] for a in ALLOCATORS}
    to_best = []
    for w in suite.workloads:
        cells = []
        for a in ALLOCATORS:
            m = suite.median(w, a)
            if a not in suite.present:
                cell = "n/a"
            elif m is None:
                cell = "fail"
            else:
                cell = fmt(m)
                if suite.failed.get((w, a)):
                    cell += f" ({suite.failed[w, a]} fail)"
            cells.append(cell)
            to_glibc[a].append(ratio(m, suite.median(w, GLIBC)))
        best, who = suite.best_peer(w)
        ours = suite.median(w, OURS)
        r_best = ratio(ours, best)
        to_best.append(r_best)
        sp, sp_who = suite.spread(w)
        if sp is None:
            sp_cell = "-"
        elif sp > NOISY:
            sp_cell = f"{sp:.2f}! ({sp_who})"
        else:
            sp_cell = f"{sp:.2f}"
        best_cell = "-" if r_best is None else f"{r_best:.2f} ({who})"
        lines.append(f"| {w} | " + " | ".join(cells)
                     + f" | {fmt_ratio(ratio(ours, suite.median(w, GLIBC)))} | {best_cell} | {sp_cell} |")
    gm = [fmt_ratio(geomean(to_glibc[a])) + "x" if geomean(to_glibc[a]) else "-" for a in ALLOCATORS]
    lines.append("| **geomean vs glibc** | " + " | ".join(gm)
                 + f" | **{fmt_ratio(geomean(to_glibc[OURS]))}** | **{fmt_ratio(geomean(to_best))}** | |")
    return lines, {a: geomean(to_glibc[a]) for a in ALLOCATORS}


def memory_table(rows):
    """mixed: each allocator's peak RSS against the peak live bytes."""
    live, rss = {}, {}
    for r in rows:
        if r["workload"] != "mixed" or r["status"] != "ok":
            continue
        if r["peak_live_kib"] not in ("", "-"):
            live.setdefault(r["allocator"], []).append(float(r["peak_live_kib"]))
        if r["peak_rss_kib"] not in ("", "-"):
            rss.setdefault(r["allocator"], []).append(float(r["peak_rss_kib"]))
    if not live:
        return []
    lines = ["| allocator | peak live KiB | peak RSS KiB | RSS / live |", "|---|--:|--:|--:|"]
    for a in ALLOCATORS:
        if a in live and a in rss:
            lv, rs = statistics.median(live[a]), statistics.median(rss[a])
            lines.append(f"| {a} | {lv:.0f} | {rs:.0f} | {rs / lv:.2f} |")
    return lines


def instr_table(rows):
    per = {(r["shape"], r["allocator"]): r["instructions_per_pair"] for r in rows}
    loops = {r["shape"]: r["loop_per_pair"] for r in rows}
    shapes = list(dict.fromkeys(r["shape"] for r in rows))
    lines = ["| shape | " + " | ".join(ALLOCATORS) + " | ours/best peer | loop (subtracted) | issue's figures |",
             "|---|" + "--:|" * (len(ALLOCATORS) + 2) + "---|"]
    for s in shapes:
        vals = {a: per.get((s, a)) for a in ALLOCATORS}
        nums = {a: float(v) for a, v in vals.items() if v not in (None, "", "-")}
        peers = [(nums[a], a) for a in PEERS if a in nums]
        best = min(peers) if peers else (None, None)
        rb = ratio(nums.get(OURS), best[0])
        lines.append(f"| {s} | " + " | ".join(v if v not in (None, "") else "n/a" for v in vals.values())
                     + f" | {'-' if rb is None else f'{rb:.2f} ({best[1]})'} | {loops.get(s, '-')} | {TARGETS.get(s, '-')} |")
    return lines


def chart(path, time_suite, rss_suite, gm_time, gm_rss):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart"
    others = [a for a in ALLOCATORS if a != GLIBC]
    colours = {"ptmalloc-rs": "#d62728", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c", "mimalloc": "#9467bd"}
    fig, axes = plt.subplots(2, 1, figsize=(14, 9), sharex=True)
    labels = time_suite.workloads + ["geomean"]
    width = 0.8 / len(others)
    for ax, suite, gm, what in ((axes[0], time_suite, gm_time, "time"), (axes[1], rss_suite, gm_rss, "peak RSS")):
        for k, a in enumerate(others):
            ys = [ratio(suite.median(w, a), suite.median(w, GLIBC)) for w in suite.workloads] + [gm.get(a)]
            xs = [i + (k - (len(others) - 1) / 2) * width for i in range(len(labels))]
            kept = [(x, y) for x, y in zip(xs, ys) if y]
            # bars grow from 1 (glibc): up is worse, down is better
            ax.bar([x for x, _ in kept], [y - 1 for _, y in kept], width, bottom=1, label=a, color=colours[a])
        ax.axhline(1.0, color="black", linewidth=1, label="glibc (= 1)")
        ax.set_yscale("log")
        ax.set_ylabel(f"{what} / glibc (log scale)")
        ax.set_title(f"{what} relative to glibc, lower is better")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(ncol=5, fontsize=8)
    axes[1].set_xticks(range(len(labels)))
    axes[1].set_xticklabels(labels, rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return None


def suite_sections(runs, png):
    """The time, RSS and memory tables (and the chart when png is given)."""
    times = Suite(runs, "seconds")
    rss = Suite(runs, "peak_rss_kib")
    t_lines, gm_time = table(times, "s", lambda v: f"{v:.3f}")
    r_lines, gm_rss = table(rss, "KiB", lambda v: f"{v:.0f}")
    out = ["## Elapsed time (median seconds, the program's own clock; lower is better)", ""] + t_lines + [""]
    out += ["## Peak RSS (median KiB, /usr/bin/time %M; lower is better)", ""] + r_lines + [""]
    m_lines = memory_table(runs)
    if m_lines:
        out += ["## mixed: peak RSS against peak live bytes (the sizes requested)", ""] + m_lines + [""]
    out += ["ours/glibc, ours/best peer: ratio of the medians (below 1: ours is faster / smaller); the best",
            "peer is the best of glibc, jemalloc, tcmalloc and mimalloc on that row. The geomean row: each",
            "allocator's geometric mean of its ratios to glibc (and of ours to the row's best peer).",
            f"spread: max/min over the repetitions, for the allocator of the row where it is largest; `!` above {NOISY}",
            "marks a noisy row (rerun before drawing conclusions). fail: every run failed (see",
            "build/bench/suite-out/); n/a: allocator not installed.", ""]
    if png:
        why = chart(png, times, rss, gm_time, gm_rss)
        out += [f"Chart: `{png}`" if why is None else f"Chart: not drawn ({why})", ""]
    return out


def instr_section(rows):
    out = ["## Fast path: instructions per malloc/free pair (callgrind)", ""] + instr_table(rows)
    out += ["", "Instructions per pair = (total for 2N pairs - total for N pairs) / N, minus the loop's own",
            "instructions per iteration (the same difference for the loop with the calls taken out), so",
            "start-up and exit cancel out and the call, PLT jump and return are included. The machine's",
            "load does not change these counts (mimalloc's vary by about 1% from run to run).", ""]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs")
    ap.add_argument("--instr")
    ap.add_argument("--out", required=True)
    ap.add_argument("--png")
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args()

    out = ["# Benchmarks: libptmalloc-rs against glibc, jemalloc, tcmalloc and mimalloc", ""]
    out += [n + "  " for n in args.note] + [""]
    if args.runs:
        out += suite_sections(read_tsv(args.runs), args.png)
    if args.instr:
        out += instr_section(read_tsv(args.instr))
    with open(args.out, "w") as f:
        f.write("\n".join(out))
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
