"""What stands between the network and the routes: one JSON error shape, a body-size limit, the
Host check and the refusal of writes sent by another site's web page, the client's address."""
from __future__ import annotations

import ipaddress

from fastapi.responses import JSONResponse

from ..errors import EditError, ImageError, NoFaceError, RealeditError, UsageError
from .jobs import Busy, Conflict, TooLarge, TooManyPolls


def status_for(exc: RealeditError) -> int:
    """The HTTP status of a realedit error: 4xx for the client's, 503 when full, 500 for a bug."""
    if isinstance(exc, TooManyPolls):
        return 429
    if isinstance(exc, Busy):
        return 503
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, (NoFaceError, EditError)):
        return 422
    if isinstance(exc, (ImageError, UsageError)):
        return 400
    return 500


def error_response(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse({"error": message, "kind": kind}, status_code=status)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets a 413 JSON error, judged by
    Content-Length when sent and by counting otherwise, so a huge upload is never stored."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = (f"upload refused: larger than the server's limit of "
                   f"{self.max_bytes / 2**20:.0f} MB")
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await error_response(413, message, "too_large")(scope, receive, send)
        seen, over, answered = 0, False, False

        async def counted():
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}  # stops the form parser here
            return msg

        async def guarded(msg):
            nonlocal answered
            if over:  # whatever the app answered to a cut body, the client gets the 413
                if not answered:
                    answered = True
                    await error_response(413, message, "too_large")(scope, receive, send)
                return
            await send(msg)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not answered:
            await error_response(413, message, "too_large")(scope, receive, send)


# Methods that change nothing on the server: any page may send them (as <img> or a link can).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_port(netloc: str | None, default_port: int | None = None):
    """(host, port) of a Host header or an origin's netloc, host lower-case without IPv6
    brackets; None when malformed (a port that is not a number, user info, a path)."""
    from urllib.parse import urlsplit

    if not netloc or any(c in netloc for c in "/?#@\\ "):
        return None
    try:
        u = urlsplit("//" + netloc)
        host, port = u.hostname, u.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port if port is not None else default_port


def _cross_origin(headers, host) -> str | None:
    """Why a write comes from another site's web page, or None when it does not: a browser
    says who sent it (Sec-Fetch-Site, Origin); clients that are not browsers (curl, scripts)
    send neither and are let through, as the API's users."""
    from urllib.parse import urlsplit

    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"the request came from a page of another site (Sec-Fetch-Site: {site})"
    origin = headers.get("origin")
    if origin is None:
        return None
    u = urlsplit(origin)
    if origin == "null" or u.scheme not in ("http", "https"):
        return f"the request came from a page without an origin of its own ({origin[:60]})"
    ports = {"http": 80, "https": 443}
    theirs = _host_port(u.netloc, ports[u.scheme])
    # a Host without a port is the port the page's scheme implies (e.g. behind a proxy)
    ours = None if host is None else (host[0], host[1] if host[1] else ports[u.scheme])
    if theirs is None or theirs != ours:
        return f"the request came from the page {origin[:80]}, not from this server's own page"
    return None


class RequestGuard:
    """ASGI middleware: answers only requests addressed to ``allowed_hosts`` (None: any name),
    and refuses writes (POST, DELETE, ...) sent by another site's web page, whose "simple"
    form posts a browser sends without asking (they filled every photo slot).

    Starlette's TrustedHostMiddleware answers in plain text and knows nothing of origins, and
    its CORS middleware only tells browsers what they may read, not what they may send; this is
    both checks, answering with the API's JSON errors."""

    def __init__(self, app, allowed_hosts=None):
        self.app = app
        self.allowed = (None if allowed_hosts is None
                        else sorted({h.strip("[]").lower() for h in allowed_hosts}))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        host = _host_port(headers.get("host"))
        if self.allowed is not None and (host is None or host[0] not in self.allowed):
            shown = (headers.get("host") or "")[:80]
            return await error_response(
                400, f"refused: this server answers requests addressed to "
                     f"{', '.join(self.allowed)}, not to the host {shown!r}",
                "host")(scope, receive, send)
        if scope["method"] not in SAFE_METHODS:
            why = _cross_origin(headers, host)
            if why is not None:
                return await error_response(
                    403, f"refused: {why}; only the server's own page, or a client that is not "
                         "a browser page, may upload, invert or delete", "cross_origin",
                )(scope, receive, send)
        await self.app(scope, receive, send)


def client_address(request) -> str | None:
    """The remote client's IP address, or None for this machine's clients (loopback) and for
    peers without one: what the per-client share of photo slots counts by."""
    host = request.client.host if request.client else None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if ip.is_loopback else str(ip)
