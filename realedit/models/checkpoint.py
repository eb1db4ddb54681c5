"""A generator (and maybe its discriminator) in realedit's layout, read from a file but not yet
instantiated: what every format reader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import FormatError, OutputError
from ..fsutil import atomic_write


KINDS = ("pggan", "stylegan", "stylegan2")


@dataclass
class Checkpoint:
    """A generator (and maybe a discriminator) in realedit's layout, not yet instantiated."""

    kind: str
    config: dict
    G: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor] | None = None
    D_config: dict | None = None
    meta: dict = field(default_factory=dict)
    # Foreign discriminators are converted only when asked for, so that a problem with D
    # never stops the generator from loading.
    D_thunk: Callable[[], tuple[dict | None, dict | None]] | None = field(default=None, repr=False)

    def discriminator(self) -> tuple[dict[str, torch.Tensor] | None, dict | None]:
        """(state dict, config) of the stored discriminator in realedit's layout, or (None, None)."""
        if self.D is None and self.D_thunk is not None:
            self.D, self.D_config = self.D_thunk()
            self.D_thunk = None
        return self.D, self.D_config


def _float_dict(sd: dict, path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise FormatError(f"{path}: entry {k!r} is not a tensor")
        out[k] = v.detach().to(torch.float32).contiguous()
    return out


def save_torch(obj, path) -> Path:
    """torch.save ``obj`` to ``path`` (its folder made) atomically: a model or encoder file is
    never half-written. OutputError when the file system refuses."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            torch.save(obj, f)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
