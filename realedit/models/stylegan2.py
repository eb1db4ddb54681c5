"""StyleGAN2 (Karras et al. 2020, config-f "skip" generator, "resnet" discriminator).

Pure PyTorch, no custom ops. Module and parameter names follow the official PyTorch release
(stylegan2-ada-pytorch) so that every foreign format converts into this one layout
(see ``realedit.models.legacy``):

    mapping.fc{i}.{weight,bias}, mapping.w_avg
    synthesis.b{res}.{const, conv0, conv1, torgb}.{affine.weight, affine.bias, weight, bias,
                                                  noise_strength, noise_const}

Modulation is applied to activations rather than folded into per-sample weights ("non-fused"):
the result is the same to float rounding, but a batch shares one ordinary convolution, which
is what makes CPU inversion affordable.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .base import (blur_kernel, broadcast_ws, check_noise_mode, log2_resolution,
                   normalize_2nd_moment, upfirdn2d)

SQRT2 = math.sqrt(2.0)


def lrelu_gain(x: torch.Tensor, gain: float = SQRT2, clamp: float | None = None) -> torch.Tensor:
    x = F.leaky_relu(x, 0.2) * gain
    return x.clamp(-clamp, clamp) if clamp is not None else x


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalised learning rate (weights stored unscaled, scaled at run time)."""

    def __init__(self, in_features, out_features, bias=True, bias_init=0.0, lr_multiplier=1.0,
                 activation="linear"):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, w, b)
        return lrelu_gain(x) if self.activation == "lrelu" else x


