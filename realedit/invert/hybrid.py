"""Encoder initialisation + short optimisation with a domain regulariser (in-domain inversion).

The refinement minimises the image loss plus ``domain_weight * |E(G(w)) - w|^2`` (in units of
the spread of w): codes that the encoder would itself produce for their own image stay in the
region the generator was trained on, which is what keeps them editable. Starting from the
encoder's answer, a few dozen steps reach what plain optimisation needs hundreds for.
"""
from __future__ import annotations

import time

import torch

from ..errors import UsageError
from .base import Inversion, check_space, frozen, model_device, prepare_images
from .encoder import Encoder, EncoderInverter
from .losses import build_loss
from .optimize import OptimizeOptions, _Synth, optimize_latents


class HybridInverter:
    """``get("hybrid", G, encoder=..., loss="auto", steps=100, domain_weight=0.03, ...)``.

    Options: ``encoder`` (path, registry name or Encoder), ``domain_weight``,
    ``domain_every``, ``loss``, ``discriminator``, and the OptimizeOptions fields (defaults
    here: 100 steps, lr 0.05 for a shared offset over the first quarter, then 0.03 per layer).
    """

    name = "hybrid"

    def __init__(self, generator, encoder=None, loss="auto", discriminator=None,
                 domain_weight: float = 0.03, domain_every: int = 4, lpips_factory=None,
                 **options):
        self.G = generator
        self.device = model_device(generator)
        self.enc = EncoderInverter(generator, encoder=encoder)
        self.E: Encoder = self.enc.E
        self.loss_fn = build_loss(loss, discriminator=discriminator, lpips_factory=lpips_factory,
                                  device=self.device)
        self.domain_weight = float(domain_weight)
        self.domain_every = max(1, int(domain_every))
        # A short shared-offset stage (a quarter of the steps) at a moderate lr, then per layer:
        # the best compromise measured on a tiny random model and on an early 64-px face model
        # (the encoder's per-layer codes are informative; optimize's long warm-up wastes them).
        options = {"steps": 100, "lr": 0.05, "w_warmup": 0.25, "wp_lr": 0.03, **options}
        unknown = set(options) - set(OptimizeOptions.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown option(s) for hybrid: {', '.join(sorted(unknown))}")
        self.opts = OptimizeOptions(**options)
        self._synth = _Synth(generator, self.opts.compile)

    def _domain(self, space):
        """The in-domain term, evaluated every ``domain_every`` steps with its weight scaled to
        match: the encoder's forward+backward costs about as much as G's at 64 px, and a
        slowly varying pull toward the encoder's domain needs no per-step precision."""
        E, every = self.E, self.domain_every
        wgt = self.domain_weight * every
        z_out = E.config.output == "z"
        scale = 1.0 if z_out else float(E.w_std) ** 2

        def reg(latent, ws, img, iteration):
            if iteration % every:
                return torch.zeros(img.shape[0], device=img.device)
            if z_out:
                return wgt * (E(img) - latent).square().mean(-1)
            return wgt * (E(img) - ws).square().mean((1, 2)) / scale
        return reg

    def invert(self, images, space=None, callback=None) -> Inversion:
        t0 = time.perf_counter()
        space = check_space(self.G, space)
        targets = prepare_images(self.G, images).to(self.device)
        init = self.enc.encode(targets, space)
        regs = [self._domain(space)] if self.domain_weight > 0 else []
        with frozen(self.G, self.E):
            inv = optimize_latents(self.G, targets, space, init, self.loss_fn, self.opts,
                                   regularizers=regs, callback=callback, synth=self._synth,
                                   method="hybrid")
        inv.seconds = time.perf_counter() - t0
        return inv
