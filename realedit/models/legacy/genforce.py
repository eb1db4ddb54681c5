"""genforce / interfacegan converted ``.pth`` state dicts (their PGGAN and StyleGAN ports)."""
from __future__ import annotations

import re
from pathlib import Path


from ...errors import FormatError
from ..checkpoint import Checkpoint
from .files import _Source, first, plane, take, tf_conv
from .layouts import (_fused_setting, _resolutions, pggan_config_from_state,
                      stylegan_config_from_state)


# realedit's name <- genforce's, and how. {p}: the layer (genforce's epilogue holds its bias,
# noise and style); fused up-convs are kept in TF layout [kh, kw, in, out].
SG1_MAPPING = (("mapping.dense{j}.weight", "mapping.dense{j}.linear.weight", None),
               ("mapping.dense{j}.bias", "mapping.dense{j}.wscale.bias", None))
SG1_CONV = (("{p}.weight", "{p}.conv.weight", None),)
SG1_FUSED_UP = (("{p}.weight", "{p}.weight", tf_conv),)
SG1_EPILOGUE = (("{p}.bias", "{p}.epilogue.bias", None),
                ("{p}.noise_strength", "{p}.epilogue.apply_noise.weight", None),
                ("{p}.noise_const", "{p}.epilogue.apply_noise.noise", plane),
                ("{p}.style.weight", "{p}.epilogue.style_mod.dense.linear.weight", None),
                ("{p}.style.bias", "{p}.epilogue.style_mod.dense.wscale.bias", None))
SG1_TO_RGB = (("synthesis.torgb.weight", "synthesis.output{k}.conv.weight", None),
              ("synthesis.torgb.bias", "synthesis.output{k}.bias", None))
PGGAN_LAYER = (("layer{i}.weight", "layer{i}.conv.weight", None),
               ("layer{i}.bias", "layer{i}.wscale.bias", None))
PGGAN_FUSED_UP = (("layer{i}.weight", "layer{i}.weight", tf_conv),
                  ("layer{i}.bias", "layer{i}.wscale.bias", None))
PGGAN_TO_RGB = (("torgb.weight", "output{k}.conv.weight", None),
                ("torgb.bias", "output{k}.wscale.bias", None))

_GF_SG1_IGNORED = re.compile(r"(truncation\.truncation|synthesis\.lod|synthesis\.layer\d+\.blur\.kernel|synthesis\.output\d+\..*)$")


def from_genforce_stylegan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce StyleGAN state dict")
    n_map = len(_resolutions(g, r"mapping\.dense(\d+)\.linear\.weight"))
    n_layers = len(_resolutions(g, r"synthesis\.layer(\d+)\.epilogue\.bias"))
    if n_map == 0 or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce StyleGAN generator (no mapping.dense0 / synthesis.layer0)")
    if "synthesis.lod" in g and float(g["synthesis.lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (synthesis.lod = {float(g['synthesis.lod'])})")
    sd = {"mapping.w_avg": src("truncation.w_avg"),
          "synthesis.const": first(src("synthesis.layer0.first_layer"))}
    for j in range(n_map):
        sd.update(take(src, SG1_MAPPING, j=j))
    fused = set()
    for i in range(n_layers):
        p = f"synthesis.layer{i}"
        if i:
            up = f"{p}.weight" in src
            sd.update(take(src, SG1_FUSED_UP if up else SG1_CONV, p=p))
            if up:
                fused.add(2 ** (i // 2 + 2))
        sd.update(take(src, SG1_EPILOGUE, p=p))
    # output{k} is the ToRGB of resolution 4 * 2**k: the last one is the network's output
    sd.update(take(src, SG1_TO_RGB, k=n_layers // 2 - 1))
    src.check_all_used(_GF_SG1_IGNORED)
    sd = {k: t.contiguous() for k, t in sd.items()}
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    cfg = stylegan_config_from_state(sd, path)
    cfg["fused_scale"] = _fused_setting(fused, up_res, path)
    return Checkpoint("stylegan", cfg, sd, meta={"source_format": "genforce-stylegan"})


_GF_PGGAN_IGNORED = re.compile(r"(lod|output\d+\..*)$")


def from_genforce_pggan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce PGGAN state dict")
    n_layers = len(_resolutions(g, r"layer(\d+)\.wscale\.bias"))
    if n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce PGGAN generator")
    if "lod" in g and float(g["lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (lod = {float(g['lod'])})")
    w0 = src("layer0.conv.weight")  # [C, z, 4, 4]: the TF dense as a flipped 4x4 conv on a 1x1 input
    sd = {"layer0.weight": w0.flip(2, 3).permute(0, 2, 3, 1).reshape(-1, w0.shape[1]),
          "layer0.bias": src("layer0.wscale.bias")}
    fused = set()
    for i in range(1, n_layers):
        up = f"layer{i}.weight" in src
        sd.update(take(src, PGGAN_FUSED_UP if up else PGGAN_LAYER, i=i))
        if up:
            fused.add(2 ** (i // 2 + 2))
    sd.update(take(src, PGGAN_TO_RGB, k=n_layers // 2 - 1))
    src.check_all_used(_GF_PGGAN_IGNORED)
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    sd = {k: t.contiguous() for k, t in sd.items()}
    fs = _fused_setting(fused, up_res, path)
    if fs == "auto":
        raise FormatError(f"{path}: PGGAN with fused up-convolutions only from 128 is not supported")
    return Checkpoint("pggan", pggan_config_from_state(sd, path, fused_scale=fs), sd,
                      meta={"source_format": "genforce-pggan"})
