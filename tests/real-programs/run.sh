#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2016  # wl_* functions are called indirectly (export -f); awk/perl programs are single-quoted
# Run real programs under a malloc replacement and compare them with glibc.
#
# usage: tests/real-programs/run.sh /abs/path/libptmalloc-rs.so [WORKLOAD...]
#        tests/real-programs/run.sh --baseline [WORKLOAD...]
#        tests/real-programs/run.sh --list
#
# Every workload runs twice: once plainly (glibc's malloc) and once with
# LD_PRELOAD=<lib>, each time in a fresh directory at the *same* path (so
# outputs that embed paths still compare equal), under `timeout`. Exit status,
# stdout, the files the workload leaves in $OUT and (for workloads whose
# stderr is deterministic) stderr must be identical. --baseline runs the
# second leg without LD_PRELOAD too, to check that the workloads themselves
# are deterministic.
#
# Output: one line per workload,
#   ok: <name> (<glibc seconds>s vs <preload seconds>s)
#   FAIL: <name>: <why>          (followed by an indented excerpt)
# then the total wall time and, last, "N passed, M failed" (", K skipped" if any).
# Exit status: 0 if nothing failed, 1 if something failed, 2 on usage errors.
#
# Environment knobs:
#   RP_TIMEOUT=300   per-leg timeout in seconds
#   RP_KEEP=1        keep the scratch directory even when everything passed
#   PYTHON=...       interpreter for the python workloads (default /usr/bin/python3,
#                    which needs Debian's libpython3.X-testsuite for `-m test`)
#   RP_TMP=...       where the scratch directory is created (default $TMPDIR or /tmp)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T_START=$(date +%s.%N)

# name | stderr must match (1/0) | commands it needs | "skip" if a missing command means skip, not fail
WORKLOADS=(
  "preload-check"
  "python3-regrtest|0|"
  "python3-churn|1|"
  "perl-hash|1|perl"
  "perl-regex|1|perl"
  "sort-n|1|sort"
  "sort-k2|1|sort"
  "sort-u|1|sort"
  "sort-parallel|1|sort"
  "sort-external|1|sort"
  "gcc-O2-c|1|gcc objdump"
  "gcc-prog|1|gcc"
  "git|1|git"
  "sqlite3|1|sqlite3"
  "redis-server|1|redis-server redis-cli redis-benchmark timeout"
  "awk-gawk|1|gawk|skip"
  "awk-mawk|1|mawk|skip"
  "grep|1|grep"
  "tar|1|tar xz gzip sha256sum"
  "coreutils|1|cut uniq join comm split tac shuf tsort sha256sum"
)

usage() {
  sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -n 's/^# \{0,1\}//p' >&2
  exit 2
}

BASELINE=0
LIB=
case "${1:-}" in
  "" | -h | --help) usage ;;
  --list)
    for w in "${WORKLOADS[@]}"; do echo "${w%%|*}"; done
    exit 0 ;;
  --baseline) BASELINE=1; shift ;;
  *)
    LIB=$1; shift
    if [[ ! -f $LIB ]]; then echo "run.sh: no such library: $LIB" >&2; exit 2; fi
    LIB=$(cd "$(dirname "$LIB")" && pwd)/$(basename "$LIB")  # LD_PRELOAD must not be relative
    ;;
esac
ONLY=("$@")
for w in "${ONLY[@]}"; do
  known=0
  for spec in "${WORKLOADS[@]}"; do [[ ${spec%%|*} == "$w" ]] && known=1; done
  if [[ $known == 0 ]]; then echo "run.sh: unknown workload: $w (see --list)" >&2; exit 2; fi
done

if [[ -z ${PYTHON:-} ]]; then
  if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=$(command -v python3 || echo python3); fi
fi
TIMEOUT=${RP_TIMEOUT:-300}

# The harness itself must never run preloaded, and both legs must see the same environment.
unset LD_PRELOAD LD_DEBUG LD_BIND_NOW MALLOC_CHECK_ MALLOC_PERTURB_ GLIBC_TUNABLES || true
export LC_ALL=C TZ=UTC PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_PAGER=cat PAGER=cat
export HERE PYTHON
umask 022
ulimit -c 0 2>/dev/null || true

SCRATCH=$(mktemp -d "${RP_TMP:-${TMPDIR:-/tmp}}/real-programs.XXXXXX")
export INPUTS=$SCRATCH/inputs
RUNROOT=$SCRATCH/run      # every leg runs at $RUNROOT/<name>, then moves to $RESULTS
RESULTS=$SCRATCH/results
mkdir -p "$INPUTS" "$RUNROOT" "$RESULTS"

