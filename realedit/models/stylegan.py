"""StyleGAN generator (Karras et al. 2019, "G_style" = G_mapping + G_synthesis), lod 0.

Pure PyTorch, CPU-first. Defaults are the official FFHQ / CelebA-HQ 1024 configuration.

Mapping network (G_mapping): z -> pixel norm -> 8 x [dense (gain sqrt(2), lr multiplier
0.01 on weight and bias) -> lrelu 0.2] -> w, broadcast to ``num_ws`` = 2*log2(R) - 2 codes
(18 at 1024). Truncation: ws[:, i] = w_avg + psi * (ws[:, i] - w_avg) for i < cutoff.
``w_avg`` (official ``dlatent_avg``) is a moving average of w, updated only in training.

Synthesis network (G_synthesis), one "layer" per ws index i (two per resolution):

    layer0      "4x4/Const":     learned const (C, 4, 4) -> epilogue(ws[:, 0])
    layer1      "4x4/Conv":      3x3 conv -> epilogue(ws[:, 1])
    layer2k     "RxR/Conv0_up":  2x up + 3x3 conv -> blur [1,2,1] -> epilogue(ws[:, 2k])
    layer2k+1   "RxR/Conv1":     3x3 conv -> epilogue(ws[:, 2k+1])
    torgb       "ToRGB_lod0":    1x1 conv (gain 1) + bias; linear, no clamp
    epilogue(x, w) = style_mod(instance_norm(lrelu(x + noise * noise_strength + bias)), w)
    style_mod(x, w): s = dense(w) (gain 1, 2C outputs); x * (s[:, :C] + 1) + s[:, C:]

Upsampling is nearest 2x then conv while the output resolution is < 128, and the official
fused ``upscale2d_conv2d`` (transposed conv, 4x4 kernel) from 128 up (``fused_scale='auto'``).
The fused op equals nearest-up + conv with the 3x3 kernel rotated 180 degrees, so the flag
is part of what the trained weights mean (see ``realedit.models.pggan.fused_up_kernel``).
Channels: layers at resolution 2**s have nf(s-1) = min(fmap_base // 2**(s-1), fmap_max).
Equalised lr everywhere: weights stored N(0, 1/lr_mul^2), scaled at run time by
``weight_gain = gain * lr_mul / sqrt(fan_in)``; biases by ``bias_gain = lr_mul``.

Parameter names, shapes and the official variables they hold. TF pickles
``karras2019stylegan-{ffhq,celebahq}-1024x1024.pkl`` (network ``Gs``); TF names are relative
to their network and prefixed here with the component: ``mapping/`` = Gs.components.mapping,
``synthesis/`` = Gs.components.synthesis, no prefix = Gs's own variables. R = 2**(i//2 + 2).

    ours (synthesis.layer{i}.* = L.*)  shape            TF                        TF -> ours
    mapping.dense{j}.weight            [out, in]        mapping/Dense{j}/weight   .T
    mapping.dense{j}.bias              [out]            mapping/Dense{j}/bias     as is
    mapping.w_avg (buffer)             [w_dim]          dlatent_avg               as is
    synthesis.const                    [C, 4, 4]        synthesis/4x4/Const/const reshape
    L.weight (i >= 1)                  [Co, Ci, 3, 3]   S/weight                  .permute(3,2,0,1)
    L.bias                             [Co]             S/bias                    as is
    L.noise_strength                   [Co]             S/Noise/weight            as is
    L.noise_const (buffer)             [R, R]           synthesis/noise{i}        reshape
    L.style.weight                     [2*Co, w_dim]    S/StyleMod/weight         .T
    L.style.bias                       [2*Co]           S/StyleMod/bias           as is
    synthesis.torgb.weight             [3, C, 1, 1]    synthesis/ToRGB_lod0/weight .permute(3,2,0,1)
    synthesis.torgb.bias               [3]              synthesis/ToRGB_lod0/bias    as is
    (not used)                                          lod (must be 0), synthesis/lod,
                                                        synthesis/ToRGB_lod{1..}/*
    S = synthesis/<scope i>; TF shapes: const [1, C, 4, 4], conv weights [3, 3, Ci, Co] (also
    the fused Conv0_up: the official code transposes it at run time), noise{i} [1, 1, R, R].
    <scope i>: 0 -> 4x4/Const, 1 -> 4x4/Conv, even i >= 2 -> RxR/Conv0_up, odd -> RxR/Conv1.

genforce/interfacegan converted ``.pth`` (``StyleGANGeneratorModel``) uses the same layer
indices: ``mapping.dense{j}.linear.weight`` / ``.wscale.bias`` -> ``mapping.dense{j}.weight``
/ ``.bias``; ``truncation.w_avg`` -> ``mapping.w_avg``; ``synthesis.layer0.first_layer`` ->
``synthesis.const`` (reshape); ``synthesis.layer{i}.conv.weight`` -> ``.weight`` as is, but
the fused layers (R >= 128) store ``synthesis.layer{i}.weight`` in TF layout [3, 3, Ci, Co]
-> ``.permute(3, 2, 0, 1)``; ``synthesis.layer{i}.epilogue.bias`` -> ``.bias``;
``...epilogue.apply_noise.weight`` -> ``.noise_strength``; ``...epilogue.apply_noise.noise``
-> ``.noise_const`` (reshape); ``...epilogue.style_mod.dense.linear.weight`` / ``.wscale.bias``
-> ``.style.weight`` / ``.style.bias``; ``synthesis.output{log2(R)-2}.conv.weight`` / ``.bias``
-> ``synthesis.torgb.weight`` / ``.bias``; drop ``synthesis.lod``, ``truncation.truncation``
and the other ``output{k}``. ``tf_variable_names()`` and ``from_tf()`` give the TF table in code.

Protocol: ``spaces == ("z", "w", "wp")``; ``mapping(z, psi=1.0, truncation_cutoff=<config,
8>)`` returns (N, num_ws, w_dim): with psi given, the official ``Gs.run(z, None,
truncation_psi=psi)`` semantics (cutoff 8; None = every layer). ``synthesis(ws, noise)``
with noise "const" (stored per-layer noise: deterministic), "random" or "none".
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import broadcast_ws, check_noise_mode, log2_resolution, normalize_2nd_moment
from .pggan import (EqualizedConv2d, EqualizedLinear, conv2d_up, layer_resolution, nf_table,
                    overwritable)

SQRT2 = math.sqrt(2.0)
FUSED_MIN_RES = 128  # fused_scale='auto': fuse when the layer's output is at least this size


_CONFIGURED = object()  # "use the cutoff the network was built with" (None means all layers)


class StyleGANMapping(nn.Module):
    def __init__(self, z_dim=512, w_dim=512, num_ws=18, num_layers=8, hidden_dim=None,
                 lr_multiplier=0.01, w_avg_beta=0.995, normalize_latents=True,
                 truncation_cutoff=8):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.w_avg_beta, self.normalize_latents = w_avg_beta, normalize_latents
        self.truncation_cutoff = truncation_cutoff
        hidden_dim = hidden_dim or w_dim
        feats = [z_dim] + [hidden_dim] * (num_layers - 1) + [w_dim]
        for j in range(num_layers):
            setattr(self, f"dense{j}", EqualizedLinear(feats[j], feats[j + 1], gain=SQRT2,
                                                       lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, psi=1.0, truncation_cutoff=_CONFIGURED, update_w_avg=False):
        """z (N, z_dim) -> ws (N, num_ws, w_dim). With psi != 1 the first ``truncation_cutoff``
        codes (default: the configured cutoff, 8 as in the official G_style; None = all) are
        pulled toward w_avg: w_avg + psi * (w - w_avg)."""
        if truncation_cutoff is _CONFIGURED:
            truncation_cutoff = self.truncation_cutoff
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected z of shape (N, {self.z_dim}), got {tuple(z.shape)}")
        x = normalize_2nd_moment(z) if self.normalize_latents else z
        for j in range(self.num_layers):
            x = F.leaky_relu(getattr(self, f"dense{j}")(x), 0.2)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            cut = self.num_ws if truncation_cutoff is None else \
                min(int(truncation_cutoff), self.num_ws)
            ws[:, :cut] = self.w_avg.lerp(ws[:, :cut], psi)
        return ws


class StyleLayer(nn.Module):
    """One synthesis layer: [conv (optionally 2x up, then blur)] + noise + bias + lrelu +
    instance norm + style modulation. ``in_channels == 0`` is the const layer (no conv)."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, fused=False,
                 blur_taps=(1, 2, 1)):
        super().__init__()
        self.resolution, self.up, self.fused = resolution, up, bool(fused and up == 2)
        if in_channels:
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
            self.weight_gain = SQRT2 / math.sqrt(in_channels * 9)
        else:
            self.weight = None
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.style = EqualizedLinear(w_dim, 2 * out_channels, gain=1.0)
        self.blur = up == 2 and blur_taps is not None
        if self.blur:
            k = torch.tensor(blur_taps, dtype=torch.float32)
            k = torch.outer(k, k)
            self.register_buffer("blur_kernel", k / k.sum(), persistent=False)

    def conv(self, x):
        """Conv (+ 2x up, + blur) with the layer bias folded into the last linear op; adding
        the bias before rather than after the noise only changes float rounding."""
        w = self.weight * self.weight_gain
        if not self.blur:
            return conv2d_up(x, w, self.bias, self.up, self.fused)
        x = conv2d_up(x, w, None, self.up, self.fused)
        ch = x.shape[1]
        k = self.blur_kernel.to(x.dtype)[None, None].expand(ch, 1, -1, -1)
        return F.conv2d(x, k, self.bias, padding=k.shape[-1] // 2, groups=ch)

    def forward(self, x, w, noise="const"):
        if self.weight is not None:
            x = self.conv(x)
        else:
            x = x + self.bias[None, :, None, None]
        # x is a fresh tensor here (conv output or const + bias): noise and activation can
        # update it in place without touching anything autograd saved.
        ns = self.noise_strength[:, None, None]
        if noise == "const":
            x = x.addcmul_(self.noise_const, ns)
        elif noise == "random":
            n = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                            dtype=x.dtype)
            x = x.addcmul_(n, ns)
        x = F.leaky_relu(x, 0.2, inplace=True)
        # Instance norm and style modulation as one per-channel affine map of the centred
        # activations: (x - mean) * (1 + s_scale) / std + s_bias.
        s = self.style(w)
        c = x.shape[1]
        if overwritable(x, s):
            # Inference: two-pass statistics in place (as precise as var_mean, faster on
            # channels-last tensors, and no new full-size buffers but one).
            x = x.sub_(x.mean(dim=(2, 3), keepdim=True))
            var = x.square().mean(dim=(2, 3), keepdim=True)
            a = (s[:, :c, None, None] + 1) * (var + 1e-8).rsqrt()
            return x.mul_(a).add_(s[:, c:, None, None])
        # Autograd: var_mean keeps the graph (and its backward) small.
        var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
        a = (s[:, :c, None, None] + 1) * (var + 1e-8).rsqrt()
        return torch.addcmul(torch.addcmul(s[:, c:, None, None], mean, a, value=-1), x, a)


