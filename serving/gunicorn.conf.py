"""gunicorn settings for the serving app: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`.

One process per CPU. Scoring is CPU-bound and each worker's NumPy/XGBoost use one thread:
sync workers (CREDIT_RISK_THREADS=1, the default and the image's) are the fastest, with the
JSONL file log and with the PostgreSQL log behind its spool, where each request waits for its
own fdatasync (0.2 ms on the benchmark's disk); threads in one process contend for the GIL
(benchmarks/RESULTS.md). gthread workers (CREDIT_RISK_THREADS > 1) let the requests of a worker
overlap that wait and share one flush (`credit_risk.records.spool`,
`credit_risk.records.group_commit`): worth it where a flush is slow (a network disk, or
PostgreSQL without the spool).
`kill -HUP <master>` reloads gracefully: new workers start, old ones finish their requests
first. The address, workers, threads, timeout and logs are the serving settings
(credit_risk.config.ServingSettings: CREDIT_RISK_BIND, CREDIT_RISK_WORKERS, ...);
PROMETHEUS_MULTIPROC_DIR defaults to a fresh temporary folder.
"""

import os
import secrets
import shutil
import tempfile

from credit_risk.config import ServingSettings

# One math thread per worker, before any worker imports NumPy or XGBoost.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_serving = ServingSettings()  # validated: a bad value stops gunicorn with the setting's name
bind = _serving.bind
workers = _serving.workers or _cpus()
# A sync worker (threads=1) serves one request at a time: with the decision log in PostgreSQL
# each request waits for a flush of its own (a spool fdatasync or a WAL flush: 0.2 ms on the
# benchmark's disk, several ms on a busy or network one) with its CPU idle. gthread workers
# overlap those waits, and one flush covers all the requests waiting in a worker, but their
# threads take turns on one GIL (benchmarks/RESULTS.md, serving-postgres). gthread also keeps
# HTTP connections alive; behind a buffering proxy (deploy/deploy.sh's nginx) sync is safe.
threads = _serving.threads
worker_class = "gthread" if threads > 1 else "sync"
timeout = _serving.timeout_s  # a stuck worker is restarted
graceful_timeout = 30  # on HUP or TERM, time for in-flight requests to finish
keepalive = 5
backlog = 2048
# No periodic recycling: a new worker must import the stack and load the model (over a second),
# which showed up as p99 > 1 s in the benchmark; `timeout` still restarts a stuck worker.
max_requests = 0
preload_app = False  # each worker loads the model and runs its own registry watcher
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = _serving.access_log  # off by default: the metrics count every request
errorlog = "-"
loglevel = _serving.log_level
proc_name = "credit-risk-serving"
# Proxy trust has one switch, the app's CREDIT_RISK_TRUSTED_PROXIES (werkzeug's ProxyFix in
# serving.security). gunicorn itself believes no forwarded header from any peer: its default
# (FORWARDED_ALLOW_IPS=127.0.0.1,::1) would take X-Forwarded-Proto / -Ssl from any local
# client as HTTPS even with CREDIT_RISK_TRUSTED_PROXIES=0.
forwarded_allow_ips = ""

_created_metrics_dir = None


def on_starting(server):
    """Prometheus multi-process mode: one folder of metric files shared by the workers; one
    session secret for all workers (also those a HUP restarts) when none is configured."""
    global _created_metrics_dir
    # An internal handshake with the workers (serving.security), not a setting.
    os.environ.setdefault("CREDIT_RISK_GENERATED_SECRET", secrets.token_hex(32))
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):  # stale files of an earlier run would add up
            if name.endswith(".db"):
                os.remove(os.path.join(path, name))
    else:
        path = _created_metrics_dir = tempfile.mkdtemp(prefix="credit-risk-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    server.log.info("Prometheus multi-process metrics in %s", path)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _created_metrics_dir:
        shutil.rmtree(_created_metrics_dir, ignore_errors=True)
