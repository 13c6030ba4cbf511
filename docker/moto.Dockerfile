# Stand-in for the S3-compatible store (MinIO by default) where Docker Hub is out of reach:
# moto's S3 server from PyPI, pinned by constraints.txt, on the local base image. Any access
# key is accepted; the data lives in memory (enough for the stack test, not for keeping).
ARG BASE_IMAGE=credit-risk/python:3.11-bookworm
FROM ${BASE_IMAGE}
WORKDIR /srv
COPY constraints.txt ./
RUN --mount=type=secret,id=ca --mount=type=cache,target=/root/.cache/pip \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && pip install -c constraints.txt "moto[s3]" flask flask-cors \
    && useradd --uid 10002 --shell /usr/sbin/nologin moto
USER 10002
EXPOSE 9000
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9000/moto-api/', timeout=2)"]
CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
