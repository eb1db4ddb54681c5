"""Sessions and the inversion queue of `realedit serve`, free of any web framework.

A session is one uploaded photo: its decoded pixels, the faces found in it, and (once inverted)
the InvertedPhoto that every slider move is rendered from. Sessions live in memory, each with
a scratch folder of its own that is deleted with it; ids are random tokens made here, and the
only thing a client's id is ever used for is a dictionary lookup.

Inversion is the slow step, so it runs on one worker thread per server, first come first
served: a waiting session can report its position, and the worker writes each result into the
session object it took from the queue, so two users can never swap results.
"""
from __future__ import annotations

import logging
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RealeditError

log = logging.getLogger("realedit.serve")

# What a session can be doing; "detected": faces found, waiting for the client to pick.
STATES = ("detected", "queued", "inverting", "ready", "failed")


class Busy(RealeditError):
    """The server holds as many sessions (or waiting inversions) as it is configured for.
    ``retry_after``: seconds after which a retry may succeed (the HTTP Retry-After header)."""

    exit_code = 1

    def __init__(self, message: str, retry_after: float = 30.0):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class TooManyPolls(Busy):
    """As many clients wait on the server (long polls) as it lets wait at once."""


class TooLarge(RealeditError):
    """An upload over the server's limit (realedit.serve.guards.BodyLimit refuses most before
    they reach a route)."""

    exit_code = 1
    kind = "too_large"  # the error body's kind, as BodyLimit's


class Conflict(RealeditError):
    """The session is not in a state that allows the request (e.g. edit before inversion)."""

    exit_code = 1


@dataclass(eq=False)
class Session:
    id: str
    name: str                   # the upload's file stem, sanitised: only used for download names
    ext: str                    # extension of the download (".jpg", ".png", ...)
    photo: object               # realedit.io.Photo
    faces: list                 # every detection (realedit.align.Face), rejected ones flagged
    usable: list                # the faces a selection index counts among, largest first
    skipped: list               # realedit.align.select.Skipped, for the page's grey boxes
    folder: Path
    state: str = "detected"
    selection: object = None    # face policy of the inversion: "largest", "all" or an index
    step: int = 0
    total: int = 0
    error: str | None = None
    inverted: object = None     # realedit.pipeline.InvertedPhoto once ready
    preview: object = None      # the same at preview size (realedit.prepare.rescaled)
    owner: str | None = None    # the remote client address that uploaded it (None: this
                                # machine's, or unknown), for the per-client share of slots
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    closed: bool = False

    def touch(self) -> None:
        self.last_used = time.monotonic()


class Reservation:
    """A slot of the store held for an upload being decoded and searched for faces, so a full
    server refuses before that work, and uploads in flight count against the limit."""

    def __init__(self, store: "SessionStore", owner: str | None):
        self.store, self.owner, self.held = store, owner, True

    def __enter__(self) -> "Reservation":
        return self

    def __exit__(self, *exc) -> None:
        self.store._release(self)


