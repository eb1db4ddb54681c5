"""The FastAPI application of `realedit serve`: the HTTP API and the page that uses it.

    POST   /api/sessions                  upload a photo -> session id, faces found (inverts at
                                          once when the form also names ``faces``)
    POST   /api/sessions/{id}/invert      {"faces": "largest" | "all" | N} -> queue position
    GET    /api/sessions/{id}             state, queue position, progress, faces, error
    GET    /api/sessions/{id}/image       ?edit=smile=2&keep=gender&size=preview|full -> image
    DELETE /api/sessions/{id}             forget the photo now (else it expires)
    GET    /api/attributes                the sliders: attribute names and amount ranges
    GET    /api/health                    model, queue length, sessions
    GET    /docs, /openapi.json           OpenAPI (docs assets served locally, no CDN)

Every error is a JSON body {"error": one line, "kind": ...} with a 4xx status (5xx only for a
bug), and the server keeps serving.
"""
from __future__ import annotations

import io
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import EditError, ImageError, NoFaceError, RealeditError, UsageError
from .jobs import Busy, Conflict, InversionQueue, Session, SessionStore

log = logging.getLogger("realedit.serve")
STATIC = Path(__file__).with_name("static")

# Formats a client may upload; everything else is refused from the header, before decoding
# (Pillow also opens e.g. EPS, which would hand the bytes to Ghostscript).
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
               "TIFF": "image/tiff", "BMP": "image/bmp", "GIF": "image/gif"}


@dataclass(frozen=True)
class ServeConfig:
    """Limits of one server. Pixels: 40 MP takes ~120 MB decoded, per session."""

    max_upload_bytes: int = 30 * 1024 * 1024
    max_pixels: int = 40_000_000
    session_ttl: float = 1800.0
    max_sessions: int = 16
    max_waiting: int = 8
    preview_size: int = 768
    sweep_every: float = 30.0


# ------------------------------------------------------------------------------ errors

def _status(exc: RealeditError) -> int:
    if isinstance(exc, Busy):
        return 503
    if isinstance(exc, Conflict):
        return 409
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


# ------------------------------------------------------------------------------ helpers

def safe_stem(filename: str | None) -> str:
    """The upload's file stem reduced to [A-Za-z0-9._-] (download names only; never a path)."""
    stem = Path(str(filename or "")).name.rsplit(".", 1)[0] if filename else ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80]
    return stem or "photo"


def download_ext(filename: str | None, photo) -> str:
    """Like the CLI, the upload's own extension when it names the decoded format (.jpeg stays
    .jpeg), else the format's usual one."""
    from ..io import extension_for, format_for

    suffix = Path(str(filename or "")).suffix.lower()
    if suffix and format_for(f"x{suffix}") == ("JPEG" if photo.format == "MPO" else photo.format):
        return suffix
    return extension_for(photo)


def decode_upload(data: bytes, max_pixels: int):
    """Photo from uploaded bytes, judged by its content alone (ImageError otherwise)."""
    from PIL import Image, UnidentifiedImageError

    from ..io import read_image

    if not data:
        raise ImageError("the file is empty (0 bytes)")
    limit = f"the server's limit is {max_pixels / 1e6:.0f} megapixels"
    try:
        with Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS) as img:  # the header only
            w, h = img.size
    except Image.DecompressionBombError:  # Pillow's own ceiling, far above ours
        raise ImageError(f"refused: far too many pixels ({limit}; decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ImageError("not a photo: the file is not a JPEG, PNG, WebP, TIFF, BMP or GIF "
                         "image") from None
    except Exception as exc:  # noqa: BLE001 - a header Pillow chokes on is a bad upload
        raise ImageError(f"not a readable photo ({exc})") from None
    if w * h > max_pixels:
        raise ImageError(f"refused: the photo is {w}x{h} = {w * h / 1e6:.0f} megapixels, and "
                         f"{limit}")
    return read_image(data, max_pixels=max_pixels)


