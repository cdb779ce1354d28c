#!/usr/bin/env bash
# Valgrind memcheck of a few C suite programs with libptmalloc-rs preloaded.
#
#   c-tests/compat/valgrind.sh LIBPTMALLOC_RS_SO OUTDIR
#
# LD_PRELOAD is set for valgrind itself, which appends it to its own
# preloads for the client.  By default memcheck would replace our malloc
# too; --soname-synonyms=somalloc=nouserintercepts limits its replacement to
# libc's, so our library's malloc stays in charge (the programs' mallinfo2
# shows our numbers): memcheck does not track heap blocks then, but checks every access
# the library makes (uninitialised reads, accesses outside mapped memory,
# bad syscall arguments).  Each program runs with --error-exitcode=99; the
# logs go to OUTDIR/<program>.log.
set -u
here=$(cd "$(dirname "$0")" && pwd)
cdir=$here/../c
ours=${1:?usage: valgrind.sh LIBPTMALLOC_RS_SO OUTDIR}
outdir=${2:?usage: valgrind.sh LIBPTMALLOC_RS_SO OUTDIR}
mkdir -p "$outdir/bin"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
CC=${CC:-cc}
cflags=(-std=c11 -Wall -Wextra -Werror -O1 -g -fno-builtin -pthread -I "$cdir")
# (program, args): quick programs; tst-placement with a shorter trace.
# Left out: the programs whose checks are timed or need native speed
# (tst-thread-exit-tcache; tst-mallocfork2 and tst-malloc-fork-deadlock,
# where every fork is a new valgrind process and the fork counts run out of
# time) and tst-free-errno, which makes munmap fail through a limit that
# valgrind's own mappings exhaust first, and tst-arena-accounting, which
# re-executes /proc/self/exe (valgrind's launcher, under valgrind).
runs=("tst-contract" "tst-placement 20000" "tst-usable-sizes" "tst-malloc-stats-threads"
      "tst-early-init" "tst-arena-stress")
"$CC" "${cflags[@]}" -shared -fPIC "$cdir/tst-early-init-mod.c" -o "$outdir/bin/tst-early-init-mod.so" || exit 1
status=0 passed=0 failed=0
for r in "${runs[@]}"; do
  set -- $r
  p=$1; shift
  "$CC" "${cflags[@]}" "$cdir/$p.c" -o "$outdir/bin/$p" || exit 1
  log=$outdir/$p.log
  # valgrind follows fork, so each group's child is checked too (its errors
  # land in the same log); TST_TIME_SCALE stretches the timed loops.
  # --fair-sched=yes: valgrind runs one thread at a time, and with its
  # default lock a thread looping in malloc can starve the others forever
  # (tst-contract's fork group hung 1 run in 2 without it, 0 in 8 with it).
  env -u GLIBC_TUNABLES -u MALLOC_CHECK_ TST_TIME_SCALE=20 PTMALLOC_RS_TEST_EXT=1 \
    TST_EARLY_INIT_MOD="$outdir/bin/tst-early-init-mod.so" \
    LD_PRELOAD="$ours" timeout -s KILL 300 valgrind --fair-sched=yes --error-exitcode=99 \
      --trace-children=no --soname-synonyms=somalloc=nouserintercepts --log-file="$log" \
      "$outdir/bin/$p" "$@" >"$outdir/$p.out" 2>&1 </dev/null
  rc=$?
  case $rc in 0) what="clean" ;; 99) what="VALGRIND ERRORS" ;; *) what="program failed (see $outdir/$p.out)" ;; esac
  # The worst summary of any process (the parent's or a child's).
  errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+ errors' "$log" | sort -t' ' -k3,3n | tail -n 1)
  case $errs in "ERROR SUMMARY: 0 errors" | "") ;; *) [ "$rc" = 0 ] && { rc=99; what="VALGRIND ERRORS"; } ;; esac
  printf '%-28s exit %-3s %-22s %s\n' "$p $*" "$rc" "$what" "${errs:-no summary}"
  if [ "$rc" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi
done
echo "$passed passed, $failed failed (valgrind memcheck, library preloaded)"
exit $status