PASSED=0 FAILED=0 SKIPPED=0 FINISHED=0
cleanup() {
  if [[ $FINISHED == 0 ]]; then
    echo "run.sh: aborted; scratch directory kept: $SCRATCH" >&2
  elif [[ $FAILED -eq 0 && ${RP_KEEP:-0} != 1 ]]; then
    chmod -R u+w "$SCRATCH" 2>/dev/null || true
    rm -rf "$SCRATCH"
  fi
}
trap cleanup EXIT

# wall time, where to look, and the closing "N passed, M failed" line (always last)
finish() {
  awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "total wall time: %.1fs\n", b - a }'
  if [[ $FAILED -gt 0 || ${RP_KEEP:-0} == 1 ]]; then
    echo "scratch directory kept: $SCRATCH (results/<workload>.{glibc,preload}/)"
  fi
  local summary="$PASSED passed, $FAILED failed"
  if [[ $SKIPPED -gt 0 ]]; then summary+=", $SKIPPED skipped"; fi
  echo "$summary"
  FINISHED=1
  if [[ $FAILED -eq 0 ]]; then exit 0; else exit 1; fi
}

ok()   { PASSED=$((PASSED + 1)); echo "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $1: $2"; }
skip() { SKIPPED=$((SKIPPED + 1)); echo "skip: $1: $2"; }
indent() { sed -n "1,${1}p" | sed 's/^/    /'; }

describe_rc() {  # exit-status [timeout]
  local rc=$1
  if [[ $rc -eq 124 ]]; then echo "timed out after ${2:-$TIMEOUT}s"
  elif [[ $rc -gt 128 && $rc -lt 160 ]]; then echo "killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))) (exit $rc)"
  else echo "exit $rc"
  fi
}

# ---------------------------------------------------------------------------
# The preload check, run once up front, in two parts:
#  1. `python3 -c pass` with LD_DEBUG=bindings: malloc must bind to the
#     library and nothing of the malloc family may bind to libc;
#  2. alloc_probe.c (if gcc is there), which references the whole family and
#     must get every one of them from the library (pvalloc, obsolete and not
#     in jemalloc, only earns a note) and must run correctly.
# ---------------------------------------------------------------------------
FAMILY='malloc|free|calloc|realloc|memalign|posix_memalign|aligned_alloc|valloc|pvalloc|malloc_usable_size'
PRELOAD_NOTE=

# bindings LOG [FILTER]: "<target> <symbol>" for each malloc-family binding,
# target being "lib", "libc" or the path bound to; FILTER keeps only
# bindings made *from* objects whose path contains it.
bindings() {
  local libreal target sym
  libreal=$(readlink -f "$LIB")
  sed -nE "s#.*binding file (.*${2:-}.*) \[[0-9]+\] to (.*) \[[0-9]+\]: normal symbol \`($FAMILY)'.*#\2 \3#p" "$1" | sort -u |
    while read -r target sym; do
      if [[ $target == "$LIB" || $(readlink -f "$target" 2>/dev/null || echo "$target") == "$libreal" ]]; then
        echo "lib $sym"
      elif [[ $target == */libc.so* ]]; then
        echo "libc $sym"
      else
        echo "$target $sym"
      fi
    done | sort -u
}

# preloaded_run LOG CMD...: run CMD preloaded with LD_DEBUG=bindings; fail (and return 1) if it fails
preloaded_run() {
  local log=$1 rc=0
  shift
  timeout -k 5 60 env LD_PRELOAD="$LIB" LD_DEBUG=bindings LD_BIND_NOW=1 "$@" >"$log.stdout" 2>"$log" || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail preload-check "\`LD_PRELOAD=$LIB $*\` failed: $(describe_rc $rc 60)"
    grep -vE 'binding file|symbol=|lookup in file|calling (init|fini)|transferring control|initialize program|^ *[0-9]+:[[:space:]]*$' "$log" |
      tail -n 8 | indent 8 || true
    return 1
  fi
  if grep -q 'cannot be preloaded' "$log"; then
    fail preload-check "the dynamic loader ignored the library"
    grep 'cannot be preloaded' "$log" | indent 3
    return 1
  fi
}

