#!/usr/bin/env bash
# CI as a machine that has never seen the project would run it (`make ci-cold`):
#   1. remove the project's caches and images: the podman/buildah storage (every image,
#      the debootstrapped base included), pip's cache, npm's cache of the helm package;
#   2. with --purge-debs, also remove the Debian packages scripts/install-system-deps.sh
#      installs (what a new machine does not ship), so CI must install them itself;
#   3. clone HEAD (committed work only) fresh into $CI_COLD_DIR/project, with the shared
#      reference data beside it as CI has it, and run `CI=true bash .ci/run` there.
# The whole output goes to $CI_COLD_DIR/ci.log as well; the exit status is .ci/run's.
# Environment: CI_COLD_DIR (/tmp/ci-cold), SHARED_DIR (../shared of this checkout).
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 1

# The whole script is one function, parsed before it runs: editing this file while a
# (long) cold run is going cannot change what the running shell reads next.
main() {
  purge_debs=0
  for arg in "$@"; do
    case "$arg" in
      --purge-debs) purge_debs=1 ;;
      -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
      *) echo "ci-cold.sh: unknown argument '$arg' (expected --purge-debs)" >&2; exit 2 ;;
    esac
  done

  top=$(pwd)
  cold=${CI_COLD_DIR:-/tmp/ci-cold}
  shared=$(cd "${SHARED_DIR:-$top/../shared}" && pwd)

  echo "== removing the project's caches and images"
  for engine in podman buildah; do
    if command -v "$engine" >/dev/null; then
      case "$engine" in
        podman) podman system reset --force >/dev/null 2>&1 || podman rmi --all --force >/dev/null 2>&1 || true ;;
        buildah) buildah rm --all >/dev/null 2>&1 || true; buildah rmi --all --force >/dev/null 2>&1 || true ;;
      esac
    fi
  done
  rm -rf "${XDG_CACHE_HOME:-$HOME/.cache}/pip" "$HOME/.npm/_cacache"

  if [ "$purge_debs" = 1 ]; then
    # The package list lives in one place: install-system-deps.sh.
    mapfile -t debs < <(bash scripts/install-system-deps.sh --list)
    echo "== purging Debian packages: ${debs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${debs[@]}" >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get autoremove -y -qq --purge >/dev/null 2>&1 || true
  fi

  echo "== fresh clone of $(git rev-parse --short HEAD) into $cold/project"
  rm -rf "$cold"
  mkdir -p "$cold"
  git clone -q "$top" "$cold/project"
  ln -s "$shared" "$cold/shared"

  echo "== CI=true bash .ci/run (log: $cold/ci.log)"
  start=$(date +%s)
  status=0
  (cd "$cold/project" && CI=true bash .ci/run < /dev/null) 2>&1 | tee "$cold/ci.log" || status=$?
  echo "== .ci/run exited $status after $(( $(date +%s) - start )) s (log: $cold/ci.log)"
  exit "$status"
}

main "$@"
