#!/usr/bin/env bash
# Stop the Docker engine that docker/base-image.sh started (there is no systemd here): TERM to
# dockerd (its containerd goes with it), then wait for it to exit. Nothing running: nothing to do.
set -u
pgrep -x dockerd >/dev/null || exit 0
pkill -TERM -x dockerd
for _ in $(seq 1 30); do
  pgrep -x dockerd >/dev/null || exit 0
  sleep 1
done
echo "dockerd did not stop within 30 s" >&2
exit 1