check_preload() {
  local name=preload-check
  if [[ $BASELINE == 1 ]]; then skip "$name" "--baseline: nothing is preloaded"; return 0; fi
  local log=$SCRATCH/preload-python.log b bad
  preloaded_run "$log" "$PYTHON" -c pass || return 1
  b=$(bindings "$log")
  bad=$(awk '$1 == "libc" { print $2 }' <<<"$b" | tr '\n' ' ')
  if [[ -n $bad ]]; then
    fail "$name" "in $PYTHON, ${bad}bind(s) to libc, not to $LIB"
    return 1
  fi
  if ! grep -qx 'lib malloc' <<<"$b"; then
    fail "$name" "malloc does not bind to $LIB in $PYTHON (it binds to: $(awk '$2 == "malloc" { print $1 }' <<<"$b" | tr '\n' ' '))"
    return 1
  fi
  if command -v gcc >/dev/null 2>&1; then
    log=$SCRATCH/preload-probe.log
    if ! gcc -O0 -w -o "$SCRATCH/alloc_probe" "$HERE/alloc_probe.c" 2>"$log.gcc"; then
      fail "$name" "cannot compile alloc_probe.c"
      indent 5 <"$log.gcc"
      return 1
    fi
    preloaded_run "$log" "$SCRATCH/alloc_probe" || return 1
    b=$(bindings "$log" /alloc_probe)
    bad=$(awk '$1 != "lib" && $2 != "pvalloc" { print $2 }' <<<"$b" | sort -u | tr '\n' ' ')
    if [[ -n $bad ]]; then
      fail "$name" "the library does not provide: ${bad}(they bind to libc)"
      return 1
    fi
    if ! grep -qx 'lib pvalloc' <<<"$b"; then PRELOAD_NOTE="; note: pvalloc comes from libc"; fi
  fi
  ok "$name (malloc binds to $LIB$PRELOAD_NOTE)"
}

# ---------------------------------------------------------------------------
# Workloads. Each runs in its own bash (preloaded in the second leg), with
# `set -euo pipefail`, cwd = a fresh empty directory (also HOME; TMPDIR is
# ./tmp), $OUT = a directory whose files are compared, $INPUTS = generated
# inputs (read-only). Use `sed -n 1,Np` rather than `head` in pipelines, so
# pipefail never sees SIGPIPE.
# ---------------------------------------------------------------------------
wl_python3_regrtest() {
  local rc=0
  "$PYTHON" -m test test_dict test_threading test_subprocess test_list test_set test_json >regrtest.log 2>&1 || rc=$?
  # timings and load averages vary from run to run: keep only the verdict
  grep -E '^Tests result:' regrtest.log | tail -n 1 || true
  echo "exit status $rc"
  if [[ $rc -ne 0 ]]; then
    grep -E '^(FAIL|ERROR):|^[0-9]+ tests? failed|^ +test_|Fatal Python error|Segmentation' regrtest.log | sed -n '1,30p' >&2 || true
    tail -n 5 regrtest.log >&2
  fi
  return "$rc"
}

wl_python3_churn() {
  "$PYTHON" "$HERE/churn.py"
}

wl_perl_hash() {
  perl -MDigest::MD5=md5_hex -e '
    my (%h, @a, $tot);
    for my $i (1 .. 400_000) {
      my $k = "key" . ($i * 7919 % 100_003);
      $h{$k} .= chr(97 + $i % 26) x (1 + $i % 7);
      delete $h{$k} if length $h{$k} > 40 && $i % 3 == 0;
      push @a, substr($k . reverse($k), $i % 5, 9);
      splice(@a, 0, 20_000) if @a > 50_000;
    }
    my %inv; push @{ $inv{ length $h{$_} } }, $_ for keys %h;
    $tot += length $h{$_} for keys %h;
    my $s = join ",", map { "$_=$h{$_}" } sort keys %h;
    my @w = split /,/, $s; my %seen; my @u = grep { !$seen{ substr($_, 0, 6) }++ } @w;
    print "keys ", scalar(keys %h), " total $tot array ", scalar(@a), " lengths ", scalar(keys %inv), "\n";
    print "md5 ", md5_hex($s), " uniq6 ", scalar(@u), " last ", $a[-1], "\n";
    print join(" ", map { "$_:" . scalar @{ $inv{$_} } } (sort { $a <=> $b } keys %inv)[0 .. 9]), "\n";'
}

wl_perl_regex() {
  perl "$HERE/text_job.pl" <"$INPUTS/text.txt"
}

wl_sort_n()        { sort -n "$INPUTS/sort.txt" >"$OUT/sorted"; wc -l <"$OUT/sorted"; }
wl_sort_k2()       { sort -k2 "$INPUTS/sort.txt" >"$OUT/sorted"; wc -l <"$OUT/sorted"; }
wl_sort_u()        { sort -u "$INPUTS/sort.txt" >"$OUT/sorted"; wc -l <"$OUT/sorted"; }
wl_sort_parallel() { sort --parallel=2 -S 50M -k3,3 -k1,1g "$INPUTS/sort.txt" >"$OUT/sorted"; wc -l <"$OUT/sorted"; }
wl_sort_external() {  # 1 MiB buffer: dozens of temp files, merged 4 at a time
  sort -S 1M --batch-size=4 -T "$TMPDIR" -k4,4 -k1,1n "$INPUTS/sort.txt" >"$OUT/sorted"; wc -l <"$OUT/sorted"
}

wl_gcc_O2_c() {
  cp "$INPUTS/big.c" big.c
  gcc -O2 -c big.c -o "$OUT/big.o"
  objdump -d "$OUT/big.o" >"$OUT/big.o.disasm"
  grep -c '>:$' "$OUT/big.o.disasm"
}

