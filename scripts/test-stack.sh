#!/usr/bin/env bash
# `make test-stack`: the docker compose stack, built and run for real, then torn down.
#
#  1. the engine and the base image (docker/base-image.sh: starts dockerd, builds the Debian
#     stand-in for python:3.11-slim when Docker Hub is out of reach)
#  2. both image targets (serving, airflow) from the committed tree (git archive HEAD), tagged
#     with the git sha, and the PostgreSQL / Redis / S3 (moto) stand-ins
#  3. docker-compose up (docker-compose.yml + docker-compose.local.yml) with fresh random
#     secrets, small training settings, its own project name and free ports
#  4. scripts/stack_checks.py: trigger credit_risk_training over the REST API, wait for
#     success, serving picks the champion up from the object store and scores
#     examples/application.json, the decisions reach PostgreSQL, credit_risk_monitoring runs
#  5. docker-compose down --volumes, also on failure (after printing the services' logs)
#
# Environment: STACK_KEEP=1 leaves the stack up (no teardown); STACK_BUILD_FROM=worktree
# builds from the working tree instead of HEAD; STACK_NO_CACHE=1 builds every image without
# the layer cache (a clean CI machine's timing; with BASE_IMAGE_NAME=<new name> the base image
# too); DOCKER_CA_BUNDLE (default the system bundle) is the pip CA secret of the builds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DOCKER=/usr/bin/docker            # Debian's CLI: BuildKit built in
COMPOSE=/usr/bin/docker-compose   # Debian's docker-compose 1.29
CA="${DOCKER_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
export DOCKER_BUILDKIT=1
t0=$(date +%s)
# An engine this script starts (a clean machine) is stopped again at the end; one that was
# already running (a developer's) is left alone.
engine_was_up=0
"$DOCKER" info >/dev/null 2>&1 && engine_was_up=1
stop_our_engine() { [ "$engine_was_up" = 1 ] || "$ROOT/docker/stop-engine.sh"; }
trap stop_our_engine EXIT
step() { printf '\n== [%4ss] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

step "engine and base image"
BASE_IMAGE="$(docker/base-image.sh)"
if [ ! -x "$COMPOSE" ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose
fi

SHA="$(git rev-parse --short HEAD)"
REVISION="$(git rev-parse HEAD)"
CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
SOURCE="$(git remote get-url origin 2>/dev/null || true)"
work="$(mktemp -d)"
project="credit-risk-stack-$$"
envfile="$work/stack.env"
compose=("$COMPOSE" --project-name "$project" --env-file "$envfile"
         -f "$ROOT/docker-compose.yml" -f "$ROOT/docker-compose.local.yml")

# The build context: the committed tree (what CI would build), or the working tree on request.
context="$ROOT"
if [ "${STACK_BUILD_FROM:-head}" = head ]; then
  context="$work/src"
  mkdir -p "$context"
  git archive HEAD | tar -x -C "$context"
fi

build() {  # build <tag> <dockerfile> [target]
  local tag="$1" file="$2" target="${3:-}"
  "$DOCKER" build --network host --secret "id=ca,src=$CA" ${STACK_NO_CACHE:+--no-cache} \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "REVISION=$REVISION" \
    --build-arg "CREATED=$CREATED" ${SOURCE:+--build-arg "SOURCE=$SOURCE"} \
    ${target:+--target "$target"} \
    -f "$context/$file" -t "$tag" --progress plain "$context" >"$work/build-${tag//[:\/]/_}.log" 2>&1 \
    || { tail -n 60 "$work/build-${tag//[:\/]/_}.log"; echo "build of $tag failed" >&2; return 1; }
  echo "built $tag"
}

step "images (tag $SHA)"
build "credit-risk-serving:$SHA" Dockerfile serving
build "credit-risk-airflow:$SHA" Dockerfile airflow
# The serving image holds the serving slice only (DESIGN: no training or orchestration stack).
"$DOCKER" run --rm "credit-risk-serving:$SHA" python -c '
import importlib.util
for name in ("pandas", "sklearn", "joblib", "imblearn", "airflow", "great_expectations",
             "evidently", "pyarrow"):
    assert importlib.util.find_spec(name) is None, f"{name} in the serving image"
for name in ("xgboost", "gunicorn", "s3fs", "psycopg", "serving", "credit_risk"):
    assert importlib.util.find_spec(name) is not None, f"{name} missing"
'
"$DOCKER" run --rm "credit-risk-airflow:$SHA" python -c \
  'import airflow, credit_risk.pipeline, great_expectations, evidently, airflow.providers.celery' \
  >"$work/airflow-imports.log" 2>&1 || { tail -n 30 "$work/airflow-imports.log"; exit 1; }
"$DOCKER" image inspect "credit-risk-serving:$SHA" --format '{{json .Config.Labels}}' \
  | grep -q "\"org.opencontainers.image.revision\":\"$REVISION\""
echo "images: serving without the pipeline, airflow with it, labelled with $REVISION"
build "credit-risk/postgres:15-bookworm" docker/postgres.Dockerfile
build "credit-risk/redis:7-bookworm" docker/redis.Dockerfile
build "credit-risk/moto-s3:5" docker/moto.Dockerfile

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
AIRFLOW_PORT="$(free_port)"
SERVING_PORT="$(free_port)"
cat >"$envfile" <<EOF
POSTGRES_USER=credit_risk
POSTGRES_PASSWORD=$(secret)
REDIS_PASSWORD=$(secret)
S3_ACCESS_KEY=$(secret)
S3_SECRET_KEY=$(secret)
S3_BUCKET=credit-risk
AIRFLOW_ADMIN_PASSWORD=$(secret)
AIRFLOW_FERNET_KEY=$(python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())')
AIRFLOW_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(64))')
SERVING_API_KEYS=$(secret)
SERVING_SECRET_KEY=$(secret)
AIRFLOW_PORT=$AIRFLOW_PORT
AIRFLOW_BASE_URL=http://127.0.0.1:$AIRFLOW_PORT
SERVING_PORT=$SERVING_PORT
SERVING_RELOAD_INTERVAL_S=2
AIRFLOW_USE_JOB_SCHEDULE=False
CREDIT_RISK_N_CUSTOMERS=3000
CREDIT_RISK_SEARCH_ITERATIONS=1
CREDIT_RISK_CV_FOLDS=2
IMAGE_TAG=$SHA
BASE_IMAGE=$BASE_IMAGE
POSTGRES_IMAGE=credit-risk/postgres:15-bookworm
REDIS_IMAGE=credit-risk/redis:7-bookworm
S3_IMAGE=credit-risk/moto-s3:5
EOF

teardown() {
  status=$?
  set +e
  if [ "$status" -ne 0 ]; then
    step "FAILED ($status): the services' logs"
    "${compose[@]}" ps
    "${compose[@]}" logs --no-color --tail 80
  fi
  if [ "${STACK_KEEP:-0}" = 1 ]; then
    echo "STACK_KEEP=1: left up; stop with: ${compose[*]} down --volumes"
  else
    step "down --volumes"
    "${compose[@]}" down --volumes --remove-orphans --timeout 20
  fi
  rm -rf "$work"
  stop_our_engine
  step "total $(( $(date +%s) - t0 ))s, exit $status"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

step "docker-compose up ($project: Airflow on :$AIRFLOW_PORT, serving on :$SERVING_PORT)"
"${compose[@]}" up -d --no-build

step "checks"
set -a; . "$envfile"; set +a
python3 "$ROOT/scripts/stack_checks.py" \
  --airflow "http://127.0.0.1:$AIRFLOW_PORT" --serving "http://127.0.0.1:$SERVING_PORT" \
  --application "$ROOT/examples/application.json" -- "${compose[@]}"
