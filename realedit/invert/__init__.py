"""Inverters: aligned face photos -> latent codes of a generator.

``get(name, generator, **options)`` with name ``optimize``, ``encoder``, ``hybrid`` or ``pti``
returns an object with ``invert(images, space=None, callback=None) -> Inversion``.
Training an encoder is realedit.training.encoder (train_encoder, register_encoder).
"""
from __future__ import annotations

from ..args import INVERTERS
from ..errors import UsageError
from .base import Inversion, Inverter, ProgressCallback, latent_to_ws, synthesize
from .losses import LOSS_NAMES, build_loss, parse_spec
from .lpips import LPIPS
from .encoder_file import load_encoder, save_encoder
from .encoder_net import Encoder, EncoderConfig
from .optimize import OptimizeInverter, OptimizeOptions

METHODS = INVERTERS


def get(name: str, generator, **options) -> Inverter:
    """An inverter by name. See each class for its options."""
    if name == "optimize":
        return OptimizeInverter(generator, **options)
    if name == "encoder":
        from .encoder import EncoderInverter
        return EncoderInverter(generator, **options)
    if name == "hybrid":
        from .hybrid import HybridInverter
        return HybridInverter(generator, **options)
    if name == "pti":
        from .pti import PTIInverter
        return PTIInverter(generator, **options)
    raise UsageError(f"unknown inversion method {name!r}; choose from {', '.join(METHODS)}")


__all__ = ["get", "METHODS", "Inversion", "Inverter", "ProgressCallback", "LPIPS", "LOSS_NAMES",
           "build_loss", "parse_spec", "latent_to_ws", "synthesize", "OptimizeInverter",
           "OptimizeOptions", "Encoder", "EncoderConfig", "load_encoder", "save_encoder"]