wl_gcc_prog() {
  cp "$HERE/prog.c" prog.c
  gcc -O2 -g -Wall -Wextra -pthread -o prog prog.c
  ./prog
}

wl_git() {
  export GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
  export GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00+0000" GIT_COMMITTER_DATE="2024-01-01T00:00:00+0000"
  git -c init.defaultBranch=main init -q repo
  cp -R "$INPUTS/gittree/." repo/
  chmod -R u+w repo
  cd repo
  git add -A
  git commit -q -m "import 300 files"
  # second commit: edit, delete, rename, add
  export GIT_AUTHOR_DATE="2024-01-02T10:00:00+0000" GIT_COMMITTER_DATE="2024-01-02T10:00:00+0000"
  for f in d0[0-4]/s0/*.txt; do sed -i -e '3s/$/ edited/' -e '10d' "$f"; echo "appended to $f" >>"$f"; done
  git rm -q -r d05/s1
  git mv d06/s2 d06/moved
  mkdir -p new
  for i in $(seq 1 40); do seq "$i" 3 $((i * 50)) >"new/n$i.txt"; done
  git add -A
  git commit -q -m "edit, delete, rename, add"
  # a branch and a merge (the ort strategy)
  export GIT_AUTHOR_DATE="2024-01-03T12:00:00+0000" GIT_COMMITTER_DATE="2024-01-03T12:00:00+0000"
  git checkout -q -b feature
  for f in d1[0-3]/s1/*.txt; do sed -i '5s/^/feature: /' "$f"; done
  git commit -q -a -m "feature work"
  git checkout -q main
  export GIT_AUTHOR_DATE="2024-01-03T13:00:00+0000" GIT_COMMITTER_DATE="2024-01-03T13:00:00+0000"
  for f in d1[4-6]/s2/*.txt; do sed -i '1s/^/main: /' "$f"; done
  git commit -q -a -m "main work"
  export GIT_AUTHOR_DATE="2024-01-04T09:00:00+0000" GIT_COMMITTER_DATE="2024-01-04T09:00:00+0000"
  git merge -q --no-ff -m "merge feature" feature
  echo "== log --stat"
  git log --stat
  echo "== diff HEAD~1 --stat"
  git diff HEAD~1 --stat
  echo "== diff HEAD~2..HEAD"
  git diff HEAD~2 HEAD | sha256sum
  git log --oneline --graph --all
  echo "== gc"
  git gc --quiet --aggressive --prune=now
  git fsck --full --strict --no-progress
  git count-objects -v | grep -E '^(count|in-pack|packs|prune-packable|garbage):'
  git rev-list --all --objects | wc -l
  echo "== grep/blame/archive/status"
  git grep -c -e 'edited' -e '^5 ' HEAD | sed -n '1,20p'
  git blame -s d00/s0/file000.txt | sha256sum
  git archive --format=tar HEAD | sha256sum
  git status --porcelain=v1 --branch
  git rev-parse HEAD "HEAD^{tree}"
}

wl_sqlite3() {
  sqlite3 test.db <"$HERE/sqlite.sql"
  sqlite3 test.db 'SELECT count(*) FROM items; PRAGMA quick_check;'
}

# redis-server (Debian's) with I/O threads and lazy freeing (its bio threads free
# what the main thread allocated), on 127.0.0.1 and a free port, nothing saved,
# its dir in the work directory; loaded by redis-benchmark, then checked with deterministic commands. Debian links the redis programs
# with jemalloc, so on the glibc leg (nothing preloaded) they run with
# LD_PRELOAD=libc.so.6, which puts glibc's malloc ahead of jemalloc's in the
# symbol lookup: the reference really is glibc. Benchmark throughput stays in
# ./bench.*; only its verdict is printed.
redis_cli() { timeout 60 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
redis_info() { redis_cli info "$1" | tr -d '\r' | sed -n "s/^$2:\(.*\)/\1/p"; }
redis_bench() {  # label, extra redis-benchmark arguments
  local label=$1 rc=0 tests
  shift
  timeout 120 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n 20000 -c 20 -P 4 \
    -t set,get,lpush,lpop,incr,hset -q "$@" >bench.out 2>bench.err || rc=$?
  tr '\r' '\n' <bench.out | grep -a 'requests per second' >bench.summary || true
  tests=$(grep -c . bench.summary || true)
  if [[ $rc -ne 0 || $tests -ne 6 ]] || grep -qai error bench.out bench.err; then
    echo "redis-benchmark ($label) failed: exit $rc, $tests of 6 tests reported" >&2
    tr '\r' '\n' <bench.out | grep -av 'rps=' | sed -n '1,10p' >&2
    sed -n '1,10p' bench.err >&2
    return 1
  fi
  echo "redis-benchmark ($label): 6 tests, no errors"
}
redis_wait_lazyfree() {  # until the bio thread has freed everything queued
  local i
  for i in $(seq 1 200); do
    [[ $(redis_info memory lazyfree_pending_objects) == 0 ]] && return 0
    sleep 0.05
  done
  echo "lazy freeing did not finish within 10 s" >&2
  return 1
}

wl_redis_server() {
  local libc major io_threads i rc=0
  REDIS_PID='' REDIS_PORT=''  # global: the EXIT trap and the redis_* helpers use them
  if [[ -z ${LD_PRELOAD:-} ]]; then
    libc=$(ldd "$(command -v redis-server)" | awk '$1 == "libc.so.6" { print $3 }')
    if [[ ! -f $libc ]]; then echo "cannot find the libc.so.6 of redis-server" >&2; return 1; fi
    export LD_PRELOAD=$libc
  fi
  major=$(redis-server --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
  if [[ ${major:-0} -lt 7 ]]; then echo "redis-server ${major:-?}.x: need 7 or later (I/O threads, DEBUG)" >&2; return 1; fi
  # 4 I/O threads, but no more than CPUs (at least 2): they busy-wait for work,
  # and with more of them than CPUs (or a threaded redis-benchmark besides) a
  # request often waits for a scheduler tick: 16 ms, 30 times slower, whatever malloc.
  io_threads=$(nproc)
  if [[ $io_threads -gt 4 ]]; then io_threads=4; elif [[ $io_threads -lt 2 ]]; then io_threads=2; fi
  mkdir redis
  # a failing step leaves the server running: stop it (and reap it) on the way out
  trap 'if [[ -n ${REDIS_PID:-} ]]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi' EXIT
  # a free port: ask the kernel for one, and try again if it is taken before redis binds it
  for _ in 1 2 3 4 5; do
    REDIS_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes --daemonize no \
      --save '' --appendonly no --dir "$PWD/redis" --logfile "$PWD/redis/redis.log" \
      --io-threads "$io_threads" --io-threads-do-reads yes --lazyfree-lazy-user-del yes \
      --enable-debug-command local >redis/stdout 2>redis/stderr &
    REDIS_PID=$!
    for i in $(seq 1 100); do
      if redis_cli ping 2>/dev/null | grep -qx PONG; then break 2; fi
      kill -0 "$REDIS_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
  done
  if [[ -z $REDIS_PID ]]; then
    echo "redis-server did not start" >&2
    tail -n 5 redis/redis.log redis/stderr >&2 || true
    return 1
  fi
  if ! grep -qF "$(readlink -f "${LD_PRELOAD%%:*}")" "/proc/$REDIS_PID/maps"; then
    echo "redis-server does not map $LD_PRELOAD" >&2
    return 1
  fi
  echo "redis-server: io-threads $(redis_cli config get io-threads | sed -n 2p), lazyfree-lazy-user-del $(redis_cli config get lazyfree-lazy-user-del | sed -n 2p)"

  echo "== redis-benchmark, fixed keys"
  redis_bench "fixed keys"
  redis_cli keys '*' | sort
  echo "counter:__rand_int__ $(redis_cli get counter:__rand_int__) (after 20000 INCRs)"
  echo "myhash fields $(redis_cli hlen myhash), mylist length $(redis_cli llen mylist)"
  echo "== redis-benchmark, 10000 random keys, 300-byte values"
  redis_bench "random keys" -r 10000 -d 300
  if [[ $(redis_info stats io_threaded_writes_processed) -gt 0 ]]; then echo "I/O threads wrote replies"; else echo "I/O threads unused"; fi
  echo "FLUSHALL $(redis_cli flushall), dbsize $(redis_cli dbsize)"

  echo "== a known data set"
  awk 'BEGIN { for (i = 1; i <= 3000; i++) {
      printf "SET key:%d value-%d-%s\n", i, i, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26)
      printf "RPUSH list:%d %d\n", i % 10, i
      printf "HSET hash:%d field:%d %d\n", i % 7, i, i * i
      printf "SADD set:%d member:%d\n", i % 5, i
      printf "ZADD zset %d m:%d\n", (i * 7919) % 10007, i
      printf "INCRBY counter %d\n", i } }' >commands.txt
  redis_cli --pipe <commands.txt >pipe.out 2>&1 || rc=$?
  if [[ $rc -ne 0 ]] || ! grep -qx 'errors: 0, replies: 18000' pipe.out; then
    echo "redis-cli --pipe failed (exit $rc)" >&2
    sed -n '1,10p' pipe.out >&2
    return 1
  fi
  echo "redis-cli --pipe: $(grep -x 'errors: 0, replies: 18000' pipe.out)"
  echo "SET big $(head -c 200000 /dev/zero | tr '\0' x | redis_cli -x set big)"
  echo "dbsize $(redis_cli dbsize), $(redis_info keyspace db0)"
  echo "key:1234 $(redis_cli get key:1234)"
  echo "list:3 length $(redis_cli llen list:3), first $(redis_cli lrange list:3 0 3 | tr '\n' ' ')"
  echo "hash:2 fields $(redis_cli hlen hash:2), field:2004 $(redis_cli hget hash:2 field:2004)"
  echo "set:4 members $(redis_cli scard set:4), zset members $(redis_cli zcard zset), score of m:77 $(redis_cli zscore zset m:77)"
  echo "zset lowest $(redis_cli zrange zset 0 4 | tr '\n' ' ')"
  echo "counter $(redis_cli get counter), big $(redis_cli strlen big) bytes, ends $(redis_cli getrange big -5 -1)"
  # MEMORY USAGE adds up malloc_usable_size: glibc's sizes, the same with the library,
  # for blocks malloc'd once (a realloc'd block, as in lists, hashes and the query
  # buffer reused for big values, can keep a few bytes more depending on the heap's
  # layout; sets and zsets vary with rehashing and random skiplist levels)
  echo "SET medium $(head -c 1000 /dev/zero | tr '\0' y | redis_cli -x set medium)"
  for i in key:1 key:2999 medium; do echo "memory usage $i $(redis_cli memory usage "$i" samples 0)"; done
  echo "DEBUG POPULATE $(redis_cli debug populate 50000 pop 64), dbsize $(redis_cli dbsize)"
  echo "digest $(redis_cli debug digest)"
  echo "mem_allocator $(redis_info memory mem_allocator)"

  echo "== lazy freeing in the bio thread"
  echo "UNLINK $(redis_cli unlink set:1 set:2 zset hash:3)"
  redis_wait_lazyfree
  echo "lazyfreed_objects $(redis_info memory lazyfreed_objects), dbsize $(redis_cli dbsize)"
  echo "FLUSHALL ASYNC $(redis_cli flushall async), dbsize $(redis_cli dbsize)"
  redis_wait_lazyfree
  echo "lazyfreed_objects $(redis_info memory lazyfreed_objects)"
  echo "after: SET $(redis_cli set after flush) GET $(redis_cli get after), dbsize $(redis_cli dbsize)"

  redis_cli shutdown nosave || rc=$?
  wait "$REDIS_PID" || rc=$?
  REDIS_PID=
  echo "SHUTDOWN NOSAVE: redis-server exit status $rc"
  if ! grep -q 'ready to exit, bye bye' redis/redis.log; then
    echo "redis-server did not shut down cleanly" >&2
    tail -n 20 redis/redis.log >&2
    return 1
  fi
  return "$rc"
}

awk_job() {
  local awk=$1
  "$awk" '{ for (i = 2; i <= NF; i++) cnt[$i]++; sum += $1; if ($1 > max) max = $1 }
          END { printf "sum %.2f max %s\n", sum, max; for (k in cnt) print k, cnt[k] > "'"$OUT"'/counts.unsorted" }' \
    "$INPUTS/sort.txt"
  sort "$OUT/counts.unsorted" >"$OUT/counts"
  rm "$OUT/counts.unsorted"
  "$awk" '{ line = tolower($0); n += gsub(/[aeiou]/, "", line); s = s substr(line, 1, 3)
            if (length(s) > 5000) { h = (h * 31 + length(s)) % 1000003; s = substr(s, 2000) }
            m = split($0, parts, /[ @.]+/); for (i = 1; i <= m; i++) if (parts[i] ~ /^[0-9]+$/) nums[parts[i] % 1000]++
            if (NR % 1000 == 0) { for (k in nums) tot += nums[k]; delete nums } }
          END { print "vowels", n, "hash", h, "tail", length(s), "nums", tot }' "$INPUTS/text.txt"
  "$awk" -F' ' 'NR % 3 == 0 { out = sprintf("%s|%s|%08.2f", $3, toupper($2), $1); a[NR] = out }
          END { for (i = 3; i <= NR; i += 3) print a[i] }' "$INPUTS/sort.txt" >"$OUT/reformatted"
  wc -l <"$OUT/reformatted"
}
wl_awk_gawk() { awk_job gawk; }
wl_awk_mawk() { awk_job mawk; }

wl_grep() {
  local t=$INPUTS/text.txt
  grep -c 'https' "$t"
  grep -c -v 'https' "$t"
  grep -cE '\b(19|20)[0-9]{2}-(0[1-9]|1[0-2])-[0-9]{2}\b' "$t"
  grep -ciE '(^|[^a-z])q[a-z]*z([^a-z]|$)' "$t"
  grep -cP '(?<=@)[a-z]+\.(io|de)\b' "$t"
  grep -cw -e 'abc' -e 'xyz' -e 'qq' "$t" || true
  grep -cFf "$INPUTS/words.txt" "$t"
  sed -n '1,300s/.*/^&\\b/p' "$INPUTS/words.txt" >patterns
  grep -cf patterns "$t"
  grep -cwFf "$INPUTS/words.txt" "$INPUTS/sort.txt"
  LC_ALL=C.UTF-8 grep -ciE 'x[aeiou]{2}[a-z]*' "$t"
  grep -oE '[a-z]+@[a-z]+\.(io|de)' "$t" | sort | uniq -c | sort -k1,1nr -k2 | sed -n '1,10p'
  grep -n -m 5 -B1 -A1 -E 'q{2}' "$t"
}

