"""`GuardMiddleware`: the API key and the body size limit, checked before any route runs (pure ASGI).

API key: when set, every HTTP route and the WebSocket except the open paths (`/healthz`) need it, as
`Authorization: Bearer KEY`, `X-API-Key: KEY`, or the query parameter `api_key=KEY` (for what a browser cannot give
headers to: the page's own address and its WebSocket). Compared in constant time. A missing or wrong key is a 401
JSON error (a WebSocket is closed with policy-violation code 1008 before it is accepted).

Body size: a request whose Content-Length exceeds `max_body` is answered 413 before its body is read; a body
without a length (chunked) is counted while it is read and `BodyTooLarge` is raised into the route at the limit.
"""

import hmac
import json
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qs

from .problems import error_body


class BodyTooLarge(Exception):
    """The request body went past the limit while it was being read."""


def _header(scope: dict, name: bytes) -> Optional[str]:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def presented_key(scope: dict) -> Optional[str]:
    """The API key a request carries (Authorization: Bearer, X-API-Key, or ?api_key=), None when none."""
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    key = _header(scope, b"x-api-key")
    if key:
        return key.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return query["api_key"][0] if query.get("api_key") else None


async def send_json_error(send: Callable, status: int, kind: str, message: str,
                          headers: Iterable = ()) -> None:
    body = json.dumps(error_body(status, kind, message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """See the module docstring. `on_error(kind)` is called for every refusal (metrics)."""

    def __init__(self, app: Any, api_key: str = "", max_body: int = 10 << 20, open_paths: Iterable[str] = ("/healthz",),
                 on_error: Callable[[str], None] = lambda kind: None) -> None:
        self.app = app
        self.api_key = api_key or ""
        self.max_body = int(max_body)
        self.open_paths = set(open_paths)
        self.on_error = on_error

    def _authorised(self, scope: dict) -> bool:
        if not self.api_key or scope.get("path") in self.open_paths:
            return True
        key = presented_key(scope)
        return key is not None and hmac.compare_digest(key.encode(), self.api_key.encode())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._authorised(scope):
            self.on_error("unauthorized")
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "API key missing or wrong"})
                return
            await send_json_error(send, 401, "unauthorized", "API key missing or wrong: send 'Authorization: "
                                  "Bearer KEY' or 'X-API-Key: KEY'", [(b"www-authenticate", b"Bearer")])
            return
        if scope["type"] == "http":
            length = _header(scope, b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                self.on_error("body_too_large")
                await send_json_error(send, 413, "body_too_large", f"request body of {length} bytes; the server "
                                      f"takes at most {self.max_body} bytes (--max-body-mb)")
                return
            receive = self._counting(receive)
        await self.app(scope, receive, send)

    def _counting(self, receive: Callable) -> Callable:
        seen = {"bytes": 0}

        async def counted() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen["bytes"] += len(message.get("body", b""))
                if seen["bytes"] > self.max_body:
                    raise BodyTooLarge(f"request body over {self.max_body} bytes (--max-body-mb)")
            return message

        return counted
