"""realedit: edit real face photos through pretrained GANs, on the CPU.

Pipeline: detect + align (realedit.align) -> invert (realedit.invert) -> move along attribute
directions (realedit.edit) -> synthesize (realedit.models) -> paste back (realedit.blend).
``realedit.Editor`` runs the whole job.
"""
import sys as _sys

from .version import __version__

if "torch" not in _sys.modules:
    # OpenMP reads its settings when torch loads it: a short spin before a waiting thread
    # sleeps, unless the user chose how OpenMP waits (realedit.threads; child processes
    # inherit it). Where torch is already loaded, setting it now would only half apply.
    from .threads import configure_env as _configure_env

    _configure_env()


def __getattr__(name):
    # Lazy: `import realedit` (and `realedit --help`) must not pay for torch and dlib.
    if name in ("Editor", "EditResult", "InvertedPhoto"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'realedit' has no attribute {name!r}")


__all__ = ["Editor", "EditResult", "InvertedPhoto", "__version__"]
