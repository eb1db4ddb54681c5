"""A small feed-forward encoder: aligned face -> latent code, and its training.

Styled generators (StyleGAN, StyleGAN2): the encoder predicts W+ codes as offsets from w_avg,
in units of the spread of w (so one architecture fits any mapping network's scale); the last
layer starts at zero, so an untrained encoder answers w_avg. PGGAN: it predicts z, put on the
sphere of radius sqrt(z_dim).

Files: a torch file loadable with ``torch.load(weights_only=True)``::

    {"format": "realedit-encoder", "version": 1, "config": {...}, "state_dict": {...},
     "step": int, "optimizer": {...} | None, "train": {...}, "meta": {...}}

The same file is the training checkpoint (with the optimiser state), so ``--resume`` continues
from it; ``register_encoder`` adds it to the weights registry next to its generator.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FormatError, ImageError, OutputError, UsageError, WeightsNotFound
from ..fsutil import atomic_write
from ..training.stopping import stop_requests
from .base import (Inversion, check_space, estimate_w_stats, frozen, model_device, prepare_images,
                   project_to_sphere)
from .losses import MSELoss, build_loss, resize

FORMAT = "realedit-encoder"
VERSION = 1


@dataclass
class EncoderConfig:
    resolution: int           # input resolution (aligned faces are resized to it)
    num_ws: int
    w_dim: int
    output: str = "wp"        # "wp" (offsets from w_avg) or "z" (PGGAN)
    channels: int = 32        # width at the input resolution, doubled per downsampling
    max_channels: int = 256
    generator_kind: str = "stylegan2"
    generator_resolution: int = 0

    @classmethod
    def for_generator(cls, G, channels: int = 32, max_channels: int = 256,
                      max_resolution: int = 128) -> "EncoderConfig":
        # 128 px input: the encoder gives the coarse code, refinement the detail; at 256 px its
        # forward+backward (hybrid's domain term) cost as much as a coarse G step on the CPU.
        styled = "wp" in G.spaces
        return cls(resolution=min(G.resolution, max_resolution), num_ws=G.num_ws if styled else 1,
                   w_dim=G.w_dim if styled else G.z_dim, output="wp" if styled else "z",
                   channels=channels, max_channels=max_channels, generator_kind=G.kind,
                   generator_resolution=G.resolution)


class _ResDown(nn.Module):
    """Two 3x3 convs with a 2x average-pool, plus a pooled 1x1 skip (scaled sum)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv0 = nn.Conv2d(cin, cin, 3, padding=1)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        y = F.avg_pool2d(self.skip(x), 2)
        x = F.leaky_relu(self.conv0(x), 0.2)
        x = F.avg_pool2d(F.leaky_relu(self.conv1(x), 0.2), 2)
        return (x + y) * (1 / math.sqrt(2))


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.fromrgb = nn.Conv2d(3, c, 1)
        blocks, res = [], config.resolution
        while res > 4:
            cout = min(c * 2, config.max_channels)
            blocks.append(_ResDown(c, cout))
            c, res = cout, res // 2
        self.blocks = nn.Sequential(*blocks)
        out = config.num_ws * config.w_dim
        self.fc = nn.Linear(c * 16, max(c * 4, 256))
        self.out = nn.Linear(max(c * 4, 256), out)
        if config.output == "wp":
            nn.init.zeros_(self.out.weight)  # an untrained encoder answers w_avg
            nn.init.zeros_(self.out.bias)
        self.register_buffer("w_avg", torch.zeros(config.w_dim))
        self.register_buffer("w_std", torch.ones([]))

    def set_generator_stats(self, G) -> None:
        """Record G's w_avg and w spread (codes are predicted relative to them)."""
        if self.config.output == "wp":
            _, std = estimate_w_stats(G)
            with torch.no_grad():
                self.w_avg.copy_(G.w_avg.detach().float())
                self.w_std.fill_(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, num_ws, w_dim) W+ codes, or (N, z_dim) z."""
        x = resize(images, self.config.resolution)
        x = F.leaky_relu(self.fromrgb(x), 0.2)
        x = self.blocks(x).flatten(1)
        x = self.out(F.leaky_relu(self.fc(x), 0.2))
        if self.config.output == "z":
            return project_to_sphere(x)
        return self.w_avg + self.w_std * x.view(-1, self.config.num_ws, self.config.w_dim)


def check_compatible(E, G) -> None:
    c = E.config
    ok = (c.output == "wp" and "wp" in G.spaces and c.num_ws == G.num_ws and c.w_dim == G.w_dim) or \
         (c.output == "z" and "wp" not in G.spaces and c.w_dim == G.z_dim)
    if not ok:
        raise UsageError(f"encoder was trained for a {c.generator_kind} generator with "
                         f"{c.num_ws} x {c.w_dim} codes; this {G.kind} generator has "
                         f"{G.num_ws} x {G.w_dim}")


# ----------------------------------------------------------------------------- files

def save_encoder(E: Encoder, path, *, step: int = 0, optimizer: dict | None = None,
                 train: dict | None = None, meta: dict | None = None) -> Path:
    """Write atomically (temp file + rename): a checkpoint is never half-written."""
    path = Path(path)
    obj = {"format": FORMAT, "version": VERSION, "config": asdict(E.config),
           "state_dict": {k: v.detach().cpu() for k, v in E.state_dict().items()},
           "step": int(step), "optimizer": optimizer, "train": dict(train or {}),
           "meta": dict(meta or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path) as f:
            torch.save(obj, f)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def read_encoder_file(path_or_name, obj=None) -> dict:
    path = _resolve(path_or_name)
    if obj is None:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
            raise FormatError(f"{path}: not a readable encoder file ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FormatError(f"{path}: not a realedit encoder file, nor a pSp / e4e checkpoint")
    if obj.get("version") != VERSION:
        raise FormatError(f"{path}: encoder file version {obj.get('version')} is not supported")
    return obj


def load_encoder(path_or_name, device=None):
    """An encoder from a file or registry name: realedit's own (:class:`Encoder`) or a pSp / e4e
    checkpoint (:class:`realedit.invert.psp.PSPEncoder`, whose output includes latent_avg).
    Either maps (N, 3, H, W) images in [-1, 1] to codes of its generator."""
    from ..models import psp_format
    from ..models.legacy import read_torch_object

    path = _resolve(path_or_name)
    loaded = read_torch_object(path, what="encoder")
    if psp_format.is_psp_object(loaded):
        from .psp import encoder_from_checkpoint
        return encoder_from_checkpoint(psp_format.parse_psp(loaded, path), device)
    obj = read_encoder_file(path, loaded)
    try:
        E = Encoder(EncoderConfig(**obj["config"]))
        E.load_state_dict(obj["state_dict"])
    except (TypeError, RuntimeError, KeyError) as exc:
        raise FormatError(f"{path_or_name}: encoder config/weights do not match "
                          f"({str(exc).splitlines()[0]})") from None
    return E.to(device).eval() if device is not None else E.eval()


def _resolve(path_or_name) -> Path:
    p = Path(path_or_name)
    if p.is_file():
        return p
    from .. import weights
    return Path(weights.resolve(str(path_or_name)))


def default_encoder_path(model: str | os.PathLike) -> Path:
    """Where a model's encoder is (its manifest's, see realedit.manifest) or, for a model without
    one, where a new one goes: ``<generator file stem>.encoder.pt`` beside the generator."""
    from ..manifest import resolve_model

    files = resolve_model(model)
    if files.encoder is not None:
        return files.encoder
    p = files.generator
    if p is None:
        from .. import weights
        p = Path(weights.resolve(str(model), download=False))  # WeightsNotFound: says where
    return p.with_name(p.stem + ".encoder.pt")


def register_encoder(path, name: str, generator_name: str | None = None):
    """Add an encoder file to the user registry (role encoder, paired with its generator)."""
    from .. import weights
    E = load_encoder(path)
    return weights.add(path, name, kind="realedit", role="encoder",
                       resolution=E.config.resolution, pairs_with=generator_name or None,
                       notes=f"realedit encoder for a {E.config.generator_kind} "
                             f"{E.config.generator_resolution}px generator")


# ----------------------------------------------------------------------------- real photos

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class RealFaces:
    """Aligned face photos from a folder (or a uint8 (N, H, W, 3) .npy), served as batches at a
    resolution. Non-square photos are centre-cropped. Decoded lazily, cached as uint8."""

    def __init__(self, source, resolution: int):
        self.resolution = resolution
        src = Path(source)
        self.array = None
        if src.is_file() and src.suffix == ".npy":
            arr = np.load(src, allow_pickle=False, mmap_mode="r")
            if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
                raise ImageError(f"{src}: expected a uint8 (N, H, W, 3) array, got {arr.dtype} {arr.shape}")
            self.array, self.files = arr, [None] * len(arr)
        elif src.is_dir():
            self.files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            raise ImageError(f"no such folder of aligned photos: {src}")
        if not self.files:
            raise ImageError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
        self._cache: dict[int, np.ndarray] = {}
        # Keep decoded crops only while they fit in ~1 GB (64 px CelebA: 66 MB; 1024 px: no).
        self._cache_ok = len(self.files) * resolution * resolution * 3 <= 1 << 30

    def __len__(self):
        return len(self.files)

    def _get(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        from PIL import Image
        if self.array is not None:
            img = Image.fromarray(np.asarray(self.array[i]))
        else:
            try:
                with Image.open(self.files[i]) as im:
                    img = im.convert("RGB")
            except Exception as exc:  # noqa: BLE001 - any decoder failure
                raise ImageError(f"{self.files[i]}: cannot read image ({exc.__class__.__name__})") from None
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        if s != self.resolution:
            img = img.resize((self.resolution, self.resolution), Image.LANCZOS)
        arr = np.asarray(img, dtype=np.uint8)
        if self._cache_ok:
            self._cache[i] = arr
        return arr

    def batch(self, n: int, generator: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self), (n,), generator=generator).tolist()
        x = torch.from_numpy(np.stack([self._get(i) for i in idx])).permute(0, 3, 1, 2)
        x = x.float() / 127.5 - 1
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = x[flip].flip(3)
        return x


# ----------------------------------------------------------------------------- training

@dataclass
class EncoderTrainOptions:
    steps: int = 2000
    batch: int = 8
    lr: float = 1e-3
    real_fraction: float = 0.5    # share of each batch taken from real photos (when given)
    latent_weight: float = 1.0    # weight of the code loss on generated samples (in w-std units)
    image_weight: float = 1.0
    psi_min: float = 0.7          # generated samples use truncation psi ~ U(psi_min, 1)
    checkpoint_every: int = 200
    seed: int = 0
    channels: int = 32
    max_channels: int = 256


def train_encoder(G, *, out, data=None, steps: int | None = None, resume: bool = False,
                  loss="auto", discriminator=None, lpips_factory=None,
                  options: EncoderTrainOptions | None = None, meta: dict | None = None,
                  callback: Callable[[int, int, dict], None] | None = None) -> Encoder:
    """Train (or resume training) an encoder for G (on G's device); checkpoints go to ``out``.

    Each step: generated samples (code loss + image loss) and, when ``data`` is given, real
    aligned photos (image loss only). ``resume=True`` continues from ``out`` when it exists,
    up to ``steps`` in total. Per-step randomness is seeded by (seed, step), so a resumed run
    draws what an uninterrupted one would have.
    """
    opts = options or EncoderTrainOptions()
    steps = int(steps if steps is not None else opts.steps)
    out = Path(out)
    device = model_device(G)
    start, opt_state = 0, None
    if resume and out.exists():
        obj = read_encoder_file(out)
        E = Encoder(EncoderConfig(**obj["config"]))
        E.load_state_dict(obj["state_dict"])
        check_compatible(E, G)
        start, opt_state = int(obj["step"]), obj.get("optimizer")
    else:
        if out.exists():
            _check_overwritable(out)
        with torch.random.fork_rng(devices=[]):  # seeded init, caller's RNG untouched
            torch.manual_seed(opts.seed)
            E = Encoder(EncoderConfig.for_generator(G, opts.channels, opts.max_channels))
        E.set_generator_stats(G)
    E = E.to(device).train()
    loss_fn = build_loss(loss, discriminator=discriminator, lpips_factory=lpips_factory, device=device)
    real = RealFaces(data, G.resolution) if data is not None else None
    optim = torch.optim.Adam(E.parameters(), lr=opts.lr, betas=(0.9, 0.99))
    if opt_state:
        optim.load_state_dict(opt_state)
    n_real = int(round(opts.batch * opts.real_fraction)) if real is not None else 0
    n_fake = max(1, opts.batch - n_real)
    styled = E.config.output == "wp"
    train_info = {"loss": getattr(loss_fn, "spec", str(loss)), "batch": opts.batch, "lr": opts.lr,
                  "real_fraction": opts.real_fraction if real is not None else 0.0,
                  "data": str(data) if data is not None else "", "seed": opts.seed}
    meta = dict(meta or {})
    t0 = time.perf_counter()

    def save(step):
        save_encoder(E, out, step=step, optimizer=optim.state_dict(), train=train_info, meta=meta)

    # SIGTERM/SIGINT finish the current step and checkpoint it, so stopping loses nothing.
    done = start
    with frozen(G, getattr(loss_fn, "terms", None)), stop_requests() as stop:
        for step in range(start, steps):
            g = torch.Generator().manual_seed(opts.seed * 1_000_003 + step)
            z = torch.randn(n_fake, G.z_dim, generator=g).to(device)
            psi = opts.psi_min + (1 - opts.psi_min) * float(torch.rand((), generator=g))
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                ws = G.mapping(z, psi=psi) if styled else G.mapping(z)
                torch.manual_seed(opts.seed * 1_000_003 + step)  # noise="random" draws from it
                fake = G.synthesis(ws, noise="random")
            pred = E(fake)
            if styled:
                code_loss = (pred - ws).square().mean() / E.w_std.square()
                rec = G.synthesis(pred, noise="const")
            else:
                code_loss = (pred - ws[:, 0]).square().mean()
                rec = G.synthesis(G.mapping(pred), noise="const")
            img_loss = loss_fn(rec, fake).mean()
            total = opts.latent_weight * code_loss + opts.image_weight * img_loss
            real_loss = torch.zeros((), device=device)
            if n_real:
                x = real.batch(n_real, g).to(device)
                p = E(x)
                xr = G.synthesis(p if styled else G.mapping(p), noise="const")
                real_loss = loss_fn(xr, x).mean()
                total = total + opts.image_weight * real_loss * (n_real / opts.batch)
            optim.zero_grad(set_to_none=True)
            total.backward()
            optim.step()
            if callback is not None:
                # 0-dim tensors: the callback reads (syncs) only the steps it shows
                callback(step + 1, steps, {"code": code_loss.detach(), "image": img_loss.detach(),
                                           "real": real_loss.detach(), "seconds": time.perf_counter() - t0})
            done = step + 1
            if stop:
                break
            if opts.checkpoint_every and (step + 1) % opts.checkpoint_every == 0 and step + 1 < steps:
                save(step + 1)
    save(done if stop else max(steps, start))
    return E.eval()


def _check_overwritable(path: Path) -> None:
    """An existing file is never replaced by a fresh run: a foreign file is refused outright,
    an encoder file only resumes (its training would be lost otherwise)."""
    try:
        read_encoder_file(path)
    except (FormatError, WeightsNotFound):
        raise OutputError(f"{path} exists and is not a realedit encoder file; refusing to overwrite it") from None
    raise OutputError(f"{path} exists; resume training it (--resume) or choose another output file")


# ----------------------------------------------------------------------------- inverter

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
            from .base import latent_to_ws
            recon = self.G.synthesis(latent_to_ws(self.G, latent, space), noise="const")
            mse = MSELoss()(recon, targets)
        if callback is not None:
            callback(1, 1, float(mse.mean()))
        return Inversion(latent=latent, space=space, reconstruction=recon, history=mse[None],
                         seconds=time.perf_counter() - t0, method="encoder", steps=0, loss="mse")
