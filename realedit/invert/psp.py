"""The pSp and e4e face encoders (pixel2style2pixel, encoder4editing) in plain torch.

Both read a 256x256 face in [-1, 1] with an IR-SE-50 network (ArcFace's residual units with
squeeze-and-excitation), tap it at three depths (64, 32 and 16 px maps), merge the taps top-down
into a small feature pyramid, and give each W+ layer its own head (strided 3x3 convolutions down
to 1x1, then an equalized linear layer):

- layers 0-2 read the coarse 16 px map, 3-6 the middle 32 px one, the rest the fine 64 px one;
- pSp ("GradualStyleEncoder") uses each head's output as that layer's code;
- e4e ("Encoder4Editing") uses head 0 as a base code for every layer and adds head i's output to
  layer i as a delta, which keeps its codes close to W (what makes them editable).

The answer is relative to the generator's average code when the checkpoint was trained with
``start_from_latent_avg``; :class:`PSPEncoder` adds it, so its output is the W+ code itself.

Modules and parameters carry the names of the released checkpoints (``encoder.*`` of the file,
prefix stripped), so a state dict loads unchanged; widths, unit counts and the number of heads
are read from the tensors' shapes. No CUDA extension is used anywhere.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import FormatError

INPUT_SIZE = 256
# IR-SE-50: residual units per stage; the first unit of every stage halves the resolution.
STAGE_UNITS = (3, 4, 14, 3)
# Units whose outputs feed the pyramid: ends of stages 2, 3 and 4 (64, 32, 16 px at 256 input).
TAPS = (6, 20, 23)
COARSE_LAYERS, MIDDLE_LAYERS = 3, 7   # heads [0, 3) read the 16 px map, [3, 7) the 32 px one
SE_REDUCTION = 16


# ----------------------------------------------------------------------------- building blocks

class EqualLinear(nn.Module):
    """Linear layer whose weight is scaled by 1/sqrt(fan_in) at run time (StyleGAN2's
    equalized learning rate; lr_mul is 1 in the encoders)."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = (1 / math.sqrt(in_dim)) * lr_mul
        self.lr_mul = lr_mul

    def forward(self, x):
        return F.linear(x, self.weight * self.scale, bias=self.bias * self.lr_mul)


