"""Real servers for the serving tests, started one way: gunicorn with serving/gunicorn.conf.py
(the production server, in its own process group of workers) or the app on a threaded werkzeug
server in this process; the small HTTP client the tests talk to them with, and the reading
of a Prometheus metric (from a Flask test client or a /metrics text)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

import pytest
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None) -> tuple[int, bytes]:
    """GET (or POST a JSON body); (status, body) for error statuses too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metric(source, name: str, **labels: str) -> float:
    """The sum of metric `name` over the samples with these labels (0 when there is none)."""
    text = source if isinstance(source, str) else source.get("/metrics").get_data(as_text=True)
    total = 0.0
    for line in text.splitlines():
        if (line.startswith((name + "{", name + " "))
                and all(f'{k}="{v}"' in line for k, v in labels.items())):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Gunicorn:
    """A running gunicorn master: its base URL, process and combined output file."""

    base: str
    proc: subprocess.Popen
    log: Path

    def get(self, path: str, body: dict | None = None) -> tuple[int, bytes]:
        return http(self.base + path, body)

    def json(self, path: str, body: dict | None = None) -> dict:
        return json.loads(self.get(path, body)[1])

    def application(self) -> dict:
        """A valid application: the default of every input of the served model."""
        return {f["name"]: f["default"] for f in self.json("/api/v1/model")["inputs"]}

    def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> None:
        """Poll `condition` (connection errors count as not yet); fail if gunicorn exits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if condition():
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                pytest.fail(f"gunicorn exited ({self.proc.returncode}):\n{self.output()}")
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout} s; gunicorn output:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self) -> int:
        """SIGTERM (a graceful shutdown); the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=40)


@contextmanager
def gunicorn(registry_url: str, folder: Path, *, reload_interval_s: float = 1.0,
             workers: int = 2, extra_env: dict[str, str] | None = None) -> Iterator[Gunicorn]:
    """gunicorn serving the champion of `registry_url` (decision log, metrics and output under
    `folder`; `extra_env` overrides), ready on every worker it started; stopped on exit."""
    port = free_port()
    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": str(registry_url),
           "CREDIT_RISK_BIND": f"127.0.0.1:{port}", "CREDIT_RISK_WORKERS": str(workers),
           "CREDIT_RISK_DECISION_LOG": str(folder / "decisions.jsonl"),
           "CREDIT_RISK_RELOAD_INTERVAL_S": str(reload_interval_s),
           "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"), **(extra_env or {})}
    log = folder / "gunicorn.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads: it never fills up
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py",
             "serving.wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Gunicorn(f"http://127.0.0.1:{port}", proc, log)
    try:
        server.wait_until(lambda: server.get("/ready")[0] == 200)
        yield server
    finally:
        server.stop()


@contextmanager
def in_thread(app) -> Iterator[str]:
    """The app on a threaded werkzeug server in this process; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def chunked_form(base: str, path: str, mib: int) -> int:
    """POST `mib` MiB of form body chunked to `path`: the status, -1 if the server hung up."""
    host, port = base.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=60)
    chunk = b"a=" + b"b" * (1 << 20)
    try:
        conn.request("POST", path, body=iter([chunk] * mib), encode_chunked=True,
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        response.read()
        return response.status
    except (ConnectionError, OSError):  # the server may stop reading after the 413
        return -1
    finally:
        conn.close()
