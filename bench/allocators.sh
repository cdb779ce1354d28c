# The five allocators the benchmarks compare, for bench/run-suite.sh and
# bench/run-instr.sh (sourced, not run).
#
#   bench_allocators OURLIB LOGDIR
#
# sets names[] and preloads[] (index 0 is ours, 1 glibc with nothing
# preloaded, then jemalloc, tcmalloc (minimal) and mimalloc from Debian's
# packages, installed when missing) and avail[], the indices of those that
# are present; an allocator still missing after the install is reported and
# left out (shown as n/a). Also installs /usr/bin/time when missing.
# `clean_env` is the env(1) prefix that runs a program with none of the
# allocators' tuning variables set.

clean_env=(env -u GLIBC_TUNABLES -u MALLOC_CHECK_ -u MALLOC_ARENA_MAX -u MALLOC_ARENA_TEST
  -u MALLOC_PERTURB_ -u MALLOC_TOP_PAD_ -u MALLOC_TRIM_THRESHOLD_
  -u MALLOC_MMAP_THRESHOLD_ -u MALLOC_MMAP_MAX_ -u MALLOC_CONF -u MIMALLOC_OPTIONS
  -u LD_PRELOAD -u LD_LIBRARY_PATH)

bench_apt_install() { # LOG packages...: install, with apt-get update first if that fails
  local log=$1
  shift
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "installing $* (log: $log)"
  "${sudo[@]}" apt-get install -y "$@" >>"$log" 2>&1 ||
    { "${sudo[@]}" apt-get update >>"$log" 2>&1 &&
      "${sudo[@]}" apt-get install -y "$@" >>"$log" 2>&1; } ||
    echo "could not install $* (see $log)" >&2
}

bench_allocators() {
  local ours=$1 log=$2/apt.log
  local libdir=/usr/lib/x86_64-linux-gnu
  names=(ptmalloc-rs glibc jemalloc tcmalloc mimalloc)
  preloads=("$ours" "" "$libdir/libjemalloc.so.2" "$libdir/libtcmalloc_minimal.so.4" "$libdir/libmimalloc.so.2")
  local p missing=
  for p in "${preloads[@]:2}"; do [ -e "$p" ] || missing=1; done
  [ -n "$missing" ] && bench_apt_install "$log" libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0
  [ -x /usr/bin/time ] || bench_apt_install "$log" time
  avail=()
  local i
  for i in "${!names[@]}"; do
    p=${preloads[$i]}
    if [ -n "$p" ] && [ ! -e "$p" ]; then
      echo "${names[$i]}: $p not found, shown as n/a" >&2
    else
      avail+=("$i")
    fi
  done
}

# preload_env_for INDEX: sets preload_env[] to the env(1) arguments that select
# allocator INDEX for a child process.
preload_env_for() {
  local pre=${preloads[$1]}
  preload_env=(-u LD_PRELOAD)
  [ -n "$pre" ] && preload_env=(LD_PRELOAD="$pre")
  return 0
}

# measure OUT INDEX TIMEOUT COMMAND...: run COMMAND under allocator INDEX, killed
# after TIMEOUT seconds; its stdout, stderr and peak RSS go to OUT.out, OUT.err,
# OUT.rss. Sets secs (the program's own seconds=), live (its peak_live_kib=, if
# any), rss (KiB, or -) and status (ok, timeout, signal-N, exit-N, no-output).
# A good run's files are removed; a failed run's are kept and named on stderr.
measure() {
  local o=$1 i=$2 limit=$3
  shift 3
  preload_env_for "$i"
  "${clean_env[@]}" timeout -s KILL "$limit" /usr/bin/time -f %M -o "$o.rss" \
    env "${preload_env[@]}" "$@" >"$o.out" 2>"$o.err" </dev/null
  local rc=$?
  status=ok
  secs=$(sed -n 's/.* seconds=\([0-9.]*\) .*/\1/p' "$o.out")
  live=$(sed -n 's/.* peak_live_kib=\([0-9]*\).*/\1/p' "$o.out")
  rss=$(tail -n 1 "$o.rss" 2>/dev/null)
  case $rss in '' | *[!0-9]*) rss=- ;; esac
  if [ "$rc" = 137 ]; then status=timeout
  elif [ "$rc" -gt 128 ]; then status="signal-$((rc - 128))"
  elif [ "$rc" != 0 ]; then status="exit-$rc"
  elif [ -z "$secs" ]; then status=no-output; fi
  if [ "$status" = ok ]; then
    rm -f "$o.out" "$o.err" "$o.rss"
  else
    secs=-
    echo "  ${names[$i]} $(basename "$o"): $status (output in $o.*)" >&2
  fi
}
