"""Train a small StyleGAN2 on aligned face crops, on whatever torch device is available.

The recipe is the StyleGAN2/ADA one scaled down for a 2-core CPU: non-saturating logistic
loss, lazy R1 on reals, EMA generator with ramp-up, style mixing, and DiffAugment
(colour + translation + cutout) on every image D sees, because the set is only ~10k crops.
Path-length regularisation is left out: its double backward through G costs more than a
third of an iteration here, and the shipped model is inverted with an encoder + refinement,
which does not depend on it.

Checkpoints hold G, D, G_ema, both optimisers, the image counter and the RNG state, written
atomically, so a run killed at any point resumes where it stopped (``--resume``).
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import UsageError
from ..fsutil import atomic_write
from ..models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .stopping import stop_requests


@dataclass
class GanConfig:
    resolution: int = 64
    z_dim: int = 256
    w_dim: int = 256
    mapping_layers: int = 8
    # Width min(channel_base / res, channels): 64 up to 32 px and 32 at 64 px. The 64-px layers
    # dominate the cost, and halving them nearly doubled images/s on 2 cores.
    channels: int = 64
    channel_base: int = 2048
    batch: int = 32
    lr: float = 0.0025
    r1_gamma: float = 0.05
    r1_interval: int = 16
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    style_mixing: float = 0.9
    augment: str = "color,translation,cutout"
    total_kimg: float = 200.0
    checkpoint_every: int = 200   # iterations
    sample_every: int = 500
    seed: int = 0
    compile: bool = False
    threads: int = 0              # 0: torch default

    def g_kwargs(self):
        return dict(resolution=self.resolution, z_dim=self.z_dim, w_dim=self.w_dim,
                    mapping_layers=self.mapping_layers, channel_base=self.channel_base,
                    channel_max=self.channels)

    def d_kwargs(self):
        return dict(resolution=self.resolution, channel_base=self.channel_base,
                    channel_max=self.channels)


# ------------------------------------------------------------------ DiffAugment (Zhao et al. 2020)

AUGMENTATIONS = ("color", "translation", "cutout")
# Config fields that change what is learned (not schedule or bookkeeping), recorded when a
# resumed run changes them.
RECIPE_FIELDS = ("lr", "r1_gamma", "r1_interval", "ema_kimg", "ema_rampup", "style_mixing", "augment")


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Differentiable augmentations applied identically in kind (randomly per sample) to reals
    and fakes, so D cannot memorise the small set while G still gets gradients."""
    for p in [p for p in policy.split(",") if p]:
        if p == "color":
            n = x.shape[0]
            x = x + (torch.rand(n, 1, 1, 1, device=x.device) - 0.5)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) * 2) + mean
            mean = x.mean(dim=[1, 2, 3], keepdim=True)
            x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device) + 0.5) + mean
        elif p == "translation":
            x = _translate(x, 0.125)
        elif p == "cutout":
            x = _cutout(x, 0.5)
        else:
            raise ValueError(f"unknown augmentation {p!r}")
    return x


def _translate(x, ratio):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)


def _cutout(x, ratio):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    gb, gx, gy = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


# ------------------------------------------------------------------ training state

@dataclass
class TrainState:
    G: StyleGAN2Generator
    D: StyleGAN2Discriminator
    G_ema: StyleGAN2Generator
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    nimg: int = 0
    it: int = 0
    seconds: float = 0.0
    log: list = field(default_factory=list)


def new_state(cfg: GanConfig, device) -> TrainState:
    torch.manual_seed(cfg.seed)
    G = StyleGAN2Generator(**cfg.g_kwargs()).to(device)
    D = StyleGAN2Discriminator(**cfg.d_kwargs()).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    # D is regularised lazily, so its Adam hyper-parameters are corrected as in StyleGAN2.
    c = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_G = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.0, 0.99), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99 ** c), eps=1e-8)
    return TrainState(G, D, G_ema, opt_G, opt_D)


def state_from_model(path_or_name, cfg: GanConfig, device) -> tuple[TrainState, GanConfig]:
    """A new run that continues a released realedit model (e.g. the embedded one, whose own
    training run is not shipped): G and G_ema start from its generator (the file holds the EMA
    weights), D from its discriminator, the optimisers fresh. The architecture is the model's;
    the image counter starts at the model's recorded total, so ``total_kimg`` stays a total."""
    from ..models import read_model

    ck, path = read_model(path_or_name)
    if ck.kind != "stylegan2" or ck.meta.get("source_format") != "realedit-model":
        raise UsageError(f"{path}: only realedit's own StyleGAN2 files can be trained further "
                         f"(this is {ck.kind}, {ck.meta.get('source_format')})")
    if ck.D is None:
        raise UsageError(f"{path}: the model has no discriminator to continue training with")
    c = ck.config
    cfg = replace(cfg, resolution=int(c["resolution"]), z_dim=int(c["z_dim"]), w_dim=int(c["w_dim"]),
                  mapping_layers=int(c["mapping_layers"]), channel_base=int(c["channel_base"]),
                  channels=int(c["channel_max"]))
    state = new_state(cfg, device)
    state.G.load_state_dict(ck.G)
    state.G_ema.load_state_dict(ck.G)
    state.D.load_state_dict(ck.D)
    kimg = float(ck.meta.get("kimg") or 0.0)
    state.nimg = int(round(kimg * 1000))
    state.log.append({"it": 0, "kimg": kimg, "init_from": str(ck.meta.get("name") or path.name),
                      "note": "fresh optimisers"})
    return state, cfg


