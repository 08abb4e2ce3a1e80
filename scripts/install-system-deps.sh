#!/usr/bin/env bash
# Debian packages the tests and the local stack run for real: Prometheus (with promtool),
# the Pushgateway, Alertmanager, PostgreSQL (MLflow's cluster backend, tested locally),
# headless Chromium (checks that HTML reports render), wrk (benchmarks), and podman with
# runc and debootstrap (the slow tier builds and runs both images on a debootstrapped base).
# Idempotent; installs only what is missing. Run as root (CI) or with sudo.
#   --list            print the packages and exit
#   --only PKG...     only these of the packages (`make demo`: --only prometheus
#                     prometheus-pushgateway); with --list, print them
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
packages=(prometheus prometheus-pushgateway prometheus-alertmanager postgresql chromium wrk
          podman runc debootstrap)
list=0
only=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --list) list=1 ;;
    --only)
      shift
      while [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; do only+=("$1"); shift; done
      if [ "${#only[@]}" -eq 0 ]; then
        echo "install-system-deps.sh: --only needs at least one package" >&2; exit 2
      fi
      continue ;;
    *) echo "install-system-deps.sh: unknown argument '$1' (expected --list, --only PKG...)" >&2
       exit 2 ;;
  esac
  shift
done
if [ "${#only[@]}" -gt 0 ]; then
  for p in "${only[@]}"; do
    if ! printf '%s\n' "${packages[@]}" | grep -qx -- "$p"; then
      echo "install-system-deps.sh: '$p' is not one of its packages: ${packages[*]}" >&2
      exit 2
    fi
  done
  packages=("${only[@]}")
fi
if [ "$list" = 1 ]; then printf '%s\n' "${packages[@]}"; exit 0; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages present: ${packages[*]}"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian packages: ${missing[*]}"
run_logged "apt-get update" apt-get update
run_logged "apt-get install" apt-get install -y --no-install-recommends "${missing[@]}"
# The Debian packages start their services; the tests start their own on free ports.
for svc in prometheus prometheus-pushgateway prometheus-alertmanager prometheus-node-exporter postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  elif command -v service >/dev/null; then
    service "$svc" stop >/dev/null 2>&1 || true
  fi
done
echo "installed: ${missing[*]}"
