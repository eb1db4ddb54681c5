"""Generator and discriminator configs implied by the tensor shapes of a realedit-layout state
dict, and the fixed settings each family's converters accept."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import FormatError, WeightsError
from .files import _Source


def fit_channels(ch: dict[int, int], path: Path, what: str = "generator") -> tuple[int, int]:
    """(channel_base, channel_max) with ``min(channel_base // res, channel_max) == ch[res]``."""
    cmax = max(ch.values())
    below = [r for r in sorted(ch) if ch[r] < cmax]
    base = ch[below[0]] * below[0] if below else cmax * max(ch)
    if any(min(base // r, cmax) != c for r, c in ch.items()):
        raise FormatError(f"{path}: the {what}'s channel widths {dict(sorted(ch.items()))} do not "
                          f"follow min(base / res, max); not supported")
    return base, cmax


def _resolutions(keys, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys for m in [rx.match(k)] if m})


def stylegan2_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    """StyleGAN2 generator config implied by the shapes of a realedit-layout state dict."""
    if "mapping.embed.weight" in sd:
        raise FormatError(f"{path}: class-conditional generators are not supported")
    res = _resolutions(sd, r"synthesis\.b(\d+)\.")
    n_map = len(_resolutions(sd, r"mapping\.fc(\d+)\.weight"))
    if not res or res[0] != 4 or "synthesis.b4.const" not in sd or n_map == 0:
        raise FormatError(f"{path}: not a StyleGAN2 generator (no synthesis.b4.const / mapping.fc0)")
    if any(f"synthesis.b{r}.skip.weight" in sd for r in res):
        raise FormatError(f"{path}: a 'resnet' StyleGAN2 generator; only the 'skip' one (config-f) is supported")
    z_dim = sd["mapping.fc0.weight"].shape[1]
    w_dim = sd[f"mapping.fc{n_map - 1}.weight"].shape[0]
    if any(sd[f"mapping.fc{i}.weight"].shape[0] != w_dim for i in range(n_map)):
        raise FormatError(f"{path}: mapping layers wider or narrower than w_dim are not supported")
    ch = {4: sd["synthesis.b4.const"].shape[0]}
    for r in res[1:]:
        key = f"synthesis.b{r}.conv1.weight"
        if key not in sd:
            raise WeightsError(f"{path}: StyleGAN2 generator lacks {key!r}")
        ch[r] = sd[key].shape[0]
    base, cmax = fit_channels(ch, path)
    cfg = dict(resolution=res[-1], z_dim=int(z_dim), w_dim=int(w_dim), mapping_layers=n_map,
               channel_base=base, channel_max=cmax,
               img_channels=int(sd[f"synthesis.b{res[-1]}.torgb.weight"].shape[0])
               if f"synthesis.b{res[-1]}.torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def stylegan2_d_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    res = _resolutions(sd, r"b(\d+)\.")
    if not res or "b4.conv.weight" not in sd:
        raise FormatError(f"{path}: not a StyleGAN2 discriminator (no b4.conv)")
    top = res[-1]
    if f"b{top}.fromrgb.weight" not in sd:
        raise FormatError(f"{path}: only the 'resnet' StyleGAN2 discriminator is supported")
    ch = {4: sd["b4.conv.weight"].shape[0]}
    for r in res[1:]:
        ch[r] = sd[f"b{r}.conv0.weight"].shape[0]
    if sd["b4.conv.weight"].shape[1] != ch[4] + 1:
        raise FormatError(f"{path}: discriminator minibatch-stddev with more than one feature is not supported")
    base, cmax = fit_channels(ch, path, "discriminator")
    cfg = dict(resolution=top, img_channels=int(sd[f"b{top}.fromrgb.weight"].shape[1]),
               channel_base=base, channel_max=cmax)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


_SG1_FIXED_KWARGS = {"use_noise": True, "use_styles": True, "const_input_layer": True,
                     "use_pixel_norm": False, "use_instance_norm": True, "use_wscale": True,
                     "randomize_noise": None, "nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu",
                     "normalize_latents": True, "fmap_decay": 1.0}


def _check_fixed(kw: dict, fixed: dict, path: Path, family: str):
    for k, want in fixed.items():
        if want is not None and k in kw and kw[k] != want:
            raise FormatError(f"{path}: {family} with {k}={kw[k]!r} is not supported (only {want!r})")


def _lod_zero(v: _Source, names, path: Path):
    for n in names:
        if n in v and float(np.asarray(v.t[n]).reshape(-1)[0]) != 0.0:
            raise FormatError(f"{path}: the network is still growing ({n} = {float(np.asarray(v.t[n]))}); "
                              f"only finished networks (lod 0) are supported")


def _sg1_layer_scope(i: int) -> str:
    if i < 2:
        return ("4x4/Const", "4x4/Conv")[i]
    r = 2 ** (i // 2 + 2)
    return f"{r}x{r}/{'Conv0_up' if i % 2 == 0 else 'Conv1'}"


def stylegan_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    """StyleGAN (v1) generator config implied by the shapes of a realedit-layout state dict."""
    n_map = len(_resolutions(sd, r"mapping\.dense(\d+)\.weight"))
    n_layers = len(_resolutions(sd, r"synthesis\.layer(\d+)\.bias"))
    if n_map == 0 or "synthesis.const" not in sd or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a StyleGAN generator (no mapping.dense0 / synthesis.const)")
    resolution = 2 ** (n_layers // 2 + 1)
    ch = {}
    for i in range(n_layers):
        ch[2 ** (i // 2 + 2)] = sd[f"synthesis.layer{i}.bias"].shape[0]
    base, cmax = fit_channels(ch, path)
    z_dim = int(sd["mapping.dense0.weight"].shape[1])
    w_dim = int(sd[f"mapping.dense{n_map - 1}.weight"].shape[0])
    hidden = int(sd["mapping.dense0.weight"].shape[0]) if n_map > 1 else w_dim
    cfg = dict(resolution=resolution, z_dim=z_dim, w_dim=w_dim, mapping_layers=n_map,
               mapping_fmaps=None if hidden == w_dim else hidden, fmap_base=base // 2, fmap_max=cmax,
               img_channels=int(sd["synthesis.torgb.weight"].shape[0]) if "synthesis.torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _fused_setting(fused_res: set, up_res: list, path: Path):
    """genforce stores fused up-convs under another name: recover fused_scale from which are."""
    if not fused_res:
        return False
    if fused_res == set(up_res):
        return True
    if fused_res == {r for r in up_res if r >= 128}:
        return "auto"
    raise FormatError(f"{path}: fused up-convolutions at {sorted(fused_res)} follow no known fused_scale setting")


_PGGAN_FIXED_KWARGS = {"use_wscale": True, "use_leakyrelu": True, "fmap_decay": 1.0}


def pggan_config_from_state(sd: dict, path: Path, **overrides) -> dict:
    n_layers = len(_resolutions(sd, r"layer(\d+)\.bias"))
    if "layer0.weight" not in sd or n_layers < 2 or n_layers % 2:
        raise FormatError(f"{path}: not a PGGAN generator (no layer0 dense)")
    ch = {2 ** (i // 2 + 2): sd[f"layer{i}.bias"].shape[0] for i in range(n_layers)}
    base, cmax = fit_channels(ch, path)
    if sd["layer0.weight"].shape[0] != 16 * ch[4]:
        raise WeightsError(f"{path}: PGGAN dense layer has {sd['layer0.weight'].shape[0]} outputs, expected {16 * ch[4]}")
    cfg = dict(resolution=2 ** (n_layers // 2 + 1), z_dim=int(sd["layer0.weight"].shape[1]),
               fmap_base=base // 2, fmap_max=cmax,
               img_channels=int(sd["torgb.weight"].shape[0]) if "torgb.weight" in sd else 3)
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg
