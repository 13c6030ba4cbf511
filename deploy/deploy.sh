#!/usr/bin/env bash
# Blue/green deploy of the serving image on one Docker host (the EC2 instance; CD runs it
# through SSM Run Command), with automatic rollback.
#
#   deploy/deploy.sh IMAGE:TAG      deploy this image (e.g. 1234.dkr.ecr.eu-west-1.amazonaws.com/credit-risk-serving:<sha>)
#   deploy/deploy.sh --rollback     deploy the previously deployed image again
#   deploy/deploy.sh --status       print the live slot, the current and the previous image
#
# How traffic moves without a failed request:
#   clients -> :$DEPLOY_PORT -> proxy container (nginx) -> the live app container, by name on
#   a private Docker network. The new image starts beside the live one in the other slot
#   (blue/green), is polled on /ready (through a loopback-only port) for at most
#   $DEPLOY_READY_TIMEOUT seconds, then the proxy's upstream is rewritten and nginx reloaded
#   gracefully (`nginx -s reload`: new connections go to the new container, requests in flight
#   finish on the old one). The switch is checked through the proxy; after $DEPLOY_DRAIN_S the
#   old container is stopped (gunicorn finishes its requests on SIGTERM) and removed.
# Rollback: when the new container is not ready in time (or exits, or the switch fails), it is
#   removed and the proxy keeps (or goes back to) the previous container; if that one is gone,
#   the previous image is started again. The script then exits non-zero. Nothing is switched
#   before the new container is ready, so a bad image never receives traffic.
#
# Configuration (environment, or the file $DEPLOY_CONFIG, default /etc/credit-risk/deploy.env):
#   DEPLOY_NAME            container/network name prefix                 (credit-risk)
#   DEPLOY_PORT            public port of the proxy                      (80)
#   DEPLOY_BIND            address the public port binds to              (0.0.0.0)
#   DEPLOY_REGISTRY        registry prefixed to an IMAGE without one     (none; e.g. the ECR registry)
#   DEPLOY_ENV_FILE        the app's CREDIT_RISK_* settings (docker --env-file)  (/etc/credit-risk/serving.env)
#   DEPLOY_RUN_ARGS        extra `docker run` arguments for the app, split on whitespace
#                          (volumes, `--log-driver awslogs --log-opt awslogs-group=...`)
#   DEPLOY_CONTAINER_PORT  the app's port inside its container           (8000)
#   DEPLOY_READY_PATH      readiness endpoint                            (/ready)
#   DEPLOY_READY_TIMEOUT   seconds the new container has to become ready (120)
#   DEPLOY_DRAIN_S         seconds between the switch and stopping the old container (10)
#   DEPLOY_STOP_TIMEOUT    seconds the old container has to finish its requests on SIGTERM (30)
#   DEPLOY_PROXY_IMAGE     an image with nginx     (public.ecr.aws/nginx/nginx:1.27-alpine)
#   DEPLOY_STATE_DIR       state and proxy config  (/var/lib/credit-risk-deploy)
#   DEPLOY_ECR_LOGIN       auto | yes | no: `aws ecr get-login-password | docker login` before the
#                          pull (auto: when the registry is *.dkr.ecr.*.amazonaws.com)  (auto)
#   DOCKER                 the docker CLI          (docker)
set -Eeuo pipefail
trap 'log "ERROR: unexpected failure of \"$BASH_COMMAND\" (line $LINENO)"' ERR

DEPLOY_CONFIG="${DEPLOY_CONFIG:-/etc/credit-risk/deploy.env}"
if [ -f "$DEPLOY_CONFIG" ]; then
  # shellcheck source=/dev/null
  . "$DEPLOY_CONFIG"
