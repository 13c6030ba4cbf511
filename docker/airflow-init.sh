#!/usr/bin/env bash
# The stack's one-off init job (docker-compose.yml `airflow-init`), idempotent: run it again
# after an upgrade and it only migrates.
#   1. the decisions database next to Airflow's (same server, same owner)
#   2. Airflow's metadata database: `airflow db migrate`
#   3. the first user: the simple auth manager's password file (admin, AIRFLOW_ADMIN_PASSWORD)
#   4. the decision log's schema: `credit-risk decisions migrate`
#   5. the bucket holding the registry and the run folders
#   6. the demo source tables (synthetic, CREDIT_RISK_N_CUSTOMERS), unless they exist
set -euo pipefail
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD (.env)}"
: "${CREDIT_RISK_DECISION_LOG:?}" "${S3_BUCKET:?}"

echo "init: decisions database"
python - <<'PY'
import os

import psycopg
from sqlalchemy.engine import make_url

url = make_url(os.environ["CREDIT_RISK_DECISION_LOG"])
with psycopg.connect(host=url.host, port=url.port or 5432, user=url.username,
                     password=url.password, dbname="postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,)).fetchone():
        conn.execute(f'CREATE DATABASE "{url.database}"')
        print(f"created database {url.database}")
PY

echo "init: airflow db migrate"
airflow db migrate

echo "init: the first user (admin)"
python - <<'PY'
import json
import os

path = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
tmp = f"{path}.tmp"
with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
    json.dump({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}, f)
os.replace(tmp, path)
PY

echo "init: credit-risk decisions migrate"
credit-risk decisions migrate

echo "init: bucket s3://${S3_BUCKET}"
python - <<'PY'
import os

import s3fs

fs = s3fs.S3FileSystem()
bucket = os.environ["S3_BUCKET"]
if not fs.exists(bucket):
    fs.mkdir(bucket)
    print(f"created bucket {bucket}")
PY

spec="${CREDIT_RISK_DATASET_SPEC:-lauki_synthetic}"
if [ -d "${CREDIT_RISK_DATA_DIR}/${spec}" ] && [ -n "$(ls -A "${CREDIT_RISK_DATA_DIR}/${spec}")" ]; then
  echo "init: demo data in ${CREDIT_RISK_DATA_DIR}/${spec} already"
else
  echo "init: demo data (${CREDIT_RISK_N_CUSTOMERS:-50000} customers)"
  credit-risk generate-data --customers "${CREDIT_RISK_N_CUSTOMERS:-50000}"
fi
echo "init: done"
