"""What the web app does, apart from HTTP: a server's sessions, its inversion queue and face
detectors, and the work behind each route (take an upload, start an inversion, describe a
session, wait for it, render an edit). realedit.serve.app only wires these to routes.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field

import anyio

from ..errors import RealeditError, UsageError
from ..prepare import downscaled, rescaled
from .jobs import Conflict, InversionQueue, Session, SessionStore, TooLarge, TooManyPolls
from .media import MEDIA_TYPES, decode_upload, download_ext, jpeg, safe_stem


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


@dataclass
class DetectLane:
    """One face detector and the lock that lets one photo at a time use it (a dlib detector
    keeps the image it scans inside itself)."""

    detector: object
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Rendered:
    """An encoded image and the headers it goes out with."""

    data: bytes
    media_type: str
    headers: dict


# States in which an inversion is still to end: what a long poll waits through.
WORKING = ("queued", "inverting")


class EditService:
    """One loaded ``Editor`` serving many photos: the sessions (``store``), the inversion
    queue (``queue``, one photo at a time), the sliders (``attributes``)."""

    def __init__(self, editor, config: ServeConfig | None = None):
        from ..align.detect import default_detector
        from ..edit.sliders import sliders

        self.editor = editor
        self.config = cfg = config or ServeConfig()
        per_client = (cfg.max_per_client if cfg.max_per_client is not None
                      else math.ceil(cfg.max_sessions / 2))
        self.store = SessionStore(ttl=cfg.session_ttl, max_sessions=cfg.max_sessions,
                                  max_per_owner=per_client)
        self.queue = InversionQueue(editor, max_waiting=cfg.max_waiting)
        self.store.on_close = self.queue.drop
        self.attributes = sliders(editor.bank, editor.model_name, editor.space)
        # Face search is CPU-bound, one photo at a time per detector. A big photo takes long (a
        # 40 MP one ~37 s on one core: the small-face pass scans ~5x its pixels), so photos over
        # big_photo_pixels queue in a lane of their own, with a copy of the detector (its own
        # dlib HOG scanners; the read-only landmark model is shared): a small upload waits at
        # most for the small photos ahead of it.
        detector = editor.detector if editor.detector is not None else default_detector()
        self.lanes = {"small": DetectLane(detector), "big": DetectLane(copy.copy(detector))}
        self.long_polls = 0  # clients waiting in GET /api/sessions/{id}?wait= (event loop only)
        self._stop = threading.Event()

    # ---------------------------------------------------------------- lifetime
    def start(self) -> None:
        """Sweep expired sessions every ``sweep_every`` seconds, in a thread of its own."""
        def janitor():
            while not self._stop.wait(self.config.sweep_every):
                self.store.sweep()

        threading.Thread(target=janitor, name="realedit-sessions", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.queue.close()
        self.store.close_all()

    # ---------------------------------------------------------------- the work
    def health(self) -> dict:
        ed = self.editor
        return {"status": "ok", "model": ed.model_name, "space": ed.space,
                "inverter": getattr(ed.inverter, "name", "?"), "queue": len(self.queue),
                "sessions": len(self.store), "uploads": self.store.uploads,
                "long_polls": self.long_polls}

    def upload(self, owner: str | None, fh, filename: str | None, faces=None) -> Session:
        """A session for the photo read from ``fh``: decoded, its faces found (every face, the
        rejected ones flagged); its inversion queued at once when ``faces`` names a policy."""
        from ..align.select import detect_and_select, parse_policy

        cfg = self.config
        policy = parse_policy(faces) if faces is not None else None
        # the slot is held from here: uploads in flight count against the limit
        with self.store.reserve(owner) as slot:
            if policy is not None:
                self.queue.check_room()
            data = fh.read(cfg.max_upload_bytes + 1)
            if len(data) > cfg.max_upload_bytes:  # behind BodyLimit; belt and braces
                raise TooLarge("upload refused: too large")
            photo = decode_upload(data, cfg.max_pixels)
            del data
            lane = self.lanes["big" if photo.width * photo.height > cfg.big_photo_pixels
                              else "small"]
            with lane.lock:
                found, usable, skipped = detect_and_select(
                    photo.rgb, "all", min_size=self.editor.min_face, detector=lane.detector,
                    where=f"this photo ({photo.width}x{photo.height})")
            s = self.store.create(slot, name=safe_stem(filename),
                                  ext=download_ext(filename, photo), photo=photo, faces=found,
                                  usable=usable, skipped=skipped)
        if policy is not None:
            try:
                self.invert(s, policy)
            except RealeditError:
                self.store.close(s.id)
                raise
        return s

    def invert(self, s: Session, faces) -> None:
        """Queue the inversion of ``faces`` (a policy) of the session's usable faces."""
        from ..align.select import parse_policy

        policy = parse_policy(faces)
        if isinstance(policy, int) and policy >= len(s.usable):
            raise UsageError(f"face index {policy} requested but only {len(s.usable)} usable "
                             "face(s) were found")
        self.queue.submit(s, policy)

    def describe(self, s: Session) -> dict:
        """The session as the API shows it."""
        faces = [{"index": i, "box": [round(float(v), 1) for v in f.box],
                  "size": round(f.size, 1)} for i, f in enumerate(s.usable)]
        skipped = [{"box": [round(float(v), 1) for v in k.face.box], "reason": k.reason}
                   for k in s.skipped]
        return {"id": s.id, "name": s.name, "width": s.photo.width, "height": s.photo.height,
                "format": s.photo.format, "state": s.state, "position": self.queue.position(s),
                "ahead": self.queue.ahead(s),
                "progress": {"step": s.step, "total": s.total}, "error": s.error,
                "faces": faces, "skipped": skipped, "selection": s.selection,
                # which of ``faces`` were inverted (the detector of the inversion hands back
                # these very Face objects, so identity is the match)
                "inverted": [i for fi in (s.inverted.faces if s.inverted else ())
                             for i, f in enumerate(s.usable) if f is fi.face],
                "idle_expiry_s": round(self.store.ttl, 1)}  # forgotten after this long unused

    async def wait(self, s: Session, seconds: float, disconnected) -> None:
        """Wait up to ``seconds`` while the session's inversion is queued or running, without
        holding a thread; ``disconnected()`` (awaitable) ends the wait early. TooManyPolls when
        as many clients wait already as the server lets wait."""
        if seconds <= 0 or s.state not in WORKING:
            return
        if self.long_polls >= self.config.max_long_polls:
            raise TooManyPolls(f"{self.long_polls} clients are already waiting on this "
                               "server; ask again without wait, or in a second", 1)
        self.long_polls += 1
        try:
            # The inversion thread knows nothing of the event loop; a tenth of a second's look
            # at the state is cheap for any number of waiting coroutines.
            end = time.monotonic() + seconds
            while s.state in WORKING and not s.closed and time.monotonic() < end:
                s.touch()  # a client waiting on the photo is using it
                if await disconnected():
                    break
                await anyio.sleep(0.1)
        finally:
            self.long_polls -= 1

    def render(self, s: Session, edit, keep, size: str = "preview") -> Rendered:
        """The photo with ``edit`` (NAME=AMOUNT strings): a JPEG preview (long side at most
        the preview size) or the full photo encoded as the command line writes it. Amounts
        beyond a sensible range are rendered, with an X-Realedit-Warning header."""
        from ..args import parse_edits

        editor, cfg = self.editor, self.config
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
            return Rendered(jpeg(rgb), "image/jpeg", headers)
        # no move: the photo itself, bit for bit
        photo = editor.apply(inverted, moves, keep).photo if moves else s.photo
        return self._full_size(s, photo, edited=bool(moves), headers=headers)

    @staticmethod
    def _full_size(s: Session, photo, edited: bool, headers: dict) -> Rendered:
        """Encoded as io.write_image (the CLI's path) writes it, in memory."""
        from ..io import encode_image, format_for

        name = f"{s.name}_edited{s.ext}" if edited else f"{s.name}{s.ext}"
        fmt = format_for(name, s.photo)
        data = encode_image(photo, fmt, like=s.photo)
        return Rendered(data, MEDIA_TYPES.get(fmt, "application/octet-stream"),
                        {**headers, "Content-Disposition": f'attachment; filename="{name}"'})
