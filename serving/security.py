"""The serving app's defences: the API-key check and the throttle of failed keys (API and form
login alike), CSRF tokens (Flask-WTF), the session secret and cookie (Secure when the request
came over HTTPS, as seen directly or through trusted proxies), server-side session expiry, the
body limit for chunked requests, and no framing of any page (clickjacking)."""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any

from flask import Flask, Request, Response, jsonify, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFProtect
from itsdangerous import URLSafeTimedSerializer
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from credit_risk.config import Settings
from serving.auth import KeyChecker, request_key

# gunicorn's master sets this once (serving/gunicorn.conf.py) so that every worker, also one
# restarted by a HUP, signs sessions alike when no secret is configured.
GENERATED_SECRET_ENV = "CREDIT_RISK_GENERATED_SECRET"
csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is `Secure` whenever the request came over HTTPS. The signing
    serializer is built once per secret (Flask's builds one on every request, the API's too)."""

    _serializer: tuple[tuple[Any, ...], URLSafeTimedSerializer | None] | None = None

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()  # no cookie (an API call): Flask's answer, sooner
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if session or session.modified or session.accessed:  # else Flask's would do nothing
            super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        secrets_ = (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))
        cached = self._serializer
        if cached is None or cached[0] != secrets_:
            cached = self._serializer = (secrets_, super().get_signing_serializer(app))
        return cached[1]


def session_secret(settings: Settings, keys: KeyChecker) -> bytes:
    """The configured secret; else one derived from the API keys; else one per server start."""
    if settings.serving.secret_key:
        return settings.serving.secret_key.encode()
    if keys.enabled:
        return keys.secret()
    generated = os.environ.get(GENERATED_SECRET_ENV)
    return bytes.fromhex(generated) if generated else secrets.token_bytes(32)


def client_address() -> str:
    """The client's address: the peer, or behind trusted proxies the forwarded one (ProxyFix)."""
    return request.remote_addr or "unknown"


def install(app: Flask, settings: Settings, keys: KeyChecker) -> LoginThrottle:
    """Install the defences; the throttle of failed keys (shared by the API and the login)."""
    throttle = LoginThrottle(settings.serving.login_failures_per_client,
                             settings.serving.login_failures_total,
                             settings.serving.login_window_s)

    # Registered before CSRFProtect's check: these run first.
    @app.before_request
    def require_api_key():
        """The API needs a valid key when keys are configured. A client whose wrong keys
        reached the limit gets 429, even with the right key, until the window has passed.
        A client with no failed key in the window costs one dict lookup (no lock)."""
        if not (keys.enabled and request.path.startswith("/api/")):
            return None
        client = client_address()
        wait = throttle.wait(client, everyone=False)
        if wait > 0:
            seconds = math.ceil(wait)
            response = jsonify(error=f"too many invalid API keys from this client; try again "
                                     f"in {seconds} seconds")
            response.headers["Retry-After"] = str(seconds)
            return response, 429
        key = request_key(request)
        if keys.valid(key):
            return None
        if key:  # a wrong key is a guess; a missing one is not
            throttle.failed(client)
        response = jsonify(error="missing or invalid API key (X-API-Key or Bearer)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="credit-risk"'
        return response, 401

    @app.before_request
    def limit_chunked_body():
        """A chunked body (no Content-Length) is cut at the limit when it is read; one that
        reaches the limit was too large: 413, before CSRF or JSON parsing see a cut body."""
        limit = app.config.get("MAX_CONTENT_LENGTH")
        if (limit is not None and "wsgi.input_terminated" in request.environ
                and request.content_length is None
                and len(request.get_data(cache=True)) >= limit):
            raise RequestEntityTooLarge()
        return None

    lifetime = timedelta(minutes=settings.serving.form_session_minutes)
    app.secret_key = session_secret(settings, keys)
    app.session_interface = SessionInterface()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=lifetime,
                      WTF_CSRF_TIME_LIMIT=int(lifetime.total_seconds()))
    if settings.serving.trusted_proxies:
        n = settings.serving.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    csrf.init_app(app)
    app.after_request(forbid_framing)
    return throttle


NO_FRAMING = "frame-ancestors 'none'"


def forbid_framing(response: Response) -> Response:
    """No page of this app may be framed by another site (clickjacking): the modern header and
    the one older browsers read."""
    headers = response.headers
    policy = headers.get("Content-Security-Policy")
    headers["Content-Security-Policy"] = NO_FRAMING if policy is None else \
        frame_ancestors_none(policy)
    headers["X-Frame-Options"] = "DENY"
    return response


def frame_ancestors_none(policy: str | None) -> str:
    """A Content-Security-Policy with `frame-ancestors 'none'`, the policy's other directives
    kept (a frame-ancestors it had is replaced)."""
    kept = [d.strip() for d in (policy or "").split(";")
            if d.strip() and d.split()[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, NO_FRAMING])


class LoginThrottle:
    """Failed keys (form logins and API calls) in a sliding window, per client and in all;
    `wait()` says how long a client must wait (seconds) before trying again, 0 if it may try
    now. Per process: with N gunicorn workers a client may get up to N times the limits."""

    MAX_CLIENTS = 10_000

    def __init__(self, per_client: int, total: int, window_s: float):
        self.per_client, self.total, self.window_s = per_client, total, window_s
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _prune(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def wait(self, client: str, everyone: bool = True) -> float:
        """The wait of `client`. With `everyone` False (the API) the total limit applies only
        to a client that has failed itself in the window, so others' guesses do not lock out
        a client with a valid key; such a client is answered without taking the lock."""
        if not everyone and client not in self._clients:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if not everyone:
                own = self._clients.get(client)
                if own is not None:
                    self._prune(own, now)
                if not own:
                    self._clients.pop(client, None)
                    return 0.0
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
