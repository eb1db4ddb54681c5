"""realedit's own model file: ``{"format": "realedit-model", "version": 1, "kind", "config", "G",
"D", "D_config", "meta"}``, a torch file loadable with ``weights_only=True``."""
from __future__ import annotations

from pathlib import Path


from ..errors import FormatError
from .checkpoint import KINDS, Checkpoint, _float_dict


OWN_FORMAT = "realedit-model"
OWN_VERSION = 1


def _from_own(obj: dict, path: Path) -> Checkpoint:
    version = obj.get("version")
    if version != OWN_VERSION:
        raise FormatError(f"{path}: realedit model format version {version!r} is not supported "
                          f"(this realedit reads version {OWN_VERSION})")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise FormatError(f"{path}: unknown generator kind {kind!r}")
    config, G = obj.get("config"), obj.get("G")
    if not isinstance(config, dict) or not isinstance(G, dict) or not G:
        raise FormatError(f"{path}: realedit model file without a config or generator weights")
    D, D_config = obj.get("D"), obj.get("D_config")
    return Checkpoint(kind, dict(config), _float_dict(G, path),
                      _float_dict(D, path) if isinstance(D, dict) else None,
                      dict(D_config) if isinstance(D_config, dict) else None,
                      dict(obj.get("meta") or {}, source_format=OWN_FORMAT))


def to_own(kind: str, config: dict, G_state: dict, D_state=None, D_config=None, meta=None) -> dict:
    """The dict realedit writes (see ``realedit.models.save``); loadable with weights_only=True."""
    return {"format": OWN_FORMAT, "version": OWN_VERSION, "kind": kind, "config": dict(config),
            "G": {k: v.detach().cpu().contiguous() for k, v in G_state.items()},
            "D": ({k: v.detach().cpu().contiguous() for k, v in D_state.items()}
                  if D_state is not None else None),
            "D_config": dict(D_config) if D_config is not None else None,
            "meta": dict(meta or {})}
