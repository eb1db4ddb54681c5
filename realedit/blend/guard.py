"""Refuse to paste a generated face that is broken.

An amount far beyond what a direction was fitted for (age=+1000) drives the generator out of
its range: the face becomes a saturated colour blob. Such an image must not reach the photo.
The statistics below separate the two cleanly on the embedded model (measured on 5 photos,
age/smile/pose/gender at ±3..±1000, and 64 random samples): normal outputs, random samples
and edits up to ±20 keep < 1 % of pixels beyond |1.5|, channel means within ±0.8 and
channel std below 0.85; +50 edits reach std 1.0-1.9 and 5-60 % far pixels; +1000 gives
100 % far pixels, means of ±10 and std of 5-27. Thresholds sit between, and are relative to
the face before the edit as well, so a generator whose normal output already runs wide (a
random test model, another family) is judged against itself.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import EditError

FAR = 1.5            # |value| beyond which a pixel is far outside the generator's [-1, 1]
MAX_FAR_FRACTION = 0.05
MAX_ABS_MEAN = 1.0   # per channel
MAX_STD = 1.2        # per channel
SENSIBLE = "amounts within about ±10 (±3 to ±6 are typical)"


def image_stats(img) -> dict:
    """far (fraction of pixels with a channel beyond FAR), mean and std per channel, finite;
    ``img``: (3, H, W) or (1, 3, H, W) tensor or array in the generator's [-1, 1] scale."""
    a = img.detach().cpu().double().numpy() if hasattr(img, "detach") else np.asarray(img, np.float64)
    a = a.reshape(-1, *a.shape[-2:]) if a.ndim == 4 else a
    finite = bool(np.isfinite(a).all())
    if not finite:
        return {"finite": False, "far": 1.0, "mean": np.full(a.shape[0], np.nan),
                "std": np.full(a.shape[0], np.nan)}
    return {"finite": True, "far": float((np.abs(a) > FAR).any(axis=0).mean()),
            "mean": a.mean(axis=(1, 2)), "std": a.std(axis=(1, 2))}


def broken_reason(after, before=None) -> str | None:
    """Why the generated face ``after`` is broken, or None when it looks like a normal output.
    ``before`` (the inverted face) raises the bar where the generator's normal output is
    already wide."""
    s = image_stats(after)
    if not s["finite"]:
        return "it is no longer finite"
    r = image_stats(before) if before is not None else None
    ref_ok = r is not None and r["finite"]
    far_max = MAX_FAR_FRACTION + (2 * r["far"] if ref_ok else 0.0)
    if s["far"] > far_max:
        return f"{100 * s['far']:.0f} % of its pixels are far outside the generator's range"
    mean_max = MAX_ABS_MEAN + (float(np.abs(r["mean"]).max()) if ref_ok else 0.0)
    if float(np.abs(s["mean"]).max()) > mean_max:
        return "its colours are far off the generator's range"
    std_max = max(MAX_STD, 1.5 * float(r["std"].max())) if ref_ok else MAX_STD
    if float(s["std"].max()) > std_max:
        return "its contrast is far beyond the generator's normal output"
    return None


def sensible_text(edits: Mapping[str, float], bank=None, model: str | None = None) -> str:
    """'age within ±3, smile within ±4' from the bank's calibrated ranges, else SENSIBLE."""
    parts = []
    for name in edits or {}:
        try:
            d = bank.direction(str(name), model=model)
        except Exception:  # noqa: BLE001 - only the wording of an error depends on it
            continue
        parts.append(f"{name} within ±{d.sensible_range:g}")
    return ", ".join(parts) if parts else SENSIBLE


def check_generated(after, before=None, edits: Mapping[str, float] | None = None, *,
                    sensible: str = SENSIBLE) -> None:
    """EditError (one line: what is wrong, what range is sensible) when ``after`` is broken."""
    why = broken_reason(after, before)
    if why is not None:
        what = f"edit {dict(edits)}" if edits else "the edit"
        raise EditError(f"{what} is too large: the generated face is broken ({why}); "
                        f"use {sensible}")
