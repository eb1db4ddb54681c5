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
(realedit.serve.guards); uploads are judged and encoded by realedit.serve.media.
"""
from __future__ import annotations

import copy
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import RealeditError, UsageError
from ..prepare import downscaled
from .guards import BodyLimit, RequestGuard, client_address, error_response, status_for
from .jobs import Busy, Conflict, InversionQueue, Session, SessionStore, TooManyPolls
from .media import MEDIA_TYPES, decode_upload, download_ext, jpeg, safe_stem


log = logging.getLogger("realedit.serve")
STATIC = Path(__file__).with_name("static")


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one server. Pixels: 40 MP takes ~120 MB decoded, per session.

    max_per_client: photos one remote client address may hold (None: half of max_sessions,
    rounded up); clients on this machine (loopback) share the whole store.
    max_long_polls: clients waiting at once on GET /api/sessions/{id}?wait= (more get 429).
    big_photo_pixels: photos larger than this are searched for faces in a lane of their own,
    so a small upload never waits for a big photo's detection (tens of seconds at 40 MP)."""

    max_upload_bytes: int = 30 * 1024 * 1024
    max_pixels: int = 40_000_000
    session_ttl: float = 1800.0
    max_sessions: int = 16
    max_per_client: int | None = None
    max_waiting: int = 8
    max_long_polls: int = 100
    big_photo_pixels: int = 4_000_000
    preview_size: int = 768
    sweep_every: float = 30.0


class InvertRequest(BaseModel):
    faces: str | int = "largest"


@dataclass
class DetectLane:
    """One face detector and the lock that lets one photo at a time use it (a dlib detector
    keeps the image it scans inside itself)."""

    detector: object
    lock: threading.Lock = field(default_factory=threading.Lock)


# States in which an inversion is still to end: what a long poll waits through.
WORKING = ("queued", "inverting")


