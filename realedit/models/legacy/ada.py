"""stylegan2-ada-pytorch pickles (``{"G", "D", "G_ema", ...}`` of persistent objects): only the
stored parameter/buffer tensors and ``init_kwargs`` are used."""
from __future__ import annotations

import re
from pathlib import Path


from ...errors import FormatError
from ..unpickle import PersistentStub
from ..checkpoint import Checkpoint
from .files import _plain_kwargs, _tensor
from .layouts import stylegan2_config_from_state, stylegan2_d_config_from_state


_ADA_IGNORED = re.compile(r"(.*\.)?resample_filter$")


def from_ada(data: dict, path: Path) -> Checkpoint:
    G = data["G_ema"]
    if G.class_name != "Generator":
        raise FormatError(f"{path}: G_ema is a {G.class_name!r}, not a StyleGAN2 Generator")
    kw = G.init_kwargs
    if kw.get("c_dim", 0):
        raise FormatError(f"{path}: class-conditional generators are not supported")
    mk, sk = dict(kw.get("mapping_kwargs") or {}), dict(kw.get("synthesis_kwargs") or {})
    if sk.get("architecture", "skip") != "skip":
        raise FormatError(f"{path}: StyleGAN2 generator architecture {sk['architecture']!r}; only 'skip' is supported")
    if list(sk.get("resample_filter", [1, 3, 3, 1])) != [1, 3, 3, 1]:
        raise FormatError(f"{path}: resample filter {sk['resample_filter']} is not supported")
    sd = {k: _tensor(t, k, path) for k, t in G.named_tensors().items() if not _ADA_IGNORED.match(k)}
    if not any(k.startswith("synthesis.b4.") for k in sd):
        raise FormatError(f"{path}: G_ema is not a StyleGAN2 generator (StyleGAN3 and others are not supported)")
    cfg = stylegan2_config_from_state(sd, path, mapping_lr_multiplier=mk.get("lr_multiplier"),
                                      w_avg_beta=mk.get("w_avg_beta"), conv_clamp=sk.get("conv_clamp"))
    meta = {"source_format": "ada-pytorch", "init_kwargs": _plain_nested(kw)}
    Dstub = data.get("D")
    thunk = (lambda: _from_ada_D(Dstub, path)) if isinstance(Dstub, PersistentStub) else None
    return Checkpoint("stylegan2", cfg, sd, meta=meta, D_thunk=thunk)


def _from_ada_D(Dstub: PersistentStub, path: Path):
    dkw = Dstub.init_kwargs
    ek = dict(dkw.get("epilogue_kwargs") or {})
    if (Dstub.class_name != "Discriminator" or dkw.get("architecture", "resnet") != "resnet"
            or dkw.get("c_dim", 0) or ek.get("mbstd_num_channels", 1) != 1):
        return None, None  # a discriminator realedit has no module for
    D = {k: _tensor(t, k, path) for k, t in Dstub.named_tensors().items() if not _ADA_IGNORED.match(k)}
    return D, stylegan2_d_config_from_state(D, path, mbstd_group_size=ek.get("mbstd_group_size"))


def _plain_nested(kw: dict) -> dict:
    out = _plain_kwargs(kw)
    for k, val in kw.items():
        if isinstance(val, dict):
            out[str(k)] = _plain_nested(val)
    return out
