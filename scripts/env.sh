# Project-local environment for Airflow and credit-risk (sourced by scripts; `source scripts/env.sh`).
ROOT="${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR="${AIRFLOW__CORE__EXECUTOR:-LocalExecutor}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export CREDIT_RISK_DATA_DIR="${CREDIT_RISK_DATA_DIR:-$ROOT/var/data}"
export CREDIT_RISK_RUNS_DIR="${CREDIT_RISK_RUNS_DIR:-$ROOT/var/runs}"
export CREDIT_RISK_REGISTRY_URL="${CREDIT_RISK_REGISTRY_URL:-$ROOT/var/registry}"
export CREDIT_RISK_DECISION_LOG="${CREDIT_RISK_DECISION_LOG:-$ROOT/var/decisions/decisions.jsonl}"
export GX_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 SCARF_ANALYTICS=false
mkdir -p "$ROOT/var"
