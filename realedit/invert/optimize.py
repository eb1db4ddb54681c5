"""Inversion by optimisation (Image2StyleGAN / NVIDIA projector family).

Adam on the latent, learning rate with a linear warm-up and a cosine ramp-down (the NVIDIA
projector's schedule), a configurable image loss, optional per-image noise maps with the
projector's multi-scale autocorrelation regulariser, z kept on its sphere, and early stopping
when the loss stalls. For skip generators (StyleGAN2) a coarse-to-fine schedule takes most steps
on a low-resolution RGB output, so the top blocks are not run; only the last steps run at full
size.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

from ..errors import UsageError
from .base import (Inversion, ProgressCallback, check_space, frozen, latent_to_ws, model_device,
                   noise_buffers, prepare_images, project_to_sphere, sample_z, start_latent,
                   supports_stop_at, use_noise)
from .losses import build_loss, resize

# regulariser(latent, ws, image) -> (N,) extra objective per sample (e.g. hybrid's domain term)
Regularizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class OptimizeOptions:
    steps: int = 500
    lr: float = 0.1
    rampup: float = 0.05        # fraction of steps with a linear lr warm-up
    rampdown: float = 0.25      # fraction of steps with the cosine decay to 0
    betas: tuple[float, float] = (0.9, 0.999)
    optimize_noise: bool = False
    noise_reg_weight: float = 1e5
    latent_noise: float = 0.0   # std of noise added to the latent early on (projector: 0.05)
    latent_noise_ramp: float = 0.75
    # wp space: optimise one shared w for this fraction of the steps first, then split it into
    # per-layer codes (from w_avg, per-layer Adam wanders off; a shared w converges first).
    w_warmup: float = 0.5
    wp_lr: float | None = 0.03  # lr of the per-layer stage after the warm-up (None: lr)
    z_candidates: int = 8       # z space: start from the best of this many seeded samples
    seed: int = 0
    # Coarse-to-fine (skip generators only): list of (resolution, fraction of steps); the rest
    # of the steps run at full size. None: every step at full size. "auto": AUTO_COARSE for
    # StyleGAN2 at >= 512 px, else None. bench/invert.py c2f: at equal wall time it reaches a
    # far lower full-size loss than plain steps; per step it is ~2.8x cheaper at 1024.
    coarse: Sequence[tuple[int, float]] | str | None = "auto"
    stall_steps: int = 0        # early stop window (0: max(25, steps // 5)); < 0 disables
    stall_tol: float = 1e-3     # relative improvement below which the loss counts as stalled
    compile: bool = False       # torch.compile the synthesis network (one graph per resolution)


def lr_at(t: float, rampup: float, rampdown: float) -> float:
    """Multiplier of the base lr at progress t in [0, 1): warm-up, plateau, cosine decay."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return ramp * (min(1.0, t / rampup) if rampup > 0 else 1.0)


