#!/usr/bin/env bash
# Install (Debian/Ubuntu, apt) exactly what tests/real-programs/run.sh needs.
# Quiet and idempotent: does nothing, not even `apt-get update`, when every
# package is already installed. Meant to run as root (uses sudo otherwise).
set -euo pipefail

PKGS=(
  bash coreutils sed grep gawk mawk findutils diffutils tar gzip xz-utils  # harness + text tools
  python3                  # /usr/bin/python3 (python3-regrtest, python3-churn, gen_inputs.py)
  python3-venv             # make python-check: the bindings' wheel in a fresh venv
  perl                     # perl-hash, perl-regex (Digest::MD5 is in perl's core)
  gcc libc6-dev binutils   # gcc-O2-c, gcc-prog, alloc_probe (objdump is in binutils)
  git sqlite3
  redis-server redis-tools # redis-server (redis-cli and redis-benchmark are in redis-tools)
  valgrind                 # make valgrind (memcheck of C suite programs under the library)
  ltrace                   # make python-check: load_ltrace of a real program's trace
)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

UPDATED=0
apt_install() {
  local missing=() p log
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log=$(mktemp)
  if [[ $UPDATED == 0 ]]; then
    "${SUDO[@]}" apt-get -qq update >"$log" 2>&1 || { cat "$log" >&2; rm -f "$log"; return 1; }
    UPDATED=1
  fi
  if ! "${SUDO[@]}" apt-get -qq -y install --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    return 1
  fi
  rm -f "$log"
  echo "install-deps: installed ${missing[*]}"
}

apt_install "${PKGS[@]}"

# CPython's own regression tests (`python3 -m test`) live in a separate,
# version-specific package: libpython3.X-testsuite for Debian's python3.
PYVER=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
apt_install "libpython$PYVER-testsuite"
