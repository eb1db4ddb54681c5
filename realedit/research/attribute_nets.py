"""The two attribute-network layouts realedit can score with (weights are passed by path and
never shipped: the known files are research-only).

- :class:`CelebAAttributeNet`: 4 x (conv 4x4 stride 2 pad 1 + ReLU), 3->32->64->128->256,
  flatten (256*16*16), Linear -> one logit. Input 256x256 RGB in [-1, 1], CelebA framing.
- :class:`FaceResNet`: MobileNet-v1 (alpha 1, BatchNorm folded into per-channel affines),
  TF "SAME" padding, input 224x224 RGB raw 0..255; outputs age softmax (0..99) and P(male).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FormatError, WeightsNotFound


class CelebAAttributeNet(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [3, 32, 64, 128, 256]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)  # state keys conv.0, conv.2, conv.4, conv.6
        self.fc = nn.Linear(256 * 16 * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, 256, 256) in [-1, 1] -> logits (N,)."""
        return self.fc(self.conv(x).flatten(1))[:, 0]


# depthwise stride per block 1..13 and its (in, out) channels
_MOBILENET_BLOCKS = [(1, 32, 64), (2, 64, 128), (1, 128, 128), (2, 128, 256), (1, 256, 256),
                     (2, 256, 512)] + [(1, 512, 512)] * 5 + [(2, 512, 1024), (1, 1024, 1024)]


def _same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF 'SAME' for a 3x3 kernel: stride 1 pads 1 all round; stride 2 on an even size pads
    only bottom/right (PyTorch's symmetric padding=1 would shift every feature map)."""
    if stride == 1:
        return F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    ph, pw = (1 if h % 2 == 0 else 2), (1 if w % 2 == 0 else 2)  # total SAME padding
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class FaceResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, stride=2)
        for i, (_, cin, cout) in enumerate(_MOBILENET_BLOCKS, start=1):
            dw = nn.Conv2d(cin, cin, 3, groups=cin, bias=False)
            dw.register_parameter("bn_scale", nn.Parameter(torch.ones(cin)))
            dw.register_parameter("bn_shift", nn.Parameter(torch.zeros(cin)))
            setattr(self, f"dw{i}", dw)
            setattr(self, f"pw{i}", nn.Conv2d(cin, cout, 1))
        self.feats = nn.Linear(1024, 256)
        self.gender = nn.Linear(256, 1)
        self.age = nn.Linear(256, 100)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (N, 3, 224, 224) RGB 0..255 -> {'age' years (N,), 'age_probs' (N, 100),
        'male' P(male) (N,), 'features' (N, 1024)}."""
        x = F.conv2d(_same_pad(x, 2), self.conv1.weight, self.conv1.bias, stride=2).clamp(0, 6)
        for i, (stride, _, _) in enumerate(_MOBILENET_BLOCKS, start=1):
            dw, pw = getattr(self, f"dw{i}"), getattr(self, f"pw{i}")
            x = F.conv2d(_same_pad(x, stride), dw.weight, stride=stride, groups=dw.weight.shape[0])
            x = (x * dw.bn_scale[:, None, None] + dw.bn_shift[:, None, None]).clamp(0, 6)
            x = pw(x).clamp(0, 6)
        feats = x.mean(dim=(2, 3))
        h = F.relu(self.feats(feats))
        probs = torch.softmax(self.age(h), dim=1)
        ages = probs @ torch.arange(100, dtype=probs.dtype, device=probs.device)
        return {"age": ages, "age_probs": probs, "male": torch.sigmoid(self.gender(h))[:, 0],
                "features": feats}


def detect_attribute_file(path: str | Path) -> str:
    """'celeba' or 'faceres' from a weight file's keys; FormatError otherwise."""
    sd = _load(path)
    if isinstance(sd, dict) and "weights" in sd and "dw1.weight" in sd["weights"]:
        return "faceres"
    if isinstance(sd, dict) and "conv.0.weight" in sd and "fc.weight" in sd:
        return "celeba"
    raise FormatError(f"{Path(path).name}: not a known attribute network (CelebA classifier "
                      f"or faceres age/gender net)")


def load_celeba_net(path: str | Path, device="cpu") -> CelebAAttributeNet:
    net = CelebAAttributeNet()
    sd = _load(path)
    try:
        net.load_state_dict({k: v.float() for k, v in sd.items()})
    except (RuntimeError, AttributeError) as exc:
        raise FormatError(f"{Path(path).name}: not a CelebA attribute classifier ({exc})".split("\n")[0]) from None
    return net.eval().to(device)


def load_faceres(path: str | Path, device="cpu") -> FaceResNet:
    net = FaceResNet()
    sd = _load(path)
    try:
        net.load_state_dict({k: v.float() for k, v in sd["weights"].items()})
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise FormatError(f"{Path(path).name}: not a faceres age/gender net ({exc})".split("\n")[0]) from None
    return net.eval().to(device)


def _load(path):
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"attribute network not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FormatError(f"{path.name}: cannot be read as a weights-only torch file "
                          f"({type(exc).__name__})") from None
