"""The registry on S3 (moto's server on loopback, tests/conftest.py s3_server): two writers
racing for the alias chain lose no update, a training run publishes into s3://, and serving
hot-swaps a new champion from there. (The registry suite itself runs on both local folders
and S3: tests/registry/conftest.py `store`.)"""

import json
import subprocess
import sys
import time

import pytest

from credit_risk.registry import store as store_module
from credit_risk.registry.store import Registry
from tests.conftest import generate_data, republish, small_settings


def _publish(registry, payload):
    return registry.publish({"model.bin": payload, "card.md": b"# card"}, {"dataset": "d"})


def _chain(url):
    """The alias change records as stored, in chain order, checked to be one linear chain."""
    registry = Registry(url)
    fs, root = registry.fs, registry.root
    records = [json.loads(fs.cat_file(p)) for p in fs.ls(f"{root}/history", detail=False)]
    records.sort(key=lambda r: r["seq"])
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # no fork, no gap
    for before, after in zip(records, records[1:], strict=False):
        assert after["parent"] == before["change"]
        old = before["aliases"]["champion"]["version"]
        assert after["changes"][-1]["replaced"] == old  # built on the state before it
    state = json.loads(fs.cat_file(f"{root}/aliases/state.json"))
    assert state["change"] == records[-1]["change"]  # the state is the head of the chain
    return records


def test_a_writer_that_loses_the_race_retries_on_top_of_the_winner(s3_url, monkeypatch):
    url = f"{s3_url}/reg"
    a, b = Registry(url), Registry(url)
    v0, va, vb = (_publish(a, bytes([i])) for i in range(3))
    a.promote(v0, "start")
    put, raced = a._put, []

    def put_after_b(path, data, create=False, etag=None):
        if "/history/" in path and not raced:  # A has read the state and built its record...
            raced.append(path)
            b.promote(vb, "B first")  # ...when B promotes: B takes the next link
        return put(path, data, create=create, etag=etag)

    monkeypatch.setattr(a, "_put", put_after_b)
    a.promote(va, "A second")
    assert raced
    records = _chain(url)
    assert [r["changes"][-1]["version"] for r in records] == [v0, vb, va]  # nothing lost
    assert (a.alias_version("champion"), a.alias_version("previous")) == (va, vb)


def test_a_delayed_state_write_never_moves_the_aliases_back(s3_url, monkeypatch):
    url = f"{s3_url}/reg"
    a, b = Registry(url), Registry(url)
    v0, va, vb = (_publish(a, bytes([i])) for i in range(3))
    a.promote(v0, "start")
    put, raced = a._put, []

    def state_after_b(path, data, create=False, etag=None):
        if path.endswith("/aliases/state.json") and not raced:  # A's record is written...
            raced.append(path)
            b.promote(vb, "B")  # ...B completes A's change and makes its own on top
        return put(path, data, create=create, etag=etag)

    monkeypatch.setattr(a, "_put", state_after_b)
    a.promote(va, "A")  # its state.json write arrives last, with an outdated ETag: dropped
    assert raced
    records = _chain(url)
    assert [r["changes"][-1]["version"] for r in records] == [v0, va, vb]
    assert Registry(url).alias_version("champion") == vb


def test_an_object_store_publish_writes_the_manifest_last_and_once(s3_url, monkeypatch):
    registry = Registry(f"{s3_url}/reg")
    seen = []
    put = registry._put

    def watch(path, data, create=False, etag=None):
        seen.append((path.rsplit("/", 1)[-1], registry.versions()))
        return put(path, data, create=create, etag=etag)

    monkeypatch.setattr(registry, "_put", watch)
    version = _publish(registry, b"m")
    assert [name for name, _ in seen] == ["model.bin", "card.md", "manifest.json"]
    assert all(listed == [] for _, listed in seen)  # not listed before its manifest exists
    assert registry.versions() == [version]
    monkeypatch.setattr(registry, "new_version_id", lambda: version)
    with pytest.raises(store_module.RegistryError, match="exists already"):
        registry.publish({"model.bin": b"x"}, {"dataset": "d"}, version)


WRITER = r"""
import logging, sys, time
from credit_risk.registry.store import Registry

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
registry = Registry(sys.argv[1])
mine = sys.argv[2].split(",")
while time.time() < float(sys.argv[3]):  # both writers start together
    time.sleep(0.001)
for i in range(int(sys.argv[4])):
    registry.promote(mine[i % 2], f"writer {sys.argv[5]} #{i}", by=sys.argv[5])
"""


def test_two_processes_promoting_at_once_lose_no_update(s3_url):
    url = f"{s3_url}/reg"
    registry = Registry(url)
    versions = [_publish(registry, bytes([i])) for i in range(5)]
    registry.promote(versions[0], "start")
    rounds, start = 8, time.time() + 2
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, ",".join(mine), str(start),
                               str(rounds), name], stderr=subprocess.PIPE, text=True)
             for name, mine in (("a", versions[1:3]), ("b", versions[3:5]))]
    logs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    records = _chain(url)
    # Every promote changed the champion (each writer alternates its own two versions), so
    # every one of them must be a link of the chain: 1 + 2 * rounds records.
    assert len(records) == 1 + 2 * rounds
    assert sorted(r["by"] for r in records[1:]) == ["a"] * rounds + ["b"] * rounds
    print("lost races, retried:", sum(log.count("took alias change") for log in logs))


def test_a_training_run_publishes_to_s3_and_serving_hot_swaps(s3_url, tmp_path):
    from serving import create_app

    settings = generate_data(small_settings(tmp_path, registry_url=f"{s3_url}/registry",
                                            models=("logistic_regression",)))
    from credit_risk.pipeline import steps as pipeline

    first = pipeline.run_all(settings, "s3-registry-run")
    registry = Registry(settings.registry.url)
    assert registry.alias_version("champion") == first and registry.verify(first)

    app = create_app(settings, watch=False)
    client = app.test_client()
    store = app.extensions["credit_risk"]["store"]
    application = {f["name"]: f["default"] for f in store.scorer.fields}
    answer = client.post("/api/v1/predict", json=application)
    assert answer.status_code == 200 and answer.json["model_version"] == first
    assert not store.refresh()

    second = republish(registry, first)
    registry.promote(second, "a new champion")
    assert store.refresh()  # picked up from S3, no restart
    answer = client.post("/api/v1/predict", json=application)
    assert answer.status_code == 200 and answer.json["model_version"] == second
    assert client.get("/ready").json["model_version"] == second

    assert registry.rollback("back") == first
    assert store.refresh() and store.scorer.version == first
