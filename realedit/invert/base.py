"""What every inverter shares: the result dataclass, the protocol, latent-space helpers."""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from torch import nn

from ..device import model_device  # noqa: F401 (re-exported: the inverters take it from here)
from ..errors import UsageError
from .losses import resize

# callback(step, total, loss): called once per optimisation step (loss = batch mean).
ProgressCallback = Callable[[int, int, float], None]


@dataclass
class Inversion:
    """Result of inverting a batch of aligned faces.

    latent: (N, z_dim) for "z", (N, w_dim) for "w", (N, num_ws, w_dim) for "wp".
    reconstruction: G's output for the latent (N, 3, H, W) in [-1, 1], detached.
    history: per-step loss, (steps, N); empty (0, N) for a single forward pass.
    noise: optimised per-layer noise maps {buffer name: (N, 1, r, r)} when noise was optimised
        (pass them to ``synthesize`` to reproduce ``reconstruction``), else None.
    generators: per-image generators fine-tuned on each image (``pti``), else None: image i's
        ``reconstruction`` and edits come from ``generators[i]``, not from the inverter's G.
    """

    latent: torch.Tensor
    space: str
    reconstruction: torch.Tensor
    history: torch.Tensor
    seconds: float
    method: str
    steps: int
    loss: str = ""
    noise: dict[str, torch.Tensor] | None = None
    generators: list[nn.Module] | None = None
    extra: dict = field(default_factory=dict)

    def ws(self, G) -> torch.Tensor:
        """The latent as per-layer codes (N, num_ws, w_dim)."""
        return latent_to_ws(G, self.latent, self.space)

    @property
    def final_loss(self) -> torch.Tensor:
        return self.history[-1] if len(self.history) else torch.full((self.latent.shape[0],), float("nan"),
                                                                     device=self.latent.device)


class Inverter(Protocol):
    name: str

    def invert(self, images: torch.Tensor, space: str | None = None,
               callback: ProgressCallback | None = None) -> Inversion: ...


# ----------------------------------------------------------------------------- latents

def default_space(G) -> str:
    return "wp" if "wp" in G.spaces else G.spaces[0]


def check_space(G, space: str | None) -> str:
    space = space or default_space(G)
    if space not in G.spaces:
        raise UsageError(f"space {space!r} is not available for a {G.kind} generator "
                         f"(choose from {', '.join(G.spaces)})")
    return space


def latent_to_ws(G, latent: torch.Tensor, space: str) -> torch.Tensor:
    if space == "z":
        return G.mapping(latent)
    if space == "w":
        return latent.unsqueeze(1).expand(-1, G.num_ws, -1)
    if space == "wp":
        return latent
    raise UsageError(f"unknown latent space {space!r}")


def project_to_sphere(z: torch.Tensor) -> torch.Tensor:
    """Rescale each z to norm sqrt(z_dim): where Gaussian latents concentrate (GLO trick)."""
    return z * (math.sqrt(z.shape[-1]) / z.norm(dim=-1, keepdim=True).clamp_min(1e-8))


def sample_z(G, n: int, seed: int = 0, device=None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, G.z_dim, generator=g).to(device)


def estimate_w_stats(G, n: int = 1000, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(w mean, per-element std of w around it) from n mapping samples."""
    with torch.no_grad():
        w = G.mapping(sample_z(G, n, seed, model_device(G)))[:, 0]
    mean = w.mean(0)
    return mean, float((w - mean).square().mean().sqrt())


def start_latent(G, n: int, space: str, seed: int = 0, device=None) -> torch.Tensor:
    """w_avg for w/wp; a seeded z on the sphere for z (w_avg has no z preimage)."""
    if space == "z":
        return project_to_sphere(sample_z(G, n, seed, device))
    w = G.w_avg.detach().to(device).float().unsqueeze(0).expand(n, -1)
    return w.clone() if space == "w" else w.unsqueeze(1).expand(-1, G.num_ws, -1).clone()


# ----------------------------------------------------------------------------- images

def prepare_images(G, images: torch.Tensor) -> torch.Tensor:
    """Check an NCHW [-1, 1] batch and bring it to G's resolution."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"images must be an (N, 3, H, W) tensor in [-1, 1], got {shape}")
    if images.shape[-1] != images.shape[-2]:
        raise UsageError(f"images must be square aligned faces, got {images.shape[-2]}x{images.shape[-1]}")
    return resize(images.float(), G.resolution)


# ----------------------------------------------------------------------------- noise buffers

def noise_buffers(G) -> dict[str, torch.Tensor]:
    """StyleGAN2 per-layer ``noise_const`` buffers by module name (empty for other families)."""
    return {name: m.noise_const for name, m in G.named_modules()
            if isinstance(getattr(m, "noise_const", None), torch.Tensor)}


@contextlib.contextmanager
def use_noise(G, maps: dict[str, torch.Tensor] | None):
    """Temporarily replace G's constant noise buffers by ``maps`` (e.g. (N, 1, r, r) tensors
    being optimised; a (N,1,r,r) map broadcasts against the (N,C,r,r) activations), so
    ``synthesis(ws, noise="const")`` uses them. The originals are restored on exit."""
    if not maps:
        yield
        return
    modules = dict(G.named_modules())
    saved = {name: modules[name].noise_const for name in maps}
    try:
        for name, t in maps.items():
            modules[name].noise_const = t
        yield
    finally:
        for name, t in saved.items():
            modules[name].noise_const = t


def synthesize(G, latent: torch.Tensor, space: str, noise: dict[str, torch.Tensor] | None = None,
               stop_at: int | None = None) -> torch.Tensor:
    """G's image for a latent in a space (optionally a lower-resolution skip output)."""
    ws = latent_to_ws(G, latent, space)
    with use_noise(G, noise):
        if stop_at is not None and stop_at < G.resolution:
            return G.synthesis(ws, noise="const", stop_at=stop_at)
        return G.synthesis(ws, noise="const")


def supports_stop_at(G) -> bool:
    """Skip generators whose low-resolution RGB output is exact (StyleGAN2)."""
    return getattr(G, "kind", "") == "stylegan2"


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """No parameter gradients inside (only latents are optimised); flags restored on exit."""
    flags = [(p, p.requires_grad) for m in modules if m is not None for p in m.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)
