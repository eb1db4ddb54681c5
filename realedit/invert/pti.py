"""Pivotal tuning (PTI, Roich et al. 2021): the hybrid code as a pivot, then a per-face copy of
the generator fine-tuned so that the pivot reproduces the photo.

No code in a generator's space reproduces a real face exactly; moving the generator a little
towards the face instead closes most of the remaining gap while the code stays where the
generator was trained (so the bank's directions still mean what they meant). The tuning must
stay local: a locality term samples codes at a fixed distance from the pivot, towards random
codes of the mapping network, and keeps the tuned generator's images there equal to the
original generator's. Edits (a few units along a direction) then ride on the tuned neighbourhood
while the rest of the space is unchanged.

Only a deep copy is tuned (one per face; the caller's generator is never written to), and it
travels with the result: ``Inversion.generators[i]`` synthesises face i. Memory: one copy of the
generator's parameters per face (2 MB for the embedded 64-px model; about 120 MB for a
StyleGAN2 config-f 1024 model, plus Adam's two moments and the gradients while tuning).
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from ..errors import UsageError
from .base import (Inversion, check_space, estimate_w_stats, frozen, latent_to_ws, model_device,
                   prepare_images, sample_z)
from .encoder import EncoderInverter
from .hybrid import HybridInverter
from .losses import build_loss
from .optimize import OptimizeInverter, lr_at


@dataclass
class TuneOptions:
    # On the embedded model (one photo, hybrid pivot MSE .027): 40 steps at 1e-3 reach .022,
    # 150 at 3e-3 with locality 0.3 reach .011 while images one w-spread away move 4x less than
    # without the term; 1e-2 diverges with the term on. Steps are the cost: ~0.1 s each at 64 px.
    tune_steps: int = 100
    tune_lr: float = 3e-3
    # Locality: weight of the term, how many codes per evaluation, how often (every k steps,
    # weight scaled by k), and their distance from the pivot in units of the model's typical
    # |w - w_avg| (so the same setting means the same thing for every model).
    locality_weight: float = 0.3
    locality_samples: int = 1
    locality_every: int = 1
    locality_distance: float = 1.0
    seed: int = 0


def tuned_copy(G) -> torch.nn.Module:
    """A detached deep copy of G whose synthesis parameters (only) may be trained."""
    Gt = copy.deepcopy(G)
    Gt.requires_grad_(False)
    Gt.synthesis.requires_grad_(True)
    return Gt


def locality_codes(G, ws_pivot: torch.Tensor, n: int, distance: float,
                   generator: torch.Generator) -> torch.Tensor:
    """n per-layer codes at ``distance`` (per layer, in w units) from the pivot (1, L, C), each
    towards the code of a random z: the PTI paper's interpolation, per W+ layer."""
    z = torch.randn(n, G.z_dim, generator=generator).to(ws_pivot.device)
    with torch.no_grad():
        wz = G.mapping(z)
    step = wz - ws_pivot
    return ws_pivot + distance * step / step.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def pivotal_tune(G, target: torch.Tensor, ws_pivot: torch.Tensor, loss_fn, opts: TuneOptions,
                 w_spread: float, callback=None) -> tuple[torch.nn.Module, list[float]]:
    """Fine-tune a copy of G so that ``G'(ws_pivot)`` matches ``target`` (1, 3, R, R).

    Returns the tuned copy and the per-step reconstruction loss. G itself is not modified.
    """
    Gt = tuned_copy(G)
    params = [p for p in Gt.synthesis.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=opts.tune_lr)
    gen = torch.Generator().manual_seed(opts.seed)
    every = max(1, int(opts.locality_every))
    dist = float(opts.locality_distance) * w_spread
    history = []
    steps = int(opts.tune_steps)
    for i in range(steps):
        for g in opt.param_groups:  # short warm-up, cosine ramp-down: the last steps settle
            g["lr"] = opts.tune_lr * lr_at(i / steps, 0.05, 0.25)
        img = Gt.synthesis(ws_pivot, noise="const")
        rec = loss_fn(img, target).mean()
        obj = rec
        if opts.locality_weight > 0 and i % every == 0:
            ws_r = locality_codes(G, ws_pivot, opts.locality_samples, dist, gen)
            with torch.no_grad():
                ref = G.synthesis(ws_r, noise="const")
            obj = obj + opts.locality_weight * every * loss_fn(Gt.synthesis(ws_r, noise="const"), ref).mean()
        opt.zero_grad(set_to_none=True)
        obj.backward()
        opt.step()
        history.append(float(rec.detach()))
        if callback is not None:
            callback(i + 1, steps, history[-1])
    Gt.requires_grad_(False)
    return Gt.eval(), history


