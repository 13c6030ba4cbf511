"""gunicorn settings for the serving app (the container's command uses this file)."""

import multiprocessing
import os

bind = os.environ.get("CREDIT_RISK_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("CREDIT_RISK_WORKERS", multiprocessing.cpu_count()))
threads = 1
worker_class = "sync"
timeout = 30
graceful_timeout = 30
keepalive = 5
max_requests = 10000
max_requests_jitter = 500
accesslog = "-"