wl_tar() {
  cp -R "$INPUTS/tartree" tree
  chmod -R u+w tree
  local opts=(--sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner --format=gnu)
  tar "${opts[@]}" -cf "$OUT/t.tar" tree
  tar "${opts[@]}" -I 'xz -T2 -1' -cf "$OUT/t.tar.xz" tree
  tar "${opts[@]}" -I 'gzip -n -6' -cf "$OUT/t.tar.gz" tree
  tar -tvf "$OUT/t.tar" | sed -n '1,5p'
  tar -tf "$OUT/t.tar" | wc -l
  (cd tree && find . -type f | sort | xargs sha256sum) >orig.sums
  local ext
  for ext in tar tar.xz tar.gz; do
    mkdir "x-$ext"
    tar -xf "$OUT/t.$ext" -C "x-$ext"
    (cd "x-$ext/tree" && find . -type f | sort | xargs sha256sum) >"x-$ext.sums"
    if cmp -s orig.sums "x-$ext.sums"; then echo "$ext: extracted files match"; else echo "$ext: extracted files DIFFER"; fi
  done
  sha256sum <orig.sums
}

wl_coreutils() {
  local s=$INPUTS/sort.txt
  cut -d' ' -f2 "$s" | sort | uniq -c | sort -k1,1nr -k2 | sed -n '1,10p'
  cut -d' ' -f2,3 "$s" | sort -u -k1,1 >a.txt
  cut -d' ' -f3,1 "$s" | awk '{ print $2, $1 }' | sort -u -k1,1 >b.txt
  join a.txt b.txt >"$OUT/joined"
  comm -3 <(cut -d' ' -f1 a.txt) <(cut -d' ' -f1 b.txt) | wc -l
  split -l 70000 -a 3 "$s" part.
  local parts=(part.*)
  cat "${parts[@]}" | cmp - "$s" && echo "split/cat round trip ok (${#parts[@]} parts)"
  tac "$s" | tr 'abcdefghijklmnopqrstuvwxyz' 'nopqrstuvwxyzabcdefghijklm' | fold -w 37 | sha256sum
  shuf -n 2000 --random-source="$s" "$INPUTS/text.txt" | sha256sum
  # an acyclic graph (edges go from the smaller to the larger word), so tsort succeeds
  awk 'NR <= 20000 { if ($2 < $3) print $2, $3; else if ($3 < $2) print $3, $2 }' "$s" | tsort | sha256sum
  paste -d, <(cut -d' ' -f1 "$s") <(cut -d' ' -f4 "$s") | sort -t, -k2,2 -k1,1n | sha256sum
  (cd "$INPUTS" && wc sort.txt text.txt)
  (cd "$OUT" && sha256sum joined)
}

# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------
run_leg() {  # name leg(glibc|preload) -> results in $RESULTS/<name>.<leg>
  local name=$1 leg=$2 fn=wl_${1//-/_}
  local rd=$RUNROOT/$name rc=0 t0 t1
  rm -rf "$rd"
  mkdir -p "$rd/work/tmp" "$rd/out"
  local -a envcmd=(env -u LD_PRELOAD)
  if [[ $leg == preload && $BASELINE == 0 ]]; then envcmd=(env "LD_PRELOAD=$LIB"); fi
  t0=$(date +%s.%N)
  (
    cd "$rd/work"
    export HOME=$rd/work TMPDIR=$rd/work/tmp OUT=$rd/out
    exec timeout -k 10 "$TIMEOUT" "${envcmd[@]}" bash -c 'set -euo pipefail; "$1"' bash "$fn" \
      </dev/null >"$rd/stdout" 2>"$rd/stderr"
  ) || rc=$?
  t1=$(date +%s.%N)
  echo "$rc" >"$rd/rc"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }' >"$rd/seconds"
  rm -rf "$RESULTS/$name.$leg"
  mv "$rd" "$RESULTS/$name.$leg"
}

# first differences between two files, for the FAIL excerpt
excerpt() {
  if LC_ALL=C grep -qI . "$1" 2>/dev/null || [[ ! -s $1 ]]; then
    diff -u --label glibc --label preload "$1" "$2" | sed -n '3,14p' | indent 12 || true
  else
    cmp "$1" "$2" 2>&1 | indent 2 || true
  fi
}

