"""`ServeError`: one HTTP error a client caused or must hear about, as JSON `{"error": {"status", "kind",
"message"}}`; `error_body` builds that body for every path that answers an error (routes, middleware, WebSocket)."""

from typing import Any, Dict, Optional


class ServeError(Exception):
    """An HTTP status, a short machine-readable `kind` (counted in /metrics by kind) and a message that names the
    field or value at fault and what would be valid. `headers` go out with the response (e.g. Retry-After)."""

    def __init__(self, status: int, kind: str, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = int(status)
        self.kind = kind
        self.message = message
        self.headers = dict(headers or {})


def error_body(status: int, kind: str, message: str) -> Dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"status": int(status), "kind": kind, "message": message}}
