"""Item 11 of issue 8: the web form's CSRF tokens, Secure session cookie over HTTPS (directly
or behind a trusted proxy only), server-side session expiry and login throttling; and the
result page's input warnings; no page can be framed (clickjacking)."""

import time

import pytest

from credit_risk.scoring.request import PredictionResponse, openapi_document
from serving import create_app

KEYS = {"api_keys": ("k-one",), "form_auth": "api_key"}


def _app(trained, **update):
    return create_app(trained[0].model_copy(update=update), watch=False)


def _form(application, token=None):
    data = {k: "" if v is None else str(v) for k, v in application.items()}
    if token is not None:
        data["csrf_token"] = token
    return data


# -- CSRF ----------------------------------------------------------------------------------
def test_form_post_without_a_valid_token_is_refused(client, application, csrf, trained):
    r = client.post("/", data=_form(application))
    html = r.get_data(as_text=True)
    assert r.status_code == 400 and "The form has expired" in html and 'id="pd"' not in html
    other = _app(trained).test_client()  # a token of another session (and secret)
    assert client.post("/", data=_form(application, csrf(other))).status_code == 400
    assert client.post("/", data=_form(application, "forged")).status_code == 400
    assert client.post("/", data=_form(application, csrf(client))).status_code == 200
    # the JSON API takes no cookies and needs no token
    assert client.post("/api/v1/predict", json=application).status_code == 200


def test_login_and_logout_need_the_token(trained, csrf):
    client = _app(trained, **KEYS).test_client()
    assert client.post("/login", data={"api_key": "k-one"}).status_code == 400
    assert client.get("/").status_code == 302  # not logged in
    token = csrf(client, "/login")
    assert client.post("/login", data={"api_key": "k-one", "csrf_token": token}).status_code \
        == 302
    assert client.post("/logout").status_code == 400  # a cross-site logout is refused too
    assert client.get("/").status_code == 200
    assert 'name="csrf_token"' in client.get("/").get_data(as_text=True)


# -- the session cookie ----------------------------------------------------------------------
def _cookie(response):
    return next(v for k, v in response.headers.items()
                if k == "Set-Cookie" and v.startswith("session="))


def test_session_cookie_is_secure_over_https_only(trained):
    app = _app(trained)
    plain = app.test_client().get("/")
    assert "Secure" not in _cookie(plain) and "HttpOnly" in _cookie(plain)
    assert "SameSite=Lax" in _cookie(plain)
    direct = app.test_client().get("/", base_url="https://scoring.example")
    assert "Secure" in _cookie(direct)
    spoofed = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in _cookie(spoofed)  # no proxy trusted: the header means nothing


