"""Item 5 of issue 8: the decision log is written whole or not at all, and when it cannot be
written no decision is returned: 503 with Retry-After (API, batch, form), `credit-risk predict`
fails, /ready turns false until a write can succeed again, a metric counts the failures.
Full disks are real (a 64 KiB tmpfs) where the kernel makes the short write."""

import csv
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from credit_risk.records.backends import decision_log_at
from credit_risk.records.decisions import DecisionLogError
from serving import create_app
from tests.serving.servers import metric


def _mount(path: Path, *options: str) -> None:
    path.mkdir(exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=64k", *options)),
                             "tmpfs", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, f"a tmpfs is needed (root): {result.stderr}"


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB filesystem; `fill()` takes every free page, `free()` gives them back,
    `read_only(flag)` remounts it."""
    disk = tmp_path / "disk"
    _mount(disk)

    class Disk:
        path = disk
        filler = disk / "filler"

        def fill(self):
            fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)

        def free(self):
            self.filler.unlink()

        def read_only(self, flag):
            subprocess.run(["mount", "-o", f"remount,{'ro' if flag else 'rw'}", str(disk)],
                           check=True)

    yield Disk()
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "a half line was left"
    return [json.loads(line) for line in data.splitlines()]  # every line parses


def _decision(i=0):
    return {"probability_of_default": 0.1, "credit_score": 700, "note": "x" * 300, "i": i}


def test_a_short_write_on_a_full_disk_leaves_no_partial_batch(small_disk):
    log = decision_log_at(small_disk.path / "d.jsonl")
    log.write("first", [{"a": 1}], [_decision()])
    small_disk.fill()  # the log's last page has room for a few lines only: a real short write
    with pytest.raises(DecisionLogError, match="ENOSPC"):
        log.write("batch", [{"a": i} for i in range(20)], [_decision(i) for i in range(20)])
    assert [r["request_id"] for r in _lines(log.path)] == ["first"]  # none of the 20
    assert log.failing and log.failures == 1 and not log.ok(min_interval_s=0)
    small_disk.free()
    assert log.ok(min_interval_s=0)  # a probe, nothing added to the log
    assert [r["request_id"] for r in _lines(log.path)] == ["first"]
    log.write("again", [{"a": i} for i in range(20)], [_decision(i) for i in range(20)])
    assert len(_lines(log.path)) == 21 and not log.failing


def test_a_failure_after_some_bytes_is_cut_back(tmp_path):
    """A file-size limit (RLIMIT_FSIZE) lets the kernel take 700 bytes of a batch, then
    refuses (EFBIG): the batch is refused and the file cut back to whole lines."""
    path = tmp_path / "d.jsonl"
    code = f"""
import json, resource, signal
from credit_risk.records.decisions import DecisionLogError, JsonlDecisionLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = JsonlDecisionLog({str(path)!r})
decision = {_decision()!r}
log.write("ok", [{{"a": 1}}], [decision])
resource.setrlimit(resource.RLIMIT_FSIZE, (log.path.stat().st_size + 700, -1))
try:
    log.write("torn", [{{"a": 1}}, {{"a": 2}}], [decision, decision])
except DecisionLogError as exc:
    print(json.dumps({{"refused": str(exc), "failing": log.failing}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    result = json.loads(out)
    assert "EFBIG" in result["refused"] and result["failing"]
    assert [r["request_id"] for r in _lines(path)] == ["ok"]


@pytest.fixture
def app_on_small_disk(trained, small_disk):
    settings = trained[0].model_copy(update={"decision_log": small_disk.path / "d.jsonl"})
    app = create_app(settings, watch=False)
    app.extensions["credit_risk"]["decisions"].probe_interval_s = 0  # no wait in the test
    return app, app.test_client(), small_disk


def _check_fail_closed(client, application, csrf, log_path):
    logged = log_path.read_bytes() if log_path.exists() else b""
    before = metric(client, "credit_risk_decision_log_failures_total")
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert "not be recorded" in r.json["error"] and "probability_of_default" not in r.json
    r = client.post("/api/v1/predict/batch", json={"applications": [application] * 20})
    assert r.status_code == 503 and r.headers["Retry-After"] and "results" not in r.json
    r = client.post("/", data={**{k: "" if v is None else str(v)
                                  for k, v in application.items()},
                               "csrf_token": csrf(client)})
    html = r.get_data(as_text=True)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "could not be recorded" in html and 'id="pd"' not in html
    assert metric(client, "credit_risk_decision_log_failures_total") == before + 3
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json["decision_log"]["ok"] is False
    assert client.get("/health").status_code == 200
    assert (log_path.read_bytes() if log_path.exists() else b"") == logged  # nothing torn


def test_full_disk_is_503_everywhere_and_ready_recovers(app_on_small_disk, application, csrf):
    app, client, disk = app_on_small_disk
    assert client.post("/api/v1/predict", json=application).status_code == 200
    disk.fill()  # the log's last page still takes a few decisions, then the disk is full
    statuses = [client.post("/api/v1/predict", json=application).status_code for _ in range(8)]
    assert 503 in statuses and set(statuses[statuses.index(503):]) == {503}
    _lines(disk.path / "d.jsonl")  # whole lines only
    _check_fail_closed(client, application, csrf, disk.path / "d.jsonl")
    assert "ENOSPC" in client.get("/ready").json["decision_log"]["last_error"]
    disk.free()
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["decision_log"]["ok"] is True
    assert client.post("/api/v1/predict/batch",
                       json={"applications": [application] * 20}).status_code == 200
    assert len(_lines(disk.path / "d.jsonl")) == 1 + statuses.count(200) + 20


def test_read_only_log_is_503_and_ready_recovers(app_on_small_disk, application, csrf):
    app, client, disk = app_on_small_disk
    assert client.post("/api/v1/predict", json=application).status_code == 200
    disk.read_only(True)
    _check_fail_closed(client, application, csrf, disk.path / "d.jsonl")
    assert "EROFS" in client.get("/ready").json["decision_log"]["last_error"]
    disk.read_only(False)
    assert client.get("/ready").status_code == 200
    assert client.post("/api/v1/predict", json=application).status_code == 200


def test_cli_predict_fails_without_output_when_the_log_cannot_be_written(
        trained, small_disk, tmp_path, monkeypatch, application, capsys):
    from credit_risk.cli import main

    apps = tmp_path / "apps.csv"
    with apps.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(application))
        writer.writeheader()
        writer.writerow({k: "" if v is None else v for k, v in application.items()})
    monkeypatch.setenv("CREDIT_RISK_REGISTRY_URL", trained[0].registry.url)
    monkeypatch.setenv("CREDIT_RISK_DECISION_LOG", str(small_disk.path / "d.jsonl"))
    small_disk.read_only(True)
    out = tmp_path / "out.csv"
    assert main(["predict", str(apps), "-o", str(out), "--log"]) == 1
    assert not out.exists()  # no decision without its record
    assert "decision log" in capsys.readouterr().err