class SqueezeExcite(nn.Module):
    """Channel gate: global average -> bottleneck 1x1 convs -> sigmoid, multiplied back in."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class IRUnit(nn.Module):
    """Pre-activation residual unit (BN, 3x3, PReLU, strided 3x3, BN[, SE]) plus a shortcut:
    strided subsampling when the width stays, else a strided 1x1 conv + BN."""

    def __init__(self, cin: int, cout: int, stride: int, se_hidden: int | None):
        super().__init__()
        if cin == cout:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                                nn.BatchNorm2d(cout))
        res = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
               nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if se_hidden:
            res.append(SqueezeExcite(cout, se_hidden))
        self.res_layer = nn.Sequential(*res)

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class MapToStyle(nn.Module):
    """One W+ layer's head: ``n_convs`` stride-2 3x3 convs (LeakyReLU 0.01) to a 1x1 map, then
    an equalized linear layer."""

    def __init__(self, cin: int, dim: int, n_convs: int):
        super().__init__()
        layers = []
        for i in range(n_convs):
            layers += [nn.Conv2d(cin if i == 0 else dim, dim, 3, 2, 1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(dim, dim)

    def forward(self, x):
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(f"a style head ends on a {tuple(x.shape[-2:])} map, not 1x1: "
                             f"the encoder needs {INPUT_SIZE} px inputs")
        return self.linear(x.flatten(1))


def _upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    return F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


# ----------------------------------------------------------------------------- the network

@dataclass(frozen=True)
class PSPSpec:
    """Shape of a pSp / e4e encoder, as read from a state dict."""

    family: str                     # "e4e" or "psp"
    n_styles: int                   # W+ layers (18 for a 1024 px generator)
    style_dim: int                  # w_dim (512)
    stem: int                       # width of the input layer (64)
    widths: tuple[int, ...]         # width of each stage (64, 128, 256, 512)
    se_hidden: int | None           # squeeze-excite bottleneck width (0/None: plain IR units)
    head_convs: tuple[int, ...]     # convs per head (4 coarse, 5 middle, 6 fine)
    in_channels: int = 3


class PSPNet(nn.Module):
    """The encoder proper: images (N, 3, 256, 256) -> codes (N, n_styles, style_dim), relative
    to latent_avg when the checkpoint was trained that way."""

    def __init__(self, spec: PSPSpec):
        super().__init__()
        if spec.family not in ("e4e", "psp"):
            raise ValueError(f"unknown encoder family {spec.family!r}")
        self.spec = spec
        self.input_layer = nn.Sequential(nn.Conv2d(spec.in_channels, spec.stem, 3, 1, 1, bias=False),
                                         nn.BatchNorm2d(spec.stem), nn.PReLU(spec.stem))
        units, cin = [], spec.stem
        for n, width in zip(STAGE_UNITS, spec.widths):
            for i in range(n):
                units.append(IRUnit(cin, width, 2 if i == 0 else 1,
                                    max(width // SE_REDUCTION, 1) if spec.se_hidden else None))
                cin = width
        self.body = nn.Sequential(*units)
        d = spec.style_dim
        self.styles = nn.ModuleList(MapToStyle(d, d, k) for k in spec.head_convs)
        self.latlayer1 = nn.Conv2d(spec.widths[2], d, 1)   # 32 px tap -> middle level
        self.latlayer2 = nn.Conv2d(spec.widths[1], d, 1)   # 64 px tap -> fine level

    def taps(self, x):
        """(fine 64 px, middle 32 px, coarse 16 px) feature maps of the residual body."""
        x = self.input_layer(x)
        out = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in TAPS:
                out.append(x)
        return out

    def forward(self, x):
        c1, c2, c3 = self.taps(x)
        n = len(self.styles)
        levels = [c3]   # the pyramid, built only as far as the heads need it

        def level(i):
            want = 0 if i < COARSE_LAYERS else 1 if i < MIDDLE_LAYERS else 2
            while len(levels) <= want:
                lateral = self.latlayer1(c2) if len(levels) == 1 else self.latlayer2(c1)
                levels.append(_upsample_add(levels[-1], lateral))
            return levels[want]

        if self.spec.family == "psp":
            return torch.stack([self.styles[i](level(i)) for i in range(n)], dim=1)
        base = self.styles[0](c3)
        return torch.stack([base] + [base + self.styles[i](level(i)) for i in range(1, n)], dim=1)


def spec_from_state(sd: dict, family: str, path="<state dict>") -> PSPSpec:
    """Read a :class:`PSPSpec` off the shapes of an ``encoder.*`` state dict (prefix stripped)."""
    def need(key):
        if key not in sd:
            raise FormatError(f"{path}: the encoder lacks {key!r} (not an IR-SE-50 pSp / e4e encoder)")
        return sd[key]

    units = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("body.")), default=-1)
    if units != sum(STAGE_UNITS):
        raise FormatError(f"{path}: the encoder's backbone has {units} residual units; realedit "
                          f"reads the IR-50 backbone ({sum(STAGE_UNITS)} units) of the released "
                          f"pSp / e4e encoders")
    stem_w = need("input_layer.0.weight")
    starts = [sum(STAGE_UNITS[:s]) for s in range(len(STAGE_UNITS))]
    widths = tuple(int(need(f"body.{u}.res_layer.1.weight").shape[0]) for u in starts)
    se = f"body.0.res_layer.5.fc1.weight" in sd
    n_styles = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("styles.")), default=-1)
    if n_styles < 1:
        raise FormatError(f"{path}: the encoder has no style heads")
    head_convs = tuple(len({k.split(".")[3] for k in sd
                            if k.startswith(f"styles.{i}.convs.") and k.endswith(".weight")})
                       for i in range(n_styles))
    style_dim = int(need("styles.0.linear.weight").shape[0])
    if widths[-1] != style_dim:
        raise FormatError(f"{path}: the encoder's last stage is {widths[-1]} wide but its codes "
                          f"are {style_dim}; not a pSp / e4e layout")
    return PSPSpec(family=family, n_styles=n_styles, style_dim=style_dim,
                   stem=int(stem_w.shape[0]), widths=widths,
                   se_hidden=int(sd["body.0.res_layer.5.fc1.weight"].shape[0]) if se else None,
                   head_convs=head_convs, in_channels=int(stem_w.shape[1]))


# ----------------------------------------------------------------------------- the encoder

@dataclass
class PSPConfig:
    """What the inverters ask of an encoder (same fields as realedit's own EncoderConfig)."""

    resolution: int            # input size the network was trained at (256)
    num_ws: int
    w_dim: int
    output: str = "wp"
    generator_kind: str = "stylegan2"
    generator_resolution: int = 0
    family: str = "e4e"
    encoder_type: str = ""


class PSPEncoder(nn.Module):
    """A pSp / e4e encoder with its average code: images (N, 3, H, W) in [-1, 1] -> W+ codes
    (N, n_styles, w_dim), latent_avg included. Inputs of another size are area-downsampled
    (bilinearly upsampled) to 256 px first, as the released encoders were trained at 256 px.
    """

    def __init__(self, net: PSPNet, latent_avg: torch.Tensor | None, config: PSPConfig,
                 meta: dict | None = None):
        super().__init__()
        self.encoder = net
        self.config = config
        self.adds_latent_avg = latent_avg is not None
        self.register_buffer("latent_avg", latent_avg if latent_avg is not None
                             else torch.zeros(config.num_ws, config.w_dim))
        # The spread of w, which hybrid's in-domain term is measured in; the generator's,
        # set by set_generator_stats (1 until then).
        self.register_buffer("w_std", torch.ones([]))
        self.w_std_set = False
        self.meta = dict(meta or {})

    @property
    def name(self) -> str:
        return self.config.family

    def set_generator_stats(self, G) -> None:
        from .base import estimate_w_stats

        _, std = estimate_w_stats(G)
        with torch.no_grad():
            self.w_std.fill_(std)
        self.w_std_set = True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from .losses import resize

        x = resize(images, self.config.resolution)
        codes = self.encoder(x)
        if self.adds_latent_avg:
            codes = codes + self.latent_avg
        return codes


def encoder_from_checkpoint(pc, device=None) -> PSPEncoder:
    """A :class:`PSPEncoder` from a parsed pSp / e4e file (``realedit.models.legacy.psp``).

    The network is built without initialising its weights and takes the file's tensors as they
    are (memory-mapped for zip files): no copy of the 1 GB encoder is made on the CPU.
    """
    from ..models.legacy.psp import latent_avg_rows

    path = pc.path
    spec = spec_from_state(pc.encoder, pc.family, path)
    if spec.in_channels != 3:
        raise FormatError(f"{path}: the encoder reads {spec.in_channels}-channel inputs, not RGB photos")
    with torch.device("meta"):
        net = PSPNet(spec)
    state = dict(pc.encoder)
    for k in net.state_dict():  # BatchNorm counters are absent from files of old torch versions
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = torch.zeros((), dtype=torch.long)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        detail = [s.strip() for s in str(exc).splitlines()[1:] if s.strip()] or [str(exc)]
        raise FormatError(f"{path}: encoder weights do not fit a {pc.encoder_type} "
                          f"({detail[0][:300]})") from None
    la = latent_avg_rows(pc, spec.n_styles, spec.style_dim) if pc.adds_latent_avg else None
    if pc.adds_latent_avg and la is None:
        la = _decoder_w_avg(pc).expand(spec.n_styles, -1).contiguous()
    gen_res = 2 ** ((spec.n_styles + 2) // 2)
    config = PSPConfig(resolution=INPUT_SIZE, num_ws=spec.n_styles, w_dim=spec.style_dim,
                       generator_resolution=gen_res, family=spec.family,
                       encoder_type=pc.encoder_type)
    E = PSPEncoder(net, la, config, meta={"source": str(path), "spec": asdict(spec)})
    E.requires_grad_(False)
    return E.to(device).eval() if device is not None else E.eval()


def _decoder_w_avg(pc) -> torch.Tensor:
    """Mean w of the file's own decoder, for a checkpoint trained relative to latent_avg that
    does not store it (what e4e's own loader computes in that case)."""
    from ..models import generator_from_checkpoint
    from ..models.base import estimate_w_avg
    from ..models.legacy.psp import decoder_checkpoint

    G = generator_from_checkpoint(decoder_checkpoint(pc), pc.path)
    return estimate_w_avg(G, n=10000).float()


def load_psp_encoder(path, device=None) -> PSPEncoder:
    from ..models.legacy.psp import read_psp

    return encoder_from_checkpoint(read_psp(Path(path)), device)