def noise_regularizer(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """Multi-scale autocorrelation penalty of the NVIDIA projector, per sample (N,).

    Penalises the squared one-pixel horizontal and vertical autocorrelation of each map, then of
    its 2x average-pooled versions down to 8x8: optimised noise must stay white, so it cannot
    carry image content.
    """
    total = 0.0
    for v in maps:
        while True:
            total = total + (v * v.roll(1, dims=3)).mean((1, 2, 3)).square() \
                          + (v * v.roll(1, dims=2)).mean((1, 2, 3)).square()
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return total


AUTO_COARSE = [(128, 0.5), (256, 0.3)]


def phases(G, steps: int, coarse) -> list[tuple[int, int]]:
    """[(resolution, first step)] of the coarse-to-fine schedule, ending at full resolution."""
    if coarse == "auto":
        coarse = AUTO_COARSE if supports_stop_at(G) and G.resolution >= 512 else None
    if not coarse:
        return [(G.resolution, 0)]
    if not supports_stop_at(G):
        raise UsageError(f"coarse-to-fine needs a skip generator (StyleGAN2), not {G.kind}")
    out, start = [], 0
    for res, frac in coarse:
        if res >= G.resolution or res < 4 or res & (res - 1):
            raise UsageError(f"coarse resolution must be a power of two below {G.resolution}, got {res}")
        out.append((int(res), start))
        start += int(round(frac * steps))
    if start >= steps:
        raise UsageError("coarse fractions must leave steps at full resolution")
    return out + [(G.resolution, start)]


class _Synth:
    """Latent -> image at a resolution, optionally through torch.compile (one graph per res)."""

    def __init__(self, G, compile: bool):
        self.G = G
        self.fn = torch.compile(G.synthesis, dynamic=False) if compile else G.synthesis

    def __call__(self, ws, res):
        if res < self.G.resolution:
            return self.fn(ws, noise="const", stop_at=res)
        return self.fn(ws, noise="const")


def optimize_latents(G, targets: torch.Tensor, space: str, init: torch.Tensor, loss_fn,
                     opts: OptimizeOptions, regularizers: Sequence[Regularizer] = (),
                     callback: ProgressCallback | None = None, synth: _Synth | None = None,
                     method: str = "optimize") -> Inversion:
    """The optimisation loop shared by ``optimize`` and ``hybrid``."""
    t0 = time.perf_counter()
    steps = int(opts.steps)
    if steps < 1:
        raise UsageError("steps must be >= 1")
    n = targets.shape[0]
    synth = synth or _Synth(G, opts.compile)
    warm_steps = int(round(opts.w_warmup * steps)) if space == "wp" else 0
    base = None
    if warm_steps:
        # Warm-up variable: the layer mean of the initial codes, moved as one w; the per-layer
        # deviations (zero from w_avg, the encoder's from hybrid) ride along unchanged.
        latent = init.detach().float().mean(1).clone().requires_grad_(True)
        base = init.detach().float() - latent.detach().unsqueeze(1)
    else:
        latent = init.detach().clone().float().requires_grad_(True)
    params = [latent]
    maps = None
    if opts.optimize_noise:
        bufs = noise_buffers(G)
        maps = {k: b.detach().reshape(1, 1, *b.shape[-2:]).repeat(n, 1, 1, 1).requires_grad_(True)
                for k, b in bufs.items()}
        params += list(maps.values())
    opt = torch.optim.Adam(params, lr=opts.lr, betas=opts.betas)
    plan = phases(G, steps, opts.coarse)
    targets_at = {res: resize(targets, res) for res, _ in plan}
    w_scale = float(opts.latent_noise) * _latent_scale(G, space) if opts.latent_noise else 0.0

    stall = opts.stall_steps if opts.stall_steps else max(25, steps // 5)
    history, step_res, step_t = [], [], []
    best, best_at = math.inf, 0
    i = 0
    # Early stopping jumps to the next of these steps: phase starts, ramp-down starts, the end.
    stages = [(0, warm_steps), (warm_steps, steps)] if warm_steps else [(0, steps)]
    boundaries = sorted({s for _, s in plan} | {a for a, _ in stages} | {steps}
                        | {b - int((b - a) * opts.rampdown) for a, b in stages})
    while i < steps:
        if warm_steps and i >= warm_steps and latent.ndim == 2:
            # End of the shared-w warm-up: continue in W+ with a fresh Adam state.
            latent = (base + latent.detach().unsqueeze(1)).requires_grad_(True)
            params[0] = latent
            opt = torch.optim.Adam(params, lr=opts.lr, betas=opts.betas)
        res = max(r for r, s in plan if s <= i)
        # The warm-up and the main stage each get the full lr schedule (warm-up ramp included:
        # a fresh Adam at full lr would kick the codes off the warm-up's solution).
        s0, s1 = (0, warm_steps) if i < warm_steps else (warm_steps, steps)
        t = (i - s0) / (s1 - s0)
        base_lr = opts.wp_lr if (opts.wp_lr and space == "wp" and latent.ndim == 3) else opts.lr
        for g in opt.param_groups:
            g["lr"] = base_lr * lr_at(t, opts.rampup, opts.rampdown)
        lat = latent
        if w_scale:
            ramp = max(0.0, 1.0 - t / opts.latent_noise_ramp) ** 2
            lat = latent + torch.randn_like(latent) * (w_scale * ramp)
        ws = base + lat.unsqueeze(1) if lat.ndim == 2 and space == "wp" else latent_to_ws(G, lat, space)
        with use_noise(G, maps):
            img = synth(ws, res)
        rec = loss_fn(img, targets_at[res])
        obj = rec
        for reg in regularizers:
            obj = obj + reg(lat, ws, img)
        if maps is not None:
            obj = obj + opts.noise_reg_weight * noise_regularizer(
                [m for m in maps.values() if m.shape[-1] <= res])
        opt.zero_grad(set_to_none=True)
        obj.sum().backward()
        opt.step()
        with torch.no_grad():
            if space == "z":
                latent.copy_(project_to_sphere(latent))
            if maps is not None:
                for m in maps.values():
                    m.sub_(m.mean((1, 2, 3), keepdim=True)).div_(m.std((1, 2, 3), keepdim=True) + 1e-8)
        history.append(rec.detach())
        step_res.append(res)
        step_t.append(time.perf_counter() - t0)
        mean = float(rec.detach().mean())
        if callback is not None:
            callback(i + 1, steps, mean)
        i += 1
        # Early stop: when the loss stalls, skip to the next boundary (next coarse phase, the
        # cosine ramp-down, the next stage, or the end): the ramp-down is where precision comes.
        if len(step_res) >= 2 and step_res[-2] != res:
            best, best_at = math.inf, i
        if mean < best * (1 - opts.stall_tol):
            best, best_at = mean, i
        elif stall > 0 and i - best_at >= stall:
            i = min(s for s in boundaries if s > i - 1) if i < steps else i
            best, best_at = math.inf, i

    if space == "wp" and latent.ndim == 2:  # stopped during the warm-up
        latent = base + latent.detach().unsqueeze(1)
    with torch.no_grad(), use_noise(G, maps):
        final_ws = latent_to_ws(G, latent, space)
        recon = G.synthesis(final_ws, noise="const")
    return Inversion(
        latent=latent.detach(), space=space, reconstruction=recon.detach(),
        history=torch.stack(history) if history else torch.zeros(0, n), seconds=time.perf_counter() - t0,
        method=method, steps=len(history), loss=getattr(loss_fn, "spec", type(loss_fn).__name__),
        noise={k: m.detach() for k, m in maps.items()} if maps is not None else None,
        extra={"step_resolution": step_res, "step_seconds": step_t})


def _latent_scale(G, space: str) -> float:
    if space == "z":
        return 1.0
    from .base import estimate_w_stats
    return estimate_w_stats(G, 1000)[1]


def best_z_start(G, targets, loss_fn, k: int, seed: int) -> torch.Tensor:
    """Per image, the best of k seeded z samples (on the sphere) under the loss."""
    n = targets.shape[0]
    dev = targets.device
    cands = project_to_sphere(sample_z(G, k, seed, dev))
    best = torch.full((n,), math.inf, device=dev)
    out = cands[:1].repeat(n, 1)
    with torch.no_grad():
        for c in cands:
            img = G.synthesis(G.mapping(c[None].repeat(n, 1)), noise="const")
            loss = loss_fn(img, targets)
            better = loss < best
            out[better] = c
            best = torch.where(better, loss, best)
    return out


class OptimizeInverter:
    """``get("optimize", G, loss="lpips-vgg+mse", steps=500, lr=0.1, ...)``.

    Options: every OptimizeOptions field, plus ``loss`` (spec or module) and
    ``discriminator`` (for the ``disc`` loss; also makes it the ``auto`` default).
    """

    name = "optimize"

    def __init__(self, generator, loss="auto", discriminator=None, lpips_factory=None, **options):
        self.G = generator
        self.device = model_device(generator)
        self.loss_fn = build_loss(loss, discriminator=discriminator, lpips_factory=lpips_factory,
                                  device=self.device)
        unknown = set(options) - set(OptimizeOptions.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown option(s) for optimize: {', '.join(sorted(unknown))}")
        self.opts = OptimizeOptions(**options)
        self._synth = _Synth(generator, self.opts.compile)

    def invert(self, images, space=None, callback=None, init=None) -> Inversion:
        space = check_space(self.G, space)
        targets = prepare_images(self.G, images).to(self.device)
        if init is None:
            if space == "z" and self.opts.z_candidates > 1:
                init = best_z_start(self.G, targets, self.loss_fn, self.opts.z_candidates, self.opts.seed)
            else:
                init = start_latent(self.G, targets.shape[0], space, self.opts.seed, self.device)
        with frozen(self.G):
            return optimize_latents(self.G, targets, space, init, self.loss_fn, self.opts,
                                    callback=callback, synth=self._synth)
