#!/usr/bin/env bash
# Installs the Debian tools `make packages` and the packaging tests use, when they are missing:
# dh-virtualenv and debhelper build the .deb files, lintian checks them, mmdebstrap makes the
# throwaway Debian root the install tests run in, systemd-analyze verifies the units.
set -euo pipefail
need=()
command -v dh_virtualenv >/dev/null || need+=(dh-virtualenv)
command -v dh >/dev/null || need+=(debhelper)
command -v dpkg-buildpackage >/dev/null || need+=(dpkg-dev)
command -v lintian >/dev/null || need+=(lintian)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v systemd-analyze >/dev/null || need+=(systemd)
# dh-virtualenv builds with the builtin venv module of Debian's python3.
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
