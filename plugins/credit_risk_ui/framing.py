"""Anti-framing headers on every HTML response of the pages (clickjacking)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# Only the pages' own origin may frame them: Airflow's UI shows a plugin's external views in a
# same-origin iframe, and a model's page frames its model card. No other site can.
FRAME_ANCESTORS = "frame-ancestors 'self'"
FRAME_OPTIONS = "SAMEORIGIN"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]


def merge_policy(policy: str | None) -> str:
    """A Content-Security-Policy with its frame-ancestors directive set to ours."""
    kept = [d.strip() for d in (policy or "").split(";")
            if d.strip() and d.split()[0].lower() != "frame-ancestors"]
    return "; ".join([*kept, FRAME_ANCESTORS])


def framing_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers of an HTML response with the anti-framing headers merged in."""
    csp = [v.decode("latin-1") for k, v in headers if k.lower() == b"content-security-policy"]
    out = [(k, v) for k, v in headers
           if k.lower() not in (b"content-security-policy", b"x-frame-options")]
    out.append((b"content-security-policy", merge_policy("; ".join(csp)).encode("latin-1")))
    out.append((b"x-frame-options", FRAME_OPTIONS.encode("latin-1")))
    return out


class AntiFraming:
    """ASGI middleware: anti-framing headers on each response whose type is text/html."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to an HTML response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kind = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
                if kind.lower().startswith(b"text/html"):
                    message["headers"] = framing_headers(headers)
            await send(message)

        await self.app(scope, receive, send_framed)
