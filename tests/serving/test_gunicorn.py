"""The real server: gunicorn with serving/gunicorn.conf.py, two workers, metrics across them."""

import json
import signal
import time

import pytest

from tests.serving.servers import Gunicorn, metric


@pytest.fixture
def server(trained, start_gunicorn) -> Gunicorn:
    return start_gunicorn(trained[0].registry.url, reload_interval_s=1)


def test_gunicorn_serves_and_aggregates_metrics_over_workers(server, trained):
    version = trained[1]
    status, body = server.get("/api/v1/model")
    assert status == 200 and json.loads(body)["model_version"] == version
    application = server.application()
    for _ in range(40):
        status, body = server.get("/api/v1/predict", application)
        assert status == 200, body
    _, text = server.get("/metrics")
    assert metric(text.decode(), "credit_risk_http_requests_total",
                  endpoint="/api/v1/predict", status="200") == 40
    info = [x for x in text.decode().splitlines() if x.startswith("credit_risk_model_info{")]
    assert info and all(version in x for x in info if x.endswith(" 1.0"))


def test_graceful_reload_keeps_serving(server):
    application = server.application()
    server.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 4
    codes = []
    while time.time() < deadline:
        codes.append(server.get("/api/v1/predict", application)[0])
    assert codes and set(codes) == {200}
    assert server.stop() == 0


def test_chunked_body_over_the_limit_is_413(server):
    """No Content-Length: the body is cut at the limit, and that must be a 413, not a 400."""
    import http.client

    host, port = server.base.removeprefix("http://").split(":")
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
