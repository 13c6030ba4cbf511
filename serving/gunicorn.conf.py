"""gunicorn settings for the serving app: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`.

One process per CPU, one thread per process (scoring is CPU-bound: the workers are the
parallelism, and each worker's NumPy/XGBoost use one thread). `kill -HUP <master>` reloads
gracefully: new workers start, old ones finish their requests first. Environment:
CREDIT_RISK_BIND, CREDIT_RISK_WORKERS, CREDIT_RISK_THREADS (default 1), CREDIT_RISK_TIMEOUT_S,
CREDIT_RISK_ACCESS_LOG ("-" for stdout), PROMETHEUS_MULTIPROC_DIR (default: a fresh temporary
folder).
"""

import os
import secrets
import shutil
import tempfile

# One math thread per worker, before any worker imports NumPy or XGBoost.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


bind = os.environ.get("CREDIT_RISK_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("CREDIT_RISK_WORKERS") or _cpus())
# Also with the decision log in PostgreSQL: a request's commit costs ~0.1 ms of CPU and ~0.2 ms
# of waiting, and measured on 2 CPUs, sync workers served more and with a lower p99 than 8 gthread
# threads per worker (whose handoffs between the main and the request threads wait on the GIL).
threads = int(os.environ.get("CREDIT_RISK_THREADS") or 1)
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("CREDIT_RISK_TIMEOUT_S", "30"))  # a stuck worker is restarted
graceful_timeout = 30  # on HUP or TERM, time for in-flight requests to finish
keepalive = 5
backlog = 2048
# No periodic recycling: a new worker must import the stack and load the model (over a second),
# which showed up as p99 > 1 s in the benchmark; `timeout` still restarts a stuck worker.
max_requests = 0
preload_app = False  # each worker loads the model and runs its own registry watcher
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
accesslog = os.environ.get("CREDIT_RISK_ACCESS_LOG") or None  # metrics count every request
errorlog = "-"
loglevel = os.environ.get("CREDIT_RISK_LOG_LEVEL", "info")
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
