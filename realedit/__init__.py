"""realedit: edit real face photos through pretrained GANs, on the CPU.

Pipeline: detect + align (realedit.align) -> invert (realedit.invert) -> move along attribute
directions (realedit.edit) -> synthesize (realedit.models) -> paste back (realedit.blend).
``realedit.Editor`` runs the whole job.
"""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy: `import realedit` (and `realedit --help`) must not pay for torch and dlib.
    if name in ("Editor", "EditResult", "InvertedPhoto"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'realedit' has no attribute {name!r}")


__all__ = ["Editor", "EditResult", "InvertedPhoto", "__version__"]
