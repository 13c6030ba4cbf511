"""Item 4 of issue 8: a corrupt champion plus a worker restart is not an outage. A starting
worker that cannot load the champion serves the newest verified version of the alias history
(reported in /ready and a metric), retries the champion with a backoff and at once when its
files change, so restoring the file recovers without a restart."""

import json
import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from credit_risk.registry import Registry
from credit_risk.registry import champion as champion_module
from credit_risk.registry.champion import ModelStore
from serving import create_app
from tests.conftest import republish
from tests.serving.servers import metric


def _two_versions(trained_copy):
    """The registry copy with a champion that is a republished twin of the trained version."""
    settings, version = trained_copy
    registry = Registry(settings.registry.url)
    champion = republish(registry, version)
    registry.promote(champion, "twin")
    return settings, version, champion


def _flip_a_byte(registry_dir: Path, version: str) -> tuple[Path, bytes]:
    """Flip one byte in the middle of the version's largest file; return (path, original)."""
    manifest = json.loads((registry_dir / "models" / version / "manifest.json").read_text())
    path = max((registry_dir / "models" / version / n for n in manifest["files"]),
               key=lambda p: p.stat().st_size)
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path, original


def _restore(path: Path, original: bytes) -> None:
    path.write_bytes(original)
    later = time.time() + 2  # a new mtime even on a coarse clock
    os.utime(path, (later, later))


def test_starting_with_a_corrupt_champion_serves_the_fallback_and_recovers(trained_copy):
    settings, older, champion = _two_versions(trained_copy)
    path, original = _flip_a_byte(Path(settings.registry.url), champion)
    app = create_app(settings, watch=False)
    client = app.test_client()
    store = app.extensions["credit_risk"]["store"]
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.json
    body = ready.json
    assert body["ready"] and body["fallback"] is True
    assert body["model_version"] == older and body["champion"] == champion
    assert "SHA-256" in body["fallback_reason"] and champion in body["fallback_reason"]
    assert metric(client, "credit_risk_model_fallback") == 1
    application = {f["name"]: f["default"] for f in store.scorer.fields}
    r = client.post("/api/v1/predict", json=application)
    assert r.status_code == 200 and r.json["model_version"] == older

    # No hammering: without a change the champion is not tried again before the backoff.
    failures = store.reload_failures
    for _ in range(5):
        assert not store.refresh()
    assert store.reload_failures == failures
    assert client.get("/ready").json["champion_retry_in_s"] > 0

    _restore(path, original)  # the files changed: tried at once, no restart
    assert store.refresh()
    body = client.get("/ready").json
    assert body["model_version"] == champion and body["fallback"] is False
    assert body["fallback_reason"] is None
    assert metric(client, "credit_risk_model_fallback") == 0
    assert client.post("/api/v1/predict", json=application).json["model_version"] == champion


def test_champion_is_retried_with_a_growing_bounded_backoff(trained_copy, monkeypatch):
    settings, older, champion = _two_versions(trained_copy)
    _flip_a_byte(Path(settings.registry.url), champion)
    now = [1000.0]  # the store's clock, moved by the test
    monkeypatch.setattr(champion_module, "time", SimpleNamespace(monotonic=lambda: now[0],
                                                                 time=time.time))
    store = ModelStore(Registry(settings.registry.url), retry_s=1, max_retry_s=4)
    assert not store.refresh() and store.scorer.version == older and store.fallback
    delays = []
    for _ in range(4):
        delays.append(store.summary()["champion_retry_in_s"])
        now[0] += delays[-1] - 0.5
        assert not store.refresh() and store.reload_failures == len(delays)  # not yet due
        now[0] += 0.5
        assert not store.refresh()
    assert delays == [1, 2, 4, 4]
    assert store.reload_failures == 5


def test_without_a_fallback_restoring_the_file_recovers_without_a_restart(trained_copy):
    settings, version = trained_copy
    path, original = _flip_a_byte(Path(settings.registry.url), version)
    app = create_app(settings, watch=False)
    client = app.test_client()
    store = app.extensions["credit_risk"]["store"]
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200
    r = client.post("/api/v1/predict", json={})
    assert r.status_code == 503 and r.headers["Retry-After"]
    _restore(path, original)
    assert store.refresh()
    assert client.get("/ready").status_code == 200


def test_a_new_promotion_ends_the_fallback_at_once(trained_copy):
    settings, older, champion = _two_versions(trained_copy)
    _flip_a_byte(Path(settings.registry.url), champion)
    app = create_app(settings, watch=False)
    store = app.extensions["credit_risk"]["store"]
    assert store.fallback and store.scorer.version == older
    Registry(settings.registry.url).rollback("the champion is corrupt")
    assert not store.refresh()  # already serving the version rolled back to
    assert not store.fallback and store.summary()["fallback"] is False


