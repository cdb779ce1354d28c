#!/usr/bin/env bash
# Fast-path cost in instructions: bench/malloc-free-pairs.c under
# valgrind --tool=callgrind for each of the five allocators.
#
#   bench/run-instr.sh OURLIB INSTR.TSV
#
# For each shape (fixed, cycling, calloc) and allocator, the program runs N
# and 2N pairs; the difference of the two instruction totals is the cost of
# N pairs with start-up, initialisation and exit cancelled out. The loop's
# own instructions (the loop-* shapes, the same difference) are subtracted,
# so what remains is the malloc and free calls themselves, call and return
# included. One line per shape and allocator goes to INSTR.TSV.
#
# Environment: BENCH_INSTR_PAIRS=N (default 200000), CC.
set -u
usage="usage: bench/run-instr.sh OURLIB INSTR.TSV"
ours=${1:?$usage}
tsv=${2:?$usage}
[ -f "$ours" ] || { echo "run-instr.sh: $ours: no such library" >&2; exit 1; }
ours=$(realpath -s "$ours")
here=$(cd "$(dirname "$0")" && pwd)
bdir=$(cd "$here/.." && pwd)/build/bench
out=$bdir/instr-out
mkdir -p "$out" "$(dirname "$tsv")"
CC=${CC:-cc}
. "$here/allocators.sh"
n=${BENCH_INSTR_PAIRS:-200000}
case $n in '' | *[!0-9]* | 0) echo "run-instr.sh: BENCH_INSTR_PAIRS must be a positive integer" >&2; exit 1 ;; esac

"$CC" -std=c11 -O2 -fno-builtin -Wall -Wextra -o "$bdir/malloc-free-pairs" "$here/malloc-free-pairs.c" ||
  { echo "run-instr.sh: building malloc-free-pairs.c failed" >&2; exit 1; }
bench_allocators "$ours" "$bdir"
command -v valgrind >/dev/null || bench_apt_install "$bdir/apt.log" valgrind
command -v valgrind >/dev/null || { echo "run-instr.sh: valgrind is needed" >&2; exit 1; }

# instructions INDEX SHAPE PAIRS: prints the program's total instruction
# count under callgrind (allocator INDEX; -1: nothing preloaded), or nothing
instructions() {
  local i=$1 shape=$2 pairs=$3 label=none f
  preload_env=(-u LD_PRELOAD)
  if [ "$i" -ge 0 ]; then
    preload_env_for "$i"
    label=${names[$i]}
  fi
  f=$out/$shape.$pairs.$label.cg
  if "${clean_env[@]}" env "${preload_env[@]}" valgrind --tool=callgrind --callgrind-out-file="$f" \
    "$bdir/malloc-free-pairs" "$shape" "$pairs" >"$f.log" 2>&1; then
    sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$f" | head -n 1
    rm -f "$f" "$f.log"
  else
    echo "  callgrind failed: $label $shape $pairs (see $f.log)" >&2
  fi
}

# per_pair INDEX SHAPE: instructions per pair, the 2N-N difference over N
per_pair() {
  local a b
  a=$(instructions "$1" "$2" "$n")
  b=$(instructions "$1" "$2" $((2 * n)))
  [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }'
}

printf 'shape\tallocator\tinstructions_per_pair\tloop_per_pair\n' >"$tsv"
start=$SECONDS
echo "instr: callgrind, $n and $((2 * n)) pairs, shapes fixed cycling calloc, ${#avail[@]} allocators"
for shape in fixed cycling calloc; do
  loop=$(per_pair -1 "loop-$shape")
  printf '%-8s loop %s;' "$shape" "${loop:-?}"
  for i in "${avail[@]}"; do
    total=$(per_pair "$i" "$shape")
    calls=-
    [ -n "$total" ] && [ -n "$loop" ] && calls=$(awk -v t="$total" -v l="$loop" 'BEGIN { printf "%.1f", t - l }')
    printf ' %s %s' "${names[$i]}" "$calls"
    printf '%s\t%s\t%s\t%s\n' "$shape" "${names[$i]}" "$calls" "${loop:--}" >>"$tsv"
  done
  echo
done
echo "instr: $((SECONDS - start)) s; figures in $tsv"
