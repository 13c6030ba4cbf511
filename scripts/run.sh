#!/usr/bin/env bash
# `make run`: data if absent, Airflow standalone, one training run, then the serving app.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
source scripts/env.sh

SERVE_PORT="${CREDIT_RISK_PORT:-8000}"
AIRFLOW_PORT="${AIRFLOW__API__PORT:-8080}"
pids=()
cleanup() {
  local status=$?
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$status"
}
trap cleanup INT TERM EXIT

# Generating data is an explicit step (ingest never does it): only on a first run, when none of
# the default tables exists; a table missing from an existing dataset fails the run, naming it.
data="$CREDIT_RISK_DATA_DIR/lauki_synthetic"
if [ ! -e "$data/customers.csv" ] && [ ! -e "$data/loans.csv" ] && [ ! -e "$data/bureau.csv" ]; then
  echo "first run: generating the default synthetic dataset (credit-risk generate-data)..."
  credit-risk generate-data
fi

echo "starting Airflow standalone (log: $AIRFLOW_HOME/standalone.log)..."
mkdir -p "$AIRFLOW_HOME"
setsid airflow standalone >"$AIRFLOW_HOME/standalone.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 180); do
  curl -sf "http://localhost:$AIRFLOW_PORT/api/v2/monitor/health" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -30 "$AIRFLOW_HOME/standalone.log"; exit 1; }
  sleep 2
done
for _ in $(seq 1 60); do
  airflow dags list -o plain 2>/dev/null | grep -q credit_risk_training && break
  sleep 2
done

run_id="quickstart__$(date -u +%Y%m%dT%H%M%S)"
airflow dags unpause credit_risk_training >/dev/null
airflow dags trigger credit_risk_training --run-id "$run_id" >/dev/null
echo "training: DAG run $run_id (follow it in the Airflow UI)..."
state=""
for _ in $(seq 1 360); do
  state=$(airflow dags list-runs credit_risk_training -o json 2>/dev/null | grep '^\[' \
    | python -c "import json,sys; print(next((r['state'] for r in json.load(sys.stdin) if r['run_id']=='$run_id'), ''))" || true)
  case "$state" in success|failed) break ;; esac
  sleep 5
done
echo "training run: ${state:-unknown}"
[ "$state" = success ] || { echo "see the task logs in the Airflow UI"; }
credit-risk models list || true

echo "starting the serving app..."
CREDIT_RISK_BIND="0.0.0.0:$SERVE_PORT" setsid gunicorn -c serving/gunicorn.conf.py serving.wsgi:app \
  >"$ROOT/var/serving.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do
  curl -sf "http://localhost:$SERVE_PORT/ready" >/dev/null && break
  sleep 1
done

password=$(python -c "import json,sys; print(next(iter(json.load(open(sys.argv[1])).values())))" \
  "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" 2>/dev/null || echo "see $AIRFLOW_HOME/standalone.log")
cat <<EOF

  Airflow UI   http://localhost:$AIRFLOW_PORT   login: admin / $password
  Web form     http://localhost:$SERVE_PORT/
  API          curl -s -X POST http://localhost:$SERVE_PORT/api/v1/predict \\
                 -H 'Content-Type: application/json' -d @examples/application.json

  Ctrl-C stops Airflow and the app.
EOF
wait "${pids[@]}"
