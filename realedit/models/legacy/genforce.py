"""genforce / interfacegan converted ``.pth`` state dicts (their PGGAN and StyleGAN ports)."""
from __future__ import annotations

import re
from pathlib import Path


from ...errors import FormatError
from ..checkpoint import Checkpoint
from .files import _Source
from .layouts import (_drop_known, _fused_setting, _resolutions, pggan_config_from_state,
                      stylegan_config_from_state)


_GF_SG1_IGNORED = re.compile(r"(truncation\.truncation|synthesis\.lod|synthesis\.layer\d+\.blur\.kernel|synthesis\.output\d+\..*)$")


def from_genforce_stylegan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce StyleGAN state dict")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    n_map = len(_resolutions(g, r"mapping\.dense(\d+)\.linear\.weight"))
    n_layers = len(_resolutions(g, r"synthesis\.layer(\d+)\.epilogue\.bias"))
    if n_map == 0 or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce StyleGAN generator (no mapping.dense0 / synthesis.layer0)")
    if "synthesis.lod" in g and float(g["synthesis.lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (synthesis.lod = {float(g['synthesis.lod'])})")
    sd = {"mapping.w_avg": get("truncation.w_avg"),
          "synthesis.const": get("synthesis.layer0.first_layer")[0]}
    for j in range(n_map):
        sd[f"mapping.dense{j}.weight"] = get(f"mapping.dense{j}.linear.weight")
        sd[f"mapping.dense{j}.bias"] = get(f"mapping.dense{j}.wscale.bias")
    fused = set()
    for i in range(n_layers):
        p = f"synthesis.layer{i}"
        if i:
            if f"{p}.weight" in g:  # fused up-conv, kept in TF layout [kh, kw, in, out]
                sd[f"{p}.weight"] = get(f"{p}.weight").permute(3, 2, 0, 1)
                fused.add(2 ** (i // 2 + 2))
            else:
                sd[f"{p}.weight"] = get(f"{p}.conv.weight")
        e = f"{p}.epilogue"
        sd[f"{p}.bias"] = get(f"{e}.bias")
        sd[f"{p}.noise_strength"] = get(f"{e}.apply_noise.weight")
        sd[f"{p}.noise_const"] = get(f"{e}.apply_noise.noise")[0, 0]
        sd[f"{p}.style.weight"] = get(f"{e}.style_mod.dense.linear.weight")
        sd[f"{p}.style.bias"] = get(f"{e}.style_mod.dense.wscale.bias")
    last = n_layers // 2 - 1  # output{k} is the ToRGB of resolution 4 * 2**k
    sd["synthesis.torgb.weight"] = get(f"synthesis.output{last}.conv.weight")
    sd["synthesis.torgb.bias"] = get(f"synthesis.output{last}.bias")
    _drop_known(g, used, _GF_SG1_IGNORED, path, "genforce StyleGAN state dict")
    sd = {k: t.contiguous() for k, t in sd.items()}
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    cfg = stylegan_config_from_state(sd, path)
    cfg["fused_scale"] = _fused_setting(fused, up_res, path)
    return Checkpoint("stylegan", cfg, sd, meta={"source_format": "genforce-stylegan"})


_GF_PGGAN_IGNORED = re.compile(r"(lod|output\d+\..*)$")


def from_genforce_pggan(g: dict, path: Path) -> Checkpoint:
    src = _Source(g, path, "genforce PGGAN state dict")
    used = set()

    def get(name):
        used.add(name)
        return src(name)

    n_layers = len(_resolutions(g, r"layer(\d+)\.wscale\.bias"))
    if n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a genforce PGGAN generator")
    if "lod" in g and float(g["lod"]) != 0:
        raise FormatError(f"{path}: the network is still growing (lod = {float(g['lod'])})")
    w0 = get("layer0.conv.weight")  # [C, z, 4, 4]: the TF dense as a flipped 4x4 conv on a 1x1 input
    sd = {"layer0.weight": w0.flip(2, 3).permute(0, 2, 3, 1).reshape(-1, w0.shape[1]),
          "layer0.bias": get("layer0.wscale.bias")}
    fused = set()
    for i in range(1, n_layers):
        if f"layer{i}.weight" in g:  # fused up-conv kept as [kh, kw, in, out]
            sd[f"layer{i}.weight"] = get(f"layer{i}.weight").permute(3, 2, 0, 1)
            fused.add(2 ** (i // 2 + 2))
        else:
            sd[f"layer{i}.weight"] = get(f"layer{i}.conv.weight")
        sd[f"layer{i}.bias"] = get(f"layer{i}.wscale.bias")
    last = n_layers // 2 - 1
    sd["torgb.weight"] = get(f"output{last}.conv.weight")
    sd["torgb.bias"] = get(f"output{last}.wscale.bias")
    _drop_known(g, used, _GF_PGGAN_IGNORED, path, "genforce PGGAN state dict")
    up_res = [2 ** (i // 2 + 2) for i in range(2, n_layers, 2)]
    sd = {k: t.contiguous() for k, t in sd.items()}
    fs = _fused_setting(fused, up_res, path)
    if fs == "auto":
        raise FormatError(f"{path}: PGGAN with fused up-convolutions only from 128 is not supported")
    return Checkpoint("pggan", pggan_config_from_state(sd, path, fused_scale=fs), sd,
                      meta={"source_format": "genforce-pggan"})
