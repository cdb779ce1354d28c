#!/usr/bin/env bash
# Thread-scaling benchmark: bench/threads.c under five allocators.
#
#   bench/run-threads.sh OURLIB OUT.md
#
# OURLIB is the libptmalloc-rs.so to measure (LD_PRELOAD). The others:
# glibc (nothing preloaded), jemalloc, tcmalloc (minimal) and mimalloc
# (LD_PRELOAD of the Debian packages' libraries, installed when missing; one
# that still cannot be found is shown as n/a).
#
# For each workload (prodcons, larson, private) and each thread count T in
# 1 2 4 8, the five allocators run interleaved (A B C D E, A B C D E, ...)
# BENCH_REPS times (default 5). Each run records the program's own elapsed
# time (its "seconds=" line) and its peak RSS in KiB (/usr/bin/time %M).
# The same number of `threads idle N` runs (N threads that each malloc and
# free one block) give each allocator's fixed cost for N threads: libraries,
# stacks, a first arena. Peak RSS above it, the third table, is what the
# work itself cost; on these small workloads (1.8-15 MB) the fixed costs,
# which differ by a library's own pages, are a large part of the total.
# The table (medians, ratios, spread of ours) goes to OUT.md and the
# terminal; every run's raw figures to build/bench/threads-runs.tsv.
#
# Environment:
#   BENCH_REPS=N     repetitions (default 5)
#   BENCH_QUICK=1    smoke test: 1 repetition, a tenth of the work
#   BENCH_TIMEOUT=S  a run still going after S seconds is killed (default 120)
#   CC               C compiler (default cc)
set -u
usage="usage: bench/run-threads.sh OURLIB OUT.md"
ours=${1:?$usage}
out_md=${2:?$usage}
[ -f "$ours" ] || { echo "run-threads.sh: $ours: no such library" >&2; exit 1; }
ours=$(realpath -s "$ours")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bdir=$root/build/bench
mkdir -p "$bdir/threads-out" "$(dirname "$out_md")"
CC=${CC:-cc}

quick=${BENCH_QUICK:-}
[ "$quick" = 0 ] && quick=
reps=${BENCH_REPS:-5}
[ -n "$quick" ] && reps=1
case $reps in ''|*[!0-9]*|0) echo "run-threads.sh: BENCH_REPS must be a positive integer" >&2; exit 1 ;; esac
timeout_s=${BENCH_TIMEOUT:-120}

workloads=(prodcons larson private)
threads=(1 2 4 8)
# Total work per run, the same for every T (the defaults of threads.c).
declare -A work=([prodcons]=6000000 [larson]=16000000 [private]=12000000 [idle]=1)
if [ -n "$quick" ]; then
  for w in "${workloads[@]}"; do work[$w]=$((work[$w] / 10)); done
fi

start=$SECONDS
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- build
bin=$bdir/threads
"$CC" -std=c11 -O2 -pthread -Wall -Wextra -o "$bin" "$here/threads.c" ||
  { echo "run-threads.sh: building threads.c failed" >&2; exit 1; }

# --- tools and peer allocators (names[], preloads[], avail[], clean_env[])
. "$here/allocators.sh"
bench_allocators "$ours" "$bdir"
[ -x /usr/bin/time ] || { echo "run-threads.sh: /usr/bin/time is needed for peak RSS" >&2; exit 1; }

# --- runs
tsv=$bdir/threads-runs.tsv
printf 'workload\tthreads\tallocator\trep\tseconds\tpeak_rss_kib\tstatus\n' >"$tsv"

# run_one WORKLOAD T INDEX REP: appends one line to the TSV
run_one() {
  local w=$1 t=$2 i=$3 rep=$4 name=${names[$3]} secs live rss status
  measure "$bdir/threads-out/$w.$t.$name.$rep" "$i" "$timeout_s" "$bin" "$w" "$t" "${work[$w]}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$t" "$name" "$rep" "$secs" "$rss" "$status" >>"$tsv"
}

