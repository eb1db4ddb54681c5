"""realedit: edit real face photos through pretrained GANs, on the CPU.

Pipeline: detect + align (realedit.align) -> invert (realedit.invert) -> move along attribute
directions (realedit.edit) -> synthesize (realedit.models) -> paste back (realedit.blend).
"""
__version__ = "0.1.0"
