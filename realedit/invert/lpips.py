"""LPIPS v0.1 (Zhang et al. 2018) in plain torch: no torchvision, runs on the CPU-only wheel.

Definition (v0.1, ``lpips=True``, ``spatial=False``): inputs in [-1, 1] go through a fixed
per-channel shift/scale, then a frozen backbone; at five taps the activations are unit-normalised
along channels, squared differences are weighted per channel by a learned 1x1 head (no bias),
averaged over space and summed over taps.

Backbones are rebuilt here with the torchvision layer shapes so that the torchvision files
(``features.N.weight`` / ``features.N.bias``) load straight in; the heads load from the lpips
v0.1 files (``lin{k}.model.1.weight``, shape (1, C, 1, 1)). Files come through
``realedit.weights.resolve``; a missing backbone raises WeightsNotFound: random backbone weights
give a number that looks like a distance but means nothing, so they are only ever built on
explicit request (``LPIPS.random``, for tests and cost benchmarks).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FormatError, WeightsNotFound

# Input normalisation of the reference (maps [-1, 1] inputs to ImageNet-like statistics).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10  # added to the channel norm (not under the square root), as in the reference

# Registry names (realedit.weights) of the files each variant needs.
WEIGHT_NAMES = {
    "vgg": {"backbone": "vgg16-backbone", "head": "lpips-vgg-head"},
    "alex": {"backbone": "alexnet-backbone", "head": "lpips-alex-head"},
}

# torchvision ``features`` layout, as (kind, torchvision index, args). Taps end a slice.
# VGG16: conv3x3 stacks of 2,2,3,3,3 with max-pools between; taps relu1_2 .. relu5_3.
_VGG16 = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
# AlexNet (torchvision "one weird trick" variant): taps after relu1 .. relu5.
_ALEX = [  # (out, kernel, stride, padding, pool_before)
    (64, 11, 4, 2, False), (192, 5, 1, 2, True), (384, 3, 1, 1, True),
    (256, 3, 1, 1, False), (256, 3, 1, 1, False),
]
CHANNELS = {"vgg": [64, 128, 256, 512, 512], "alex": [64, 192, 384, 256, 256]}


class _Conv(nn.Module):
    """A conv whose parameters are named like torchvision's (``weight``, ``bias``)."""

    def __init__(self, cin, cout, k, stride=1, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class VGG16Features(nn.Module):
    """torchvision vgg16().features up to relu5_3, returning the five LPIPS taps."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList()
        self.tv_index = []  # torchvision features index of each conv, for loading
        self.stage = []     # which tap stage each conv belongs to
        idx, cin = 0, 3
        for s, (cout, n) in enumerate(_VGG16):
            if s > 0:
                idx += 1  # max-pool occupies one index
            for _ in range(n):
                self.convs.append(_Conv(cin, cout, 3, 1, 1))
                self.tv_index.append(idx)
                self.stage.append(s)
                idx += 2  # conv + relu
                cin = cout

    def forward(self, x):
        taps = []
        for i, conv in enumerate(self.convs):
            if i > 0 and self.stage[i] != self.stage[i - 1]:
                x = F.max_pool2d(x, 2, 2)
            x = F.relu(conv(x))
            if i == len(self.convs) - 1 or self.stage[i + 1] != self.stage[i]:
                taps.append(x)
        return taps


class AlexNetFeatures(nn.Module):
    """torchvision alexnet().features up to relu5, returning the five LPIPS taps."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList()
        self.tv_index, self.pool_before = [], []
        idx, cin = 0, 3
        for cout, k, s, p, pool in _ALEX:
            if pool:
                idx += 1
            self.convs.append(_Conv(cin, cout, k, s, p))
            self.tv_index.append(idx)
            self.pool_before.append(pool)
            idx += 2
            cin = cout

    def forward(self, x):
        taps = []
        for conv, pool in zip(self.convs, self.pool_before):
            if pool:
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            taps.append(x)
        return taps


def unit_normalize(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Divide each position's channel vector by its L2 norm (+eps), as LPIPS does."""
    return x / (x.square().sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS v0.1 distance. ``forward(x, y)`` -> (N,) for NCHW images in [-1, 1]."""

    def __init__(self, net: str = "vgg"):
        super().__init__()
        if net not in CHANNELS:
            raise ValueError(f"LPIPS net must be 'vgg' or 'alex', got {net!r}")
        self.net_name = net
        self.net = VGG16Features() if net == "vgg" else AlexNetFeatures()
        # Heads: one 1x1 weight per channel per tap (the file's (1, C, 1, 1) conv weight).
        self.heads = nn.ParameterList([nn.Parameter(torch.full((1, c, 1, 1), 1.0 / c))
                                       for c in CHANNELS[net]])
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    # -------------------------------------------------------------- construction

    @classmethod
    def pretrained(cls, net: str = "vgg", backbone: str | Path | None = None,
                   head: str | Path | None = None, download: bool = True) -> "LPIPS":
        """Backbone + heads through the weights registry (names in WEIGHT_NAMES) or paths."""
        m = cls(net)
        names = WEIGHT_NAMES[net]
        m.load_backbone(_resolve(backbone or names["backbone"], download, what=f"{net} backbone"))
        m.load_heads(_resolve(head or names["head"], download, what=f"LPIPS {net} head"))
        return m

    @classmethod
    def random(cls, net: str = "vgg", seed: int = 0) -> "LPIPS":
        """Random backbone and heads, ONLY for numerical tests and cost benchmarks."""
        m = cls(net)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for conv in m.net.convs:
                fan_in = conv.weight[0].numel()
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                conv.bias.copy_(torch.randn(conv.bias.shape, generator=g) * 0.01)
            for h in m.heads:
                h.copy_(torch.rand(h.shape, generator=g) / h.shape[1])
        return m

    def load_backbone(self, path: str | Path) -> None:
        """Load a torchvision vgg16/alexnet state dict (``features.N.weight/bias``)."""
        sd = _load_state_dict(path)
        for conv, idx in zip(self.net.convs, self.net.tv_index):
            for p in ("weight", "bias"):
                key = f"features.{idx}.{p}"
                t = sd.get(key)
                if t is None or tuple(t.shape) != tuple(getattr(conv, p).shape):
                    got = "missing" if t is None else f"shape {tuple(t.shape)}"
                    raise FormatError(f"{path}: not a torchvision {self.net_name} file "
                                      f"({key} {got}, expected {tuple(getattr(conv, p).shape)})")
                with torch.no_grad():
                    getattr(conv, p).copy_(t.float())

    def load_heads(self, path: str | Path) -> None:
        """Load lpips v0.1 heads (``lin{k}.model.1.weight``; ``lin{k}.model.0.weight`` too)."""
        sd = _load_state_dict(path)
        for k, h in enumerate(self.heads):
            t = sd.get(f"lin{k}.model.1.weight", sd.get(f"lin{k}.model.0.weight"))
            if t is None or tuple(t.shape) != tuple(h.shape):
                raise FormatError(f"{path}: not an LPIPS v0.1 {self.net_name} head file "
                                  f"(lin{k} weight of shape {tuple(h.shape)} expected)")
            with torch.no_grad():
                h.copy_(t.float())

    # -------------------------------------------------------------- metric

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Per-tap distances, each (N,)."""
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        out = []
        for a, b, h in zip(fx, fy, self.heads):
            d = (unit_normalize(a) - unit_normalize(b)).square()
            out.append(F.conv2d(d, h).mean(dim=(1, 2, 3)))
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.layer_distances(x, y)).sum(0)


def _resolve(name_or_path, download: bool, what: str) -> Path:
    """Registry name or path -> existing file, or WeightsNotFound (never random weights)."""
    from .. import weights  # the weights engineer's module; imported late to keep deps light
    path = Path(weights.resolve(name_or_path, download=download))
    if not path.is_file():
        raise WeightsNotFound(f"{what} weights not found at {path}")
    return path


def _load_state_dict(path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure here means the file is unusable
        raise FormatError(f"{path}: cannot be read as a torch state dict ({exc.__class__.__name__})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise FormatError(f"{path}: not a state dict")
    return sd