# Thread counts of the idle runs: every T, and 2T (prodcons' workers).
idle_counts=(1 2 4 8 16)
nruns=$(( (${#workloads[@]} * ${#threads[@]} + ${#idle_counts[@]}) * reps * ${#avail[@]} ))
echo "threads: ${#workloads[@]} workloads x ${#threads[@]} thread counts x $reps reps x ${#avail[@]} allocators = $nruns runs${quick:+ (quick)}"
printf 'idle     N=%s ' "${idle_counts[*]}"
for ((rep = 1; rep <= reps; rep++)); do
  for n in "${idle_counts[@]}"; do
    for i in "${avail[@]}"; do run_one idle "$n" "$i" "$rep"; done
  done
  printf '.'
done
printf ' %ss\n' "$((SECONDS - start))"
for w in "${workloads[@]}"; do
  for t in "${threads[@]}"; do
    printf '%-8s T=%s ' "$w" "$t"
    for ((rep = 1; rep <= reps; rep++)); do
      for i in "${avail[@]}"; do run_one "$w" "$t" "$i" "$rep"; done
      printf '.'
    done
    printf ' %ss\n' "$((SECONDS - start))"
  done
done
elapsed=$((SECONDS - start))

# --- table
# table KIND: KIND is seconds (column 5, the idle runs left out), rss
# (column 6) or above (column 6 less the median of the idle runs with as
# many threads: 2T for prodcons, T for the others)
table() {
  awk -F'\t' -v kind="$1" -v reps="$reps" -v names="${names[*]}" -v avail=" ${avail[*]} " '
    function median(key,   n, i, j, tmp, a) {
      n = cnt[key]
      for (i = 1; i <= n; i++) a[i] = val[key, i]
      for (i = 2; i <= n; i++) { tmp = a[i]; for (j = i - 1; j >= 1 && a[j] > tmp; j--) a[j + 1] = a[j]; a[j + 1] = tmp }
      if (n % 2) return a[(n + 1) / 2]
      return (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function fmt(x) { return kind == "seconds" ? sprintf("%.3f", x) : sprintf("%d", x + 0.5) }
    function workers(w, t) { return w == "prodcons" ? 2 * t : t }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "-" : sprintf("%.2f", a / b) }
    NR == 1 { next }
    $1 == "idle" && kind != "rss" {
      # kept for the idle medians, not a row of this table
      if ($7 == "ok" && $6 != "-") { key = $1 SUBSEP $2 SUBSEP $3; cnt[key]++; val[key, cnt[key]] = $6 + 0 }
      next
    }
    {
      col = kind == "seconds" ? $5 : $6
      key = $1 SUBSEP $2 SUBSEP $3
      if (!(($1 SUBSEP $2) in seen)) { seen[$1, $2] = 1; order[++nrows] = $1 SUBSEP $2 }
      if ($7 != "ok") { failed[key]++ }
      if (col != "-") { cnt[key]++; val[key, cnt[key]] = col + 0 }
    }
    END {
      na = split(names, nm, " ")
      unit = kind == "seconds" ? "s" : "KiB"
      printf "| workload | T |"
      for (k = 1; k <= na; k++) printf " %s %s |", nm[k], unit
      printf " ours/glibc | ours/mimalloc | spread |\n|---|--:|"
      for (k = 1; k <= na + 3; k++) printf "--:|"
      printf "\n"
      for (r = 1; r <= nrows; r++) {
        split(order[r], wt, SUBSEP)
        printf "| %s | %s |", wt[1], wt[2]
        delete med
        for (k = 1; k <= na; k++) {
          key = order[r] SUBSEP nm[k]
          if (index(avail, " " (k - 1) " ") == 0) { cell = "n/a" }
          else if (cnt[key] == 0) { cell = "fail" }
          else {
            med[k] = median(key)
            if (kind == "above") {
              ikey = "idle" SUBSEP workers(wt[1], wt[2]) SUBSEP nm[k]
              if (!cnt[ikey]) { delete med[k]; printf " - |"; continue }
              med[k] -= median(ikey)
            }
            cell = fmt(med[k])
            if (failed[key]) cell = cell " (" failed[key] " fail)"
          }
          printf " %s |", cell
        }
        key = order[r] SUBSEP nm[1]
        sp = "-"
        if (cnt[key] > 0) {
          lo = hi = val[key, 1]
          for (i = 2; i <= cnt[key]; i++) { if (val[key, i] < lo) lo = val[key, i]; if (val[key, i] > hi) hi = val[key, i] }
          sp = lo > 0 ? sprintf("%.2f", hi / lo) : "-"
          if (lo > 0 && hi / lo > 1.15) sp = sp "!"
        }
        printf " %s | %s | %s |\n", ratio(med[1], med[2]), ratio(med[1], med[5]), sp
      }
    }' "$tsv"
}

ncpu=$(nproc)
glibc_version=$(ldd --version | head -n 1 | awk '{print $NF}')
{
  echo "# Thread scaling: libptmalloc-rs against glibc, jemalloc, tcmalloc and mimalloc"
  echo
  echo "Generated by \`bench/run-threads.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $(uname -srm), $ncpu CPUs, glibc $glibc_version;"
  echo "ours = \`$ours\`; $reps repetition(s) per cell, allocators interleaved;"
  echo "work per run (the same for every T): prodcons ${work[prodcons]} objects, larson ${work[larson]} steps, private ${work[private]} steps${quick:+ (BENCH_QUICK: a tenth of the default)}."
  echo "Load average at start: $load_at_start. Whole run: ${elapsed} s."
  echo
  echo "## Elapsed time (median seconds, the program's own clock; lower is better)"
  echo
  table seconds
  echo
  echo "## Peak RSS (median KiB, /usr/bin/time %M; lower is better)"
  echo
  echo "The idle rows are each allocator's fixed cost for T threads (\`threads idle T\`)."
  echo
  table rss
  echo
  echo "## Peak RSS above the idle run with as many threads (median KiB; lower is better)"
  echo
  echo "What the work itself cost: the median peak less the median of the idle runs with the"
  echo "same number of threads (2T for prodcons). Both medians move by about 100 KiB between"
  echo "sets of runs (the kernel maps a shared library's pages 64 KiB at a time, around"
  echo "wherever a page was touched, and where those windows fall moves with the load address)."
  echo
  table above
  echo
  echo "T: worker threads (prodcons: T producers + T consumers). ours/glibc, ours/mimalloc:"
  echo "ratio of the medians (below 1: ours is faster / smaller). spread: max/min of ours over"
  echo "the repetitions, \`!\` when above 1.15 (a noisy cell: rerun before drawing conclusions)."
  echo "fail: every run failed (see build/bench/threads-out/); n/a: allocator not installed."
  echo "Raw figures: $tsv"
} >"$out_md"
cat "$out_md"
