#!/usr/bin/env bash
# Builds dist/vigil-agent_<version>_<arch>.deb and dist/vigil-collector_<version>_<arch>.deb
# with dh-virtualenv from the files of this checkout (committed or not, ignored ones left out).
# The version is pyproject's, or VIGIL_DEB_VERSION when set (the upgrade test builds a second).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=${VIGIL_DEB_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)}
out=${VIGIL_DEB_OUT:-$root/dist}
work=$root/.cache/deb-build
src=$work/vigil-$version
rm -rf "$work"
mkdir -p "$src" "$out"
# Only what git knows or would add: no .venv, caches or earlier builds in the package.
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | xargs -0 cp --parents -t "$src"
cp -r packaging/debian "$src/debian"
cp packaging/vigil-agent.service packaging/vigil-collector.service "$src/debian/"
date=$(git log -1 --format=%aD 2>/dev/null || date -R)
cat >"$src/debian/changelog" <<CHANGELOG
vigil ($version) unstable; urgency=medium

  * Release $version.

 -- Vigil maintainers <vigil@example.net>  $date
CHANGELOG
cd "$src"
dpkg-buildpackage -b -us -uc
arch=$(dpkg --print-architecture)
for pkg in vigil-agent vigil-collector; do
  mv -f "$work/${pkg}_${version}_${arch}.deb" "$out/"
  echo "built $out/${pkg}_${version}_${arch}.deb"
done
