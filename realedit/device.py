"""One place that turns a device string (CLI option or API argument) into a torch.device."""
from __future__ import annotations

import re

import torch

from .errors import UsageError

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(spec=None) -> torch.device:
    """``"auto"``/None: the first CUDA GPU, else Apple's mps, else the CPU. ``"cuda:N"`` must
    name a GPU that exists. A torch.device passes through (checked the same way).
    UsageError (CLI exit 2) on anything else."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise UsageError("device mps: Apple's Metal backend is not available on this machine")
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m:
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec}: no CUDA GPU is available (use --device cpu or auto)")
        index = int(m.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise UsageError(f"device {spec}: only {count} CUDA GPU(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    raise UsageError(f"unknown device {spec!r}: use {DEVICE_CHOICES}")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def default_batch(device: torch.device) -> int:
    """Faces per inversion batch when none is given: a GPU is launch-bound with one face (32
    faces cost little more than one step); on the CPU compute is the limit, and a small
    batch only saves per-step overhead (bench/edit.py measures both)."""
    return 32 if torch.device(device).type in ("cuda", "mps") else 8


def model_device(m) -> torch.device:
    """Where ``m``'s parameters live; the CPU for a module without any, or an object that is
    not a module (a generator stand-in that only has ``synthesis``)."""
    for p in getattr(m, "parameters", tuple)():
        return p.device
    return torch.device("cpu")
