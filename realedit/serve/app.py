"""The FastAPI application of `realedit serve`: the HTTP API and the page that uses it.

    POST   /api/sessions                  upload a photo -> session id, faces found (inverts at
                                          once when the form also names ``faces``)
    POST   /api/sessions/{id}/invert      {"faces": "largest" | "all" | N} -> queue position
    GET    /api/sessions/{id}             state, queue position, progress, faces, error
                                          (?wait=S: waits, without holding a thread, until
                                          the inversion ends)
    GET    /api/sessions/{id}/image       ?edit=smile=2&keep=gender&size=preview|full -> image
    DELETE /api/sessions/{id}             forget the photo now (else it expires)
    GET    /api/attributes                the sliders: attribute names and amount ranges
    GET    /api/health                    model, queue length, sessions
    GET    /docs, /openapi.json           OpenAPI (docs assets served locally, no CDN)

Every error is a JSON body {"error": one line, "kind": ...} with a 4xx status (503 when the
server is full, with Retry-After; 5xx otherwise only for a bug), and the server keeps serving.
Writes (POST, DELETE) sent by another site's web page are refused (403), whatever the Host
(realedit.serve.guards). The work behind the routes is realedit.serve.service's; uploads are
judged and encoded by realedit.serve.media.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RealeditError
from .guards import BodyLimit, RequestGuard, client_address, error_response, status_for
from .jobs import Busy, Session
from .media import MEDIA_TYPES
from .service import EditService, ServeConfig

log = logging.getLogger("realedit.serve")
STATIC = Path(__file__).with_name("static")


class InvertRequest(BaseModel):
    faces: str | int = "largest"


def create_app(editor, config: ServeConfig | None = None, *, warn: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The web app around a loaded ``Editor``. ``warn``: a line shown on the page (e.g. that
    the server is reachable from other machines). ``allowed_hosts``: Host headers answered
    (None: any); a server on loopback answers only its own names, so a web page on another
    site cannot reach it through DNS rebinding."""
    from contextlib import asynccontextmanager

    from fastapi_offline import FastAPIOffline

    service = EditService(editor, config)
    cfg = service.config

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.close()

    # FastAPIOffline: FastAPI whose /docs and /redoc load their JS and CSS from this package,
    # not from a CDN, so the documentation works offline like the page.
    app = FastAPIOffline(
        title="realedit serve", version=_version(), lifespan=lifespan,
        description="Edit faces in real photos through a GAN: upload a photo, invert it once "
                    "(queued, one at a time), then render any number of edits cheaply.")
    app.state.service = service
    app.state.store, app.state.queue, app.state.editor, app.state.config = (
        service.store, service.queue, editor, cfg)
    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    # outermost: a request for another host or another site's write is refused before its
    # body is read
    app.add_middleware(RequestGuard, allowed_hosts=allowed_hosts)
    _error_handlers(app)

    def session_or_404(sid: str) -> Session:
        s = service.store.get(sid)
        if s is None:
            raise StarletteHTTPException(404, "no such session (it may have expired; upload the "
                                              "photo again)")
        return s

    # -------------------------------------------------------------------- API
    # Cheap endpoints are coroutines: they answer on the event loop even when every worker
    # thread renders or detects.
    @app.get("/api/health", tags=["server"])
    async def health():
        """Liveness, the model served, and how busy the server is: photos inverting or waiting
        (queue), sessions held, uploads being searched for faces, clients long-polling."""
        return service.health()

    @app.get("/api/attributes", tags=["edit"])
    async def list_attributes():
        """The attributes the model's direction bank can edit, with slider ranges (the
        calibrated sensible range when the bank has one, else -3..3 unit normals)."""
        return {"model": editor.model_name, "attributes": service.attributes}

    @app.post("/api/sessions", status_code=201, tags=["session"])
    def create_session(request: Request,
                       file: UploadFile = File(..., description="The photo (any name; its "
                                                                 "content decides the format)"),
                       faces: str | None = Form(None, description="largest | all | N: start "
                                                "the inversion at once")):
        """Upload a photo: it is decoded, its faces found, and a session made for it. With
        ``faces`` the inversion is queued at once; else pick with POST .../invert. A full
        server answers 503 (with Retry-After) before decoding the photo."""
        s = service.upload(client_address(request), file.file, file.filename, faces)
        return service.describe(s)

    @app.post("/api/sessions/{sid}/invert", status_code=202, tags=["session"])
    def invert(sid: str, body: InvertRequest):
        """Queue the inversion of the chosen faces; poll GET /api/sessions/{id} for progress."""
        s = session_or_404(sid)
        service.invert(s, body.faces)
        return service.describe(s)

    @app.get("/api/sessions/{sid}", tags=["session"])
    async def session_state(request: Request, sid: str,
                            wait: float = Query(0, ge=0, le=300, description=
                            "seconds to wait for a queued or running inversion to end")):
        """State of a session: detected | queued (with position: 1 = next, and how many
        photos are ahead of it) | inverting (position 0, with progress) | ready | failed
        (with error). A client that waits holds no worker thread; over the server's limit of
        clients waiting at once it gets 429. A session that expires or is deleted meanwhile
        answers 404."""
        s = session_or_404(sid)
        await service.wait(s, wait, request.is_disconnected)
        if s.closed:
            raise StarletteHTTPException(404, "no such session (it expired or was deleted while "
                                              "waiting; upload the photo again)")
        s.touch()
        return service.describe(s)

    @app.get("/api/sessions/{sid}/image", tags=["edit"],
             responses={200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}}})
    def image(sid: str, edit: list[str] = Query([], description="NAME=AMOUNT, repeatable"),
              keep: list[str] = Query([], description="attribute to hold fixed, repeatable"),
              size: Literal["preview", "full"] = "preview"):
        """The photo with the edits: a JPEG preview (long side at most the server's preview
        size), or the full-size photo in its own format, as the command line writes it.
        Amounts beyond an attribute's sensible range are rendered, with an X-Realedit-Warning
        header."""
        s = session_or_404(sid)
        out = service.render(s, edit, keep, size)
        if size == "full" and s.closed:
            raise StarletteHTTPException(404, "the session expired while rendering")
        return Response(out.data, media_type=out.media_type, headers=out.headers)

    @app.delete("/api/sessions/{sid}", tags=["session"])
    def delete_session(sid: str):
        """Forget the photo and delete its files now."""
        if not service.store.close(sid):
            raise StarletteHTTPException(404, "no such session")
        return {"deleted": sid}

    # -------------------------------------------------------------------- the page
    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/page-config", include_in_schema=False)
    async def page_config():
        return {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                "warning": warn, "model": editor.model_name}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _error_handlers(app: FastAPI) -> None:
    """Every error as one JSON body {"error": one line, "kind": ...}."""

    @app.exception_handler(RealeditError)
    async def _realedit_error(request, exc: RealeditError):
        r = error_response(status_for(exc), str(exc), getattr(exc, "kind", type(exc).__name__))
        if isinstance(exc, Busy):
            r.headers["Retry-After"] = str(exc.retry_after)
        return r

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query"))
            msg = e.get("msg", "invalid")
            parts.append(f"{where}: {msg}" if where else msg)
        return error_response(422, "bad request: " + "; ".join(parts), "bad_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), "http")

    @app.exception_handler(Exception)
    async def _bug(request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}", "internal")


def _version() -> str:
    from ..version import __version__
    return __version__
