"""Hot swap under load on S3 (moto's server): gunicorn (two workers) serves the champion of a
signed registry on S3 to clients that never pause, while promotes and rollbacks move the
champion. Every request is answered 200, and every answer names a version that was champion at
some moment of the test (never the published version that was never promoted)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest

from credit_risk.cli import main
from credit_risk.config import Settings
from credit_risk.registry.signing import PRIVATE_FILE, PUBLIC_FILE
from credit_risk.registry.store import Registry
from tests.registry.copies import copy_version
from tests.serving.servers import metric

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 3  # threads posting /api/v1/predict back to back
SWAPS = 12  # promotes and rollbacks, one after the other
SETTLED = 20  # consecutive answers naming the new champion: every worker has swapped


class Load:
    """Clients posting one application back to back until stopped; every outcome kept."""

    def __init__(self, server, application: dict):
        self.server, self.application = server, application
        # (status or error, model_version, swaps begun when the answer came)
        self.results: list[tuple[object, str | None, int]] = []
        self.begun = 0  # swaps begun so far: the champion can be any of the first begun + 1
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]

    def _client(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = self.server.get("/api/v1/predict", self.application)
                version = json.loads(body).get("model_version") if status == 200 else None
                self.results.append((status, version, self.begun))
            except OSError as exc:  # refused or reset connection: an error of the test
                self.results.append((repr(exc), None, self.begun))

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def wait_for(self, version: str, timeout: float = 120.0) -> None:
        """Until the last SETTLED answers all name `version` (a bound, not a timing check)."""
        start = len(self.results)
        deadline = time.time() + timeout
        while time.time() < deadline:
            tail = [v for _, v, _ in self.results[start:][-SETTLED:]]
            if len(tail) == SETTLED and set(tail) == {version}:
                return
            time.sleep(0.05)
        pytest.fail(f"{version} not served by every worker within {timeout} s; "
                    f"{self.server.output()}")


def test_promote_and_rollback_under_load_on_s3(trained, s3_url, tmp_path, monkeypatch,
                                                start_gunicorn):
    assert main(["keys", "generate", "--out", str(tmp_path / "keys")]) == 0
    private, public = tmp_path / "keys" / PRIVATE_FILE, tmp_path / "keys" / PUBLIC_FILE
    url = f"{s3_url}/registry"
    publisher = Registry.from_settings(Settings(registry_url=url, signing_key_file=private,
                                                trusted_keys=(public,)))
    source_settings, trained_version = trained
    source = Registry(source_settings.registry.url)
    versions = [copy_version(source, trained_version, publisher, f"v{i}") for i in range(3)]
    never = copy_version(source, trained_version, publisher, "published, never promoted")
    publisher.promote(versions[0], "start")

    monkeypatch.setenv("CREDIT_RISK_TRUSTED_KEYS", str(public))  # serving holds no private key
    server = start_gunicorn(url, reload_interval_s=0.5, workers=2)
    champions, swaps = [versions[0]], []
    with Load(server, server.application()) as load:
        load.wait_for(versions[0])
        for i in range(SWAPS):
            current = publisher.alias_version("champion")
            rollback = i % 3 == 2
            target = publisher.alias_version("previous") if rollback else next(
                v for v in versions[(i % 3):] + versions if v != current)
            champions.append(target)  # before the change: answers may name it from now on
            load.begun = i + 1
            if rollback:
                assert publisher.rollback(f"swap {i}", by="hot-swap test") == target
            else:
                publisher.promote(target, f"swap {i}", by="hot-swap test")
            assert publisher.alias_version("champion") == target
            swaps.append((current, target))
            load.wait_for(target)
    results = load.results
    errors = [r for r in results if r[0] != 200]
    served = Counter(v for _, v, _ in results)
    # Each answer names a version that was champion at some moment up to the answer.
    early = [(v, begun) for _, v, begun in results if v not in champions[:begun + 1]]
    _, text = server.get("/metrics")
    reload_failures = metric(text.decode(), "credit_risk_model_reload_failures_total")
    print(f"hot swap on S3: {len(results)} requests, {len(swaps)} swaps "
          f"({sum(i % 3 == 2 for i in range(SWAPS))} rollbacks), {len(errors)} errors, "
          f"{reload_failures:.0f} reload failures; answers per version: "
          f"{dict(sorted(served.items()))}")
    assert errors == []
    assert set(served) == set(champions)  # each champion served, nothing else
    assert early == []
    assert never not in served
    assert reload_failures == 0
    history = Registry.from_settings(Settings(registry_url=url, trusted_keys=(public,))).history()
    assert [h["version"] for h in history if h["alias"] == "champion"] == champions
