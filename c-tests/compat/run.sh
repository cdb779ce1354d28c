#!/usr/bin/env bash
# Runs the C suite programs under several allocators and writes a table
# (program x allocator: pass / fail / crash / timeout).
#
#   c-tests/compat/run.sh LIBPTMALLOC_RS_SO OUT_MD
#
# Allocators: libptmalloc-rs (LD_PRELOAD), glibc (nothing preloaded),
# jemalloc, tcmalloc (minimal) and mimalloc (LD_PRELOAD of the Debian
# packages' libraries; a missing one is shown as "n/a").
#
# Verdicts: check programs pass when they exit 0 (their own checks all
# passed); tst-usable-sizes and tst-placement also say whether their output
# is byte-identical to glibc's (=glibc) or not (!=glibc). A misuse case
# shows abort (the allocator detected it), not detected (the call returned)
# or crash; a technique (tech-*.c) succeeded or stopped (abort). timeout:
# killed after $COMPAT_TIMEOUT seconds (default 60).
set -u
here=$(cd "$(dirname "$0")" && pwd)
cdir=$here/../c
ours=${1:?usage: run.sh LIBPTMALLOC_RS_SO OUT_MD}
out_md=${2:?usage: run.sh LIBPTMALLOC_RS_SO OUT_MD}
timeout_s=${COMPAT_TIMEOUT:-60}
work=$(dirname "$out_md")/compat
mkdir -p "$work/bin" "$work/out"
CC=${CC:-cc}
cflags=(-std=c11 -Wall -Wextra -Werror -O1 -g -fno-builtin -pthread -I "$cdir")

libdir=/usr/lib/x86_64-linux-gnu
names=(ptmalloc-rs glibc jemalloc tcmalloc mimalloc)
preloads=("$ours" "" "$libdir/libjemalloc.so.2" "$libdir/libtcmalloc_minimal.so.4" "$libdir/libmimalloc.so.2")

programs=(tst-contract tst-usable-sizes tst-malloc-fork-deadlock tst-mallocfork2
          tst-thread-exit-tcache tst-early-init tst-malloc-stats-threads
          tst-placement tst-trim-rss)
for extra in tst-alloc-fail-threads tst-free-errno tst-aligned-overflow; do
  [ -f "$cdir/$extra.c" ] && programs+=("$extra")
done

mapfile -t techniques < <(cd "$cdir" && ls tech-*.c | sed 's/\.c$//')
for p in "${programs[@]}" tst-misuse "${techniques[@]}"; do
  "$CC" "${cflags[@]}" "$cdir/$p.c" -o "$work/bin/$p" || { echo "compile $p failed" >&2; exit 1; }
done
"$CC" "${cflags[@]}" -shared -fPIC "$cdir/tst-early-init-mod.c" -o "$work/bin/tst-early-init-mod.so" || exit 1
mapfile -t misuse_cases < <("$work/bin/tst-misuse" --list)

# Extra variables for the runs of one case (set per case below).
extra_env=()

# run NAME_INDEX OUTFILE PROGRAM ARGS...: prints the raw status.
run_one() {
  local i=$1 outfile=$2; shift 2
  local pre=${preloads[$i]}
  local ext=; [ "$i" = 0 ] && ext=1
  env -u GLIBC_TUNABLES -u MALLOC_CHECK_ -u MALLOC_ARENA_MAX -u MALLOC_PERTURB_ \
      -u LD_LIBRARY_PATH -u PTMALLOC_RS_HARDEN -u PTMALLOC_RS_FREE_CHECK \
      LD_PRELOAD="$pre" PTMALLOC_RS_TEST_EXT="$ext" "${extra_env[@]}" \
      LIBC_FATAL_STDERR_=1 TST_EARLY_INIT_MOD="$work/bin/tst-early-init-mod.so" \
      timeout -s KILL "$timeout_s" "$@" >"$outfile" 2>"$outfile.err" </dev/null
  echo $?
}

# classify RC: pass / fail / crash / timeout (exit-status view)
classify() {
  local rc=$1
  if [ "$rc" = 0 ]; then echo pass
  elif [ "$rc" = 137 ]; then echo timeout   # SIGKILL from timeout(1)
  elif [ "$rc" -gt 128 ]; then echo "crash (sig $((rc - 128)))"
  else echo "fail (exit $rc)"; fi
}

rows=()
row_for() {  # label cells...
  local label=$1; shift
  local line="| $label |"
  for c in "$@"; do line+=" $c |"; done
  rows+=("$line")
}

