"""Defects an attack run found in serving after issue 8: API-key guessing without a throttle,
huge integers and huge names in JSON bodies, chunked form posts over the limit, and gunicorn
believing X-Forwarded-Proto from localhost when no proxy is trusted."""

import http.client
import json
import time

import pytest

from serving import create_app
from serving.api import ECHO_CHARS, MAX_FIELD_ERRORS

KEY = "k-one"


def _app(trained, **update):
    return create_app(trained[0].model_copy(update=update), watch=False)


def _model(client, key, addr="10.0.0.1", **headers):
    return client.get("/api/v1/model", environ_base={"REMOTE_ADDR": addr},
                      headers={"X-API-Key": key, **headers})


# -- 1. guessing API keys ------------------------------------------------------------------
def test_api_key_guessing_is_throttled(trained):
    """The attack: 300 wrong keys in a row all got 401. Now the client gets 429 with
    Retry-After after the per-client limit, even with the right key, until the window ends."""
    client = _app(trained, api_keys=(KEY,)).test_client()  # the defaults: 5 per 300 s
    codes = [_model(client, f"guess-{i}").status_code for i in range(300)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    r = _model(client, KEY)
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 300
    assert "error" in r.json
    assert _model(client, KEY, addr="10.0.0.2").status_code == 200  # another client


def test_api_throttle_window_proxy_and_bearer(trained, monkeypatch):
    app = _app(trained, api_keys=(KEY,), login_failures_per_client=3, login_window_s=60)
    client = app.test_client()
    for _ in range(3):  # Bearer counts alike
        r = client.get("/api/v1/predict", environ_base={"REMOTE_ADDR": "10.0.0.1"},
                       headers={"Authorization": "Bearer nope"})
        assert r.status_code in (401, 405)
    assert _model(client, "nope").status_code == 429
    # no trusted proxy: X-Forwarded-For changes nothing
    assert _model(client, KEY, **{"X-Forwarded-For": "192.0.2.9"}).status_code == 429
    later = time.monotonic() + 61
    monkeypatch.setattr("serving.security.time.monotonic", lambda: later)
    assert _model(client, KEY).status_code == 200


def test_api_throttle_behind_a_trusted_proxy_counts_the_forwarded_client(trained):
    client = _app(trained, api_keys=(KEY,), login_failures_per_client=2,
                  trusted_proxies=1).test_client()
    fwd = {"X-Forwarded-For": "198.51.100.7"}
    assert [_model(client, "bad", **fwd).status_code for _ in range(3)] == [401, 401, 429]
    assert _model(client, KEY, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 200


def test_api_and_form_share_one_budget_and_a_clean_client_is_never_locked_out(trained, csrf):
    app = _app(trained, api_keys=(KEY,), login_failures_per_client=3,
               login_failures_total=4, login_window_s=60)
    client = app.test_client()
    for i in range(4):  # a distributed guess: each client under its own limit
        assert _model(client, "bad", addr=f"10.0.1.{i}").status_code == 401
    # the total is reached: a client that guessed waits, also at the form ...
    assert _model(client, KEY, addr="10.0.1.0").status_code == 429
    # ... but a client with no failed key is not locked out of the API by others' guesses
    assert _model(client, KEY, addr="10.0.2.1").status_code == 200
    # failures at the API count at the form login of the same client
    two = _app(trained, api_keys=(KEY,), form_auth="api_key",
               login_failures_per_client=2).test_client()
    assert [_model(two, "bad").status_code for _ in range(2)] == [401, 401]
    token = csrf(two, "/login")
    r = two.post("/login", data={"api_key": KEY, "csrf_token": token},
                 environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert r.status_code == 429


def test_valid_keys_do_not_touch_the_throttle(trained, monkeypatch):
    """The success path of a client that never failed takes no lock and records nothing."""
    app = _app(trained, api_keys=(KEY,))
    throttle = app.extensions["credit_risk"]["throttle"]

    class NoLock:
        def __enter__(self):
            raise AssertionError("the throttle's lock was taken on the success path")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(throttle, "_lock", NoLock())
    client = app.test_client()
    assert all(_model(client, KEY, addr=f"10.9.0.{i}").status_code == 200 for i in range(20))


def test_open_api_has_no_throttle(client, application):
    """Without API keys there is nothing to guess; a wrong header is ignored as before."""
    for _ in range(10):
        assert client.post("/api/v1/predict", json=application,
                           headers={"X-API-Key": "whatever"}).status_code == 200


# -- 2. integers beyond 64 bits --------------------------------------------------------------
def _post(client, path, raw: bytes):
    return client.post(path, data=raw, content_type="application/json")


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 5000, "1" + "0" * 400])
def test_a_huge_integer_names_its_field(client, application, number):
    body = json.dumps({**application, "income": 0}).replace('"income": 0', f'"income": {number}')
    r = _post(client, "/api/v1/predict", body.encode())
    assert r.status_code == 422, r.json
    assert r.json["fields"] == {"income": "must be a finite number"}
    batch = _post(client, "/api/v1/predict/batch",
                  b'{"applications": [' + body.encode() + b"]}")
    assert batch.status_code == 422 and batch.json["fields"] == {
        "0": {"income": "must be a finite number"}}


def test_an_integer_beyond_64_bits_but_finite_is_checked_against_the_range(client, application):
    body = json.dumps({**application, "income": 0}).replace('"income": 0',
                                                            '"income": 123456789012345678901234')
    r = _post(client, "/api/v1/predict", body.encode())
    assert r.status_code == 422 and r.json["fields"]["income"].startswith("must be at most")


def test_malformed_json_is_still_400(client):
    for raw in (b'{"income": 99999999999999999999999', b"{'a': 1}", b"[" * 100_000):
        r = _post(client, "/api/v1/predict", raw)
        assert r.status_code == 400 and r.json["error"] == "malformed JSON body"


# -- 3. what error bodies echo -----------------------------------------------------------------
def test_a_huge_unknown_key_is_not_echoed_in_full(client, application):
    name = "x" * (1 << 20)
    r = client.post("/api/v1/predict", json={**application, name: 1})
    assert r.status_code == 422
    assert len(r.get_data()) < 2000
    [shown] = [k for k in r.json["fields"] if k.startswith("x")]
    assert shown == "x" * ECHO_CHARS + "…"
    batch = client.post("/api/v1/predict/batch", json={"applications": [application],
                                                        name: 1})
    assert batch.status_code == 422 and len(batch.get_data()) < 2000
    assert list(batch.json["fields"]) == ["x" * ECHO_CHARS + "…"]


def test_a_batch_error_body_lists_a_bounded_number_of_fields(client, application):
    bad = {**application, **{f"extra_{i}": 1 for i in range(50)}}
    r = client.post("/api/v1/predict/batch", json={"applications": [bad] * 2000})
    assert r.status_code == 422
    listed = sum(len(v) for v in r.json["fields"].values())
    assert listed == MAX_FIELD_ERRORS
    assert r.json["fields_omitted"] == 2000 * 50 - MAX_FIELD_ERRORS
    assert len(r.get_data()) < 40_000
    one = client.post("/api/v1/predict", json={**application,
                                               **{f"extra_{i}": 1 for i in range(5000)}})
    assert len(one.json["fields"]) == MAX_FIELD_ERRORS
    assert one.json["fields_omitted"] == 5000 - MAX_FIELD_ERRORS


def test_small_error_bodies_are_unchanged(client, application):
    r = client.post("/api/v1/predict", json={**application, "income": "a lot", "zz": 1})
    assert r.json == {"error": "invalid application",
                      "fields": {"income": "must be a number", "zz": "unknown field"}}


# -- 4. and 5. over real servers -----------------------------------------------------------------
def _chunked_form(base: str, path: str, mib: int) -> int:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
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


def _cookie(base: str, **headers: str) -> str:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", "/", headers=headers)
        response = conn.getresponse()
        response.read()
        return next(v for k, v in response.getheaders()
                    if k.lower() == "set-cookie" and v.startswith("session="))
    finally:
        conn.close()


def test_gunicorn_trusts_no_forwarded_header_unless_the_app_does(trained, start_gunicorn,
                                                                  monkeypatch):
    """gunicorn's default forwarded_allow_ips trusts 127.0.0.1: X-Forwarded-Proto from a
    local client made the session cookie Secure with CREDIT_RISK_TRUSTED_PROXIES=0. Also
    over gunicorn: a chunked form post over the limit is a 413, not the CSRF page's 400."""
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_PROXIES", "0")
    server = start_gunicorn(trained[0].registry.url, workers=1)
    assert "Secure" not in _cookie(server.base, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in _cookie(server.base, **{"X-Forwarded-Ssl": "on"})
    for path in ("/", "/login"):
        assert _chunked_form(server.base, path, 17) == 413, path
    assert _chunked_form(server.base, "/", 1) == 400  # under the limit: the CSRF check
    server.stop()
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_PROXIES", "1")
    trusting = start_gunicorn(trained[0].registry.url, workers=1)
    assert "Secure" in _cookie(trusting.base, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in _cookie(trusting.base)


def test_chunked_form_post_over_the_limit_is_413(trained):
    from tests.serving.servers import in_thread

    with in_thread(_app(trained, api_keys=(KEY,))) as base:
        for path in ("/", "/login"):
            assert _chunked_form(base, path, 17) == 413, path
