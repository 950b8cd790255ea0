#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks use, when they are missing:
# age and zstd (a backup must open with the stock tools), restic (the backup benchmark's
# yardstick), the PostgreSQL server binaries and Chromium (the pages' browser tests drive
# Debian's Chromium through Playwright, so no browser is downloaded).
set -euo pipefail
need=()
command -v age >/dev/null || need+=(age)
command -v zstd >/dev/null || need+=(zstd)
command -v restic >/dev/null || need+=(restic)
command -v chromium >/dev/null || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root: apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
