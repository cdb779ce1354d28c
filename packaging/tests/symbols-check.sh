#!/bin/sh
# usage: symbols-check.sh HEADER LIBRARY
#
# The shared object must export exactly the functions the header declares:
# the set of defined dynamic symbols of type T (nm -D --defined-only) equals
# the set of function declarations in the header, and nothing of another type
# is exported (version nodes of a version script aside). Prints the
# differences; exit status 1 if any.
set -eu
[ $# -eq 2 ] || { sed -n '2,8s/^# \{0,1\}//p' "$0" >&2; exit 2; }
header=$1 lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Functions declared in the header: drop comments and preprocessor lines,
# split into declarations at ';', keep the name before the first '('.
awk '{
    line = $0; out = ""
    while (line != "") {
        if (incomment) {
            i = index(line, "*/"); if (!i) { line = ""; break }
            line = substr(line, i + 2); incomment = 0
        } else {
            i = index(line, "/*"); if (!i) { out = out line; break }
            out = out substr(line, 1, i - 1); line = substr(line, i + 2); incomment = 1
        }
    }
    sub(/\/\/.*/, "", out)
    if (out !~ /^[ \t]*#/) print out
}' "$header" | tr '\n' ' ' | tr ';' '\n' |
    sed -n 's/^[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' |
    sort -u > "$tmp/header"

# Exported. Should a version script be used, names carry @@VERSION and the
# version nodes appear as absolute (A) symbols: those are not exports.
nm -D --defined-only "$lib" > "$tmp/nm.raw"
sed -n 's/.*@@\{0,1\}\([A-Za-z0-9_.]*\)$/\1/p' "$tmp/nm.raw" | sort -u > "$tmp/versions"
awk -v vf="$tmp/versions" 'BEGIN { while ((getline v < vf) > 0) node[v] = 1 }
    { sub(/@.*/, "", $3) }
    $2 == "A" && ($3 in node) { next }
    { print $2, $3 }' "$tmp/nm.raw" > "$tmp/nm"
awk '$1 == "T" { print $2 }' "$tmp/nm" | sort -u > "$tmp/exported"
awk '$1 != "T"' "$tmp/nm" > "$tmp/other"

status=0
n=$(wc -l < "$tmp/header")
if [ "$n" -eq 0 ]; then
    echo "symbols-check: no function declarations found in $header" >&2; exit 1
fi
missing=$(comm -23 "$tmp/header" "$tmp/exported")
extra=$(comm -13 "$tmp/header" "$tmp/exported")
if [ -n "$missing" ]; then
    echo "symbols-check: declared in $header but not exported: $(echo "$missing" | tr '\n' ' ')" >&2
    status=1
fi
if [ -n "$extra" ]; then
    echo "symbols-check: exported but not declared in $header: $(echo "$extra" | tr '\n' ' ')" >&2
    status=1
fi
if [ -s "$tmp/other" ]; then
    echo "symbols-check: exported symbols that are not functions (type, name):" >&2
    sed 's/^/  /' "$tmp/other" >&2; status=1
fi
if [ $status -eq 0 ]; then
    echo "symbols-check: ok: $(basename "$lib") exports exactly the $n functions of $(basename "$header")"
fi
exit $status