def test_behind_a_trusted_proxy_forwarded_https_gives_a_secure_cookie(trained):
    app = _app(trained, trusted_proxies=1)
    r = app.test_client().get("/", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in _cookie(r)
    assert "Secure" not in _cookie(app.test_client().get("/"))


# -- session expiry ----------------------------------------------------------------------------
def test_a_login_expires_on_the_server(trained, csrf, monkeypatch):
    client = _app(trained, **KEYS, form_session_minutes=1).test_client()
    client.post("/login", data={"api_key": "k-one", "csrf_token": csrf(client, "/login")})
    assert client.get("/").status_code == 200
    login = client.get_cookie("session").value
    real = time.time
    monkeypatch.setattr("serving.web.time.time", lambda: real() + 61)
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/login")
    client.set_cookie("session", login)  # the old cookie, replayed, is no better
    assert client.get("/").status_code == 302
    monkeypatch.setattr("serving.web.time.time", real)
    client.set_cookie("session", login)
    assert client.get("/").status_code == 200


def test_session_lifetime_comes_from_the_settings(monkeypatch):
    from credit_risk.config import Settings

    monkeypatch.setenv("CREDIT_RISK_FORM_SESSION_MINUTES", "5")
    monkeypatch.setenv("CREDIT_RISK_LOGIN_FAILURES_PER_CLIENT", "2")
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_PROXIES", "1")
    s = Settings()
    assert (s.serving.form_session_minutes, s.serving.login_failures_per_client,
            s.serving.trusted_proxies) == (5, 2, 1)


# -- login throttling --------------------------------------------------------------------------
def _login(client, csrf, key, addr="10.0.0.1", **headers):
    token = csrf(client, "/login")
    return client.post("/login", data={"api_key": key, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr}, headers=headers)


def test_failed_logins_are_throttled_per_client(trained, csrf, monkeypatch):
    app = _app(trained, **KEYS, login_failures_per_client=3, login_window_s=60)
    client = app.test_client()
    assert [_login(client, csrf, "bad").status_code for _ in range(3)] == [401] * 3
    r = _login(client, csrf, "k-one")  # even the right key waits: no guessing through it
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60
    assert "Too many failed logins" in r.get_data(as_text=True)
    spoofed = _login(client, csrf, "bad", **{"X-Forwarded-For": "192.0.2.9"})
    assert spoofed.status_code == 429  # no trusted proxy: X-Forwarded-For changes nothing
    assert _login(app.test_client(), csrf, "k-one", addr="10.0.0.2").status_code == 302
    later = time.monotonic() + 61
    monkeypatch.setattr("serving.security.time.monotonic", lambda: later)
    assert _login(client, csrf, "k-one").status_code == 302


def test_failed_logins_are_throttled_in_all(trained, csrf):
    app = _app(trained, **KEYS, login_failures_per_client=3,
               login_failures_total=4, login_window_s=60)
    for i in range(4):  # a distributed guess: each client under its own limit
        assert _login(app.test_client(), csrf, "bad", addr=f"10.0.1.{i}").status_code == 401
    r = _login(app.test_client(), csrf, "k-one", addr="10.0.2.1")
    assert r.status_code == 429 and r.headers["Retry-After"]


def test_trusted_proxy_throttles_by_the_forwarded_client(trained, csrf):
    app = _app(trained, **KEYS, login_failures_per_client=2, trusted_proxies=1)
    client = app.test_client()
    for _ in range(2):
        assert _login(client, csrf, "bad", **{"X-Forwarded-For": "198.51.100.7"}).status_code \
            == 401
    assert _login(client, csrf, "bad", **{"X-Forwarded-For": "198.51.100.7"}).status_code == 429
    assert _login(client, csrf, "k-one", **{"X-Forwarded-For": "198.51.100.8"}).status_code \
        == 302  # same proxy address, another client behind it


# -- input warnings ----------------------------------------------------------------------------
WARNING = {"field": "bank_balance_at_application", "value": 1e10, "used": 14_000_000.0,
           "message": "Bank balance is above the training range; scored at 14,000,000"}


def test_warnings_are_part_of_the_documented_response(client, application):
    scorer_result = client.post("/api/v1/predict", json=application).json
    PredictionResponse.model_validate({**scorer_result, "warnings": [WARNING]})
    PredictionResponse.model_validate({**scorer_result, "warnings": []})
    with pytest.raises(ValueError):
        PredictionResponse.model_validate({**scorer_result, "warnings": [{"field": "x"}]})
    doc = openapi_document([], model_version=None, max_batch_rows=5, auth=False,
                           max_request_bytes=4096)
    warning = doc["components"]["schemas"]["InputWarning"]
    assert set(warning["required"]) == {"field", "value", "used", "message"}


def test_result_page_shows_warnings(app, client, application, csrf):
    """A field beyond the training range and a missing one (income 0 means missing) are named
    on the result page with what was scored instead; none when everything is as entered."""
    sent = {**application, "bank_balance_at_application": 1e10, "income": 0}
    html = client.post("/", data=_form(sent, csrf(client))).get_data(as_text=True)
    assert 'id="warnings"' in html
    assert "Bank balance" in html and "outside the training range" in html
    assert "0 means missing in the training data: scored as the typical value" in html
    html = client.post("/", data=_form(application, csrf(client))).get_data(as_text=True)
    assert 'id="pd"' in html and 'id="warnings"' not in html


# -- clickjacking: no page may be framed ---------------------------------------------------------
def _pages(client, application, csrf):
    """Every kind of page the app serves: form, result, invalid form, login, docs, errors."""
    yield "form", client.get("/")
    yield "result", client.post("/", data={**{k: str(v) for k, v in application.items()},
                                           "csrf_token": csrf(client)})
    yield "invalid form", client.post("/", data={"csrf_token": csrf(client), "age": "x"})
    yield "expired form", client.post("/", data={"age": "1"})
    yield "docs", client.get("/docs")
    yield "api", client.get("/api/v1/model")
    yield "not found", client.get("/nowhere")


def test_no_page_can_be_framed(client, application, csrf):
    seen = set()
    for what, r in _pages(client, application, csrf):
        seen.add(r.mimetype)
        assert r.headers["X-Frame-Options"] == "DENY", what
        assert r.headers.getlist("Content-Security-Policy") == ["frame-ancestors 'none'"], what
    assert "text/html" in seen


def test_the_login_page_cannot_be_framed(trained, csrf):
    client = _app(trained, **KEYS).test_client()
    for r in (client.get("/login"), client.post("/login", data={
            "api_key": "wrong", "csrf_token": csrf(client, "/login")})):
        assert r.mimetype == "text/html" and r.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("policy", "merged"), [
    (None, "frame-ancestors 'none'"),
    ("default-src 'self'", "default-src 'self'; frame-ancestors 'none'"),
    ("default-src 'self'; frame-ancestors https://a.example;",
     "default-src 'self'; frame-ancestors 'none'"),
    ("Frame-Ancestors *; img-src data:", "img-src data:; frame-ancestors 'none'"),
])
def test_frame_ancestors_joins_a_policy_a_page_already_has(policy, merged):
    from serving.security import frame_ancestors_none

    assert frame_ancestors_none(policy) == merged
