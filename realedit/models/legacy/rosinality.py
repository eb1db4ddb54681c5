"""rosinality/stylegan2-pytorch ``.pt`` files (``{"g_ema": state_dict, "latent_avg": w, ...}``)."""
from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import FormatError
from ..checkpoint import Checkpoint
from .files import _is_tensor_dict, _Source, first, flat, plane, scalar, take
from .layouts import _resolutions, stylegan2_config_from_state


_ROSI_IGNORED = re.compile(r"(convs\.\d+\.conv\.blur\.kernel|to_rgbs\.\d+\.upsample\.kernel)$")

# realedit's name <- rosinality's, and how. {o}: our layer, {t}: theirs, {n}: its noise image.
# rosinality scales a conv weight by 1/sqrt(fan_in) before demodulating, ada does not:
# demodulation cancels any constant factor, so the stored values carry over unchanged; in ToRGB
# that 1/sqrt(in) is ada's weight_gain on the styles. style.0 is the PixelNorm.
MAPPING = (("mapping.fc{i}.weight", "style.{j}.weight", None),
           ("mapping.fc{i}.bias", "style.{j}.bias", None))
STYLED_CONV = (("{o}.weight", "{t}.conv.weight", first),
               ("{o}.affine.weight", "{t}.conv.modulation.weight", None),
               ("{o}.affine.bias", "{t}.conv.modulation.bias", None),
               ("{o}.noise_strength", "{t}.noise.weight", scalar),
               ("{o}.bias", "{t}.activate.bias", None),
               ("{o}.noise_const", "noises.noise_{n}", plane))
TO_RGB = (("{o}.weight", "{t}.conv.weight", first),
          ("{o}.affine.weight", "{t}.conv.modulation.weight", None),
          ("{o}.affine.bias", "{t}.conv.modulation.bias", None),
          ("{o}.bias", "{t}.bias", flat))


def from_rosinality(obj: dict, path: Path) -> Checkpoint:
    g = obj["g_ema"]
    if not _is_tensor_dict(g):
        raise FormatError(f"{path}: 'g_ema' is not a state dict of tensors")
    src = _Source(g, path, "rosinality g_ema")
    n_map = len(_resolutions(g, r"style\.(\d+)\.weight"))
    n_convs = len(_resolutions(g, r"convs\.(\d+)\.conv\.weight"))
    if n_map == 0 or "input.input" not in g or n_convs % 2:
        raise FormatError(f"{path}: not a rosinality StyleGAN2 generator (no style.1 / input.input)")
    sd = {}
    for i in range(n_map):
        sd.update(take(src, MAPPING, i=i, j=i + 1))
    sd["synthesis.b4.const"] = src("input.input")[0]
    sd.update(take(src, STYLED_CONV, o="synthesis.b4.conv1", t="conv1", n=0))
    sd.update(take(src, TO_RGB, o="synthesis.b4.torgb", t="to_rgb1"))
    for k in range(n_convs // 2):
        r = 2 ** (k + 3)
        sd.update(take(src, STYLED_CONV, o=f"synthesis.b{r}.conv0", t=f"convs.{2 * k}", n=2 * k + 1))
        sd.update(take(src, STYLED_CONV, o=f"synthesis.b{r}.conv1", t=f"convs.{2 * k + 1}",
                       n=2 * k + 2))
        sd.update(take(src, TO_RGB, o=f"synthesis.b{r}.torgb", t=f"to_rgbs.{k}"))
    src.check_all_used(_ROSI_IGNORED, "not a StyleGAN2 'skip' generator?")
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
