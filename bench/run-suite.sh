#!/usr/bin/env bash
# The benchmark suite under five allocators: timings and peak RSS.
#
#   bench/run-suite.sh OURLIB RUNS.TSV
#
# Builds bench/suite/ and bench/threads.c into build/bench/, then runs every
# workload under libptmalloc-rs (OURLIB, LD_PRELOAD), glibc (nothing
# preloaded), jemalloc, tcmalloc and mimalloc (bench/allocators.sh),
# interleaved: for each repetition, for each workload, A B C D E. Each run
# records the program's own elapsed time (its "seconds=" line), its peak RSS
# (/usr/bin/time %M, KiB) and, for mixed, the peak live bytes it reports.
# One line per run goes to RUNS.TSV; bench/report.py turns it into tables.
#
# Environment:
#   BENCH_REPS=N     repetitions (default 5)
#   BENCH_QUICK=1    smoke run: 1 repetition, a tenth of the work
#   BENCH_TIMEOUT=S  a run still going after S seconds is killed (default 120)
#   CC               C compiler (default cc)
set -u
usage="usage: bench/run-suite.sh OURLIB RUNS.TSV"
ours=${1:?$usage}
tsv=${2:?$usage}
[ -f "$ours" ] || { echo "run-suite.sh: $ours: no such library" >&2; exit 1; }
ours=$(realpath -s "$ours")
here=$(cd "$(dirname "$0")" && pwd)
bdir=$(cd "$here/.." && pwd)/build/bench
mkdir -p "$bdir/suite-out" "$(dirname "$tsv")"
CC=${CC:-cc}
. "$here/allocators.sh"

quick=${BENCH_QUICK:-}
[ "$quick" = 0 ] && quick=
reps=${BENCH_REPS:-5}
[ -n "$quick" ] && reps=1
case $reps in '' | *[!0-9]* | 0) echo "run-suite.sh: BENCH_REPS must be a positive integer" >&2; exit 1 ;; esac
timeout_s=${BENCH_TIMEOUT:-120}
percent=100
[ -n "$quick" ] && percent=10

# --- build
cflags=(-std=c11 -O2 -pthread -Wall -Wextra)
"$CC" "${cflags[@]}" -o "$bdir/suite" "$here"/suite/*.c &&
  "$CC" "${cflags[@]}" -o "$bdir/threads" "$here/threads.c" ||
  { echo "run-suite.sh: building the suite failed" >&2; exit 1; }

bench_allocators "$ours" "$bdir"
[ -x /usr/bin/time ] || { echo "run-suite.sh: /usr/bin/time is needed for peak RSS" >&2; exit 1; }

# Workloads, in table order. larson and xmalloc are bench/threads.c's larson
# (2 threads) and prodcons (1 producer, 1 consumer) workloads.
workloads=(symbolic logic sweep calloc realloc larson xmalloc cache-thrash cache-scratch large thread-churn mixed)
command_for() { # WORKLOAD: sets cmd[]
  case $1 in
  larson) cmd=("$bdir/threads" larson 2 $((8000000 * percent / 100))) ;;
  xmalloc) cmd=("$bdir/threads" prodcons 1 $((3000000 * percent / 100))) ;;
  *) cmd=("$bdir/suite" "$1" "$percent") ;;
  esac
}

# run_one WORKLOAD INDEX REP: appends one line to the TSV
run_one() {
  local w=$1 i=$2 rep=$3 name=${names[$2]} secs live rss status
  command_for "$w"
  measure "$bdir/suite-out/$w.$name.$rep" "$i" "$timeout_s" "${cmd[@]}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$name" "$rep" "$secs" "$rss" "${live:--}" "$status" >>"$tsv"
}

printf 'workload\tallocator\trep\tseconds\tpeak_rss_kib\tpeak_live_kib\tstatus\n' >"$tsv"
start=$SECONDS
nruns=$((${#workloads[@]} * reps * ${#avail[@]}))
echo "suite: ${#workloads[@]} workloads x $reps reps x ${#avail[@]} allocators = $nruns runs${quick:+ (quick)}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((rep = 1; rep <= reps; rep++)); do
  printf 'rep %d/%d ' "$rep" "$reps"
  for w in "${workloads[@]}"; do
    for i in "${avail[@]}"; do run_one "$w" "$i" "$rep"; done
    printf '.'
  done
  printf ' %ss\n' "$((SECONDS - start))"
done
echo "suite: $((SECONDS - start)) s; raw figures in $tsv"
