"""WSGI entry point: `gunicorn -c serving/gunicorn.conf.py serving.wsgi:app`. The process's
logging is set up here (the app's messages at INFO on stderr), not in the app factory."""

import gc
import logging
import os

# One math thread per worker: the workers are the parallelism. Set before NumPy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from serving import create_app  # noqa: E402

logging.basicConfig(level=logging.INFO)
app = create_app()
# The app and its model live as long as the worker: kept out of the garbage collector's full
# passes, which otherwise walk them every few hundred batch requests (~90 ms each; a 1,000-row
# batch costs ~10% more CPU on average, benchmarks/batch.md).
gc.collect()
gc.freeze()