class SessionStore:
    """Sessions by id, with a scratch folder each; expired after ``ttl`` seconds unused.

    ``max_per_owner``: slots one remote client address may hold (sessions and uploads in
    flight); sessions without an owner (this machine's clients) are not counted."""

    def __init__(self, *, ttl: float = 1800.0, max_sessions: int = 16,
                 max_per_owner: int | None = None, root: str | Path | None = None):
        self.ttl = float(ttl)
        self.max_sessions = int(max_sessions)
        self.max_per_owner = max_per_owner
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="realedit-serve-") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._sessions: dict[str, Session] = {}
        self._reserved: list[Reservation] = []
        self._lock = threading.Lock()
        self.on_close = None    # callback(session): lets the queue drop a closed session

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def uploads(self) -> int:
        """Uploads holding a slot while they are decoded and searched for faces."""
        return len(self._reserved)

    def reserve(self, owner: str | None = None) -> Reservation:
        """Hold a slot for an upload (a context manager; ``create`` turns it into the session,
        leaving the block gives it back); Busy, with a retry hint, when none is free."""
        self.sweep()
        with self._lock:
            if len(self._sessions) + len(self._reserved) >= self.max_sessions:
                raise Busy(f"the server already holds {self.max_sessions} photos; try again "
                           "when a session has expired or was closed", self._retry_after())
            if owner is not None and self.max_per_owner is not None:
                mine = (sum(s.owner == owner for s in self._sessions.values())
                        + sum(r.owner == owner for r in self._reserved))
                if mine >= self.max_per_owner:
                    raise Busy(f"this address already holds {mine} of the server's "
                               f"{self.max_sessions} photos; close one (DELETE) or try again "
                               "when one has expired", self._retry_after(owner))
            r = Reservation(self, owner)
            self._reserved.append(r)
        return r

    def _release(self, r: Reservation) -> None:
        with self._lock:
            if r.held:
                r.held = False
                self._reserved.remove(r)

    def _retry_after(self, owner: str | None = None) -> float:
        """Seconds until the first idle session (of ``owner``, when given) expires."""
        now = time.monotonic()
        left = [self.ttl - (now - s.last_used) for s in self._sessions.values()
                if s.state != "inverting" and (owner is None or s.owner == owner)]
        return max(min(left, default=60.0), 1.0)

    def create(self, reservation: Reservation | None = None, **fields) -> Session:
        """A new session with a fresh id and folder, in the slot ``reservation`` holds (else in
        a free one: Busy when there is none)."""
        if reservation is None:
            with self.reserve(fields.pop("owner", None)) as r:
                return self.create(r, **fields)
        fields.pop("owner", None)  # the reservation's owner it is
        with self._lock:
            if not reservation.held:
                raise RuntimeError("the reservation was already used or given back")
            sid = secrets.token_urlsafe(16)
            folder = self.root / sid
            folder.mkdir()
            s = Session(id=sid, folder=folder, owner=reservation.owner, **fields)
            reservation.held = False  # the session holds the slot now
            self._reserved.remove(reservation)
            self._sessions[sid] = s
        return s

    def get(self, sid: str) -> Session | None:
        """The live session with this id (refreshing its expiry), else None."""
        self.sweep()
        s = self._sessions.get(sid) if isinstance(sid, str) else None
        if s is not None:
            s.touch()
        return s

    def close(self, sid: str) -> bool:
        with self._lock:
            s = self._sessions.pop(sid, None)
        if s is None:
            return False
        self._discard(s)
        return True

    def sweep(self, now: float | None = None) -> int:
        """Close sessions unused for longer than ttl (an inversion in progress counts as use)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            old = [s for s in self._sessions.values()
                   if s.state != "inverting" and now - s.last_used > self.ttl]
            for s in old:
                del self._sessions[s.id]
        for s in old:
            log.info("session %s expired", s.id[:6])
            self._discard(s)
        return len(old)

    def close_all(self) -> None:
        with self._lock:
            items = list(self._sessions.values())
            self._sessions.clear()
        for s in items:
            self._discard(s)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _discard(self, s: Session) -> None:
        s.closed = True
        s.inverted = s.preview = None  # the pixels and latents go with the session
        if self.on_close is not None:
            self.on_close(s)
        shutil.rmtree(s.folder, ignore_errors=True)


class InversionQueue:
    """One worker thread inverting sessions in arrival order.

    The photo is prepared with a detector that returns the faces found at upload: the faces
    inverted are exactly the ones the client saw and picked from (and the photo is not
    searched a second time).
    """

    def __init__(self, editor, *, max_waiting: int = 8):
        self.editor = editor
        self.max_waiting = int(max_waiting)
        self._seconds: deque[float] = deque(maxlen=20)  # recent inversion times, for hints
        self._waiting: deque[Session] = deque()
        self._running: Session | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="realedit-invert", daemon=True)
        self._thread.start()

    def submit(self, session: Session, selection) -> int:
        """Queue ``session``; returns its position (0 = inverting now)."""
        with self._cond:
            if session.state in ("queued", "inverting"):
                raise Conflict("this photo is already being inverted")
            if session.state == "ready":
                raise Conflict("this photo is already inverted; start a new session to pick "
                               "other faces")
            self._check_room()
            session.selection, session.error = selection, None
            session.step = session.total = 0
            session.state = "queued"
            self._waiting.append(session)
            self._cond.notify()
            return self._position(session)

    def check_room(self) -> None:
        """Busy (with a retry hint) when no more photos may wait: an upload that asks for an
        inversion is refused before its photo is decoded."""
        with self._cond:
            self._check_room()

    def _check_room(self) -> None:
        if len(self._waiting) >= self.max_waiting:
            typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 10.0
            raise Busy(f"{len(self._waiting)} photos are already waiting to be inverted; "
                       f"try again in about {math.ceil(typical)} s", typical)

    def position(self, session: Session) -> int | None:
        """0 while inverting, n >= 1 while n - 1 others are ahead of it, None otherwise."""
        with self._cond:
            return self._position(session)

    def ahead(self, session: Session) -> int:
        """How many photos will be inverted before this waiting one (the running one included)."""
        with self._cond:
            try:
                return self._waiting.index(session) + (self._running is not None)
            except ValueError:
                return 0

    def _position(self, session: Session) -> int | None:
        if session is self._running:
            return 0
        try:
            return self._waiting.index(session) + 1
        except ValueError:
            return None

    def __len__(self) -> int:
        with self._cond:
            return len(self._waiting) + (self._running is not None)

    def drop(self, session: Session) -> None:
        """Forget a closed session that is still waiting (a running one finishes, and its
        result is dropped)."""
        with self._cond:
            try:
                self._waiting.remove(session)
            except ValueError:
                pass

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._waiting.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                session = self._running = self._waiting.popleft()
                session.state = "inverting"
            try:
                self._invert(session)
            finally:
                with self._cond:
                    self._running = None

    def _invert(self, s: Session) -> None:
        def progress(step, total, loss):
            s.step, s.total = int(step), int(total)

        from ..prepare import prepare_photo

        def found(image, keep_rejected=False):  # the detections made at upload
            return [f for f in s.faces if keep_rejected or f.accepted]

        editor = self.editor
        t0 = time.perf_counter()
        try:
            prepared = prepare_photo(s.photo, s.selection, resolution=editor.G.resolution,
                                     min_face=editor.min_face, detector=found)
            inverted = editor.invert_prepared([prepared], progress=progress)[0]
        except RealeditError as exc:
            s.error, s.state = str(exc), "failed"
            return
        except Exception as exc:  # noqa: BLE001 - a bug on one photo must not stop the worker
            log.exception("inversion of session %s failed", s.id[:6])
            s.error = f"internal error while inverting: {type(exc).__name__}: {exc}"
            s.state = "failed"
            return
        seconds = time.perf_counter() - t0
        with self._cond:
            self._seconds.append(seconds)
        if s.closed:  # expired or deleted while it ran: drop the result
            return
        s.inverted, s.state = inverted, "ready"
        s.touch()
        log.info("session %s inverted %d face(s) in %.1f s", s.id[:6], len(inverted.faces),
                 seconds)
