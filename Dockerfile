# The serving image: gunicorn + Flask app, loads the champion from CREDIT_RISK_REGISTRY_URL.
#   docker build -t credit-risk-serving .
#   docker run -p 8000:8000 -v "$PWD/var/registry:/registry:ro" \
#     -e CREDIT_RISK_REGISTRY_URL=/registry credit-risk-serving
# Behind a corporate proxy / internal mirror (BuildKit; nothing of it lands in a layer):
#   DOCKER_BUILDKIT=1 docker build --network host --build-arg BASE_IMAGE=mirror/python:3.11-slim \
#     --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt \
#     --secret id=pip_index_url,src=index-url.txt -t credit-risk-serving .
# Where Docker Hub is out of reach: BASE_IMAGE="$(docker/base-image.sh)" (built from Debian).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    CREDIT_RISK_BIND=0.0.0.0:8000 \
    CREDIT_RISK_REGISTRY_URL=/registry \
    CREDIT_RISK_DECISION_LOG=/var/lib/credit-risk/decisions.jsonl \
    PROMETHEUS_MULTIPROC_DIR=/tmp/credit-risk-metrics

WORKDIR /app

# Dependencies first (cached while only the code changes); versions come from constraints.txt.
COPY pyproject.toml constraints.txt README.md ./
COPY credit_risk ./credit_risk
COPY serving ./serving
# Optional build secrets: `ca` (extra CA bundle for pip), `pip_index_url` (a file holding the URL).
RUN --mount=type=secret,id=ca --mount=type=secret,id=pip_index_url \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && if [ -s /run/secrets/pip_index_url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" && export PIP_INDEX_URL; fi \
    && pip install --no-cache-dir -c constraints.txt ".[serving]" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/credit-risk /registry \
    && chown 10001:10001 /var/lib/credit-risk

USER 10001:10001
EXPOSE 8000
# Healthy = ready: a verified model serves and decisions can be logged (/health is only alive).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["gunicorn", "-c", "serving/gunicorn.conf.py", "serving.wsgi:app"]
