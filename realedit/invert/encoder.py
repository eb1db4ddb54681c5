"""The encoder inverter: one forward pass of a trained encoder (realedit's own, or pSp / e4e).

The network is realedit.invert.encoder_net, its file realedit.invert.encoder_file (both names
are re-exported here), its training realedit.training.encoder.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from ..errors import UsageError
from .base import Inversion, check_space, latent_to_ws, model_device, prepare_images
from .encoder_file import (FORMAT, VERSION, load_encoder, read_encoder_file,  # noqa: F401
                           save_encoder)
from .encoder_net import Encoder, EncoderConfig, check_compatible  # noqa: F401
from .losses import MSELoss


class EncoderInverter:
    """``get("encoder", G, encoder=PATH_OR_NAME_OR_Encoder)``: one forward pass.

    ``space``: "wp" (the encoder's own output), "w" (layer mean of it), or "z" for PGGAN.
    History holds one row: the reconstruction's MSE.
    """

    name = "encoder"
    # Its reconstruction is exactly realedit.invert.synthesize(G, latent, space) (constant
    # noise, no override): Editor reuses it as the edits' "before" image.
    reconstruction_is_synthesis = True

    def __init__(self, generator, encoder=None, **_ignored):
        if encoder is None:
            raise UsageError("the encoder method needs an encoder (encoder=PATH or registry name); "
                             "train one with `realedit train-encoder`")
        self.G = generator
        self.device = model_device(generator)
        self.E = encoder if isinstance(encoder, nn.Module) else load_encoder(encoder)
        self.E = self.E.to(self.device).eval()
        check_compatible(self.E, generator)
        if getattr(self.E, "w_std_set", True) is False:  # a pSp / e4e file: measure w's spread
            self.E.set_generator_stats(generator)
        self.name = getattr(self.E, "name", "encoder")  # "e4e" / "psp" for those files

    @torch.no_grad()
    def encode(self, images: torch.Tensor, space: str) -> torch.Tensor:
        code = self.E(images)
        if self.E.config.output == "z":
            if space != "z":
                raise UsageError("a PGGAN encoder predicts z only")
            return code
        if space == "wp":
            return code
        if space == "w":
            return code.mean(1)
        raise UsageError("a W+ encoder cannot answer in z (the mapping network is not invertible)")

    def invert(self, images, space=None, callback=None) -> Inversion:
        t0 = time.perf_counter()
        space = check_space(self.G, space)
        targets = prepare_images(self.G, images).to(self.device)
        latent = self.encode(targets, space)
        with torch.no_grad():
            recon = self.G.synthesis(latent_to_ws(self.G, latent, space), noise="const")
            mse = MSELoss()(recon, targets)
        if callback is not None:
            callback(1, 1, float(mse.mean()))
        return Inversion(latent=latent, space=space, reconstruction=recon, history=mse[None],
                         seconds=time.perf_counter() - t0, method="encoder", steps=0, loss="mse")
