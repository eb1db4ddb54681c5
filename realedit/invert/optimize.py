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

# regulariser(latent, ws, image, iteration) -> (N,) extra objective per sample (e.g. hybrid's
# domain term); iteration counts the loop's steps from 0 (the same for every sample of a batch).
Regularizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


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
    sync_every: int = 0         # read losses to the host every N steps (0: 1 on CPU, 10 on GPU)
    # bf16 autocast of synthesis and losses on a CUDA device (Adam and the latents stay fp32).
    # Off until measured faster on a GPU at equal quality (bench/invert.py cost --device cuda).
    amp: bool = False


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


class SampleAdam:
    """Adam (as torch.optim.Adam, no weight decay) whose step count, learning rate and update
    mask are per sample (dim 0 of every parameter).

    Hand-written because torch.optim.Adam keeps one step count and one lr per tensor: in a batch
    of photos each face follows its own schedule (its own early stop, its own switch from the
    shared-w warm-up to W+), and must get exactly the updates it would get alone.
    """

    def __init__(self, params: Sequence[torch.Tensor], betas: tuple[float, float], eps: float = 1e-8):
        self.params = list(params)
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        n = self.params[0].shape[0]
        self.t = torch.zeros(n, device=self.params[0].device)

    @torch.no_grad()
    def reset(self, mask: torch.Tensor) -> None:
        """Fresh state for the masked samples (as a new optimizer would have)."""
        self.t.masked_fill_(mask, 0)
        for m, v in zip(self.m, self.v):
            k = mask.view(-1, *([1] * (m.ndim - 1)))
            m.masked_fill_(k, 0)
            v.masked_fill_(k, 0)

    @torch.no_grad()
    def step(self, lr: torch.Tensor, mask: torch.Tensor) -> None:
        self.t += mask
        t = self.t.clamp_min(1)
        step_size = lr / (1 - self.b1 ** t)
        root_bc2 = (1 - self.b2 ** t).sqrt()
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            shape = (-1, *([1] * (p.ndim - 1)))
            k, g = mask.view(shape), p.grad
            m.copy_(torch.where(k, m * self.b1 + g * (1 - self.b1), m))
            v.copy_(torch.where(k, v * self.b2 + g * g * (1 - self.b2), v))
            upd = step_size.view(shape) * m / (v.sqrt() / root_bc2.view(shape) + self.eps)
            p.sub_(torch.where(k, upd, torch.zeros_like(upd)))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _upload(values, dtype, device) -> torch.Tensor:
    """A small host list as a tensor on ``device``. To a GPU through pinned memory and a
    non-blocking copy: a copy from pageable memory waits for the GPU's queue (a host sync)."""
    if device.type == "cuda":
        return torch.tensor(values, dtype=dtype).pin_memory().to(device, non_blocking=True)
    return torch.tensor(values, dtype=dtype, device=device)


def _mask(n: int, members, device) -> torch.Tensor:
    """(n,) bool on ``device``, True at ``members``."""
    on = set(members)
    return _upload([i in on for i in range(n)], torch.bool, device)


