"""Training an encoder (realedit.invert.encoder_net) for a generator, on generated samples and
optionally real aligned photos; the checkpoint is the encoder file itself
(realedit.invert.encoder_file), so ``--resume`` continues from it."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import FormatError, ImageError, OutputError, WeightsNotFound
from ..invert.base import frozen, model_device
from ..invert.encoder_file import read_encoder_file, save_encoder, load_encoder
from ..invert.encoder_net import Encoder, EncoderConfig, check_compatible
from ..invert.losses import build_loss
from ..io import IMAGE_SUFFIXES
from .stopping import stop_requests


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
            raise ImageError(f"{src}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
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
