"""Named, pluggable image losses for inversion and encoder training.

Every loss maps two NCHW batches in [-1, 1] to a per-sample tensor (N,): per-sample values let
a batch of faces be optimised as independent problems (the optimiser sums them).

Names: ``mse``, ``l1``, ``lpips-vgg``, ``lpips-alex``, ``disc`` (discriminator features).
Combinations: ``"lpips-vgg+mse"``, ``"0.5*mse+disc"``, or a dict ``{"mse": 1.0, "disc": 0.1}``.
``"auto"`` means ``disc+mse`` when a discriminator is available, else ``lpips-vgg+mse`` (which
raises WeightsNotFound offline, naming the file to place: no silent downgrade).
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from .lpips import LPIPS, unit_normalize

LOSS_NAMES = ("mse", "l1", "lpips-vgg", "lpips-alex", "disc")


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Area downsample (exact average when the factor is an integer), bilinear upsample."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.interpolate(x, size=(size, size), mode="area")
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class MSELoss(nn.Module):
    def forward(self, x, y):
        return (x - y).square().flatten(1).mean(1)


class L1Loss(nn.Module):
    def forward(self, x, y):
        return (x - y).abs().flatten(1).mean(1)


class LPIPSLoss(nn.Module):
    """LPIPS on images downsampled to at most ``max_resolution`` (the usual 256)."""

    def __init__(self, lpips: LPIPS, max_resolution: int = 256):
        super().__init__()
        self.lpips, self.max_resolution = lpips, max_resolution

    def forward(self, x, y):
        if x.shape[-1] > self.max_resolution:
            x, y = resize(x, self.max_resolution), resize(y, self.max_resolution)
        return self.lpips(x, y)


class DiscFeatureLoss(nn.Module):
    """LPIPS-like distance on a StyleGAN2 discriminator's block activations.

    Each block's activations are unit-normalised along channels, squared differences summed over
    channels and averaged over space, then averaged over blocks. Images are resized to the
    discriminator's resolution. ``depth`` limits how many (finest-first) blocks are used.
    """

    def __init__(self, discriminator: nn.Module, depth: int | None = None):
        super().__init__()
        self.D, self.depth = discriminator, depth
        self.D.requires_grad_(False)
        self.D.eval()

    def forward(self, x, y):
        r = self.D.resolution
        fx = self.D.features(resize(x, r), self.depth)
        fy = self.D.features(resize(y, r), self.depth)
        per_block = [(unit_normalize(a) - unit_normalize(b)).square().sum(1).mean((1, 2))
                     for a, b in zip(fx, fy)]
        return torch.stack(per_block).mean(0)


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; ``last_terms`` keeps the latest per-term values."""

    def __init__(self, terms: Mapping[str, tuple[float, nn.Module]]):
        super().__init__()
        self.weights = {k: float(w) for k, (w, _) in terms.items()}
        self.terms = nn.ModuleDict({k.replace("-", "_"): m for k, (_, m) in terms.items()})
        self.names = list(terms)
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, x, y):
        total = 0.0
        for name in self.names:
            v = self.terms[name.replace("-", "_")](x, y)
            self.last_terms[name] = v.detach()
            total = total + self.weights[name] * v
        return total

    @property
    def spec(self) -> str:
        return "+".join(n if self.weights[n] == 1 else f"{self.weights[n]:g}*{n}" for n in self.names)


def parse_spec(spec: str | Mapping[str, float]) -> dict[str, float]:
    """``"0.5*mse+lpips-vgg"`` or a dict -> {name: weight} (names checked)."""
    if isinstance(spec, Mapping):
        out = {str(k): float(v) for k, v in spec.items()}
    else:
        out = {}
        for part in str(spec).replace(" ", "").split("+"):
            m = re.fullmatch(r"(?:([0-9.eE-]+)\*)?([a-z0-9-]+)", part)
            if not m:
                raise UsageError(f"bad loss term {part!r} in {spec!r} (expected e.g. 'lpips-vgg+0.5*mse')")
            w = float(m.group(1)) if m.group(1) else 1.0
            out[m.group(2)] = out.get(m.group(2), 0.0) + w
    for name in out:
        if name not in LOSS_NAMES:
            raise UsageError(f"unknown loss {name!r}; choose from {', '.join(LOSS_NAMES)}")
    if not out:
        raise UsageError("empty loss specification")
    return out


def build_loss(spec: str | Mapping[str, float] | nn.Module = "auto", *,
               discriminator: nn.Module | None = None, lpips_max_resolution: int = 256,
               download: bool = True, lpips_factory: Callable[[str], LPIPS] | None = None,
               device=None) -> CombinedLoss | nn.Module:
    """Build a loss from a spec. A ready nn.Module passes through unchanged.

    ``lpips_factory(net)`` replaces ``LPIPS.pretrained`` (tests and cost benchmarks use
    ``LPIPS.random``); by default pretrained weights come through the registry.
    """
    if isinstance(spec, nn.Module):
        return spec.to(device) if device is not None else spec
    if isinstance(spec, str) and spec == "auto":
        spec = "disc+mse" if discriminator is not None else "lpips-vgg+mse"
    weights = parse_spec(spec)
    terms = {}
    for name, w in weights.items():
        if name == "mse":
            m = MSELoss()
        elif name == "l1":
            m = L1Loss()
        elif name.startswith("lpips-"):
            net = name.split("-", 1)[1]
            lp = lpips_factory(net) if lpips_factory else LPIPS.pretrained(net, download=download)
            m = LPIPSLoss(lp, lpips_max_resolution)
        else:  # disc
            if discriminator is None:
                raise UsageError("loss 'disc' needs a model that ships a discriminator")
            m = DiscFeatureLoss(discriminator)
        terms[name] = (w, m)
    loss = CombinedLoss(terms)
    return loss.to(device) if device is not None else loss
