"""Choose a direction's amount scale and sensible range from what edits did to photos.

A unit normal means very different things for different directions (on the embedded model 3
unit normals of smile moved the smile logit by ~0.5, 3 of pose turned heads by a few degrees),
so ``--attr NAME=+3`` is calibrated per direction: the scale is the latent step (in unit
normals) at which the mean effect on photos, the asked way, reaches a ``target`` a person sees
(e.g. +2 smile logit, +8 years, 8 degrees of yaw), divided by the ``clear`` amount (3); and the
range is the largest amount at which the face stays the same person on enough photos. Where
identity breaks before the target is reached the scale stops at the last safe step, and the
calibration says so (``reached`` False) rather than promising an effect it cannot give.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import EditError


@dataclass(frozen=True)
class Calibration:
    scale: float            # unit normals per +1 of amount
    amount_range: float     # largest |amount| (calibrated units) keeping identity
    per_unit: float         # mean asked-way effect of +-1, measured (interpolated) at the clear step
    reached: bool           # did +-clear reach the target with identity kept?
    clear_step: float       # the latent step (unit normals) that +-clear amounts to
    safe_step: float        # the largest measured-safe latent step

    def as_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _interp_first_crossing(xs: np.ndarray, ys: np.ndarray, level: float) -> float | None:
    """Smallest x (linear between the points, starting from (0, 0)) where y reaches level."""
    px, py = 0.0, 0.0
    for x, y in zip(xs, ys):
        if y >= level:
            return float(px + (x - px) * (level - py) / (y - py)) if y > py else float(x)
        px, py = x, y
    return None


def calibrate(steps: Sequence[float], effect: Mapping[float, float], same_person: Mapping[float, float],
              *, target: float, clear: float = 3.0, min_same: float = 0.95,
              max_range_factor: float = 2.0) -> Calibration:
    """Scale and range for one direction from measurements at latent steps.

    steps: the positive latent step sizes measured (unit normals), each in both signs.
    effect: {signed step: mean effect the asked way} (so a working direction has positive
        values for both signs; the weaker sign decides, as both must work).
    same_person: {signed step: share of photos still the same person}.
    target: the effect +-clear should have. max_range_factor: the range never exceeds this
        many times ``clear`` (measurements end there).
    """
    xs = np.array(sorted({abs(float(s)) for s in steps if float(s) != 0}))
    if not len(xs) or target <= 0 or clear <= 0:
        raise EditError("calibration needs positive steps, target and clear amount")
    try:
        eff = np.array([min(effect[x], effect[-x]) for x in xs], dtype=np.float64)
        same = np.array([min(same_person[x], same_person[-x]) for x in xs], dtype=np.float64)
    except KeyError as exc:
        raise EditError(f"calibration: no measurement at step {exc}") from None
    # Safe: every step up to this one kept identity on enough photos.
    ok = np.cumprod(same >= min_same).astype(bool)
    safe = float(xs[ok][-1]) if ok.any() else float(xs[0])
    hit = _interp_first_crossing(xs, eff, target)
    reached = hit is not None and hit <= safe
    clear_step = hit if reached else safe
    if not reached and ok.any():
        # Not reachable safely: the strongest safe step, unless a smaller one already does more.
        clear_step = float(xs[: int(ok.sum())][np.argmax(eff[: int(ok.sum())])])
    scale = clear_step / clear
    at_clear = float(np.interp(clear_step, np.r_[0.0, xs], np.r_[0.0, eff]))
    amount_range = min(max(safe / scale, clear), max_range_factor * clear)
    return Calibration(scale=float(scale), amount_range=float(amount_range),
                       per_unit=at_clear / clear, reached=bool(reached), clear_step=float(clear_step),
                       safe_step=safe)