def downscaled(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` with its long side at most ``size`` (area averaging: fast, no aliasing)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA)


def jpeg(rgb: np.ndarray, quality: int = 88) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def preview_inversion(inverted, size: int, resolution: int):
    """The same inversion (same latents) on a copy of the photo whose long side is at most
    ``size``, each face re-aligned there, so a slider's preview costs what the preview's
    pixels cost: Editor.apply on a 12 MP photo spends most of a second warping and pasting
    at full size, though the preview shows a 768 px copy."""
    from dataclasses import replace

    from ..align import align_face
    from ..io import Photo

    rgb = inverted.photo.rgb
    small = downscaled(rgb, size)
    if small is rgb:
        return inverted
    # pixel centres sit at integer coordinates: x -> (x + 0.5) * scale - 0.5, per axis
    scale = np.array([small.shape[1] / rgb.shape[1], small.shape[0] / rgb.shape[0]])
    faces = []
    for fi in inverted.faces:
        f = fi.face
        box = (np.asarray(f.box, np.float64).reshape(2, 2) + 0.5) * scale - 0.5
        face = replace(f, box=tuple(float(v) for v in box.ravel()),
                       landmarks=(f.landmarks + 0.5) * scale - 0.5)
        crop = int(np.clip(round(face.size), resolution, 1024))  # Editor.invert's rule
        faces.append(replace(fi, face=face, aligned=align_face(small, face, crop)))
    return replace(inverted, photo=Photo(rgb=small), faces=faces)


def attribute_list(editor) -> list[dict]:
    """One slider per attribute the editor's bank can move its codes along."""
    from ..edit import direction_spaces, format_layers

    spaces = direction_spaces(editor.space)
    out = []
    for name in editor.bank.names(model=editor.model_name, space=spaces):
        d = editor.bank.get(name, model=editor.model_name, space=spaces)
        span = float(d.sensible_range)  # the bank's calibrated range, else the default +-3
        out.append({"name": name, "min": -span, "max": span, "step": round(span / 30, 3),
                    "calibrated": d.amount_range is not None, "scale": d.scale,
                    "layers": format_layers(d.layers) if d.layers is not None else "all",
                    "source": d.source or ""})
    return out


class InvertRequest(BaseModel):
    faces: str | int = "largest"


# ------------------------------------------------------------------------------ the app

def create_app(editor, config: ServeConfig | None = None, *, warn: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The web app around a loaded ``Editor``. ``warn``: a line shown on the page (e.g. that
    the server is reachable from other machines). ``allowed_hosts``: Host headers answered
    (None: any); a server on loopback answers only its own names, so a web page on another
    site cannot reach it through DNS rebinding."""
    from contextlib import asynccontextmanager

    from fastapi_offline import FastAPIOffline

    from ..align.detect import detect_faces
    from ..align.select import no_face_message, parse_policy, select_faces

    cfg = config or ServeConfig()
    store = SessionStore(ttl=cfg.session_ttl, max_sessions=cfg.max_sessions)
    queue = InversionQueue(editor, max_waiting=cfg.max_waiting)
    store.on_close = queue.drop
    attributes = attribute_list(editor)
    detect_lock = threading.Lock()  # dlib's models are shared; detection is CPU-bound anyway
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
    if allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.exception_handler(RealeditError)
    async def _realedit_error(request, exc: RealeditError):
        return error_response(_status(exc), str(exc), type(exc).__name__)

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
    @app.get("/api/health", tags=["server"])
    def health():
        """Liveness, the model served, and how busy the server is."""
        return {"status": "ok", "model": editor.model_name, "space": editor.space,
                "inverter": getattr(editor.inverter, "name", "?"), "queue": len(queue),
                "sessions": len(store)}

    @app.get("/api/attributes", tags=["edit"])
    def list_attributes():
        """The attributes the model's direction bank can edit, with slider ranges (the
        calibrated sensible range when the bank has one, else -3..3 unit normals)."""
        return {"model": editor.model_name, "attributes": attributes}

    @app.post("/api/sessions", status_code=201, tags=["session"])
    def create_session(file: UploadFile = File(..., description="The photo (any name; its "
                                                                 "content decides the format)"),
                       faces: str | None = Form(None, description="largest | all | N: start "
                                                "the inversion at once")):
        """Upload a photo: it is decoded, its faces found, and a session made for it. With
        ``faces`` the inversion is queued at once; else pick with POST .../invert."""
        data = file.file.read(cfg.max_upload_bytes + 1)
        if len(data) > cfg.max_upload_bytes:  # behind BodyLimit; belt and braces
            return error_response(413, "upload refused: too large", "too_large")
        policy = parse_policy(faces) if faces is not None else None
        photo = decode_upload(data, cfg.max_pixels)
        name = safe_stem(file.filename)
        with detect_lock:
            found = detect_faces(photo.rgb, detector=editor.detector, keep_rejected=True)
        usable, skipped = select_faces(found, "all", min_size=editor.min_face)
        if not usable:
            where = f"this photo ({photo.width}x{photo.height})"
            raise NoFaceError(no_face_message(skipped, where))
        s = store.create(name=name, ext=download_ext(file.filename, photo), photo=photo,
                         faces=found, usable=usable, skipped=skipped)
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
    def session_state(sid: str, wait: float = Query(0, ge=0, le=300, description=
                      "seconds to wait for a queued or running inversion to end")):
        """State of a session: detected | queued (with position: 1 = next, and how many
        photos are ahead of it) | inverting (position 0, with progress) | ready | failed
        (with error)."""
        s = session_or_404(sid)
        end = time.monotonic() + wait
        while s.state in ("queued", "inverting") and time.monotonic() < end:
            time.sleep(0.05)
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
        from ..pipeline import parse_edits

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
                    preview = s.preview = preview_inversion(inverted, cfg.preview_size,
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
    def page_config():
        return {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                "warning": warn, "model": editor.model_name}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _version() -> str:
    from .. import __version__
    return __version__
