#!/usr/bin/env bash
# Builds the local stand-in for python:3.11-slim where Docker Hub is out of reach
# (this machine, CI): Debian bookworm + python3.11, with a venv at /opt/venv first on
# PATH, so `python` and `pip` behave as in the official image.
# Idempotent: installs docker.io/debootstrap if missing, starts dockerd if it is not
# running, builds the image only if absent. Prints the image name.
#   docker/base-image.sh                      -> credit-risk/python:3.11-bookworm
#   docker build --build-arg BASE_IMAGE="$(docker/base-image.sh)" ...
set -euo pipefail
IMAGE="${BASE_IMAGE_NAME:-credit-risk/python:3.11-bookworm}"
DOCKER=/usr/bin/docker   # Debian's CLI (BuildKit built in); another `docker` on PATH may lack it

# 1. Packages (as root; Debian's docker.io 20.10 and debootstrap).
if [ ! -x "$DOCKER" ] || ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >&2
fi

# 2. The engine (no systemd here): start dockerd in the background, wait until it answers.
if ! "$DOCKER" info >/dev/null 2>&1; then
  setsid nohup dockerd >"${DOCKERD_LOG:-/tmp/dockerd.log}" 2>&1 < /dev/null &
  for _ in $(seq 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || { echo "dockerd did not start, see ${DOCKERD_LOG:-/tmp/dockerd.log}" >&2; exit 1; }
fi

# 3. The base image, from Debian packages (about a minute), unless it exists already.
if ! "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  # The mirror apt uses here (deb822 or one-line sources), unless DEBIAN_MIRROR is set.
  mirror="${DEBIAN_MIRROR:-$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >&2
  chroot "$root" python3 -m venv /opt/venv >&2   # pip comes from ensurepip
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*
  tar -C "$root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python"]' - "$IMAGE" >&2
fi
echo "$IMAGE"