class PTIInverter:
    """``get("pti", G, encoder=..., tune_steps=100, tune_lr=3e-3, locality_weight=0.3, ...)``.

    The pivot comes from the hybrid inverter (its options pass through: ``steps``, ``loss``,
    ``discriminator``, ``domain_weight`` ...; ``steps=0``: the encoder's code; no encoder: the
    optimize inverter); the tuning uses the same image loss.
    """

    name = "pti"

    def __init__(self, generator, encoder=None, loss="auto", discriminator=None,
                 lpips_factory=None, **options):
        tune = {k: options.pop(k) for k in list(options) if k in TuneOptions.__dataclass_fields__}
        self.topts = TuneOptions(**tune)
        if self.topts.tune_steps < 1:
            raise UsageError(f"tune_steps must be >= 1, got {self.topts.tune_steps}")
        if self.topts.tune_lr <= 0 or self.topts.locality_weight < 0 or self.topts.locality_samples < 1:
            raise UsageError("pti needs tune_lr > 0, locality_weight >= 0 and locality_samples >= 1")
        self.G = generator
        self.device = model_device(generator)
        # The pivot: hybrid; the encoder alone for steps=0; optimize when there is no encoder.
        if encoder is None:
            self.pivot = OptimizeInverter(generator, loss=loss, discriminator=discriminator,
                                          lpips_factory=lpips_factory, **options)
        elif options.get("steps") == 0:
            if set(options) - {"steps"}:
                raise UsageError(f"unknown option(s) for pti with steps=0: "
                                 f"{', '.join(sorted(set(options) - {'steps'}))}")
            self.pivot = EncoderInverter(generator, encoder=encoder)
        else:
            self.pivot = HybridInverter(generator, encoder=encoder, loss=loss,
                                        discriminator=discriminator, lpips_factory=lpips_factory,
                                        **options)
        self.loss_fn = getattr(self.pivot, "loss_fn", None) or build_loss(
            loss, discriminator=discriminator, lpips_factory=lpips_factory, device=self.device)
        self._w_spread = None

    @property
    def w_spread(self) -> float:
        """Mean |w - w_avg| of mapping samples: the yardstick of the locality distance."""
        if self._w_spread is None:
            with torch.no_grad():
                w = self.G.mapping(sample_z(self.G, 512, 0, self.device))[:, 0]
                self._w_spread = float((w - estimate_w_stats(self.G, 512)[0]).norm(dim=-1).mean())
        return self._w_spread

    def invert(self, images, space=None, callback=None) -> Inversion:
        t0 = time.perf_counter()
        space = check_space(self.G, space)
        targets = prepare_images(self.G, images).to(self.device)
        n = targets.shape[0]
        pivot_steps = self.pivot.opts.steps if hasattr(self.pivot, "opts") else 0
        total = pivot_steps + n * self.topts.tune_steps
        done = [0]

        def progress(_i, _total, loss):
            done[0] += 1
            if callback is not None:
                callback(done[0], total, loss)

        pivot = self.pivot.invert(targets, space, callback=progress)
        gens, hists, recons = [], [], []
        with frozen(self.G):
            for i in range(n):
                ws = latent_to_ws(self.G, pivot.latent[i:i + 1], space).detach()
                Gt, hist = pivotal_tune(self.G, targets[i:i + 1], ws, self.loss_fn, self.topts,
                                        self.w_spread, progress)
                with torch.no_grad():
                    recons.append(Gt.synthesis(ws, noise="const"))
                    hists.append(hist + [float(self.loss_fn(recons[-1], targets[i:i + 1]).mean())])
                gens.append(Gt)
        # history: the pivot's refinement steps, then the tuning steps (+ the final loss).
        tune_hist = torch.tensor(hists, device=self.device).T
        history = torch.cat([pivot.history.to(tune_hist), tune_hist]) if len(pivot.history) else tune_hist
        return Inversion(latent=pivot.latent, space=space, reconstruction=torch.cat(recons),
                         history=history, seconds=time.perf_counter() - t0, method="pti",
                         steps=pivot.steps + self.topts.tune_steps, loss=getattr(self.loss_fn, "spec", pivot.loss),
                         generators=gens,
                         extra={"pivot_reconstruction": pivot.reconstruction,
                                "pivot_seconds": pivot.seconds})