fi
NAME="${DEPLOY_NAME:-credit-risk}"
PORT="${DEPLOY_PORT:-80}"
BIND="${DEPLOY_BIND:-0.0.0.0}"
REGISTRY="${DEPLOY_REGISTRY:-}"
ENV_FILE="${DEPLOY_ENV_FILE:-/etc/credit-risk/serving.env}"
CONTAINER_PORT="${DEPLOY_CONTAINER_PORT:-8000}"
READY_PATH="${DEPLOY_READY_PATH:-/ready}"
READY_TIMEOUT="${DEPLOY_READY_TIMEOUT:-120}"
DRAIN_S="${DEPLOY_DRAIN_S:-10}"
STOP_TIMEOUT="${DEPLOY_STOP_TIMEOUT:-30}"
PROXY_IMAGE="${DEPLOY_PROXY_IMAGE:-public.ecr.aws/nginx/nginx:1.27-alpine}"
STATE_DIR="${DEPLOY_STATE_DIR:-/var/lib/credit-risk-deploy}"
ECR_LOGIN="${DEPLOY_ECR_LOGIN:-auto}"
DOCKER="${DOCKER:-docker}"
read -r -a RUN_ARGS <<< "${DEPLOY_RUN_ARGS:-}"

NETWORK="$NAME"
PROXY="$NAME-proxy"
PROXY_CONF_DIR="$STATE_DIR/proxy"

log() { printf '%s deploy: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
docker_() { "$DOCKER" "$@"; }

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# --- state: which slot is live, the current and the previous image ---------------------------
state_get() { cat "$STATE_DIR/$1" 2>/dev/null || true; }
state_set() { printf '%s\n' "$2" > "$STATE_DIR/$1.tmp" && mv "$STATE_DIR/$1.tmp" "$STATE_DIR/$1"; }
other_slot() { if [ "$1" = blue ]; then echo green; else echo blue; fi; }
running() { [ "$(docker_ inspect -f '{{.State.Running}}' "$1" 2>/dev/null || true)" = true ]; }

# The loopback port Docker published for a container's app port.
host_port() {
  { docker_ port "$1" "$CONTAINER_PORT/tcp" 2>/dev/null || true; } \
    | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n1
}

http_ok() {  # URL -> success when it answers 200
  [ "$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true)" = 200 ]
}

# Waits until the container answers 200 on the readiness path; fails when it exits or when
# READY_TIMEOUT seconds pass.
wait_ready() {
  local container="$1" deadline=$((SECONDS + READY_TIMEOUT)) port
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! running "$container"; then
      log "$container exited before it was ready"
      return 1
    fi
    port="$(host_port "$container")"
    if [ -n "$port" ] && http_ok "http://127.0.0.1:$port$READY_PATH"; then
      return 0
    fi
    sleep 1
  done
  log "$container not ready after ${READY_TIMEOUT}s"
  return 1
}

# --- the app containers -----------------------------------------------------------------------
start_app() {  # SLOT IMAGE
  local container="$NAME-$1" env_args=()
  if [ -f "$ENV_FILE" ]; then
    env_args=(--env-file "$ENV_FILE")
  elif [ -n "${DEPLOY_ENV_FILE:-}" ]; then
    die "DEPLOY_ENV_FILE=$ENV_FILE does not exist"
  else
    log "no $ENV_FILE: the container runs with the image's default settings"
  fi
  docker_ rm -f "$container" >/dev/null 2>&1 || true
  log "starting $container from $2"
  docker_ run -d --name "$container" --network "$NETWORK" --restart unless-stopped \
    -p "127.0.0.1::$CONTAINER_PORT" \
    --label "org.credit-risk.deploy.slot=$1" \
    "${env_args[@]}" "${RUN_ARGS[@]}" "$2" >/dev/null
}

remove_app() {  # SLOT
  local container="$NAME-$1"
  if docker_ inspect "$container" >/dev/null 2>&1; then
    log "last log lines of $container:"
    docker_ logs --tail 20 "$container" 2>&1 | sed 's/^/    /' >&2 || true
    docker_ rm -f "$container" >/dev/null 2>&1 || true
  fi
}

# --- the proxy --------------------------------------------------------------------------------
write_proxy_conf() {  # SLOT: nginx forwards every request to $NAME-SLOT
  mkdir -p "$PROXY_CONF_DIR"
  chmod 755 "$PROXY_CONF_DIR"
  cat > "$PROXY_CONF_DIR/nginx.conf.tmp" <<EOF
# Written by deploy/deploy.sh: the live slot is $1.
worker_processes auto;
pid /tmp/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    client_max_body_size 10m;
    server_tokens off;
    # The app container by name through Docker's DNS, looked up again every few seconds: a
    # container that was restarted (host reboot, crash) with a new address is still found.
    resolver 127.0.0.11 valid=5s ipv6=off;
    server {
        listen 8080;
        set \$app http://$NAME-$1:$CONTAINER_PORT;
        location / {
            proxy_pass \$app;
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header X-Request-ID \$request_id;
            proxy_read_timeout 60s;
            add_header X-Credit-Risk-Slot $1 always;
        }
    }
}
EOF
  chmod 644 "$PROXY_CONF_DIR/nginx.conf.tmp"
  mv "$PROXY_CONF_DIR/nginx.conf.tmp" "$PROXY_CONF_DIR/nginx.conf"
}

