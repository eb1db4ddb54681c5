"""realedit's encoder file: a torch file loadable with ``torch.load(weights_only=True)``::

    {"format": "realedit-encoder", "version": 1, "config": {...}, "state_dict": {...},
     "step": int, "optimizer": {...} | None, "train": {...}, "meta": {...}}

The same file is the training checkpoint (with the optimiser state), so ``--resume`` continues
from it. ``load_encoder`` also reads pSp / e4e checkpoints (realedit.models.formats.psp).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ..errors import FormatError
from ..models.checkpoint import save_torch
from .encoder_net import Encoder, EncoderConfig

FORMAT = "realedit-encoder"
VERSION = 1


def save_encoder(E: Encoder, path, *, step: int = 0, optimizer: dict | None = None,
                 train: dict | None = None, meta: dict | None = None) -> Path:
    """Write atomically (temp file + rename): a checkpoint is never half-written."""
    path = Path(path)
    obj = {"format": FORMAT, "version": VERSION, "config": asdict(E.config),
           "state_dict": {k: v.detach().cpu() for k, v in E.state_dict().items()},
           "step": int(step), "optimizer": optimizer, "train": dict(train or {}),
           "meta": dict(meta or {})}
    return save_torch(obj, path)


def read_encoder_file(path_or_name, obj=None) -> dict:
    path = _resolve(path_or_name)
    if obj is None:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
            raise FormatError(f"{path}: not a readable encoder file ({exc.__class__.__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise FormatError(f"{path}: not a realedit encoder file, nor a pSp / e4e checkpoint")
    if obj.get("version") != VERSION:
        raise FormatError(f"{path}: encoder file version {obj.get('version')} is not supported")
    return obj


def load_encoder(path_or_name, device=None):
    """An encoder from a file or registry name: realedit's own (:class:`Encoder`) or a pSp / e4e
    checkpoint (:class:`realedit.invert.psp.PSPEncoder`, whose output includes latent_avg).
    Either maps (N, 3, H, W) images in [-1, 1] to codes of its generator."""
    from ..models.legacy import psp, read_torch_object

    path = _resolve(path_or_name)
    loaded = read_torch_object(path, what="encoder")
    if psp.is_psp_object(loaded):
        from .psp import encoder_from_checkpoint
        return encoder_from_checkpoint(psp.parse_psp(loaded, path), device)
    obj = read_encoder_file(path, loaded)
    try:
        E = Encoder(EncoderConfig(**obj["config"]))
        E.load_state_dict(obj["state_dict"])
    except (TypeError, RuntimeError, KeyError) as exc:
        raise FormatError(f"{path_or_name}: encoder config/weights do not match "
                          f"({str(exc).splitlines()[0]})") from None
    return E.to(device).eval() if device is not None else E.eval()


def _resolve(path_or_name) -> Path:
    p = Path(path_or_name)
    if p.is_file():
        return p
    from .. import weights
    return Path(weights.resolve(str(path_or_name)))