for p in "${programs[@]}"; do
  cells=()
  # glibc (index 1) first: the others are compared with its output
  for i in 1 0 2 3 4; do
    pre=${preloads[$i]}
    if [ -n "$pre" ] && [ ! -e "$pre" ]; then cells[$i]="n/a"; continue; fi
    o="$work/out/$p.${names[$i]}"
    rc=$(run_one "$i" "$o" "$work/bin/$p")
    v=$(classify "$rc")
    case $p in
      tst-usable-sizes|tst-placement)
        if [ "$rc" = 0 ] && [ "$i" != 1 ]; then
          # compare the data (info lines aside) with glibc's run
          if cmp -s <(grep -v '^info: ' "$o") <(grep -v '^info: ' "$work/out/$p.glibc"); then
            v="pass (=glibc)"; else v="pass (!=glibc)"; fi
        fi ;;
    esac
    # the check summary, when there is one
    sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$o" | tail -n 1)
    if [ -n "$sum" ] && [ "$rc" != 0 ]; then
      v="$v, ${sum}"
    fi
    cells[$i]=$v
  done
  row_for "$p" "${cells[@]}"
done

# misuse_cell RC OUTFILE: what a misuse case did (tst-misuse.c)
misuse_cell() {
  case $1 in
    0) echo "pass (NULL + errno)" ;;
    1) if grep -q 'misuse not detected' "$2"; then echo "not detected"
       else echo "fail ($(grep -E '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -n 1))"; fi ;;
    3) echo "setup failed" ;;
    134) echo "abort (detected)" ;;
    137) echo timeout ;;
    *) if [ "$1" -gt 128 ]; then echo "crash (sig $(($1 - 128)))"; else echo "fail (exit $1)"; fi ;;
  esac
}

# technique_cell RC: what a technique program did (tech-support.h)
technique_cell() {
  case $1 in
    0) echo "succeeded" ;;
    1) echo "goal not reached" ;;
    3) echo "setup failed" ;;
    134) echo "stopped (abort)" ;;
    137) echo timeout ;;
    *) if [ "$1" -gt 128 ]; then echo "crash (sig $(($1 - 128)))"; else echo "fail (exit $1)"; fi ;;
  esac
}

for c in "${misuse_cases[@]}"; do
  cells=()
  # the opt-in free check of libptmalloc-rs (the other allocators ignore it)
  extra_env=()
  [ "$c" = write-after-free-free-check ] && extra_env=(PTMALLOC_RS_FREE_CHECK=1)
  for i in "${!names[@]}"; do
    pre=${preloads[$i]}
    if [ -n "$pre" ] && [ ! -e "$pre" ]; then cells+=("n/a"); continue; fi
    o="$work/out/misuse-$c.${names[$i]}"
    rc=$(run_one "$i" "$o" "$work/bin/tst-misuse" "$c")
    cells+=("$(misuse_cell "$rc" "$o")")
  done
  row_for "tst-misuse $c" "${cells[@]}"
done
extra_env=()

for t in "${techniques[@]}"; do
  cells=()
  for i in "${!names[@]}"; do
    pre=${preloads[$i]}
    if [ -n "$pre" ] && [ ! -e "$pre" ]; then cells+=("n/a"); continue; fi
    o="$work/out/$t.${names[$i]}"
    rc=$(run_one "$i" "$o" "$work/bin/$t")
    cells+=("$(technique_cell "$rc")")
  done
  row_for "$t" "${cells[@]}"
done

{
  echo "# Allocator compatibility of the C suite"
  echo
  echo "Generated by \`make compat\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(uname -srm), glibc $(ldd --version | head -n1 | awk '{print $NF}'))."
  echo
  printf '| program |'; for n in "${names[@]}"; do printf ' %s |' "$n"; done; echo
  printf '|---|'; for _ in "${names[@]}"; do printf -- '---|'; done; echo
  printf '%s\n' "${rows[@]}"
  echo
  echo "pass: exit 0 (every check passed); fail: non-zero exit (with the check summary);"
  echo "crash: killed by a signal; timeout: killed after ${timeout_s} s; n/a: library not installed."
  echo "tst-usable-sizes/tst-placement: =glibc when the output is byte-identical to glibc's."
  echo "tst-misuse cases: abort (detected) = SIGABRT, the allocator stopped the misuse; not detected = the call"
  echo "returned; pass = impossible requests got NULL + errno. tech-*: succeeded = the exploitation technique"
  echo "reached its goal; stopped (abort) = the allocator stopped it (messages: cargo test --test hardening)."
  echo "Extension checks (PTMALLOC_RS_TEST_EXT=1) run only in the ptmalloc-rs column."
  echo "Outputs: $work/out/<program>.<allocator>[.err]"
} >"$out_md"
cat "$out_md"
