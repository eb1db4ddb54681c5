"""Progressive GAN generator (Karras et al. 2018, "G_paper"), the trained network at lod 0.

Pure PyTorch, CPU-first. Defaults are the CelebA-HQ 1024 configuration: latent 512,
fmap_base 8192, fmap_max 512, pixel norm after every layer, equalised learning rate,
leaky ReLU 0.2, nearest-neighbour 2x upsampling, linear ToRGB at the final resolution.
A finished model runs at lod 0, so the progressive-growing fade-in (the ``lod`` variable
and the ToRGB layers of lower resolutions) is not part of this module.

Network, layer by layer (``nf(s) = min(fmap_base // 2**s, fmap_max)``; the layers at
resolution 2**s have ``nf(s - 1)`` channels: 512 from 4 to 32, 256 @64, ... 16 @1024):

    z -> pixel norm (normalize_latents)
    layer0  "4x4/Dense":   z @ W -> reshape (N, C, 4, 4), + bias, lrelu, pixel norm
    layer1  "4x4/Conv":    3x3 conv, + bias, lrelu, pixel norm
    layer2k   "RxR/Conv0": nearest 2x up, 3x3 conv, + bias, lrelu, pixel norm  (R = 2**(k+2))
    layer2k+1 "RxR/Conv1": 3x3 conv, + bias, lrelu, pixel norm
    torgb   "ToRGB_lod0":  1x1 conv (gain 1), + bias; no activation, no clamp

Equalised learning rate: weights are stored as N(0, 1) draws and multiplied at run time by
``weight_gain = gain / sqrt(fan_in)`` (He std); gain is sqrt(2) everywhere except the Dense
layer (sqrt(2)/4, fan_in = z_dim: the official code overrides the gain "to match the
original Theano implementation") and ToRGB (1). Biases are not scaled.

Parameter names, shapes and the official variables they hold (TF pickle
``karras2018iclr-celebahq-1024x1024.pkl``, network ``Gs``; TF names are relative to that
network; R = 2**(i//2 + 2); conv layout TF [kh, kw, in, out] -> ours [out, in, kh, kw]):

    ours                     shape              TF (G_paper)            TF -> ours
    layer0.weight            [16*C, z_dim]      4x4/Dense/weight        .T  (TF [z_dim, 16*C])
    layer0.bias              [C]                4x4/Dense/bias          as is
    layer1.weight            [C, C, 3, 3]       4x4/Conv/weight         .permute(3, 2, 0, 1)
    layer1.bias              [C]                4x4/Conv/bias           as is
    layer{2k}.weight         [Cout, Cin, 3, 3]  RxR/Conv0/weight        .permute(3, 2, 0, 1)
                                                RxR/Conv0_up/weight     .permute(2, 3, 0, 1)
                                                (fused_scale=True nets store [kh, kw, out, in])
    layer{2k}.bias           [Cout]             RxR/Conv0(_up)/bias     as is
    layer{2k+1}.weight/.bias                    RxR/Conv1/{weight,bias} as Conv0
    torgb.weight             [3, C, 1, 1]       ToRGB_lod0/weight       .permute(3, 2, 0, 1)
    torgb.bias               [3]                ToRGB_lod0/bias         as is
    (not used)                                  lod (must be 0), ToRGB_lod{1..}

The Dense row index is ``c*16 + h*4 + w`` (TF reshapes the matmul output to [N, C, 4, 4]).
The CelebA-HQ network was trained in Theano and imported with ``fused_scale=False``, so it
has Conv0 layers; TF-trained PGGANs default to fused Conv0_up: pass ``fused_scale=True``.
Careful: the fused op (transposed conv with a 4x4 kernel built from the 3x3 one) equals
nearest-up + conv with the kernel rotated by 180 degrees, so the flag is part of what the
weights mean, not just a speed switch. Load the weights as the table says (no flip).

genforce/interfacegan converted ``.pth`` (``PGGANGeneratorModel``, 1-based ``layer{j}``):
``layer{i+1}.conv.weight`` -> ``layer{i}.weight`` as is, except ``layer1.conv.weight``
[C, z_dim, 4, 4] (TF dense as a flipped 4x4 conv) -> ours ``layer0.weight`` =
``w.flip(2, 3).permute(0, 2, 3, 1).reshape(16*C, z_dim)``; ``layer{i+1}.wscale.bias`` ->
``layer{i}.bias``; ``output_{R}x{R}.conv.weight/.wscale.bias`` -> ``torgb.weight/.bias``.
``tf_variable_names()`` and ``from_tf()`` give this table in code.

Protocol: ``spaces == ("z",)``, ``num_ws == 1``, ``w_dim == z_dim``; ``mapping(z)`` returns
z as (N, 1, z_dim); ``w_avg`` is zeros. There is no truncation: latents are pixel-normalised
before the first layer, so scaling them toward 0 changes nothing; ``mapping(z, psi)`` with
psi != 1 raises UsageError rather than silently ignoring the request. ``synthesis`` takes
and checks the ``noise`` argument for protocol compatibility; PGGAN has no noise inputs.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from .base import broadcast_ws, check_noise_mode, log2_resolution

SQRT2 = math.sqrt(2.0)


def nf_table(resolution: int, fmap_base: int = 8192, fmap_max: int = 512,
             fmap_decay: float = 1.0) -> dict[int, int]:
    """Channels of the layers at each resolution: nf(log2(res) - 1) as in the official code."""
    def nf(stage):
        return min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)
    return {2**s: nf(s - 1) for s in range(2, log2_resolution(resolution) + 1)}


def layer_resolution(i: int) -> int:
    """Resolution of synthesis layer i (two layers per resolution, starting at 4x4)."""
    return 2 ** (i // 2 + 2)


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """Each pixel repeated 2x2 (TF ``upscale2d``); keeps the channels-last layout."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def overwritable(*tensors: torch.Tensor) -> bool:
    """True when an in-place update combining these tensors cannot disturb autograd.

    Large fresh tensors are expensive on the CPU (every new 64 MB activation is page-faulted
    in), so the inference path reuses buffers; the training/inversion path stays functional.
    """
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def fused_up_kernel(w: torch.Tensor) -> torch.Tensor:
    """[out, in, k, k] conv weight -> [in, out, k+1, k+1] kernel of the official fused
    ``upscale2d_conv2d``: pad by one, sum the four 2x2-shifted copies, transpose in/out.

    Used as ``conv_transpose2d(x, ., stride=2, padding=k//2)`` (TF conv2d_transpose, 'SAME').
    Note: this equals ``conv2d(upsample_nearest2x(x), w.flip(2, 3))``, i.e. nearest-up + conv
    with the kernel rotated 180 degrees, NOT with ``w`` itself. The official fused layers were
    trained that way, so a fused layer's weights are not interchangeable with a non-fused one's.
    """
    w = F.pad(w, (1, 1, 1, 1))
    w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
    return w.transpose(0, 1)


