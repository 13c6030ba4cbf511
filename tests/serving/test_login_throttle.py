"""Guessing API keys: failed keys at the API and the form login share a per-client and a
total budget in a sliding window; past it a client gets 429 with Retry-After."""

import time

from serving import create_app

KEY = "k-one"


def _app(trained, **update):
    return create_app(trained[0].model_copy(update=update), watch=False)


def _model(client, key, addr="10.0.0.1", **headers):
    return client.get("/api/v1/model", environ_base={"REMOTE_ADDR": addr},
                      headers={"X-API-Key": key, **headers})


def test_api_key_guessing_is_throttled(trained):
    """After the per-client limit of wrong keys the client gets 429 with Retry-After, even
    with the right key, until the window ends."""
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


def test_valid_keys_do_not_touch_the_throttle(trained):
    """A client with a valid key is never counted as a failure: with a total limit of one
    failure, any count would make every client wait."""
    app = _app(trained, api_keys=(KEY,), login_failures_total=1)
    throttle = app.extensions["credit_risk"]["throttle"]
    client = app.test_client()
    assert all(_model(client, KEY, addr=f"10.9.0.{i}").status_code == 200 for i in range(20))
    assert [throttle.wait(f"10.9.0.{i}") for i in range(20)] == [0.0] * 20
    assert _model(client, "bad", addr="10.9.1.1").status_code == 401
    assert throttle.wait("10.9.0.0") > 0  # the total limit does apply to failures


def test_open_api_has_no_throttle(client, application):
    """Without API keys there is nothing to guess; a wrong header is ignored."""
    for _ in range(10):
        assert client.post("/api/v1/predict", json=application,
                           headers={"X-API-Key": "whatever"}).status_code == 200