nginx_() { docker_ exec "$PROXY" nginx -c /etc/credit-risk-proxy/nginx.conf "$@"; }

# Points the proxy at SLOT: a graceful reload when the proxy runs, else starts it.
switch_to() {  # SLOT
  write_proxy_conf "$1"
  if running "$PROXY"; then
    nginx_ -t -q || return 1
    nginx_ -s reload || return 1
    sleep 1  # the new workers take over; the old ones finish their requests
  else
    docker_ rm -f "$PROXY" >/dev/null 2>&1 || true
    log "starting the proxy $PROXY on $BIND:$PORT"
    docker_ run -d --name "$PROXY" --network "$NETWORK" --restart unless-stopped \
      --user 65534:65534 --read-only --tmpfs /tmp \
      -p "$BIND:$PORT:8080" -v "$PROXY_CONF_DIR:/etc/credit-risk-proxy:ro" \
      "$PROXY_IMAGE" nginx -c /etc/credit-risk-proxy/nginx.conf -g 'daemon off;' >/dev/null || return 1
  fi
  # The switch is done when the proxy answers ready from the new slot.
  local deadline=$((SECONDS + 20)) headers check_host="$BIND"
  [ "$check_host" != 0.0.0.0 ] || check_host=127.0.0.1
  while [ "$SECONDS" -lt "$deadline" ]; do
    headers="$(curl -s -D - -o /dev/null -m 5 "http://$check_host:$PORT$READY_PATH" 2>/dev/null \
      | tr -d '\r' || true)"
    if grep -q '^HTTP/[0-9.]* 200' <<< "$headers" && grep -qix "x-credit-risk-slot: $1" <<< "$headers"; then
      return 0
    fi
    sleep 0.5
  done
  log "the proxy does not answer ready from slot $1"
  return 1
}

ecr_login() {  # IMAGE
  local registry="${1%%/*}"
  case "$ECR_LOGIN" in
    no) return 0 ;;
    auto) [[ "$registry" =~ ^[0-9]+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$ ]] || return 0 ;;
  esac
  local region
  region="$(sed -E 's/^[0-9]+\.dkr\.ecr\.([a-z0-9-]+)\..*/\1/' <<< "$registry")"
  log "logging in to $registry"
  aws ecr get-login-password --region "$region" | docker_ login --username AWS --password-stdin "$registry" >/dev/null
}

