"""A cap on request bodies, enforced before a handler reads them (an ASGI middleware)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """Answers 413 to any request whose body is larger than ``max_bytes``.

    A declared ``Content-Length`` over the cap is refused before a byte is read; a body without one is
    counted as it streams and refused as soon as it passes the cap, so a client cannot make the server
    buffer an arbitrarily large body either way.

    Args:
        app: The wrapped application.
        max_bytes: The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Passes the request on, unless its body is (or becomes) larger than the cap."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _answer(send, 400, "malformed Content-Length header")
                return
            if too_big:
                await _answer(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
        # A body without a declared length (chunked) is read here, up to the cap, before the app sees it:
        # a parser downstream would turn an exception from ``receive`` into a vague 400. Bodies are small
        # (the cap is 64 KiB by default), so holding one in memory costs nothing.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _answer(send, 413, f"request body larger than {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(
            scope, _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive), send
        )


def _replay(messages: list[Message], then: Receive) -> Receive:
    """A ``receive`` that hands out ``messages``, then defers to ``then`` (which reports a disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0) if queue else await then()

    return receive


async def _answer(send: Send, status: int, detail: str) -> None:
    body: Any = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
