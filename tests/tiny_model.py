"""A tiny random StyleGAN2 + D + direction bank saved in realedit's format, for fast tests of the
whole pipeline (plumbing and guarantees, not edit quality)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from realedit import models
from realedit.edit import Direction, DirectionBank, save_bank

ATTRS = ("age", "gender", "smile")


def make_tiny_model(folder: Path, resolution: int = 32, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    G = models.build("stylegan2", resolution, z_dim=32, w_dim=32, channel_base=32 * 32,
                     channel_max=32, mapping_layers=2)
    D = models.build_discriminator("stylegan2", resolution, channel_base=32 * 32, channel_max=32)
    path = Path(folder) / "tiny.pt"
    models.save(G, path, discriminator=D)  # D features are the default perceptual loss
    rng = np.random.default_rng(seed)
    bank = DirectionBank([Direction(name, rng.standard_normal(32), str(path), "w", source="test")
                          for name in ATTRS])
    save_bank(bank, Path(folder) / "tiny.directions")
    return path
