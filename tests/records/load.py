"""Client threads posting one application each to the serving app, until stopped: the load
of the decision-log fault and kill tests, with what every call got."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import pytest

DROPPED = 0  # the status of a call whose connection closed without an answer


@dataclass
class Call:
    at: float
    status: int
    retry_after: str | None
    request_id: str | None


def post(url: str, body: bytes) -> Call:
    at = time.monotonic()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Call(at, r.status, r.headers.get("Retry-After"),
                        json.loads(r.read())["request_id"])
    except urllib.error.HTTPError as e:
        return Call(at, e.code, e.headers.get("Retry-After"), None)
    except (urllib.error.URLError, ConnectionError, OSError):  # e.g. the worker was killed
        return Call(at, DROPPED, None, None)


@dataclass
class Load:
    """`threads` clients posting `body` to `url` until stopped."""

    url: str
    body: bytes
    threads: int = 4
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._run) for _ in range(self.threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            call = post(self.url, self.body)
            self.calls.append(call)
            if call.status != 200:
                time.sleep(0.02)  # a client that does not wait the Retry-After, nearly

    def __enter__(self) -> Load:
        for t in self._workers:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join()

    def wait_for(self, status: int, after: float, timeout: float = 60.0) -> float:
        """The time of the first call started after `after` that got `status`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [c.at for c in list(self.calls) if c.at >= after and c.status == status]
            if hits:
                return min(hits)
            time.sleep(0.05)
        pytest.fail(f"no {status} within {timeout} s; statuses "
                    f"{Counter(c.status for c in self.calls)}")


def predict_load(base: str, application: dict, threads: int = 4) -> Load:
    """The load of `application` on the app at `base`'s predict endpoint."""
    return Load(f"{base}/api/v1/predict", json.dumps(application).encode(), threads)
