#!/usr/bin/env bash
# Install the Debian packages that some tests need and PyPI cannot provide
# (Prometheus + promtool, Alertmanager + amtool, headless Chromium, docker-compose for config checks,
# wrk for make bench, a Java runtime for the Spark engine's test).
# Idempotent: installs only what is missing. Used by .ci/run; developers may run it too.
# Tests that need these skip locally (naming this script) when they are absent, and fail in CI.
set -euo pipefail
packages=(prometheus prometheus-alertmanager chromium docker-compose wrk openjdk-17-jre-headless)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: all present (${packages[*]})"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Tests start their own Prometheus and Alertmanager on free ports (Alertmanager without its
# cluster port), so a system service (if a package started one) is left alone.
echo "system deps: installed ${missing[*]}"
