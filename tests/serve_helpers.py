"""Shared by the `realedit serve` tests."""
from __future__ import annotations

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