def optimize_latents(G, targets: torch.Tensor, space: str, init: torch.Tensor, loss_fn,
                     opts: OptimizeOptions, regularizers: Sequence[Regularizer] = (),
                     callback: ProgressCallback | None = None, synth: _Synth | None = None,
                     method: str = "optimize") -> Inversion:
    """The optimisation loop shared by ``optimize`` and ``hybrid``.

    Every sample of the batch follows its own schedule (step index, early stop, warm-up switch,
    Adam state), so a face's optimisation is the same in a batch of many photos as alone, but
    batched kernels (and other thread counts) sum floats in another order, and over a hundred
    steps with early-stop decisions that rounding can grow into a different, equally good code
    (bench/reproducibility.py). Finished samples leave the batch.
    """
    t0 = time.perf_counter()
    steps = int(opts.steps)
    if steps < 1:
        raise UsageError("steps must be >= 1")
    n, dev = targets.shape[0], targets.device
    synth = synth or _Synth(G, opts.compile)
    warm_steps = int(round(opts.w_warmup * steps)) if space == "wp" else 0
    init = init.detach().float()
    # wp with a warm-up: a shared w per sample (the layer mean of the initial codes, moved as
    # one; the per-layer deviations ride along) until the sample's switch to per-layer codes.
    w = init.mean(1).clone().requires_grad_(True) if warm_steps else None
    base = (init - init.mean(1, keepdim=True)) if warm_steps else None
    latent = init.clone().requires_grad_(True)
    groups = [[latent]]
    if w is not None:
        groups.append([w])
    maps = None
    if opts.optimize_noise:
        bufs = noise_buffers(G)
        maps = {k: b.detach().reshape(1, 1, *b.shape[-2:]).repeat(n, 1, 1, 1).requires_grad_(True)
                for k, b in bufs.items()}
        groups.append(list(maps.values()))
    adams = [SampleAdam(g, opts.betas) for g in groups]
    plan = phases(G, steps, opts.coarse)
    targets_at = {res: resize(targets, res) for res, _ in plan}
    w_scale = float(opts.latent_noise) * _latent_scale(G, space) if opts.latent_noise else 0.0
    stall = opts.stall_steps if opts.stall_steps else max(25, steps // 5)
    # Host syncs: the stall check and the progress callback read losses every `sync` steps
    # only (a GPU then runs ahead of Python); on the CPU every step costs nothing extra.
    sync = int(opts.sync_every or (1 if dev.type == "cpu" else 10))
    amp = bool(opts.amp) and dev.type == "cuda"

    stages = [(0, warm_steps), (warm_steps, steps)] if warm_steps else [(0, steps)]
    boundaries = sorted({s for _, s in plan} | {a for a, _ in stages} | {steps}
                        | {b - int((b - a) * opts.rampdown) for a, b in stages})
    idx = [0] * n                      # each sample's own step index (host: it picks lr and res)
    ran = [0] * n                      # steps each sample actually took (early stops skip some)
    in_wp = [not warm_steps] * n
    last_res = [None] * n
    best = torch.full((n,), math.inf, device=dev)
    best_at = torch.zeros(n, device=dev)
    loss_now = torch.full((n,), math.nan, device=dev)
    history, step_res, step_t = [], [], []
    it = 0
    while True:
        active = [s for s in range(n) if idx[s] < steps]
        if not active:
            break
        switch = [s for s in active if warm_steps and not in_wp[s] and idx[s] >= warm_steps]
        if switch:  # end of this sample's shared-w warm-up: W+ with a fresh Adam state
            k = _mask(n, switch, dev)
            with torch.no_grad():
                latent.copy_(torch.where(k[:, None, None], base + w.detach().unsqueeze(1), latent))
            adams[0].reset(k)
            for s in switch:
                in_wp[s] = True
        lrs, ramps, res_of = [0.0] * n, [0.0] * n, {}
        for s in active:
            s0, s1 = (0, warm_steps) if not in_wp[s] else (warm_steps, steps)
            t = (idx[s] - s0) / (s1 - s0)
            base_lr = opts.wp_lr if (opts.wp_lr and space == "wp" and in_wp[s]) else opts.lr
            lrs[s] = base_lr * lr_at(t, opts.rampup, opts.rampdown)
            ramps[s] = max(0.0, 1.0 - t / opts.latent_noise_ramp) ** 2
            res_of.setdefault(max(r for r, st in plan if st <= idx[s]), []).append(s)
        act = _mask(n, active, dev)
        wp_mask = _upload(in_wp, torch.bool, dev)
        lr_t = _upload(lrs, torch.float32, dev)
        if space == "wp" and warm_steps:
            lat = torch.where(wp_mask[:, None, None], latent, base + w.unsqueeze(1))
        else:
            lat = latent
        if w_scale:
            r = _upload(ramps, torch.float32, dev).view(-1, *([1] * (lat.ndim - 1)))
            lat = lat + torch.randn_like(lat) * (w_scale * r)
        ws_all = lat if space == "wp" else latent_to_ws(G, lat, space)
        total, rec = 0.0, torch.zeros(n, device=dev)
        for res, members in sorted(res_of.items()):
            sub = None if len(members) == n else _upload(members, torch.long, dev)
            pick = (lambda x: x) if sub is None else (lambda x: x[sub])
            ws, sub_maps = pick(ws_all), None if maps is None else {k: pick(m) for k, m in maps.items()}
            with use_noise(G, sub_maps), torch.autocast(dev.type, torch.bfloat16, enabled=amp):
                img = synth(ws, res)
                r_loss = loss_fn(img, pick(targets_at[res])).float()
                obj = r_loss
                for reg in regularizers:
                    obj = obj + reg(pick(lat), ws, img, it).float()
            if sub_maps is not None:
                obj = obj + opts.noise_reg_weight * noise_regularizer(
                    [m for m in sub_maps.values() if m.shape[-1] <= res])
            total = total + obj.sum()
            rec = rec.index_copy(0, sub, r_loss.detach()) if sub is not None else r_loss.detach()
        for a in adams:
            a.zero_grad()
        total.backward()
        adams[0].step(lr_t, act & wp_mask if warm_steps else act)
        if w is not None:
            adams[1].step(lr_t, act & ~wp_mask)
        if maps is not None:
            adams[-1].step(lr_t, act)
        with torch.no_grad():
            if space == "z":
                latent.copy_(torch.where(act[:, None], project_to_sphere(latent), latent))
            if maps is not None:
                for m in maps.values():
                    k = act.view(-1, 1, 1, 1)
                    m.copy_(torch.where(k, (m - m.mean((1, 2, 3), keepdim=True))
                                        / (m.std((1, 2, 3), keepdim=True) + 1e-8), m))
        loss_now = torch.where(act, rec, loss_now)
        history.append(loss_now)
        step_res.append(max(res_of))
        step_t.append(time.perf_counter() - t0)
        it += 1
        for s in active:
            idx[s] += 1
            ran[s] += 1
        idx_t = _upload(idx, torch.float32, dev)
        # Per-sample early stop: a new phase restarts the count; an improvement resets it.
        new_phase = []
        for res, members in res_of.items():
            for s in members:
                if last_res[s] is not None and last_res[s] != res:
                    new_phase.append(s)
                last_res[s] = res
        fresh = _mask(n, new_phase, dev)
        best = torch.where(fresh, torch.full_like(best, math.inf), best)
        better = act & (rec < best * (1 - opts.stall_tol))
        best = torch.where(better, rec, best)
        best_at = torch.where(better | fresh, idx_t, best_at)
        done = all(idx[s] >= steps for s in active)
        if it % sync == 0 or done:
            if stall > 0:
                stalled = (act & ~better & (idx_t - best_at >= stall)).tolist()
                jumped = [s for s in active if stalled[s] and idx[s] < steps]
                for s in jumped:
                    idx[s] = min(b for b in boundaries if b > idx[s] - 1)
                if jumped:
                    k = _mask(n, jumped, dev)
                    best = torch.where(k, torch.full_like(best, math.inf), best)
                    best_at = torch.where(k, _upload(idx, torch.float32, dev),
                                          best_at)
            if callback is not None:
                callback(min(idx[s] for s in active) if not done else steps, steps,
                         float(rec[active].mean()))

    if warm_steps:
        final = torch.where(_upload(in_wp, torch.bool, dev)[:, None, None], latent.detach(),
                            base + w.detach().unsqueeze(1))
    else:
        final = latent.detach()
    with torch.no_grad(), use_noise(G, maps):
        recon = G.synthesis(latent_to_ws(G, final, space), noise="const")
    return Inversion(
        latent=final, space=space, reconstruction=recon.detach(),
        history=torch.stack(history) if history else torch.zeros(0, n, device=dev), seconds=time.perf_counter() - t0,
        method=method, steps=len(history), loss=getattr(loss_fn, "spec", type(loss_fn).__name__),
        noise={k: m.detach() for k, m in maps.items()} if maps is not None else None,
        extra={"step_resolution": step_res, "step_seconds": step_t, "sample_steps": ran})


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
