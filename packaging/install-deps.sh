#!/usr/bin/env bash
# Install (Debian, apt) what `make distcheck`, `make deb` and `make rpm` need
# beyond the compiler: pkg-config, debhelper and dpkg-dev, lintian, rpmbuild.
# Quiet and idempotent: does nothing, not even `apt-get update`, when every
# package is already installed. Meant to run as root (uses sudo otherwise).
set -euo pipefail

PKGS=(pkgconf binutils dpkg-dev debhelper fakeroot lintian rpm)

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${SUDO[@]}" apt-get -qq update && "${SUDO[@]}" apt-get -qq -y install --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
echo "packaging/install-deps: installed ${missing[*]}"