def test_a_corrupt_champion_never_brings_back_a_version_withdrawn_by_a_rollback(trained_copy):
    """promote v2, promote v3, rollback: v3 is withdrawn and v2 serves. A corrupt v2 in a
    freshly started worker falls back to the champion before them, never to v3; when that one
    is corrupt too, nothing serves and /ready says why (503)."""
    settings, first = trained_copy
    registry = Registry(settings.registry.url)
    v2, v3 = republish(registry, first), republish(registry, first)
    registry.promote(v2, "v2")
    registry.promote(v3, "v3")
    assert registry.rollback("v3 misbehaves") == v2
    registry_dir = Path(settings.registry.url)
    _flip_a_byte(registry_dir, v2)
    body = create_app(settings, watch=False).test_client().get("/ready").json
    assert body["champion"] == v2 and body["fallback"] is True
    assert body["model_version"] == first  # a former champion, not the withdrawn v3

    _flip_a_byte(registry_dir, first)
    ready = create_app(settings, watch=False).test_client().get("/ready")
    assert ready.status_code == 503
    body = ready.json
    assert body["model_version"] is None and body["champion"] == v2
    assert f"withdrawn by a rollback, never served as a fallback: {v3}" in body["last_error"]
    assert f"{first}: ChecksumError" in body["last_error"]


# -- the real server ----------------------------------------------------------------------
@pytest.fixture
def gunicorn(trained_copy, start_gunicorn):
    settings, older, champion = _two_versions(trained_copy)
    server = start_gunicorn(settings.registry.url, reload_interval_s=0.5)
    return server, Path(settings.registry.url), older, champion


def _ready_everywhere(server, check, n=12):
    """`check` holds for /ready on every worker (n looks spread over the workers)."""
    return all(check(server.json("/ready")) for _ in range(n))


def test_gunicorn_hup_with_a_corrupt_champion_serves_the_fallback_then_recovers(gunicorn):
    server, registry_dir, older, champion = gunicorn
    application = server.application()
    path, original = _flip_a_byte(registry_dir, champion)
    server.proc.send_signal(signal.SIGHUP)  # new workers start with the corrupt champion
    server.wait_until(lambda: _ready_everywhere(
        server, lambda b: b["fallback"] and b["model_version"] == older))
    answers = [server.get("/api/v1/predict", application) for _ in range(20)]
    assert [status for status, _ in answers] == [200] * 20
    assert {json.loads(b)["model_version"] for _, b in answers} == {older}
    ready = server.json("/ready")
    assert ready["champion"] == champion and "SHA-256" in ready["fallback_reason"]
    _, text = server.get("/metrics")
    assert any(x.startswith("credit_risk_model_fallback{") and x.endswith(" 1.0")
               for x in text.decode().splitlines())

    _restore(path, original)  # repaired on disk: the workers go back to the champion
    # Each worker notices on its own reload check: wait until /ready and the answers of every
    # worker (n looks spread over them; one sample can miss a worker) show the champion.
    server.wait_until(lambda: _ready_everywhere(
        server, lambda b: not b["fallback"] and b["model_version"] == champion) and all(
        server.json("/api/v1/predict", application)["model_version"] == champion
        for _ in range(12)), timeout=20)
    assert all(server.json("/api/v1/predict", application)["model_version"] == champion
               for _ in range(10))


def _plant_fifo_and_bad_history(registry_dir: Path, champion: str) -> None:
    """The attacks of the registry review: a FIFO as the champion's model card (opening it
    would block forever) and an unparsable history record (it used to stop every worker)."""
    card = registry_dir / "models" / champion / "model_card.md"
    card.unlink()
    os.mkfifo(card)
    (registry_dir / "history" / "99999999T000000000000Z-deadbeef-promote.json").write_text("{")


def test_a_fifo_in_the_champion_and_a_bad_history_record_do_not_freeze_a_start(trained_copy):
    import threading

    settings, older, champion = _two_versions(trained_copy)
    _plant_fifo_and_bad_history(Path(settings.registry.url), champion)
    started = {}
    thread = threading.Thread(target=lambda: started.update(app=create_app(settings,
                                                                           watch=False)),
                              daemon=True)
    thread.start()
    thread.join(30)
    assert "app" in started, "starting the app hung on the FIFO"
    body = started["app"].test_client().get("/ready").json
    assert body["ready"] and body["fallback"] is True and body["model_version"] == older
    assert "a FIFO, not a regular file" in body["fallback_reason"]


def test_gunicorn_hup_with_a_fifo_and_a_bad_history_record_keeps_serving(gunicorn):
    server, registry_dir, older, champion = gunicorn
    application = server.application()
    _plant_fifo_and_bad_history(registry_dir, champion)
    server.proc.send_signal(signal.SIGHUP)  # new workers open the registry and the champion
    server.wait_until(lambda: _ready_everywhere(
        server, lambda b: b["fallback"] and b["model_version"] == older), timeout=30)
    answers = [server.get("/api/v1/predict", application) for _ in range(10)]
    assert [status for status, _ in answers] == [200] * 10
    assert server.proc.poll() is None