# Upsampling convs with an output at least this large run as one stride-2 transposed conv
# (16 instead of 36 multiply-adds per output pixel and channel pair; measured 1.5-3x faster on
# CPU, forward and backward); smaller ones as nearest-up + 3x3 conv, which oneDNN runs faster
# there. Both implement either semantics exactly (see fused_up_kernel), so this is speed only.
TRANSPOSED_MIN_RES = 128


def conv2d_up(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None, up: int = 1,
              fused: bool = False) -> torch.Tensor:
    """'Same'-padded conv of x with an already scaled [out, in, k, k] weight, optionally after
    2x upsampling with the semantics of TF ``upscale2d`` + ``conv2d`` (``fused=False``) or of
    the fused ``upscale2d_conv2d`` (``fused=True``, = nearest-up + conv with ``w`` rotated)."""
    pad = w.shape[-1] // 2
    if up == 1:
        return F.conv2d(x, w, bias, padding=pad)
    if x.shape[-1] * 2 >= TRANSPOSED_MIN_RES:
        k = fused_up_kernel(w if fused else w.flip(2, 3))
        return F.conv_transpose2d(x, k, bias, stride=2, padding=pad)
    return F.conv2d(upsample_nearest2x(x), w.flip(2, 3) if fused else w, bias, padding=pad)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8, inplace: bool = False) -> torch.Tensor:
    """x / sqrt(mean over channels of x^2 + eps), without a full-size temporary for x^2."""
    ms = torch.linalg.vector_norm(x, dim=1, keepdim=True).square() / x.shape[1]
    r = (ms + eps).rsqrt()
    return x.mul_(r) if inplace else x * r


