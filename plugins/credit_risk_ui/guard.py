"""Who may change the champion, and from where: role check and cross-site refusal."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


def user_name(user: Any) -> str:
    """The name a change is recorded under."""
    get_name = getattr(user, "get_name", None)
    return str(get_name() if callable(get_name) else user)


def origin(url: str | None) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, default port filled in; None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower(), port or DEFAULT_PORTS[scheme]


def trusted_origins(urls: Collection[str]) -> frozenset[Origin]:
    """The origins of `urls` (e.g. Airflow's public base URL behind a TLS proxy)."""
    return frozenset(o for o in map(origin, urls) if o is not None)


def same_site(request: Request, trusted: frozenset[Origin]) -> bool:
    """Whether the Origin (or, without one, the Referer) is the pages' own or a trusted one."""
    own = origin(f"{request.url.scheme}://{request.headers.get('host', '')}")
    sent = request.headers.get("origin")
    sender = origin(sent if sent is not None else request.headers.get("referer"))
    return sender is not None and (sender == own or sender in trusted)


def check_change(request: Request, user: Any, may_change: Callable[[Any], bool],
                 trusted: frozenset[Origin] = frozenset()) -> None:
    """Refuse (403) a cross-site post, or a user who may not change the champion."""
    # A cookie-authenticated post must show the pages' origin; a Bearer-token post (which no
    # other site can make a browser send) needs none, but a foreign Origin is still refused.
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = scheme.lower() == "bearer" and bool(token.strip())
    if ("origin" in request.headers or not bearer) and not same_site(request, trusted):
        raise HTTPException(403, "cross-origin request refused")
    if not may_change(user):
        raise HTTPException(403, f"{user_name(user)} may not change the champion")
