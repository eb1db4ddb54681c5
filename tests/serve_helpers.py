"""Shared by the `realedit serve` tests."""
from __future__ import annotations

import contextlib
import copy
import io
import threading

from PIL import Image


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


class GatedInverter:
    """The real inverter, held at a gate until the test opens it: the first photo stays
    'inverting' long enough for a second client to see its place in the queue."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.started, self.gate = threading.Event(), threading.Event()

    def invert(self, images, space=None, callback=None):
        self.started.set()
        assert self.gate.wait(60)
        return self.inner.invert(images, space, callback=callback)


class GatedDetector:
    """A face detector that holds photos of more than ``over_pixels`` at a gate until the
    test opens it (None: holds nothing), then detects their faces (``detect_held``) or
    answers none (a big photo's slow search skipped: the test is about waiting); counts its
    calls. A copy (the server may give a second lane its own detector) shares the gate and
    the count."""

    def __init__(self, inner, over_pixels: int | None, detect_held: bool = False,
                 _shared=None):
        self.inner, self.over_pixels, self.detect_held = inner, over_pixels, detect_held
        self._shared = _shared or {"calls": 0, "held": threading.Event(),
                                   "gate": threading.Event()}
        self.held, self.gate = self._shared["held"], self._shared["gate"]

    @property
    def calls(self) -> int:
        return self._shared["calls"]

    def __getattr__(self, name):  # min_face, kind, ...: the real detector's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __copy__(self):
        return GatedDetector(copy.copy(self.inner), self.over_pixels, self.detect_held,
                             self._shared)

    def __call__(self, image, **kw):
        self._shared["calls"] += 1
        h, w = image.shape[:2]
        if self.over_pixels is not None and h * w > self.over_pixels:
            self.held.set()
            assert self.gate.wait(60)
            if not self.detect_held:
                return []
        return self.inner(image, **kw)


@contextlib.contextmanager
def live_server(app):
    """``app`` served by uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the test server did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