# --- the deploy -------------------------------------------------------------------------------
deploy() {  # IMAGE
  local image="$1" live new previous_image live_container new_container
  live="$(state_get slot)"
  [ -n "$live" ] || live=green  # the first deploy goes to blue
  new="$(other_slot "$live")"
  live_container="$NAME-$live"
  new_container="$NAME-$new"
  previous_image="$(state_get current)"

  ecr_login "$image"
  log "pulling $image"
  docker_ pull -q "$image" >/dev/null || die "cannot pull $image (nothing changed)"
  docker_ network inspect "$NETWORK" >/dev/null 2>&1 || docker_ network create "$NETWORK" >/dev/null

  start_app "$new" "$image"
  if ! wait_ready "$new_container"; then
    remove_app "$new"
    rollback_to_live "$live" "$previous_image" \
      || die "$image failed and the rollback to $previous_image failed too: nothing may serve"
    die "$image did not become ready: $(serving_now)"
  fi
  log "$new_container is ready; switching traffic from $live to $new"
  if ! switch_to "$new"; then
    remove_app "$new"
    rollback_to_live "$live" "$previous_image" \
      || die "$image failed and the rollback to $previous_image failed too: nothing may serve"
    die "switching to $image failed: $(serving_now)"
  fi
  state_set slot "$new"
  state_set current "$image"
  [ -z "$previous_image" ] || state_set previous "$previous_image"
  if docker_ inspect "$live_container" >/dev/null 2>&1; then
    log "draining $live_container for ${DRAIN_S}s, then stopping it"
    sleep "$DRAIN_S"
    docker_ stop -t "$STOP_TIMEOUT" "$live_container" >/dev/null 2>&1 || true
    docker_ rm -f "$live_container" >/dev/null 2>&1 || true
  fi
  prune_images "$image" "$previous_image"
  log "deployed $image (slot $new, port $PORT)"
}

# Removes the repository's other images from the host (keeps the current and the previous one,
# the rollback target); images in use are kept by Docker anyway.
prune_images() {  # CURRENT PREVIOUS
  local ref
  { docker_ images --format '{{.Repository}}:{{.Tag}}' "${1%:*}" || true; } | while read -r ref; do
    if [ "$ref" != "$1" ] && [ "$ref" != "${2:-}" ]; then
      docker_ rmi "$ref" >/dev/null 2>&1 && log "removed the old image $ref" || true
    fi
  done
}

serving_now() {
  if [ -n "$(state_get current)" ]; then echo "rolled back, $(state_get current) is serving"
  else echo "nothing was deployed before, nothing serves"; fi
}

# After a failed deploy: the proxy must point at the live slot with the previous image ready
# there. Usually nothing to do (nothing was switched); if the live container is gone or not
# ready, the previous image is started again in its slot.
rollback_to_live() {  # LIVE_SLOT PREVIOUS_IMAGE
  local live="$1" image="$2"
  if [ -z "$image" ]; then
    log "no previous deploy to roll back to"
    return 0
  fi
  local port
  port="$(host_port "$NAME-$live")"
  if running "$NAME-$live" && [ -n "$port" ] && http_ok "http://127.0.0.1:$port$READY_PATH"; then
    log "rolling back: $NAME-$live ($image) is ready"
  else
    log "rolling back: starting $image again in slot $live"
    start_app "$live" "$image"
    wait_ready "$NAME-$live" || { log "the previous image is not ready either"; return 1; }
  fi
  switch_to "$live" || { log "the proxy does not serve the previous image"; return 1; }
  log "rolled back to $image"
}

main() {
  [ $# -eq 1 ] || usage
  command -v curl >/dev/null || die "curl is needed"
  mkdir -p "$STATE_DIR"
  case "$1" in
    -h|--help) usage ;;
    --status)
      printf 'slot=%s\ncurrent=%s\nprevious=%s\n' \
        "$(state_get slot)" "$(state_get current)" "$(state_get previous)"
      return 0 ;;
  esac
  # One deploy at a time on this host.
  exec 9> "$STATE_DIR/lock"
  if command -v flock >/dev/null; then
    flock -w 600 9 || die "another deploy holds $STATE_DIR/lock"
  fi
  local image="$1"
  if [ "$image" = --rollback ]; then
    image="$(state_get previous)"
    [ -n "$image" ] || die "no previous deploy to roll back to"
    log "rolling back to $image"
  elif [ -n "$REGISTRY" ] && [[ "${image%%/*}" != *[.:]* ]] && [ "${image%%/*}" != localhost ]; then
    image="$REGISTRY/$image"  # no registry host in IMAGE
  fi
  [[ "$image" == *:* ]] || die "IMAGE needs a tag: $image"
  deploy "$image"
}

main "$@"
