"""`realedit serve`: a browser editor and an HTTP API around one loaded `Editor`.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart, fastapi-offline).

    from realedit import Editor
    from realedit.serve import create_app
    app = create_app(Editor.from_pretrained())   # any ASGI server can run it
"""
from __future__ import annotations

from .app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app", "warm_up"]


def warm_up(editor) -> None:
    """Load the face detector's models now (seconds), not on the first upload."""
    import numpy as np

    from ..align.detect import detect_faces

    detect_faces(np.zeros((64, 64, 3), np.uint8), detector=editor.detector)
