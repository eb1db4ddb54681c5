"""Checks of what a user asks for that need no model: the CLI runs them before importing torch
or loading anything, so a typo fails in a fraction of a second, not after the model loads."""
from __future__ import annotations

import math
import re
from typing import Sequence

from .errors import EditArgumentError as EditError  # a bad --attr/--keep is a bad argument (2)
from .errors import UsageError

# A face index is a few ASCII digits: str.isdigit() also says yes to '²' and other Unicode
# digits, and int() of a 5000-digit string raises ValueError past Python's 4300-digit guard.
_FACE_INDEX = re.compile(r"[0-9]{1,6}")

# Without a measured range, amounts up to InterFaceGAN's own editing range (its scripts step
# from -3 to +3 unit normals) pass silently; beyond it images tend to leave the face manifold.
DEFAULT_AMOUNT_RANGE = 3.0
# Amounts beyond this many times a direction's sensible range are refused as bad arguments,
# before anything loads. `python bench/amount_limit.py` finds, per direction of the embedded
# bank and per photo, the smallest amount whose generated face realedit.blend.guard refuses
# (exit 6, after the inversion). On 8 photos nothing breaks within the range (which is where
# identity goes); up to 3x only the SeFa component sefa1 (from 6) and smile|gender (at 9, one
# photo in 8); sefa0 from 10, age, sefa2 and sefa3 from 12, smile from 15, pose and gender
# from 20. 3x keeps every amount that is merely large and refuses the ones that break or are
# far past any use. Between the range and the limit a warning is printed and the guard still
# judges each face.
AMOUNT_LIMIT = 3.0

# The choices the pipeline offers, named once here (no model or torch needed to know them): the
# CLI's options, the API's checks and the error messages all take them from these.
INVERTERS = ("hybrid", "encoder", "optimize", "pti")   # realedit.invert.get
SPACES = ("z", "w", "wp")                              # latent spaces
# How an edit reaches the photo (realedit.blend.transfer). "warp" won against "residual" on the
# measurements (README, `realedit eval --detail`): head yaw moves more under pose=+3, identity
# is better kept, and the turn leaves no ghost.
DETAIL_MODES = ("warp", "residual", "replace")
DEFAULT_DETAIL = "warp"
BLEND_MODES = ("alpha", "poisson")                     # how the edited crop is pasted
DETECTORS = ("hog", "cnn")                             # realedit.align.Detector kinds


def parse_edits(items: Sequence[str]) -> dict[str, float]:
    """["age=+3", "smile=-1.5"] -> {"age": 3.0, "smile": -1.5}; EditError on a bad item.
    Amounts of an attribute given twice add up."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip()
        if not sep or not name:
            raise EditError(f"bad edit {item!r}: write NAME=AMOUNT, e.g. age=+3")
        try:
            amount = float(value)
        except ValueError:
            raise EditError(f"bad amount in {item!r}: {value!r} is not a number") from None
        if not math.isfinite(amount):
            raise EditError(f"bad amount in {item!r}: must be finite")
        out[name] = out.get(name, 0.0) + amount
    return out


def parse_policy(value) -> str | int:
    """Face selection: 'largest' | 'all' | a face index (an int, or ASCII digits in a string,
    as the CLI and forms send it); UsageError (exit 2, HTTP 400) for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        policy = value
    elif isinstance(value, str) and value.strip().lower() in ("largest", "all"):
        return value.strip().lower()
    elif isinstance(value, str) and _FACE_INDEX.fullmatch(value.strip()):
        policy = int(value.strip())
    else:
        shown = repr(value) if len(str(value)) <= 40 else repr(str(value)[:20]) + "..."
        raise UsageError(f"face selection must be 'largest', 'all' or an index (0 = the "
                         f"largest face), got {shown}")
    if policy < 0:
        raise UsageError(f"face index must be >= 0, got {policy}")
    return policy


def check_choice(what: str, value, choices: Sequence[str]) -> None:
    """UsageError (exit 2, HTTP 400) unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}: use {' or '.join(choices)}")


def check_detail(detail) -> None:
    """The one check of a detail mode (CLI, API, batch specs): one of DETAIL_MODES."""
    check_choice("detail mode", detail, DETAIL_MODES)


def check_keep(edits, keep: Sequence[str]) -> None:
    """EditError when an attribute is both edited and kept (the model is not needed to know)."""
    both = [k for k in keep if k in edits]
    if both:
        raise EditError(f"cannot both edit and keep {both[0]!r}")


def sensible_ranges(entries) -> dict[str, float]:
    """name -> the largest sensible range among a bank's entries of that name (bank JSON
    entries as realedit.manifest.bank_entries reads them, or Direction objects)."""
    out: dict[str, float] = {}
    for e in entries:
        name = e.get("name") if isinstance(e, dict) else e.name
        r = e.get("range") if isinstance(e, dict) else e.amount_range
        r = DEFAULT_AMOUNT_RANGE if r is None else float(r)
        out[name] = max(out.get(name, 0.0), r)
    return out


def check_amounts(edits, ranges: dict[str, float]) -> None:
    """EditError (exit 2) for an amount beyond AMOUNT_LIMIT x its direction's sensible range
    (``ranges``: name -> range; names not in it: the default range): the generated face would
    be broken, so the run is refused before anything loads."""
    for name, amount in edits.items():
        span = ranges.get(str(name), DEFAULT_AMOUNT_RANGE)
        limit = AMOUNT_LIMIT * span
        if abs(float(amount)) > limit:
            raise EditError(f"{name}={float(amount):+g} is too large: amounts beyond ±{limit:g} "
                            f"({AMOUNT_LIMIT:g}x {name}'s sensible range ±{span:g}) break the "
                            f"generated face; use {name} within ±{span:g}")


def measured_effects(entries, amount: float = 3.0) -> str:
    """'+3 moves smile +0.66 logit (+1.21 with --keep gender), ...' from a bank's own calibration
    records (bank JSON entries: stats.calibration.per_unit is the mean effect of +-1 measured on
    photos at the clear amount, 3), so help text says what the bank last measured; '' when
    the bank has none."""
    plain: dict[str, dict] = {}
    kept: dict[str, dict] = {}
    photos = set()
    for e in entries:
        cal = (e.get("stats") or {}).get("calibration") or {}
        if cal.get("per_unit") is None:
            continue
        photos.add(cal.get("photos"))
        conds = list(e.get("conditions") or [])
        if not conds:
            plain[e["name"]] = cal
        elif conds == ["gender"]:
            kept[e["name"]] = cal
    parts = []
    for name in sorted(set(plain) | set(kept), key=lambda n: (n not in plain, n)):
        fmt = (lambda c: f"{amount * c['per_unit']:+.2g} {c.get('unit', '')}".rstrip())
        if name in plain:
            txt = f"{name} {fmt(plain[name])}"
            if name in kept:
                txt += f" ({amount * kept[name]['per_unit']:+.2g} with --keep gender)"
        else:
            txt = f"{name} {fmt(kept[name])} with --keep gender"
        parts.append(txt)
    if not parts:
        return ""
    n = max((p for p in photos if isinstance(p, int)), default=None)
    on = f" on {n} photos" if n else ""
    return f"{amount:+g} moves " + ", ".join(parts) + f" (mean, measured{on} when the bank was calibrated)"
