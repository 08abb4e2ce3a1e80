#!/usr/bin/env bash
# Build the serving and training images (Dockerfile.serve, Dockerfile.train).
#
#   scripts/build-images.sh [--debootstrap] [serve] [train]     (default: both)
#
# Image names and tag come from creditrisk.settings (serve_image, train_image; override
# with CREDITRISK_IMAGE_REGISTRY / CREDITRISK_IMAGE_TAG), never typed here.
# Environment:
#   ENGINE       podman or docker (default: podman if installed, else docker)
#   BASE_IMAGE   a Debian bookworm image (default: the Dockerfiles' debian:bookworm-slim)
#   PY           python with creditrisk installed (default: .venv/bin/python, else python3)
#   CA_BUNDLE    CA bundle pip trusts in the build (default: pip's `cert`, else the
#                system bundle)
# --debootstrap: where no base image can be pulled, make localhost/debian-base:bookworm
#   with `debootstrap --variant=minbase` from the host's Debian mirror (once; reused) and
#   build on it. The mirror is the first Debian one of the host's apt sources, one-line
#   (sources.list, *.list) or deb822 (*.sources); --print-mirror prints it and exits.
# The host's pip index settings (http/https index-url, extra-index-url, trusted-host) and
# CA bundle reach pip in the build as build secrets: no layer and no file in git holds
# them. Host-local indexes (file://, find-links) are left out: the build cannot see them.
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.." || exit 1

DEBIAN_BASE=localhost/debian-base:bookworm
debootstrap_base=0
mirror_only=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --debootstrap) debootstrap_base=1 ;;
    serve|train) targets+=("$arg") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    --print-mirror) mirror_only=1 ;;
    *) echo "build-images.sh: unknown argument '$arg' (expected --debootstrap, --print-mirror, serve, train)" >&2; exit 2 ;;
  esac
done
[ "${#targets[@]}" -gt 0 ] || targets=(serve train)

if [ -z "${ENGINE:-}" ]; then
  if command -v podman >/dev/null; then ENGINE=podman; else ENGINE=docker; fi
fi
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi

image_name() {  # image_name serve|train -> the settings' image reference
  "$PY" -c "from creditrisk.settings import get_settings; print(get_settings().$1_image)"
}

debian_mirror() {  # the host's Debian mirror (one-line sources.list or deb822 *.sources), or nothing
  local files=() f
  local apt=${APT_ETC:-/etc/apt}
  for f in "$apt/sources.list" "$apt"/sources.list.d/*.list "$apt"/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || return 0
  # One-line form: "deb [options] URI suite ..."; deb822 form: "URIs: URI ...".
  awk '
    /^[ \t]*deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }
    /^[ \t]*URIs:/     { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\/.*\/debian\/?$/) { print $i; exit } }
  ' "${files[@]}"
}

make_debian_base() {
  if "$ENGINE" image exists "$DEBIAN_BASE" 2>/dev/null \
     || "$ENGINE" image inspect "$DEBIAN_BASE" >/dev/null 2>&1; then
    return
  fi
  local mirror rootfs
  mirror=$(debian_mirror)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d)
  echo "debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >&2
  # As slim images: no package cache, lists, docs, man pages or message catalogues.
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
         "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
         "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -c . | "$ENGINE" import - "$DEBIAN_BASE" >&2
  rm -rf "$rootfs"
}

if [ "$mirror_only" = 1 ]; then  # what --debootstrap would use (APT_ETC: another /etc/apt)
  debian_mirror
  exit 0
fi

secrets_dir=$(mktemp -d)
trap 'rm -rf "$secrets_dir"' EXIT

write_pip_secrets() {
  local key value cert=""
  : > "$secrets_dir/pip.conf"
  echo "[global]" >> "$secrets_dir/pip.conf"
  # `pip config list` prints scope.key='value' (environment variables as :env:.key).
  while IFS= read -r line; do
    key=${line%%=*}; key=${key##*.}
    value=${line#*=}; value=${value#\'}; value=${value%\'}
    case "$key" in
      index-url|extra-index-url)
        value=$(tr -s ' \t' '\n' <<< "$value" | grep -E '^https?://' | tr '\n' ' ' || true)
        [ -n "$value" ] && echo "$key = $value" >> "$secrets_dir/pip.conf" ;;
      trusted-host|timeout|default-timeout|retries)
        echo "$key = $value" >> "$secrets_dir/pip.conf" ;;
      cert) cert=$value ;;
    esac
  done < <("$PY" -m pip config list 2>/dev/null || true)
  for candidate in "${CA_BUNDLE:-}" "$cert" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
    if [ -n "$candidate" ] && [ -s "$candidate" ]; then
      cp "$candidate" "$secrets_dir/ca.crt"
      break
    fi
  done
  [ -f "$secrets_dir/ca.crt" ] || : > "$secrets_dir/ca.crt"
}

cap_limit() {  # cap_limit HARD_LIMIT WANTED -> the smaller
  if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi
}

build() {  # build serve|train
  local target=$1 image start nofile nproc
  image=$(image_name "$target")
  # Explicit limits for the build containers: the engines' defaults can exceed what a
  # sandboxed host allows (runc then fails with "error setting rlimit"). At most the
  # host's hard limits; override with ULIMIT_NOFILE / ULIMIT_NPROC.
  nofile=${ULIMIT_NOFILE:-$(cap_limit "$(ulimit -Hn)" 65536)}
  nproc=${ULIMIT_NPROC:-$(cap_limit "$(ulimit -Hu)" 32768)}
  local args=(build -f "Dockerfile.$target" -t "$image"
              --secret "id=pipconf,src=$secrets_dir/pip.conf"
              --secret "id=cacert,src=$secrets_dir/ca.crt"
              --ulimit "nofile=$nofile:$nofile")
  [ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
  if [ "$ENGINE" = podman ]; then
    args+=(--runtime runc --ulimit "nproc=$nproc:$nproc" --format docker)
  elif "$ENGINE" buildx version >/dev/null 2>&1; then
    # BuildKit: no provenance/SBOM attestations: with Docker 29's containerd image store
    # an image carrying them cannot be loaded into kind (kind#3795)
    args+=(--provenance=false --sbom=false)
  fi
  start=$(date +%s)
  echo "== $ENGINE ${args[*]} ." >&2
  "$ENGINE" "${args[@]}" .
  echo "built $image in $(( $(date +%s) - start )) s" >&2
}

if [ "$debootstrap_base" = 1 ]; then
  make_debian_base
  BASE_IMAGE=${BASE_IMAGE:-$DEBIAN_BASE}
fi
write_pip_secrets
for target in "${targets[@]}"; do
  build "$target"
done
for target in "${targets[@]}"; do
  "$ENGINE" image inspect --format "{{.Size}}" "$(image_name "$target")" \
    | awk -v name="$(image_name "$target")" '{printf "%s: %.0f MB\n", name, $1/1e6}'
done