compare() {  # name stderr_matters
  local name=$1 errm=$2 g=$RESULTS/$1.glibc p=$RESULTS/$1.preload
  local grc prc
  grc=$(cat "$g/rc") prc=$(cat "$p/rc")
  local times
  times="($(cat "$g/seconds")s vs $(cat "$p/seconds")s)"
  if [[ $prc != "$grc" ]]; then
    fail "$name" "$(describe_rc "$prc") with LD_PRELOAD, $(describe_rc "$grc") with glibc $times"
    tail -n 8 "$p/stderr" | indent 8
    return
  fi
  if ! cmp -s "$g/stdout" "$p/stdout"; then
    fail "$name" "stdout differs $times"
    excerpt "$g/stdout" "$p/stdout"
    return
  fi
  local d
  d=$(diff -rq "$g/out" "$p/out" 2>&1 || true)
  if [[ -n $d ]]; then
    fail "$name" "output files differ $times"
    echo "$d" | sed -e "s#^Files $g/\\(.*\\) and .* differ\$#\\1 differs#" -e "s#$g/#glibc:#; s#$p/#preload:#" | indent 4
    local f
    f=$(echo "$d" | sed -nE 's/^Files (.*) and .* differ$/\1/p' | sed -n 1p)
    if [[ -n $f ]]; then excerpt "$f" "$p/out/${f#"$g/out/"}"; fi
    return
  fi
  if [[ $errm == 1 ]] && ! cmp -s "$g/stderr" "$p/stderr"; then
    fail "$name" "stderr differs $times"
    excerpt "$g/stderr" "$p/stderr"
    return
  fi
  ok "$name $times"
}

