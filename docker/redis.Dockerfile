# Stand-in for the official `redis` image where Docker Hub is out of reach: redis-server from
# Debian bookworm on the local base image. docker-compose.yml's command
# (redis-server --requirepass ...) and healthcheck (redis-cli ping) work on both.
ARG BASE_IMAGE=credit-risk/python:3.11-bookworm
FROM ${BASE_IMAGE}
# Debian's packages, not pinned: the stand-in follows bookworm's security updates.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/redis --shell /usr/sbin/nologin redis \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER 999:999
EXPOSE 6379
CMD ["redis-server"]
