"""The encoder network: aligned face -> latent code in one forward pass.

Styled generators (StyleGAN, StyleGAN2): the encoder predicts W+ codes as offsets from w_avg,
in units of the spread of w (so one architecture fits any mapping network's scale); the last
layer starts at zero, so an untrained encoder answers w_avg. PGGAN: it predicts z, put on the
sphere of radius sqrt(z_dim). Files: realedit.invert.encoder_file; training:
realedit.training.encoder; the inverter: realedit.invert.encoder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from .base import estimate_w_stats, project_to_sphere
from .losses import resize


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
