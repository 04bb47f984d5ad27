#!/usr/bin/env bash
# Installs the Debian packages whose binaries the integration tests start (PostgreSQL among
# them), when any is missing;
# with "bench", also those the benchmarks run (wrk, valgrind).
set -euo pipefail
declare -A package_of=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [victoria-metrics]=victoria-metrics
  [vmalert]=victoria-metrics
  [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager
)
if [ "${1:-}" = bench ]; then
  package_of+=([wrk]=wrk [valgrind]=valgrind [callgrind_control]=valgrind)
fi
missing=()
for binary in "${!package_of[@]}"; do
  command -v "$binary" >/dev/null 2>&1 || missing+=("${package_of[$binary]}")
done
# PostgreSQL (the shared access-log store's tests): Debian keeps its binaries off PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
[ ${#missing[@]} -eq 0 ] && exit 0
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: $packages"
$sudo apt-get update -qq
# policy-rc.d keeps the packages' services from starting: tests run their own processes.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages
