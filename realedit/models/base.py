"""The one protocol every generator family follows, plus small shared helpers.

Conventions (all families):
- images are NCHW float tensors in [-1, 1];
- ``mapping(z, psi)`` returns ``ws`` of shape (N, num_ws, w_dim); for PGGAN, which has no
  mapping network, ws is z itself with num_ws == 1;
- ``synthesis(ws, noise=...)`` accepts (N, num_ws, w_dim) or a single w (N, w_dim), which is
  broadcast to every layer;
- ``noise`` is "const" (stored per-layer noise buffers: deterministic), "random" or "none".
"""
from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch

NOISE_MODES = ("const", "random", "none")


@runtime_checkable
class Generator(Protocol):
    kind: str
    resolution: int
    z_dim: int
    w_dim: int
    num_ws: int
    spaces: tuple[str, ...]
    w_avg: torch.Tensor

    def mapping(self, z: torch.Tensor, psi: float = 1.0) -> torch.Tensor: ...

    def synthesis(self, ws: torch.Tensor, noise: str = "const") -> torch.Tensor: ...


def broadcast_ws(ws: torch.Tensor, num_ws: int) -> torch.Tensor:
    """(N, w_dim) -> (N, num_ws, w_dim); (N, num_ws, w_dim) passes through (checked)."""
    if ws.ndim == 2:
        return ws.unsqueeze(1).expand(-1, num_ws, -1)
    if ws.ndim != 3 or ws.shape[1] != num_ws:
        raise ValueError(f"expected ws of shape (N, {num_ws}, w_dim) or (N, w_dim), got {tuple(ws.shape)}")
    return ws


def check_noise_mode(noise: str) -> None:
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")


def log2_resolution(resolution: int) -> int:
    r = int(round(math.log2(resolution)))
    if 2**r != resolution or resolution < 4:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return r


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm / z normalisation used by all three families."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def blur_kernel(taps=(1, 3, 3, 1), gain: float = 1.0, device=None, dtype=torch.float32) -> torch.Tensor:
    """Separable low-pass filter as a normalised 2-D kernel (the 'blur' of StyleGAN 1/2)."""
    k = torch.tensor(taps, dtype=dtype, device=device)
    k = torch.outer(k, k)
    return k * (gain / k.sum())


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Upsample by zero insertion, pad, FIR filter, downsample — in plain torch ops.

    The reference implementations use a custom CUDA op for this; a depthwise conv2d gives the
    same numbers and runs anywhere. ``kernel`` is flipped so the op is a true convolution,
    matching the reference (all kernels used here are symmetric anyway).
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = torch.nn.functional.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    p0, p1 = pad
    if p0 or p1:
        x = torch.nn.functional.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
        if p0 < 0 or p1 < 0:
            x = x[:, :, max(-p0, 0): x.shape[2] - max(-p1, 0), max(-p0, 0): x.shape[3] - max(-p1, 0)]
    k = kernel.flip([0, 1]).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = torch.nn.functional.conv2d(x, k, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def estimate_w_avg(G, n: int = 4096, seed: int = 0) -> torch.Tensor:
    """Mean of mapping(z) over a fixed set of z (for files that do not store w_avg)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    with torch.no_grad():
        saved = G.w_avg.clone()
        ws = G.mapping(z)
        G.w_avg.copy_(saved)
    return ws[:, 0].mean(0)