class MappingNetwork(nn.Module):
    def __init__(self, z_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        feats = [z_dim] + [w_dim] * num_layers
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(feats[i], feats[i + 1], activation="lrelu",
                                                        lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, psi=1.0, truncation_cutoff=None, update_w_avg=False):
        x = normalize_2nd_moment(z)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if psi != 1:
            if truncation_cutoff is None:
                ws = self.w_avg.lerp(ws, psi)
            else:
                ws = ws.clone()
                ws[:, :truncation_cutoff] = self.w_avg.lerp(ws[:, :truncation_cutoff], psi)
        return ws


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x up), demodulation, per-pixel noise, bias, lrelu."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, conv_clamp=None):
        super().__init__()
        self.resolution, self.up, self.conv_clamp = resolution, up, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", blur_kernel())

    def forward(self, x, w, noise="const"):
        styles = self.affine(w)                                    # (N, in)
        x = x * styles[:, :, None, None]
        if self.up == 1:
            x = F.conv2d(x, self.weight, padding=1)
        else:
            # Transposed stride-2 conv, then the [1,3,3,1] low-pass (gain 4) with pad (1, 1):
            # output is exactly 2H x 2W, as in the reference.
            x = F.conv_transpose2d(x, self.weight.transpose(0, 1), stride=2)
            x = upfirdn2d(x, self.resample_filter * 4, pad=(1, 1))
        # Demodulation coefficient per (sample, out channel), from the modulated weight's norm.
        dcoefs = (self.weight.square().sum(dim=[2, 3]) @ styles.square().t() + 1e-8).rsqrt()  # (out, N)
        x = x * dcoefs.t()[:, :, None, None]
        if noise == "const":
            x = x + self.noise_const * self.noise_strength
        elif noise == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution,
                                device=x.device, dtype=x.dtype) * self.noise_strength
        x = x + self.bias[None, :, None, None]
        # The reference clamps at conv_clamp * gain with gain = 1 here (not * sqrt(2)).
        return lrelu_gain(x, SQRT2, self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, plus bias: the skip branch's RGB output."""

    def __init__(self, in_channels, out_channels, w_dim, conv_clamp=None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], self.weight) + self.bias[None, :, None, None]
        return x.clamp(-self.conv_clamp, self.conv_clamp) if self.conv_clamp is not None else x


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels=3,
                 conv_clamp=None):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution,
                                    conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", blur_kernel())
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1

    def forward(self, x, img, ws, noise="const"):
        """ws: (N, num_conv + 1, w_dim). Returns features and the running RGB image."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise)
        else:
            x = self.conv0(x, ws[:, 0], noise)
            x = self.conv1(x, ws[:, 1], noise)
        y = self.torgb(x, ws[:, -1])
        if img is not None:
            # Upsample the running image: zero-insertion, pad (2, 1), [1,3,3,1] filter, gain 4.
            img = upfirdn2d(img, self.resample_filter * 4, up=2, pad=(2, 1)) + y
        else:
            img = y
        return x, img


def channels_for(resolution, channel_base=32768, channel_max=512):
    """Width at each resolution: min(channel_base / res, channel_max), as in config-f."""
    return {2**i: min(channel_base // 2**i, channel_max) for i in range(2, log2_resolution(resolution) + 1)}


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim, resolution, img_channels=3, channel_base=32768, channel_max=512,
                 conv_clamp=None):
        super().__init__()
        self.w_dim, self.resolution = w_dim, resolution
        self.block_resolutions = [2**i for i in range(2, log2_resolution(resolution) + 1)]
        ch = channels_for(resolution, channel_base, channel_max)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(ch[res // 2] if res > 4 else 0, ch[res], w_dim, res,
                                   img_channels, conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last ToRGB takes a w of its own

    def forward(self, ws, noise="const", stop_at=None):
        """ws: (N, num_ws, w_dim) or one w (N, w_dim) for all layers.

        Runs the blocks up to ``stop_at`` resolution (default: all) and return that RGB output.

        Stopping early is exact for the skip architecture: the image at resolution r is the
        sum of upsampled ToRGB outputs up to r, which is what a coarse-to-fine loss needs.
        """
        check_noise_mode(noise)
        ws = broadcast_ws(ws, self.num_ws)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + block.num_torgb], noise)
            w_idx += block.num_conv
            if stop_at is not None and res >= stop_at:
                break
        return img


class StyleGAN2Generator(nn.Module):
    kind = "stylegan2"
    spaces = ("z", "w", "wp")

    def __init__(self, resolution=1024, z_dim=512, w_dim=512, mapping_layers=8,
                 channel_base=32768, channel_max=512, img_channels=3, conv_clamp=None,
                 mapping_lr_multiplier=0.01, w_avg_beta=0.995):
        super().__init__()
        self.config = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim,
                           mapping_layers=mapping_layers, channel_base=channel_base,
                           channel_max=channel_max, img_channels=img_channels,
                           conv_clamp=conv_clamp, mapping_lr_multiplier=mapping_lr_multiplier,
                           w_avg_beta=w_avg_beta)
        self.resolution, self.z_dim, self.w_dim, self.img_channels = resolution, z_dim, w_dim, img_channels
        # The protocol's mapping(z, psi) and synthesis(ws, noise) are these submodules, so the
        # state-dict names are the official "mapping.*" / "synthesis.*".
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base,
                                          channel_max, conv_clamp)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers,
                                      mapping_lr_multiplier, w_avg_beta)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z, psi=1.0, noise="const"):
        return self.synthesis(self.mapping(z, psi), noise)

    @property
    def ws_resolutions(self) -> list[int]:
        """Resolution of the layer each of the num_ws codes drives (for layer-wise edits)."""
        out = []
        for res in self.synthesis.block_resolutions:
            out += [res] * (1 if res == 4 else 2)
        return out + [self.resolution]


# ----------------------------------------------------------------------------- discriminator

class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional 2x down (blur then stride 2), bias and lrelu."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, activation="lrelu",
                 down=1, conv_clamp=None):
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", blur_kernel())

    def forward(self, x, gain=1.0):
        w = self.weight * self.weight_gain
        if self.down > 1:
            p = (4 - 2) + (self.kernel_size - 1)
            x = upfirdn2d(x, self.resample_filter, pad=((p + 1) // 2, p // 2))
            x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
        if self.bias is not None:
            x = x + self.bias[None, :, None, None]
        if self.activation == "lrelu":
            clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
            return lrelu_gain(x, SQRT2 * gain, clamp)
        return x * gain


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels, tmp_channels, out_channels, resolution, img_channels=3):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, activation="linear", down=2)

    def forward(self, x, img):
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    def __init__(self, group_size=4, num_channels=1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = min(self.group_size, n) if n % min(self.group_size, n) == 0 else 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], 1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels, resolution=4, mbstd_group_size=4):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group_size, 1)
        self.conv = Conv2dLayer(in_channels + 1, in_channels, 3)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x):
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class StyleGAN2Discriminator(nn.Module):
    """Residual discriminator. ``features(img)`` exposes block outputs for a perceptual loss."""

    def __init__(self, resolution=1024, img_channels=3, channel_base=32768, channel_max=512,
                 mbstd_group_size=4):
        super().__init__()
        self.config = dict(resolution=resolution, img_channels=img_channels,
                           channel_base=channel_base, channel_max=channel_max,
                           mbstd_group_size=mbstd_group_size)
        self.resolution = resolution
        self.block_resolutions = [2**i for i in range(log2_resolution(resolution), 2, -1)]
        ch = channels_for(resolution, channel_base, channel_max)
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(0 if res == resolution else ch[res], ch[res],
                                                        ch[res // 2], res, img_channels))
        self.b4 = DiscriminatorEpilogue(ch[4], 4, mbstd_group_size)

    def forward(self, img):
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        return self.b4(x)

    def features(self, img, depth=None):
        """Activations after each residual block, finest first (``depth`` blocks at most)."""
        x, feats = None, []
        for res in self.block_resolutions[:depth]:
            x = getattr(self, f"b{res}")(x, img)
            feats.append(x)
        return feats


def build_generator(resolution=1024, **config) -> StyleGAN2Generator:
    return StyleGAN2Generator(resolution=resolution, **config)


def seeded_z(seeds, z_dim, device=None) -> torch.Tensor:
    """z from integer seeds, drawn the way the official tools draw them (numpy RandomState)."""
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])).float().to(device)