class EqualizedLinear(nn.Module):
    """Dense layer with equalised lr: y = x @ (W * gain * lr_mul / sqrt(fan_in)).T + b * lr_mul."""

    def __init__(self, in_features: int, out_features: int, gain: float = SQRT2,
                 lr_multiplier: float = 1.0, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.weight_gain = gain / math.sqrt(in_features) * lr_multiplier
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.bias_gain if self.bias is not None else None
        return F.linear(x, self.weight * self.weight_gain, b)


class EqualizedConv2d(nn.Module):
    """kxk conv with equalised lr, 'same' padding, optional nearest 2x upsampling first.

    ``up=2, fused=True`` has the semantics of the official fused ``upscale2d_conv2d`` (a
    stride-2 transposed conv with a (k+1)x(k+1) kernel), which equals nearest-up + conv with
    the kernel rotated 180 degrees (see ``fused_up_kernel``); ``conv2d_up`` picks the faster
    implementation for the size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 gain: float = SQRT2, up: int = 1, fused: bool = False, bias: bool = True):
        super().__init__()
        if up not in (1, 2):
            raise ValueError(f"up must be 1 or 2, got {up}")
        self.up, self.fused, self.kernel_size = up, bool(fused and up == 2), kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv2d_up(x, self.weight * self.weight_gain, self.bias, self.up, self.fused)


class PGGANLayer(EqualizedConv2d):
    """Conv (optionally upsampling) + bias + lrelu + pixel norm: one Conv/Conv0/Conv1 scope."""

    def __init__(self, in_channels, out_channels, up=1, fused=False, use_pixelnorm=True,
                 eps=1e-8):
        super().__init__(in_channels, out_channels, 3, SQRT2, up, fused)
        self.use_pixelnorm, self.eps = use_pixelnorm, eps

    def forward(self, x):
        x = F.leaky_relu(super().forward(x), 0.2, inplace=True)
        return pixel_norm(x, self.eps, overwritable(x)) if self.use_pixelnorm else x


class PGGANDense(nn.Module):
    """The "4x4/Dense" input layer: z @ W -> (N, C, 4, 4) + per-channel bias, lrelu, pixel norm.

    Gain sqrt(2)/4 with fan_in = z_dim: the official code's override "to match the original
    Theano implementation" (a 4x4 transposed conv of the 1x1 latent, fan_in = z_dim * 16).
    """

    def __init__(self, z_dim, channels, use_pixelnorm=True, eps=1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels * 16, z_dim))  # row = c*16 + h*4 + w
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = SQRT2 / 4 / math.sqrt(z_dim)
        self.use_pixelnorm, self.eps = use_pixelnorm, eps

    def forward(self, z):
        x = F.linear(z, self.weight * self.weight_gain)
        x = x.reshape(x.shape[0], -1, 4, 4) + self.bias[None, :, None, None]
        x = F.leaky_relu(x, 0.2, inplace=True)
        return pixel_norm(x, self.eps) if self.use_pixelnorm else x


class PGGANGenerator(nn.Module):
    kind = "pggan"
    spaces = ("z",)

    def __init__(self, resolution: int = 1024, z_dim: int | None = None, fmap_base: int = 8192,
                 fmap_max: int = 512, fmap_decay: float = 1.0, img_channels: int = 3,
                 normalize_latents: bool = True, use_pixelnorm: bool = True,
                 fused_scale: bool = False, pixelnorm_epsilon: float = 1e-8):
        super().__init__()
        ch = nf_table(resolution, fmap_base, fmap_max, fmap_decay)
        if z_dim is None:  # official default: latent_size = nf(0)
            z_dim = min(int(fmap_base), fmap_max)
        self.config = dict(resolution=resolution, z_dim=z_dim, fmap_base=fmap_base,
                           fmap_max=fmap_max, fmap_decay=fmap_decay, img_channels=img_channels,
                           normalize_latents=normalize_latents, use_pixelnorm=use_pixelnorm,
                           fused_scale=bool(fused_scale), pixelnorm_epsilon=pixelnorm_epsilon)
        self.resolution, self.z_dim, self.w_dim, self.num_ws = resolution, z_dim, z_dim, 1
        self.img_channels = img_channels
        self.normalize_latents, self.use_pixelnorm = normalize_latents, use_pixelnorm
        self.eps = pixelnorm_epsilon
        self.channels = ch
        self.num_layers = 2 * log2_resolution(resolution) - 2

        c4 = ch[4]
        self.layer0 = PGGANDense(z_dim, c4, use_pixelnorm, pixelnorm_epsilon)
        self.layer1 = PGGANLayer(c4, c4, use_pixelnorm=use_pixelnorm, eps=pixelnorm_epsilon)
        for i in range(2, self.num_layers):
            res = layer_resolution(i)
            cin = ch[res // 2] if i % 2 == 0 else ch[res]
            setattr(self, f"layer{i}", PGGANLayer(cin, ch[res], up=2 if i % 2 == 0 else 1,
                                                  fused=fused_scale, use_pixelnorm=use_pixelnorm,
                                                  eps=pixelnorm_epsilon))
        self.torgb = EqualizedConv2d(ch[resolution], img_channels, 1, gain=1.0)
        self.register_buffer("_w_avg", torch.zeros(z_dim), persistent=False)
        # Activations in NHWC: oneDNN convs and channel reductions run ~2x faster on CPU.
        # Changes only float rounding; not part of the config.
        self.channels_last = True

    # ------------------------------------------------------------------ protocol
    @property
    def w_avg(self) -> torch.Tensor:
        return self._w_avg

    @property
    def ws_resolutions(self) -> list[int]:
        return [self.resolution]

    def mapping(self, z: torch.Tensor, psi: float = 1.0, truncation_cutoff=None) -> torch.Tensor:
        """PGGAN has no mapping network: ws is z itself, shaped (N, 1, z_dim)."""
        if psi != 1:
            raise UsageError("PGGAN has no truncation (its latents are pixel-normalised, so "
                             f"scaling them does nothing): use psi=1.0, got {psi}")
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        return z.unsqueeze(1)

    def synthesis(self, ws: torch.Tensor, noise: str = "const") -> torch.Tensor:
        """ws: (N, 1, z_dim) or z itself (N, z_dim) -> images (N, 3, R, R), nominally [-1, 1]."""
        check_noise_mode(noise)  # accepted for the protocol; PGGAN has no noise inputs
        x = broadcast_ws(ws, 1)[:, 0]
        if self.normalize_latents:
            x = pixel_norm(x, self.eps)
        x = self.layer0(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(1, self.num_layers):
            x = getattr(self, f"layer{i}")(x)
        return self.torgb(x).contiguous()

    def forward(self, z: torch.Tensor, psi: float = 1.0, noise: str = "const") -> torch.Tensor:
        return self.synthesis(self.mapping(z, psi), noise)

    # ------------------------------------------------------------------ official names
    def tf_variable_names(self) -> dict[str, str]:
        """Our state-dict key -> official TF variable name (relative to the Gs network)."""
        out = {"layer0.weight": "4x4/Dense/weight", "layer0.bias": "4x4/Dense/bias",
               "layer1.weight": "4x4/Conv/weight", "layer1.bias": "4x4/Conv/bias"}
        conv0 = "Conv0_up" if self.config["fused_scale"] else "Conv0"
        for i in range(2, self.num_layers):
            r = layer_resolution(i)
            scope = f"{r}x{r}/{conv0 if i % 2 == 0 else 'Conv1'}"
            out[f"layer{i}.weight"] = f"{scope}/weight"
            out[f"layer{i}.bias"] = f"{scope}/bias"
        out["torgb.weight"] = "ToRGB_lod0/weight"
        out["torgb.bias"] = "ToRGB_lod0/bias"
        return out

    def from_tf(self, key: str, value) -> torch.Tensor:
        """Convert the official TF array stored for our state-dict ``key`` into our layout."""
        t = torch.as_tensor(value, dtype=torch.float32)
        if key == "layer0.weight":
            return t.t().contiguous()
        if t.ndim == 4:
            layer = key.split(".")[0]
            fused_up = (self.config["fused_scale"] and layer.startswith("layer")
                        and int(layer[5:]) % 2 == 0)
            # TF conv [kh, kw, in, out]; the fused Conv0_up of G_paper stores [kh, kw, out, in].
            return (t.permute(2, 3, 0, 1) if fused_up else t.permute(3, 2, 0, 1)).contiguous()
        return t.reshape(self.get_parameter(key).shape).clone()


def build_generator(resolution: int = 1024, **config) -> PGGANGenerator:
    return PGGANGenerator(resolution=resolution, **config)