selected() {
  [[ ${#ONLY[@]} -eq 0 ]] && return 0
  local w
  for w in "${ONLY[@]}"; do [[ $w == "$1" ]] && return 0; done
  return 1
}

export -f wl_python3_regrtest wl_python3_churn wl_perl_hash wl_perl_regex \
  wl_sort_n wl_sort_k2 wl_sort_u wl_sort_parallel wl_sort_external \
  wl_gcc_O2_c wl_gcc_prog wl_git wl_sqlite3 awk_job wl_awk_gawk wl_awk_mawk \
  wl_grep wl_tar wl_coreutils redis_cli redis_info redis_bench redis_wait_lazyfree wl_redis_server

if [[ $BASELINE == 1 ]]; then
  echo "real-programs: glibc vs glibc (--baseline), timeout ${TIMEOUT}s per leg"
else
  echo "real-programs: glibc vs LD_PRELOAD=$LIB, timeout ${TIMEOUT}s per leg"
fi

if ! check_preload; then
  echo "(preload check failed: workloads not run)"
  finish
fi

if ! "$PYTHON" "$HERE/gen_inputs.py" "$INPUTS" 2>"$SCRATCH/gen_inputs.err"; then
  fail "inputs" "gen_inputs.py failed"
  indent 10 <"$SCRATCH/gen_inputs.err"
  finish
fi
chmod -R a-w "$INPUTS"

for spec in "${WORKLOADS[@]}"; do
  IFS='|' read -r -a parts <<<"$spec"
  name=${parts[0]} errm=${parts[1]:-1} needs=${parts[2]:-} onmissing=${parts[3]:-}
  [[ $name == preload-check ]] && continue
  selected "$name" || continue
  missing=()
  for c in $needs; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
  if [[ $name == python3-* ]]; then
    if ! "$PYTHON" -c 'import sys' 2>/dev/null; then missing+=("$PYTHON")
    elif [[ $name == python3-regrtest ]] && ! "$PYTHON" -c 'import test.regrtest, test.test_dict' 2>/dev/null; then
      missing+=("CPython's test package for $PYTHON (Debian: libpython3-testsuite)")
    fi
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $onmissing == skip ]]; then skip "$name" "not installed: ${missing[*]}"
    else fail "$name" "not installed: ${missing[*]} (run tests/real-programs/install-deps.sh)"; fi
    continue
  fi
  run_leg "$name" glibc
  grc=$(cat "$RESULTS/$name.glibc/rc")
  if [[ $grc != 0 ]]; then
    fail "$name" "the glibc run itself failed: $(describe_rc "$grc") ($(cat "$RESULTS/$name.glibc/seconds")s)"
    tail -n 8 "$RESULTS/$name.glibc/stderr" | indent 8
    continue
  fi
  run_leg "$name" preload
  compare "$name" "$errm"
  # keep the scratch directory small: drop the bulky outputs of passing workloads
  if [[ $FAILED -eq 0 && ${RP_KEEP:-0} != 1 ]]; then rm -rf "$RESULTS/$name.glibc" "$RESULTS/$name.preload"; fi
done

finish