def save_checkpoint(state: TrainState, cfg: GanConfig, path: Path) -> None:
    path = Path(path)
    with atomic_write(path) as fh:
        torch.save({"config": asdict(cfg), "G": state.G.state_dict(), "D": state.D.state_dict(),
                    "G_ema": state.G_ema.state_dict(), "opt_G": state.opt_G.state_dict(),
                    "opt_D": state.opt_D.state_dict(), "nimg": state.nimg, "it": state.it,
                    "seconds": state.seconds, "log": state.log,
                    "rng": torch.get_rng_state(), "cuda_rng": _cuda_rng(state)}, fh)


def _cuda_rng(state: TrainState):
    """The training GPU's RNG state (random noise, augmentation draws), or None on the CPU."""
    dev = next(state.G.parameters()).device
    return torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None


def load_checkpoint(path: Path, device) -> tuple[TrainState, GanConfig]:
    ck = torch.load(path, map_location=device, weights_only=True)
    cfg = GanConfig(**ck["config"])
    state = new_state(cfg, device)
    state.G.load_state_dict(ck["G"])
    state.D.load_state_dict(ck["D"])
    state.G_ema.load_state_dict(ck["G_ema"])
    state.opt_G.load_state_dict(ck["opt_G"])
    state.opt_D.load_state_dict(ck["opt_D"])
    state.nimg, state.it, state.seconds, state.log = ck["nimg"], ck["it"], ck["seconds"], ck["log"]
    # RNG states are CPU byte tensors whatever map_location did to the rest of the checkpoint.
    torch.set_rng_state(ck["rng"].cpu())
    dev = torch.device(device)
    if ck.get("cuda_rng") is not None and dev.type == "cuda":
        torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), dev)
    return state, cfg


# ------------------------------------------------------------------ one iteration

def _sample_ws(G, n, device, mixing_prob):
    z = torch.randn(n, G.z_dim, device=device)
    ws = G.mapping(z, update_w_avg=True)
    if mixing_prob > 0:
        cutoff = torch.randint(1, G.num_ws, (), device=device)
        mix = torch.rand(n, device=device) < mixing_prob
        ws2 = G.mapping(torch.randn(n, G.z_dim, device=device))
        layer = torch.arange(G.num_ws, device=device)[None, :, None]
        ws = torch.where(mix[:, None, None] & (layer >= cutoff), ws2, ws)
    return ws


