#!/bin/sh
# usage: consumer-test.sh [ROOT]
#
# Use an installed libptmalloc-rs the way a consumer does. ROOT is where it
# was installed or unpacked (a staging root, or / for the live system, the
# default). Checks, printing one line each:
#   - pkg-config finds ptmalloc-rs (inside ROOT only, through a sysroot);
#   - a C program built with nothing but its --cflags --libs records the
#     soname, runs, and gets every function from the library (consumer.c);
#   - the library's SONAME (readelf -d) and its file and link names;
#   - it exports exactly the functions of the installed header;
#   - LD_PRELOAD of the library into real programs (perl, sort) works.
# Environment: CC (cc), PKG_CONFIG (pkg-config), EXPECT_VERSION and
# EXPECT_SONAME (checked when set), KEEP=1 keeps the scratch directory.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${1:-/}
ROOT=$(cd "$ROOT" && pwd)
CC=${CC:-cc}
PKG_CONFIG=${PKG_CONFIG:-pkg-config}
tmp=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "consumer-test: scratch in $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
fail() { echo "consumer-test: FAIL: $*" >&2; exit 1; }
ok() { echo "consumer-test: ok: $*"; }

# pkg-config sees only the staged .pc file; the sysroot makes its -I and -L
# point into ROOT.
if [ "$ROOT" != / ]; then
    pc=$(find "$ROOT" -name ptmalloc-rs.pc -path '*/pkgconfig/*' | head -n 1)
    [ -n "$pc" ] || fail "no ptmalloc-rs.pc under $ROOT"
    PKG_CONFIG_LIBDIR=$(dirname "$pc")
    PKG_CONFIG_SYSROOT_DIR=$ROOT
    export PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
    unset PKG_CONFIG_PATH
    prefix=$ROOT
else
    prefix=
fi
version=$($PKG_CONFIG --modversion ptmalloc-rs) || fail "pkg-config does not find ptmalloc-rs"
[ -z "${EXPECT_VERSION:-}" ] || [ "$version" = "$EXPECT_VERSION" ] ||
    fail "pkg-config gives version $version, expected $EXPECT_VERSION"
cflags=$($PKG_CONFIG --cflags ptmalloc-rs)
libs=$($PKG_CONFIG --libs ptmalloc-rs)
ok "pkg-config ptmalloc-rs $version: $cflags $libs"

# Where the library is: the -L pkg-config gives (already inside the sysroot)
# or, for a system directory it leaves out, its libdir variable.
libdir=$($PKG_CONFIG --libs-only-L ptmalloc-rs | sed -n 's/^ *-L\([^ ]*\).*/\1/p')
if [ -z "$libdir" ]; then
    libdir=$($PKG_CONFIG --variable=libdir ptmalloc-rs)
    case $libdir in "$prefix"/*) ;; *) libdir=$prefix$libdir ;; esac
fi
lib=$libdir/libptmalloc-rs.so
[ -f "$lib" ] || fail "no $lib"

# The soname, and the link names that carry it.
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ -n "$soname" ] || fail "$lib has no SONAME"
[ -z "${EXPECT_SONAME:-}" ] || [ "$soname" = "$EXPECT_SONAME" ] ||
    fail "SONAME is $soname, expected $EXPECT_SONAME"
[ -L "$libdir/$soname" ] || [ -f "$libdir/$soname" ] || fail "no $libdir/$soname"
real=$(readlink -f "$lib")
[ "$(readlink -f "$libdir/$soname")" = "$real" ] || fail "$soname and libptmalloc-rs.so differ"
[ "$(basename "$real")" = "libptmalloc-rs.so.$version" ] ||
    fail "the library file is $(basename "$real"), expected libptmalloc-rs.so.$version"
ok "SONAME $soname; libptmalloc-rs.so -> ... -> $(basename "$real")"

# The exported symbols against the installed header.
incdir=$($PKG_CONFIG --cflags-only-I ptmalloc-rs | sed -n 's/^ *-I\([^ ]*\).*/\1/p')
[ -n "$incdir" ] || incdir=$prefix$($PKG_CONFIG --variable=includedir ptmalloc-rs)/ptmalloc-rs
sh "$HERE/symbols-check.sh" "$incdir/ptmalloc.h" "$real" | sed 's/^/consumer-test: /'

# A program built with pkg-config's flags only (and -Werror: the header must
# be warning-free next to <malloc.h> and <stdlib.h>).
# shellcheck disable=SC2086
$CC -Wall -Wextra -Werror -o "$tmp/consumer" "$HERE/consumer.c" $cflags $libs ||
    fail "compiling consumer.c with pkg-config's flags"
readelf -d "$tmp/consumer" | grep -q "(NEEDED).*\[$soname\]" || fail "consumer does not need $soname"
if [ "$ROOT" != / ]; then
    LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
fi
EXPECT_LIB=$real "$tmp/consumer" > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; fail "consumer"; }
ok "linked program: $(tail -n 1 "$tmp/out")"

# Real programs preloaded: the library must be mapped, serve the program (its
# statistics appear at exit) and leave the program's output unchanged.
preload=$libdir/$soname
PTMALLOC_RS_SHOW_STATS=1 LD_PRELOAD=$preload perl -e '
    open my $m, "<", "/proc/self/maps" or die; my $maps = join "", <$m>;
    index($maps, $ARGV[0]) >= 0 or die "not mapped: $ARGV[0]\n";
    my %h; $h{$_ x 3} = [$_ .. $_ + 20] for 1 .. 50000;
    my $sum = 0; $sum += $h{$_ x 3}[20] for 1 .. 50000; print "$sum\n";
' "$real" > "$tmp/perl.out" 2> "$tmp/perl.err" || { cat "$tmp/perl.err" >&2; fail "perl under LD_PRELOAD"; }
[ "$(cat "$tmp/perl.out")" = 1251025000 ] || fail "perl under LD_PRELOAD printed $(cat "$tmp/perl.out")"
grep -q '^system bytes' "$tmp/perl.err" || { cat "$tmp/perl.err" >&2; fail "no malloc_stats from perl at exit"; }
ok "LD_PRELOAD=$preload perl (library mapped, statistics at exit)"

seq 1 200000 | sed 's/$/ x/' | sort -r > "$tmp/sort.glibc"
seq 1 200000 | sed 's/$/ x/' | LD_PRELOAD=$preload sort -r > "$tmp/sort.ptm" || fail "sort under LD_PRELOAD"
cmp -s "$tmp/sort.glibc" "$tmp/sort.ptm" || fail "sort under LD_PRELOAD gives different output"
ok "LD_PRELOAD=$preload sort (same output as with glibc's malloc)"
echo "consumer-test: all checks passed for $ROOT"
