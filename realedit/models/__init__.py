"""Generator zoo: build a family by name, save/load realedit model files, load official weights.

    build(kind, resolution, **config) -> generator          kinds: "pggan", "stylegan", "stylegan2"
    load(path_or_registry_name, kind=None, device=None) -> generator (eval mode)
    load_discriminator(path_or_registry_name, device=None) -> discriminator or None
    save(generator, path, discriminator=None, meta=None)

``load`` detects the file's format from its content (see :mod:`realedit.models.legacy`; realedit's
own format is :mod:`realedit.models.own_format`):
realedit's own files, NVIDIA TF1 pickles, stylegan2-ada-pytorch pickles, rosinality ``.pt``,
genforce/interfacegan ``.pth``. Foreign pickles go through a restricted unpickler; nothing
stored in a weight file is ever executed.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import torch

from ..errors import FormatError, OutputError, UsageError, WeightsError
from .base import estimate_w_avg
from .checkpoint import KINDS, Checkpoint, save_torch
from .legacy import read_checkpoint
from .own_format import to_own

_FAMILY_MODULES = {"pggan": "pggan", "stylegan": "stylegan", "stylegan2": "stylegan2"}

__all__ = ["build", "load", "load_discriminator", "read_model",
           "generator_from_checkpoint", "discriminator_from_checkpoint", "save", "read_checkpoint", "Checkpoint", "KINDS"]


def _family(kind: str):
    if kind not in _FAMILY_MODULES:
        raise UsageError(f"unknown generator kind {kind!r}; choose one of {', '.join(KINDS)}")
    return importlib.import_module(f".{_FAMILY_MODULES[kind]}", __name__)


def build(kind: str, resolution: int, **config):
    """A randomly initialised generator of the family ``kind`` (tiny widths welcome for tests)."""
    return _family(kind).build_generator(resolution=resolution, **config)


def build_discriminator(kind: str, resolution: int, **config):
    if kind != "stylegan2":
        raise UsageError(f"realedit has a discriminator for stylegan2 only, not {kind!r}")
    from .stylegan2 import StyleGAN2Discriminator
    return StyleGAN2Discriminator(resolution=resolution, **config)


def _resolve(path_or_name) -> Path:
    p = Path(path_or_name)
    if p.exists():
        return p
    from .. import weights  # registry names; resolve() raises WeightsNotFound with a clear line
    return Path(weights.resolve(str(path_or_name)))


def _registry_kind(path_or_name):
    """The family the registry records for a name (None for paths or unknown fields).

    A registered file that is not a generator (a face detector, an encoder...) is refused
    here with one clear line instead of failing later on its content.
    """
    if Path(path_or_name).exists():
        return None
    try:
        from .. import weights
        e = weights.entry(str(path_or_name))
    except Exception:  # the registry is advisory here; resolve() reports real problems
        return None
    kind = getattr(e, "kind", None)
    role = getattr(e, "role", "") or ""
    from .legacy.psp import REGISTRY_FORMATS
    if getattr(e, "format", "") in REGISTRY_FORMATS:  # a pSp / e4e file holds its generator
        return "stylegan2"
    if role and role != "generator" and kind not in KINDS + ("realedit",):
        raise FormatError(f"weights '{path_or_name}' are a {kind} {role}, not a generator")
    return kind if kind in KINDS else None


def _check_plain(x, where="meta"):
    """meta must survive torch.load(weights_only=True): plain data only."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return
    if isinstance(x, (list, tuple)):
        for v in x:
            _check_plain(v, where)
        return
    if isinstance(x, dict):
        for k, v in x.items():
            if not isinstance(k, str):
                raise UsageError(f"{where} keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise UsageError(f"{where} must hold plain data (str/number/bool/list/dict), got {type(x).__name__}")


def _load_state(module, state: dict, what: str, path) -> None:
    """Copy ``state`` into ``module``: every tensor must be present and of the right shape.

    The fixed low-pass filters (``resample_filter``) are constants of our own layout; a file
    may omit them.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("resample_filter")]
    if missing:
        raise WeightsError(f"{path}: the {what} lacks {len(missing)} tensor(s), e.g. {missing[0]!r}")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise WeightsError(f"{path}: the {what} has {len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]!r}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise WeightsError(f"{path}: {what} tensor {k!r} has shape {tuple(v.shape)}, "
                               f"expected {tuple(own[k].shape)}")
    merged = dict(own)
    merged.update(state)
    module.load_state_dict(merged, strict=True)


def generator_from_checkpoint(ckpt: Checkpoint, path="<checkpoint>", device=None):
    config = dict(ckpt.config)
    resolution = config.pop("resolution", None)
    if resolution is None:
        raise FormatError(f"{path}: generator config has no resolution")
    try:
        G = build(ckpt.kind, resolution, **config)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{path}: cannot build a {ckpt.kind} generator from the stored config ({exc})") from None
    _load_state(G, ckpt.G, f"{ckpt.kind} generator", path)
    if ckpt.meta.get("w_avg") == "estimated":
        with torch.no_grad():
            G.w_avg.copy_(estimate_w_avg(G))
    G.meta = dict(ckpt.meta)
    if device is not None:
        G = G.to(device)
    return G.eval()


def load(path_or_name, kind: str | None = None, device=None):
    """Generator from a file or registry name, format detected from the content, in eval mode.

    ``kind`` (or the registry's record for a name) is the expected family; a file of
    another family raises FormatError. Other errors: WeightsNotFound, UnsafePickleError,
    WeightsError (missing/misshapen tensors).
    """
    kind = kind or _registry_kind(path_or_name)
    path = _resolve(path_or_name)
    return generator_from_checkpoint(read_checkpoint(path, kind=kind), path, device)


def read_model(path_or_name, kind: str | None = None) -> tuple[Checkpoint, Path]:
    """(checkpoint, path): the file read once, for `generator_from_checkpoint` and
    `discriminator_from_checkpoint` (a 1024-px pickle is hundreds of MB)."""
    kind = kind or _registry_kind(path_or_name)
    path = _resolve(path_or_name)
    return read_checkpoint(path, kind=kind), path


def load_discriminator(path_or_name, device=None):
    """The discriminator stored with a generator (realedit, TF StyleGAN2, ada pickles), or None."""
    path = _resolve(path_or_name)
    return discriminator_from_checkpoint(read_checkpoint(path), path, device)


def discriminator_from_checkpoint(ckpt: Checkpoint, path="<checkpoint>", device=None):
    D_state, D_config = ckpt.discriminator()
    if D_state is None:
        return None
    if ckpt.kind != "stylegan2" or not D_config:
        raise FormatError(f"{path}: has discriminator weights realedit cannot use ({ckpt.kind})")
    config = dict(D_config)
    resolution = config.pop("resolution")
    D = build_discriminator(ckpt.kind, resolution, **config)
    _load_state(D, D_state, "discriminator", path)
    if device is not None:
        D = D.to(device)
    return D.eval()


def save(generator, path, discriminator=None, meta=None) -> Path:
    """Write a realedit model file atomically (temp file + rename; never a half-written file).

    Loadable with ``torch.load(weights_only=True)``. Refuses to overwrite a file that is not
    a realedit model (e.g. the official weights it was converted from).
    """
    path = Path(path)
    kind = getattr(generator, "kind", None)
    config = getattr(generator, "config", None)
    if kind not in KINDS or not isinstance(config, dict):
        raise UsageError("save() needs a realedit generator (with .kind and .config)")
    if path.exists():
        try:
            with open(path, "rb") as f:
                is_zip = f.read(4) == b"PK\x03\x04"
            existing = read_checkpoint(path) if is_zip else None
        except WeightsError:
            existing = None
        if existing is None or existing.meta.get("source_format") != "realedit-model":
            raise OutputError(f"{path} exists and is not a realedit model file; refusing to overwrite it")
    D_state = D_config = None
    if discriminator is not None:
        D_state, D_config = discriminator.state_dict(), getattr(discriminator, "config", None)
        if not isinstance(D_config, dict):
            raise UsageError("save() needs a realedit discriminator (with .config)")
    m = dict(getattr(generator, "meta", {}) or {})
    m.update(meta or {})
    m.pop("source_format", None)
    m.pop("w_avg", None)  # w_avg is now stored in the state dict itself
    _check_plain(m)
    obj = to_own(kind, config, generator.state_dict(), D_state, D_config, m)
    return save_torch(obj, path)
