# Two images from one pinned dependency set (constraints.txt), one Dockerfile:
#   serving  gunicorn + the Flask app; loads the champion from CREDIT_RISK_REGISTRY_URL (a
#            folder or s3://), logs decisions to a file or PostgreSQL. No Airflow, Great
#            Expectations, Evidently, pandas, scikit-learn or joblib.
#   airflow  Airflow 3.3 (CeleryExecutor-ready) with the credit_risk package and the repo's
#            dags/, plugins/ and great_expectations/: api-server, scheduler, dag-processor,
#            triggerer and Celery worker all run this image (docker-compose.yml).
#
#   sha=$(git rev-parse --short HEAD)
#   DOCKER_BUILDKIT=1 docker build --target serving -t credit-risk-serving:$sha \
#     --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ) .
#   DOCKER_BUILDKIT=1 docker build --target airflow -t credit-risk-airflow:$sha ... .
# Behind a corporate proxy / internal mirror (BuildKit; nothing of it lands in a layer):
#   --build-arg BASE_IMAGE=mirror/python:3.11-slim \
#   --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt --secret id=pip_index_url,src=index-url.txt
# Where Docker Hub is out of reach: --build-arg BASE_IMAGE="$(docker/base-image.sh)" (Debian).
ARG BASE_IMAGE=python:3.11-slim

# ---- common base: environment shared by both targets -------------------------------------
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    GX_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    SCARF_ANALYTICS=false

# ---- build stages: a virtualenv at /opt/credit-risk, copied into the runtime stages --------
# Optional build secrets: `ca` (extra CA bundle for pip), `pip_index_url` (a file holding the
# URL); PIP_CERT / PIP_INDEX_URL exist only inside the RUN steps that mount them.
# Dependencies first, resolved from pyproject.toml with empty packages (and README) in place of
# the code, so that a code or README change reinstalls only the project (--no-deps).
FROM base AS build
WORKDIR /src
RUN python -m venv /opt/credit-risk
COPY pyproject.toml constraints.txt ./

FROM build AS build-serving
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" && export PIP_INDEX_URL; fi \
    && mkdir -p credit_risk serving && touch README.md credit_risk/__init__.py serving/__init__.py \
    && /opt/credit-risk/bin/pip install -c constraints.txt ".[serving,postgres,s3]" \
    && rm -rf README.md credit_risk serving build ./*.egg-info
# Only the serving slice of the package: config, errors, spec, scoring, registry, records, the
# built-in specs and the CLI's serving-side commands (tests/serving/test_dockerfile.py imports
# the app and `credit-risk predict` from exactly these files).
COPY README.md ./
COPY credit_risk/__init__.py credit_risk/errors.py credit_risk/tables.py ./credit_risk/
COPY credit_risk/config ./credit_risk/config
COPY credit_risk/spec ./credit_risk/spec
COPY credit_risk/scoring ./credit_risk/scoring
COPY credit_risk/registry ./credit_risk/registry
COPY credit_risk/records ./credit_risk/records
COPY credit_risk/datasets/specs ./credit_risk/datasets/specs
COPY credit_risk/cli/__init__.py credit_risk/cli/predict.py credit_risk/cli/registry.py \
     credit_risk/cli/progress.py credit_risk/cli/usage.py credit_risk/cli/views.py \
     credit_risk/cli/decisions.py credit_risk/cli/outcomes.py ./credit_risk/cli/
COPY credit_risk/cli/predict_io.py ./credit_risk/cli/
COPY serving ./serving
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" && export PIP_INDEX_URL; fi \
    && /opt/credit-risk/bin/pip install --no-deps . \
    && /opt/credit-risk/bin/pip check

FROM build AS build-airflow
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" && export PIP_INDEX_URL; fi \
    && mkdir -p credit_risk serving && touch README.md credit_risk/__init__.py serving/__init__.py \
    && /opt/credit-risk/bin/pip install -c constraints.txt ".[pipeline,postgres,s3,celery]" \
    && rm -rf README.md credit_risk serving build ./*.egg-info
COPY README.md ./
COPY credit_risk ./credit_risk
COPY serving ./serving
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url \
    --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" && export PIP_INDEX_URL; fi \
    && /opt/credit-risk/bin/pip install --no-deps . \
    && /opt/credit-risk/bin/pip check

# ---- airflow: every Airflow component, with the pipeline --------------------------------
FROM base AS airflow
ENV PATH=/opt/credit-risk/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CREDIT_RISK_GX_DIR=/opt/airflow/great_expectations \
    CREDIT_RISK_DATA_DIR=/opt/airflow/data
WORKDIR /opt/airflow
COPY --from=build-airflow /opt/credit-risk /opt/credit-risk
COPY dags ./dags
COPY plugins ./plugins
COPY great_expectations ./great_expectations
COPY docker/airflow-init.sh /usr/local/bin/credit-risk-init
# uid 50000 as in the official Airflow image. AIRFLOW_HOME is its own (airflow.cfg is written
# there at start); the folders that named volumes mount on are created here so that a fresh
# volume belongs to that user. The code (dags, plugins, GX context) stays root's, read-only.
RUN useradd --create-home --uid 50000 --gid 0 --shell /bin/bash airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/data /opt/airflow/auth \
    && chown 50000:0 /opt/airflow \
    && chown -R 50000:0 /opt/airflow/logs /opt/airflow/data /opt/airflow/auth
USER 50000:0
EXPOSE 8080
CMD ["airflow", "version"]
# OCI labels last: a new revision or build time changes no layer above.
ARG SOURCE=https://github.com/credit-risk/credit-risk
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.title="credit-risk-airflow" \
      org.opencontainers.image.licenses="Apache-2.0"

# ---- serving (the last stage: the default target of a plain `docker build .`) ------------
# gunicorn + Flask, non-root, healthy = ready.
FROM base AS serving
ENV PATH=/opt/credit-risk/bin:$PATH \
    CREDIT_RISK_BIND=0.0.0.0:8000 \
    CREDIT_RISK_REGISTRY_URL=/registry \
    CREDIT_RISK_DECISION_LOG=/var/lib/credit-risk/decisions.jsonl \
    CREDIT_RISK_DECISION_LOG_SPOOL=/var/lib/credit-risk/spool \
    PROMETHEUS_MULTIPROC_DIR=/tmp/credit-risk-metrics
WORKDIR /app
COPY --from=build-serving /opt/credit-risk /opt/credit-risk
COPY serving/gunicorn.conf.py ./serving/gunicorn.conf.py
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/credit-risk/spool /registry \
    && chown 10001:10001 /var/lib/credit-risk /var/lib/credit-risk/spool
USER 10001:10001
EXPOSE 8000
# Healthy = ready: a verified model serves and decisions can be logged (/health is only alive).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["gunicorn", "-c", "serving/gunicorn.conf.py", "serving.wsgi:app"]
# OCI labels last: a new revision or build time changes no layer above.
ARG SOURCE=https://github.com/credit-risk/credit-risk
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.title="credit-risk-serving" \
      org.opencontainers.image.licenses="Apache-2.0"
