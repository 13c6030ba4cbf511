"""The real server: gunicorn with serving/gunicorn.conf.py, two workers, metrics across them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def server(trained, tmp_path):
    settings, version = trained
    port = _free_port()
    env = {**os.environ, "CREDIT_RISK_REGISTRY_URL": settings.registry_url,
           "CREDIT_RISK_BIND": f"127.0.0.1:{port}", "CREDIT_RISK_WORKERS": "2",
           "CREDIT_RISK_DECISION_LOG": str(tmp_path / "decisions.jsonl"),
           "CREDIT_RISK_RELOAD_INTERVAL_S": "1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "serving/gunicorn.conf.py", "serving.wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if _get(base + "/ready")[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            pytest.fail(proc.stdout.read().decode())
        time.sleep(0.2)
    yield base, proc, version
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)


def test_gunicorn_serves_and_aggregates_metrics_over_workers(server):
    base, proc, version = server
    status, body = _get(base + "/api/v1/model")
    assert status == 200 and json.loads(body)["model_version"] == version
    application = {f["name"]: f["default"] for f in json.loads(body)["inputs"]}
    for _ in range(40):
        status, body = _get(base + "/api/v1/predict", application)
        assert status == 200, body
    _, text = _get(base + "/metrics")
    lines = [x for x in text.decode().splitlines()
             if x.startswith("credit_risk_http_requests_total{")
             and 'endpoint="/api/v1/predict"' in x and 'status="200"' in x]
    assert sum(float(x.rsplit(" ", 1)[1]) for x in lines) == 40
    info = [x for x in text.decode().splitlines() if x.startswith("credit_risk_model_info{")]
    assert info and all(version in x for x in info if x.endswith(" 1.0"))


def test_graceful_reload_keeps_serving(server):
    base, proc, _ = server
    status, body = _get(base + "/api/v1/model")
    application = {f["name"]: f["default"] for f in json.loads(body)["inputs"]}
    proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 4
    codes = []
    while time.time() < deadline:
        codes.append(_get(base + "/api/v1/predict", application)[0])
    assert codes and set(codes) == {200}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def test_chunked_body_over_the_limit_is_413(server):
    """No Content-Length: the body is cut at the limit, and that must be a 413, not a 400."""
    import http.client

    base, _, _ = server
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    chunk = b'{"applications": [' + b" " * (1 << 20)
    body = iter([chunk] * 17)  # 17 MiB, over the 16 MiB default, sent chunked
    conn.request("POST", "/api/v1/predict/batch", body=body,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                 encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 413, response.read()[:300]
    assert "error" in json.loads(response.read())
    conn.close()