class StyleGANSynthesis(nn.Module):
    def __init__(self, w_dim=512, resolution=1024, img_channels=3, fmap_base=8192, fmap_max=512,
                 fmap_decay=1.0, fused_scale="auto", blur_taps=(1, 2, 1)):
        super().__init__()
        if fused_scale not in (True, False, "auto"):
            raise ValueError(f"fused_scale must be True, False or 'auto', got {fused_scale!r}")
        self.w_dim, self.resolution = w_dim, resolution
        ch = nf_table(resolution, fmap_base, fmap_max, fmap_decay)
        self.num_layers = self.num_ws = 2 * log2_resolution(resolution) - 2
        self.const = nn.Parameter(torch.ones(ch[4], 4, 4))
        for i in range(self.num_layers):
            res = layer_resolution(i)
            up = 2 if i >= 2 and i % 2 == 0 else 1
            cin = 0 if i == 0 else (ch[res // 2] if up == 2 else ch[res])
            fused = fused_scale is True or (fused_scale == "auto" and res >= FUSED_MIN_RES)
            setattr(self, f"layer{i}", StyleLayer(cin, ch[res], w_dim, res, up, fused, blur_taps))
        self.torgb = EqualizedConv2d(ch[resolution], img_channels, 1, gain=1.0)
        # Activations in NHWC: oneDNN convs, the depthwise blur and the per-channel statistics
        # run ~2x faster on CPU. Changes only float rounding; not part of the config.
        self.channels_last = True

    def forward(self, ws, noise="const"):
        check_noise_mode(noise)
        ws = broadcast_ws(ws, self.num_ws)
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i}")(x, ws[:, i], noise)
        return self.torgb(x).contiguous()


class StyleGANGenerator(nn.Module):
    kind = "stylegan"
    spaces = ("z", "w", "wp")

    def __init__(self, resolution=1024, z_dim=512, w_dim=512, mapping_layers=8,
                 mapping_fmaps=None, mapping_lr_multiplier=0.01, w_avg_beta=0.995,
                 fmap_base=8192, fmap_max=512, fmap_decay=1.0, img_channels=3,
                 fused_scale="auto", blur_taps=(1, 2, 1), truncation_cutoff=8):
        super().__init__()
        self.config = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
                           mapping_layers=mapping_layers, mapping_fmaps=mapping_fmaps,
                           mapping_lr_multiplier=mapping_lr_multiplier, w_avg_beta=w_avg_beta,
                           fmap_base=fmap_base, fmap_max=fmap_max, fmap_decay=fmap_decay,
                           img_channels=img_channels, fused_scale=fused_scale,
                           blur_taps=list(blur_taps) if blur_taps is not None else None,
                           truncation_cutoff=truncation_cutoff)
        self.resolution, self.z_dim, self.w_dim = resolution, z_dim, w_dim
        self.img_channels = img_channels
        self.synthesis = StyleGANSynthesis(w_dim, resolution, img_channels, fmap_base, fmap_max,
                                           fmap_decay, fused_scale,
                                           tuple(blur_taps) if blur_taps is not None else None)
        self.num_ws = self.synthesis.num_ws
        self.mapping = StyleGANMapping(z_dim, w_dim, self.num_ws, mapping_layers, mapping_fmaps,
                                       mapping_lr_multiplier, w_avg_beta,
                                       truncation_cutoff=truncation_cutoff)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    @property
    def ws_resolutions(self) -> list[int]:
        """Resolution of the layer each of the num_ws codes drives (for layer-wise edits)."""
        return [layer_resolution(i) for i in range(self.num_ws)]

    def forward(self, z, psi=1.0, noise="const"):
        return self.synthesis(self.mapping(z, psi), noise)

    # ------------------------------------------------------------------ official names
    def tf_variable_names(self) -> dict[str, str]:
        """Our state-dict key -> official TF name ("mapping/...", "synthesis/..." or Gs's own)."""
        out = {}
        for j in range(self.mapping.num_layers):
            out[f"mapping.dense{j}.weight"] = f"mapping/Dense{j}/weight"
            out[f"mapping.dense{j}.bias"] = f"mapping/Dense{j}/bias"
        out["mapping.w_avg"] = "dlatent_avg"
        out["synthesis.const"] = "synthesis/4x4/Const/const"
        for i in range(self.num_ws):
            r = layer_resolution(i)
            scope = ("4x4/Const", "4x4/Conv")[i] if i < 2 else \
                f"{r}x{r}/{'Conv0_up' if i % 2 == 0 else 'Conv1'}"
            p, t = f"synthesis.layer{i}", f"synthesis/{scope}"
            if i:
                out[f"{p}.weight"] = f"{t}/weight"
            out[f"{p}.bias"] = f"{t}/bias"
            out[f"{p}.noise_strength"] = f"{t}/Noise/weight"
            out[f"{p}.noise_const"] = f"synthesis/noise{i}"
            out[f"{p}.style.weight"] = f"{t}/StyleMod/weight"
            out[f"{p}.style.bias"] = f"{t}/StyleMod/bias"
        out["synthesis.torgb.weight"] = "synthesis/ToRGB_lod0/weight"
        out["synthesis.torgb.bias"] = "synthesis/ToRGB_lod0/bias"
        return out

    def from_tf(self, key: str, value) -> torch.Tensor:
        """Convert the official TF array stored for our state-dict ``key`` into our layout."""
        t = torch.as_tensor(value, dtype=torch.float32)
        target = self.get_buffer(key) if key.endswith(("w_avg", "noise_const")) \
            else self.get_parameter(key)
        if t.ndim == 2 and key.endswith("weight"):
            return t.t().contiguous()
        if t.ndim == 4 and key.endswith("weight"):
            return t.permute(3, 2, 0, 1).contiguous()
        return t.reshape(target.shape).clone()


def build_generator(resolution: int = 1024, **config) -> StyleGANGenerator:
    return StyleGANGenerator(resolution=resolution, **config)