def create_app(editor, config: ServeConfig | None = None, *, warn: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The web app around a loaded ``Editor``. ``warn``: a line shown on the page (e.g. that
    the server is reachable from other machines). ``allowed_hosts``: Host headers answered
    (None: any); a server on loopback answers only its own names, so a web page on another
    site cannot reach it through DNS rebinding."""
    from contextlib import asynccontextmanager

    from fastapi_offline import FastAPIOffline

    from ..align.select import detect_and_select, parse_policy
    from ..edit.sliders import sliders
    from ..prepare import rescaled

    cfg = config or ServeConfig()
    per_client = (cfg.max_per_client if cfg.max_per_client is not None
                  else math.ceil(cfg.max_sessions / 2))
    store = SessionStore(ttl=cfg.session_ttl, max_sessions=cfg.max_sessions,
                         max_per_owner=per_client)
    queue = InversionQueue(editor, max_waiting=cfg.max_waiting)
    store.on_close = queue.drop
    attributes = sliders(editor.bank, editor.model_name, editor.space)
    # Face search is CPU-bound, one photo at a time per detector. A big photo takes long (a
    # 40 MP one ~37 s on one core: the small-face pass scans ~5x its pixels), so photos over
    # big_photo_pixels queue in a lane of their own, with a copy of the detector (its own dlib
    # HOG scanners; the read-only landmark model is shared): a small upload waits at most for
    # the small photos ahead of it.
    from ..align.detect import default_detector

    detector = editor.detector if editor.detector is not None else default_detector()
    lanes = {"small": DetectLane(detector), "big": DetectLane(copy.copy(detector))}
    long_polls = [0]  # clients waiting in GET /api/sessions/{id}?wait= (event loop only)
    stop = threading.Event()

    def janitor():
        while not stop.wait(cfg.sweep_every):
            store.sweep()

    @asynccontextmanager
    async def lifespan(app):
        t = threading.Thread(target=janitor, name="realedit-sessions", daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            queue.close()
            store.close_all()

    # FastAPIOffline: FastAPI whose /docs and /redoc load their JS and CSS from this package,
    # not from a CDN, so the documentation works offline like the page.
    app = FastAPIOffline(
        title="realedit serve", version=_version(), lifespan=lifespan,
        description="Edit faces in real photos through a GAN: upload a photo, invert it once "
                    "(queued, one at a time), then render any number of edits cheaply.")
    app.state.store, app.state.queue, app.state.editor, app.state.config = store, queue, editor, cfg
    app.add_middleware(BodyLimit, max_bytes=cfg.max_upload_bytes)
    # outermost: a request for another host or another site's write is refused before its
    # body is read
    app.add_middleware(RequestGuard, allowed_hosts=allowed_hosts)

    @app.exception_handler(RealeditError)
    async def _realedit_error(request, exc: RealeditError):
        r = error_response(status_for(exc), str(exc), type(exc).__name__)
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

    def session_or_404(sid: str) -> Session:
        s = store.get(sid)
        if s is None:
            raise StarletteHTTPException(404, "no such session (it may have expired; upload the "
                                              "photo again)")
        return s

    def describe(s: Session) -> dict:
        faces = [{"index": i, "box": [round(float(v), 1) for v in f.box],
                  "size": round(f.size, 1)} for i, f in enumerate(s.usable)]
        skipped = [{"box": [round(float(v), 1) for v in k.face.box], "reason": k.reason}
                   for k in s.skipped]
        return {"id": s.id, "name": s.name, "width": s.photo.width, "height": s.photo.height,
                "format": s.photo.format, "state": s.state, "position": queue.position(s),
                "ahead": queue.ahead(s),
                "progress": {"step": s.step, "total": s.total}, "error": s.error,
                "faces": faces, "skipped": skipped, "selection": s.selection,
                # which of ``faces`` were inverted (the detector of the inversion hands back
                # these very Face objects, so identity is the match)
                "inverted": [i for fi in (s.inverted.faces if s.inverted else ())
                             for i, f in enumerate(s.usable) if f is fi.face],
                "idle_expiry_s": round(store.ttl, 1)}  # forgotten after this long unused

    def start(s: Session, faces) -> None:
        policy = parse_policy(faces)
        if isinstance(policy, int) and policy >= len(s.usable):
            raise UsageError(f"face index {policy} requested but only {len(s.usable)} usable "
                             "face(s) were found")
        queue.submit(s, policy)

    # -------------------------------------------------------------------- API
    # Cheap endpoints are coroutines: they answer on the event loop even when every worker
    # thread renders or detects.
    @app.get("/api/health", tags=["server"])
    async def health():
        """Liveness, the model served, and how busy the server is: photos inverting or waiting
        (queue), sessions held, uploads being searched for faces, clients long-polling."""
        return {"status": "ok", "model": editor.model_name, "space": editor.space,
                "inverter": getattr(editor.inverter, "name", "?"), "queue": len(queue),
                "sessions": len(store), "uploads": store.uploads, "long_polls": long_polls[0]}

    @app.get("/api/attributes", tags=["edit"])
    async def list_attributes():
        """The attributes the model's direction bank can edit, with slider ranges (the
        calibrated sensible range when the bank has one, else -3..3 unit normals)."""
        return {"model": editor.model_name, "attributes": attributes}

    @app.post("/api/sessions", status_code=201, tags=["session"])
    def create_session(request: Request,
                       file: UploadFile = File(..., description="The photo (any name; its "
                                                                 "content decides the format)"),
                       faces: str | None = Form(None, description="largest | all | N: start "
                                                "the inversion at once")):
        """Upload a photo: it is decoded, its faces found, and a session made for it. With
        ``faces`` the inversion is queued at once; else pick with POST .../invert. A full
        server answers 503 (with Retry-After) before decoding the photo."""
        policy = parse_policy(faces) if faces is not None else None
        # the slot is held from here: uploads in flight count against the limit
        with store.reserve(client_address(request)) as slot:
            if policy is not None:
                queue.check_room()
            data = file.file.read(cfg.max_upload_bytes + 1)
            if len(data) > cfg.max_upload_bytes:  # behind BodyLimit; belt and braces
                return error_response(413, "upload refused: too large", "too_large")
            photo = decode_upload(data, cfg.max_pixels)
            del data
            name = safe_stem(file.filename)
            lane = lanes["big" if photo.width * photo.height > cfg.big_photo_pixels else "small"]
            with lane.lock:
                found, usable, skipped = detect_and_select(
                    photo.rgb, "all", min_size=editor.min_face, detector=lane.detector,
                    where=f"this photo ({photo.width}x{photo.height})")
            s = store.create(slot, name=name, ext=download_ext(file.filename, photo),
                             photo=photo, faces=found, usable=usable, skipped=skipped)
        if policy is not None:
            try:
                start(s, policy)
            except RealeditError:
                store.close(s.id)
                raise
        return describe(s)

    @app.post("/api/sessions/{sid}/invert", status_code=202, tags=["session"])
    def invert(sid: str, body: InvertRequest):
        """Queue the inversion of the chosen faces; poll GET /api/sessions/{id} for progress."""
        s = session_or_404(sid)
        start(s, body.faces)
        return describe(s)

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
        if wait > 0 and s.state in WORKING:
            if long_polls[0] >= cfg.max_long_polls:
                raise TooManyPolls(f"{long_polls[0]} clients are already waiting on this "
                                   "server; ask again without wait, or in a second", 1)
            long_polls[0] += 1
            try:
                # The inversion thread knows nothing of the event loop; a tenth of a second's
                # look at the state is cheap for any number of waiting coroutines.
                end = time.monotonic() + wait
                while s.state in WORKING and not s.closed and time.monotonic() < end:
                    s.touch()  # a client waiting on the photo is using it
                    if await request.is_disconnected():
                        break
                    await anyio.sleep(0.1)
            finally:
                long_polls[0] -= 1
        if s.closed:
            raise StarletteHTTPException(404, "no such session (it expired or was deleted while "
                                              "waiting; upload the photo again)")
        s.touch()
        return describe(s)

    @app.get("/api/sessions/{sid}/image", tags=["edit"],
             responses={200: {"content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}}})
    def image(sid: str, edit: list[str] = Query([], description="NAME=AMOUNT, repeatable"),
              keep: list[str] = Query([], description="attribute to hold fixed, repeatable"),
              size: Literal["preview", "full"] = "preview"):
        """The photo with the edits: a JPEG preview (long side at most the server's preview
        size), or the full-size photo in its own format, as the command line writes it.
        Amounts beyond an attribute's sensible range are rendered, with an X-Realedit-Warning
        header."""
        from ..args import parse_edits

        s = session_or_404(sid)
        moves = {k: v for k, v in parse_edits(edit).items() if v != 0}
        headers = {"Cache-Control": "no-store"}
        inverted, preview = s.inverted, s.preview  # held here: the session may expire meanwhile
        if moves:
            if s.state != "ready" or inverted is None:
                raise Conflict(f"this photo is not inverted yet ({s.state}): wait for the "
                               "session to be ready")
            # amounts beyond a direction's sensible range are allowed, with a warning
            warnings = editor.check_edits(moves, keep) or []
            if warnings:
                text = " | ".join(warnings)
                headers["X-Realedit-Warning"] = text.encode("ascii", "replace").decode()
        if size == "preview":
            if not moves:
                rgb = downscaled(s.photo.rgb, cfg.preview_size)
            else:
                if preview is None:  # made once per session, on its first preview
                    preview = s.preview = rescaled(inverted, cfg.preview_size,
                                                   editor.G.resolution)
                rgb = editor.apply(preview, moves, keep).photo.rgb
            return Response(jpeg(rgb), media_type="image/jpeg", headers=headers)
        # no move: the photo itself, bit for bit
        photo = editor.apply(inverted, moves, keep).photo if moves else s.photo
        if s.closed:
            raise StarletteHTTPException(404, "the session expired while rendering")
        return full_size(s, photo, edited=bool(moves), headers=headers)

    def full_size(s: Session, photo, edited: bool, headers: dict) -> Response:
        """Encoded as io.write_image (the CLI's path) writes it, in memory, then sent."""
        from ..io import encode_image, format_for

        name = f"{s.name}_edited{s.ext}" if edited else f"{s.name}{s.ext}"
        fmt = format_for(name, s.photo)
        data = encode_image(photo, fmt, like=s.photo)
        return Response(data, media_type=MEDIA_TYPES.get(fmt, "application/octet-stream"),
                        headers={**headers,
                                 "Content-Disposition": f'attachment; filename="{name}"'})

    @app.delete("/api/sessions/{sid}", tags=["session"])
    def delete_session(sid: str):
        """Forget the photo and delete its files now."""
        if not store.close(sid):
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


def _version() -> str:
    from ..version import __version__
    return __version__
