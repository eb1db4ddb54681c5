"""rosinality/stylegan2-pytorch ``.pt`` files (``{"g_ema": state_dict, "latent_avg": w, ...}``)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import FormatError
from ..checkpoint import Checkpoint
from .files import _Source, _is_tensor_dict
from .layouts import _resolutions, stylegan2_config_from_state


_ROSI_IGNORED = re.compile(r"(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")


def from_rosinality(obj: dict, path: Path) -> Checkpoint:
    g = obj["g_ema"]
    if not _is_tensor_dict(g):
        raise FormatError(f"{path}: 'g_ema' is not a state dict of tensors")
    src = _Source(g, path, "rosinality g_ema")
    n_map = len(_resolutions(g, r"style\.(\d+)\.weight"))
    n_convs = len(_resolutions(g, r"convs\.(\d+)\.conv\.weight"))
    if n_map == 0 or "input.input" not in g or n_convs % 2:
        raise FormatError(f"{path}: not a rosinality StyleGAN2 generator (no style.1 / input.input)")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    sd = {}
    for i in range(n_map):  # style.0 is the PixelNorm; EqualLinear stores weight/lr_mul as ada does
        sd[f"mapping.fc{i}.weight"] = get(f"style.{i + 1}.weight")
        sd[f"mapping.fc{i}.bias"] = get(f"style.{i + 1}.bias")
    sd["synthesis.b4.const"] = get("input.input")[0]

    def styled(ours, theirs, noise_idx):
        # rosinality scales the conv weight by 1/sqrt(fan_in) before demodulating; ada does not.
        # Demodulation cancels any constant factor, so the stored values carry over unchanged.
        sd[f"{ours}.weight"] = get(f"{theirs}.conv.weight")[0]
        sd[f"{ours}.affine.weight"] = get(f"{theirs}.conv.modulation.weight")
        sd[f"{ours}.affine.bias"] = get(f"{theirs}.conv.modulation.bias")
        sd[f"{ours}.noise_strength"] = get(f"{theirs}.noise.weight").reshape([])
        sd[f"{ours}.bias"] = get(f"{theirs}.activate.bias")
        sd[f"{ours}.noise_const"] = get(f"noises.noise_{noise_idx}")[0, 0]

    def torgb(ours, theirs):
        # ToRGB: rosinality's 1/sqrt(in) on the weight == ada's weight_gain on the styles.
        sd[f"{ours}.weight"] = get(f"{theirs}.conv.weight")[0]
        sd[f"{ours}.affine.weight"] = get(f"{theirs}.conv.modulation.weight")
        sd[f"{ours}.affine.bias"] = get(f"{theirs}.conv.modulation.bias")
        sd[f"{ours}.bias"] = get(f"{theirs}.bias").reshape(-1)

    styled("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(n_convs // 2):
        r = 2 ** (k + 3)
        styled(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1)
        styled(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}")
    extra = [k for k in g if k not in used and not _ROSI_IGNORED.match(k)]
    if extra:
        raise FormatError(f"{path}: rosinality g_ema has unexpected tensor {extra[0]!r} "
                          f"(not a StyleGAN2 'skip' generator?)")
    meta = {"source_format": "rosinality"}
    la = obj.get("latent_avg")
    if isinstance(la, torch.Tensor):
        sd["mapping.w_avg"] = la.detach().to(torch.float32).reshape(-1)
    else:
        meta["w_avg"] = "estimated"  # filled in by estimate_w_avg() after the model is built
    sd = {k: t.contiguous() for k, t in sd.items()}
    cfg = stylegan2_config_from_state(sd, path)
    if "mapping.w_avg" not in sd:
        sd["mapping.w_avg"] = torch.zeros(cfg["w_dim"])
    return Checkpoint("stylegan2", cfg, sd, meta=meta)
