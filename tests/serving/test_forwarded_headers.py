"""Behind gunicorn, X-Forwarded-* headers count only when the app trusts a proxy
(CREDIT_RISK_TRUSTED_PROXIES), although gunicorn itself trusts them from 127.0.0.1."""

import http.client

from tests.serving import servers


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
    """gunicorn's default forwarded_allow_ips trusts 127.0.0.1; with
    CREDIT_RISK_TRUSTED_PROXIES=0 an X-Forwarded-Proto from a local client must not make the
    session cookie Secure. Also over gunicorn: a chunked form post over the limit is a 413."""
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_PROXIES", "0")
    server = start_gunicorn(trained[0].registry.url, workers=1)
    assert "Secure" not in _cookie(server.base, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in _cookie(server.base, **{"X-Forwarded-Ssl": "on"})
    for path in ("/", "/login"):
        assert servers.chunked_form(server.base, path, 17) == 413, path
    assert servers.chunked_form(server.base, "/", 1) == 400  # under the limit: the CSRF check
    server.stop()
    monkeypatch.setenv("CREDIT_RISK_TRUSTED_PROXIES", "1")
    trusting = start_gunicorn(trained[0].registry.url, workers=1)
    assert "Secure" in _cookie(trusting.base, **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in _cookie(trusting.base)
