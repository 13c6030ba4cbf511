"""The web form's defences: CSRF tokens (Flask-WTF), the session secret and cookie (Secure
when the request came over HTTPS, as seen directly or through trusted proxies), server-side
session expiry, and login throttling (per client address and in all)."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections import deque
from datetime import timedelta

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from credit_risk.config import Settings
from serving.auth import KeyChecker

# gunicorn's master sets this once (serving/gunicorn.conf.py) so that every worker, also one
# restarted by a HUP, signs sessions alike when no secret is configured.
GENERATED_SECRET_ENV = "CREDIT_RISK_GENERATED_SECRET"
csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is `Secure` whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)


def session_secret(settings: Settings, keys: KeyChecker) -> bytes:
    """The configured secret; else one derived from the API keys; else one per server start."""
    if settings.secret_key:
        return settings.secret_key.encode()
    if keys.enabled:
        return keys.secret()
    generated = os.environ.get(GENERATED_SECRET_ENV)
    return bytes.fromhex(generated) if generated else secrets.token_bytes(32)


def install(app: Flask, settings: Settings, keys: KeyChecker) -> None:
    lifetime = timedelta(minutes=settings.form_session_minutes)
    app.secret_key = session_secret(settings, keys)
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=lifetime,
                      WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()))
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    csrf.init_app(app)


class LoginThrottle:
    """Failed logins in a sliding window, per client and in all; `wait()` says how long a
    client must wait (seconds) before trying again, 0 if it may try now. Per process."""

    MAX_CLIENTS = 10_000

    def __init__(self, per_client: int, total: int, window_s: float):
        self.per_client, self.total, self.window_s = per_client, total, window_s
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _prune(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def wait(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            waits = [0.0]
            for times, limit in ((self._clients.get(client), self.per_client),
                                 (self._all, self.total)):
                if times is not None:
                    self._prune(times, now)
                    if len(times) >= limit:
                        waits.append(times[-limit] + self.window_s - now)
            return max(waits)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            if client not in self._clients and len(self._clients) >= self.MAX_CLIENTS:
                for name in [c for c, t in self._clients.items()
                             if not t or t[-1] <= now - self.window_s]:
                    del self._clients[name]
                if len(self._clients) >= self.MAX_CLIENTS:  # still full: forget the oldest
                    del self._clients[next(iter(self._clients))]
            self._clients.setdefault(client, deque()).append(now)
            self._all.append(now)
            self._prune(self._all, now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)