def train_step(state: TrainState, cfg: GanConfig, reals: torch.Tensor, G_fwd, D_fwd) -> dict:
    """One G step and one D step (plus R1 every r1_interval). reals: NCHW in [-1, 1]."""
    G, D = state.G, state.D
    device = reals.device
    n = reals.shape[0]
    aug = lambda x: diff_augment(x, cfg.augment)  # noqa: E731

    # G: non-saturating loss.
    G.requires_grad_(True)
    D.requires_grad_(False)
    fake = G_fwd(_sample_ws(G, n, device, cfg.style_mixing))
    loss_G = F.softplus(-D_fwd(aug(fake))).mean()
    state.opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    state.opt_G.step()

    # D: logistic loss on fakes and reals.
    G.requires_grad_(False)
    D.requires_grad_(True)
    with torch.no_grad():
        fake = G_fwd(_sample_ws(G, n, device, cfg.style_mixing))
    loss_D = F.softplus(D_fwd(aug(fake))).mean() + F.softplus(-D_fwd(aug(reals))).mean()
    state.opt_D.zero_grad(set_to_none=True)
    loss_D.backward()
    state.opt_D.step()

    # Detached tensors: read on the host only when logged (a GPU keeps running ahead meanwhile).
    out = {"loss_G": loss_G.detach(), "loss_D": loss_D.detach()}
    if state.it % cfg.r1_interval == 0:
        # Lazy R1 on (augmented) reals, eager mode: double backward does not go through compile.
        x = aug(reals).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        r1 = grad.square().sum(dim=[1, 2, 3]).mean()
        state.opt_D.zero_grad(set_to_none=True)
        (r1 * (cfg.r1_gamma / 2) * cfg.r1_interval).backward()
        state.opt_D.step()
        out["r1"] = r1.detach()

    # EMA with ramp-up: early on the average must not lag far behind a fast-moving G.
    ema_nimg = min(cfg.ema_kimg * 1000, (state.nimg + n) * cfg.ema_rampup)
    beta = 0.5 ** (n / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(state.G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(state.G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)
    state.nimg += n
    state.it += 1
    return out


def make_forwards(state: TrainState, cfg: GanConfig):
    """G synthesis with fresh noise (training always uses random noise) and D, compiled or not."""
    def g_forward(ws):
        return state.G.synthesis(ws, noise="random")
    if cfg.compile:
        return torch.compile(g_forward), torch.compile(state.D)
    return g_forward, state.D


# ------------------------------------------------------------------ data

def load_dataset(path: Path) -> torch.Tensor:
    """uint8 array (N, H, W, 3) saved with np.save → uint8 tensor NCHW (kept uint8 to save RAM)."""
    arr = np.load(path, allow_pickle=False)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def batches(data: torch.Tensor, batch: int, device, seed: int):
    g = torch.Generator().manual_seed(seed)
    while True:
        idx = torch.randperm(len(data), generator=g)
        for i in range(0, len(idx) - batch + 1, batch):
            x = data[idx[i:i + batch]].to(device).float() / 127.5 - 1
            flip = (torch.rand(batch, generator=g) < 0.5).to(device)
            yield torch.where(flip[:, None, None, None], x.flip(3), x)  # no boolean-mask sync


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    from PIL import Image
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().byte().cpu()
    n, c, h, w = x.shape
    ncol = math.ceil(n / nrow)
    grid = torch.zeros(c, ncol * h, nrow * w, dtype=torch.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        grid[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = x[i]
    with atomic_write(path) as fh:
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(fh, format="PNG")


def train(data_path: Path, run_dir: Path, cfg: GanConfig | None = None, resume: bool = True,
          device: str | None = None, max_minutes: float | None = None, log=print,
          init_from=None) -> TrainState:
    """Train (or resume) a run. ``init_from``: a realedit model name or file that a *new* run
    starts from (see :func:`state_from_model`); ignored when the run resumes a checkpoint."""
    from ..device import resolve_device

    device = resolve_device(device)
    if device.type == "cuda":  # TF32 matmuls/convs: the GAN's fp32 maths does not need more
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoint.pt"
    if resume and ckpt.exists():
        state, stored = load_checkpoint(ckpt, device)
        # A resumed run may change schedule fields (total_kimg, compile, ...), not the networks.
        if cfg is not None and (cfg.g_kwargs(), cfg.d_kwargs()) != (stored.g_kwargs(), stored.d_kwargs()):
            raise ValueError("the checkpoint's architecture differs from the requested config")
        cfg = cfg or stored
        log(f"resumed from {ckpt} at {state.nimg} images, iteration {state.it}")
        # Recipe changes on resume are part of the model's history (the card lists them).
        changed = {k: [getattr(stored, k), getattr(cfg, k)] for k in RECIPE_FIELDS
                   if getattr(stored, k) != getattr(cfg, k)}
        if changed:
            state.log.append({"it": state.it, "kimg": state.nimg / 1000, "change": changed})
            log(json.dumps(state.log[-1]))
    elif init_from is not None:
        state, cfg = state_from_model(init_from, cfg or GanConfig(), device)
        if cfg.total_kimg * 1000 <= state.nimg:
            raise UsageError(f"the model has already seen {state.nimg / 1000:g} kimg and the total "
                             f"asked for is {cfg.total_kimg:g}: ask for more (--kimg is a total)")
        log(f"started from {init_from} at {state.nimg} images (fresh optimisers)")
    else:
        cfg = cfg or GanConfig()
        state = new_state(cfg, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the run is sure to start
    (run_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = load_dataset(data_path)
    if data.shape[-1] != cfg.resolution:
        raise ValueError(f"dataset is {data.shape[-1]} px, config wants {cfg.resolution}")
    G_fwd, D_fwd = make_forwards(state, cfg)
    fixed_z = torch.randn(32, cfg.z_dim, generator=torch.Generator().manual_seed(123)).to(device)
    it_data = batches(data, cfg.batch, device, cfg.seed + state.it)
    t_start = time.time()
    t_last, n_last = time.time(), state.nimg
    # SIGTERM/SIGINT finish the current iteration; the checkpoint below is then written.
    with stop_requests() as stop:
        while state.nimg < cfg.total_kimg * 1000:
            losses = train_step(state, cfg, next(it_data), G_fwd, D_fwd)
            if state.it % 20 == 0:
                now = time.time()
                state.seconds += now - t_last
                rate = (state.nimg - n_last) / (now - t_last)
                t_last, n_last = now, state.nimg
                entry = {"it": state.it, "kimg": state.nimg / 1000, "img_per_s": round(rate, 2),
                         **{k: float(v) for k, v in losses.items()}}
                state.log.append(entry)
                log(json.dumps(entry))
            if state.it % cfg.checkpoint_every == 0:
                save_checkpoint(state, cfg, ckpt)
            if state.it % cfg.sample_every == 0:
                with torch.no_grad():
                    save_grid(state.G_ema(fixed_z), run_dir / f"samples_{state.nimg // 1000:06d}k.png")
            if stop or (max_minutes is not None and time.time() - t_start > max_minutes * 60):
                break
    save_checkpoint(state, cfg, ckpt)
    log(f"checkpoint written at {state.nimg} images, iteration {state.it}")
    return state
