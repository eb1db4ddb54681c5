"""Moving latent codes along bank directions.

Meaning of an amount (``age=+3``), the one convention used everywhere in realedit:

- ``mode="add"`` (default): the code moves by ``amount`` times the direction's ``scale`` times
  its *unit* vector, in the direction's own space. ``scale`` is 1 unless the bank calibrated
  the direction (then +-1 is meant as a just-visible change and +-3 a clear one, measured on
  photos; ``realedit directions list`` shows it). For a W+ code the same step is added to every
  layer of the direction's layer range.
- A named GANSpace edit (``realedit.edit.formats``, e.g. e4e's ``lipstick``) sets a PCA
  coordinate instead: ``amount`` is the fraction of the published edit (+1: the coordinate,
  measured on W+ layer 0, is moved to the published strength, on the published layers), so
  its step depends on the code; ``mode="distance"`` does not apply to it.
- ``mode="distance"`` (InterFaceGAN's Z-style edit): ``amount`` is the signed distance to the
  attribute's hyperplane the code should end up at, ``n . x + offset`` with ``n`` the primal
  unit normal and ``offset`` the fitted SVM offset (``stats["offset"]``; 0 for released
  files, as InterFaceGAN assumes). Several attributes are solved jointly, so each one reaches
  its target even when their directions are correlated; for W+ codes every layer of the range
  is moved to the target on its own. ``scale`` does not apply: a distance is a distance.

``keep=[...]`` replaces each edited direction by its conditional version (orthogonal to the
kept attributes' directions), so in both modes kept attributes' distances do not change.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import EditArgumentError, EditError
from .bank import Direction, DirectionBank, _dedupe, condition, space_label
from .vectors import format_layers
from .formats import ganspace_step, is_ganspace

# Acceptable direction spaces for a code of each space, in order of preference.
_DIRECTION_SPACES = {"z": ("z",), "w": ("w",), "wp": ("wp", "w")}
MODES = ("add", "distance")


def direction_spaces(space: str) -> tuple[str, ...]:
    """The spaces of the directions that can move a code of ``space``, preferred first: a W+
    code takes W+ and W directions, a W or Z code only its own. EditError for an unknown space."""
    try:
        return _DIRECTION_SPACES[space]
    except (KeyError, TypeError):
        raise EditError(f"unknown latent space {space!r}: use z, w or wp") from None


def apply_edits(latent, space: str, edits: Mapping, keep: Sequence[str] = (),
                bank: DirectionBank | None = None, mode: str = "add", *,
                model: str | None = None, layers: Mapping | None = None):
    """Return ``latent`` moved along the directions named in ``edits``.

    latent: Z or W code (N, d) / (d,), or W+ code (N, L, d) / (L, d); numpy or torch (the
        result has the same type, dtype, device and shape).
    space: the code's space, "z", "w" or "wp".
    edits: {attribute name or Direction: amount}; several at once are summed ("add") or
        solved jointly ("distance").
    keep: attribute names to hold fixed (conditional directions).
    bank: where names are looked up. model: the generator's model id; directions of any
        other model are refused.
    layers: optional {attribute: W+ layer spec ('0-5', [0, 1])} overriding a direction's
        own layer range (e.g. idinvert's age 0-5 on a W boundary); W+ codes only.
    """
    direction_spaces(space)  # an unknown space fails here
    if mode not in MODES:
        raise EditError(f"unknown edit mode {mode!r}: use {' or '.join(MODES)}")
    if not isinstance(edits, Mapping):
        raise EditError("edits must be a mapping {attribute: amount}")
    keep = _dedupe(keep)
    x, restore = _to_numpy(latent, space)
    n_layers = x.shape[1] if space == "wp" else 1
    dim = x.shape[-1]

    resolved = []  # (direction to move along, primal normal for distance mode, amount)
    for key, amount in edits.items():
        try:
            amount = float(amount)
        except (TypeError, ValueError):
            raise EditArgumentError(f"bad amount for {key!r}: {amount!r} is not a number") from None
        if not np.isfinite(amount):
            raise EditArgumentError(f"bad amount for {key!r}: {amount}")
        d, primal = _resolve(key, keep, space, bank, model)
        name = key.name if isinstance(key, Direction) else key
        if layers and name in layers:
            if space != "wp":
                raise EditError(f"a layer range for {name!r} needs a W+ code (space 'wp')")
            d = d.with_layers(layers[name])
        _check_fits(d, space, n_layers, dim)
        if is_ganspace(primal):
            if mode != "add":
                raise EditError(f"{primal.label} is a GANSpace edit (it sets a coordinate "
                                f"already): use mode 'add'")
            amount = ganspace_step(primal, x, amount)  # (N,): depends on each code
        elif mode == "add":
            amount = amount * d.scale
        resolved.append((d, primal, amount))
    if not resolved:
        return restore(x)

    out = x.copy()
    if space != "wp":
        vecs = [(d.vector, p.vector) for d, p, _ in resolved]
        out = _move(out, vecs, [a for _, _, a in resolved], [p for _, p, _ in resolved], mode)
        return restore(out)
    for layer in range(n_layers):
        active = [i for i, (d, _, _) in enumerate(resolved) if d.layers is None or layer in d.layers]
        if not active:
            continue
        vecs = [(_row(resolved[i][0], layer), _row(resolved[i][1], layer)) for i in active]
        out[:, layer] = _move(out[:, layer], vecs, [resolved[i][2] for i in active],
                              [resolved[i][1] for i in active], mode)
    return restore(out)


def amount_warnings(edits: Mapping, keep: Sequence[str] = (), bank: DirectionBank | None = None,
                    space: str = "wp", *, model: str | None = None) -> list[str]:
    """One line per edit whose |amount| exceeds its direction's sensible range (measured range,
    or DEFAULT_AMOUNT_RANGE when the bank has none): such amounts are allowed, but the face
    tends to stop looking like the same person or like a face at all."""
    keep = _dedupe(keep)
    out = []
    for key, amount in edits.items():
        d, _ = _resolve(key, keep, space, bank, model)
        limit = d.sensible_range
        if abs(float(amount)) > limit:
            measured = "measured" if d.amount_range is not None else "default"
            out.append(f"{d.label}={float(amount):+g} is beyond the {measured} sensible range "
                       f"+-{limit:g} for {d.model}: expect a different-looking person or artefacts")
    return out


def sensible_ranges_of(edits: Mapping, keep: Sequence[str] = (), bank: DirectionBank | None = None,
                       space: str = "wp", *, model: str | None = None) -> dict[str, float]:
    """edit key (its name) -> the sensible range of the direction it moves along."""
    keep = _dedupe(keep)
    out = {}
    for key in edits:
        d, _ = _resolve(key, keep, space, bank, model)
        out[key if isinstance(key, str) else d.name] = d.sensible_range
    return out


def _move(x: np.ndarray, vecs, amounts, primals, mode) -> np.ndarray:
    """x: (N, d). vecs: [(move direction, primal normal)], amounts: per direction."""
    D = np.stack([v for v, _ in vecs])                    # (k, d)
    if mode == "add":  # an amount is a number, or one per code (GANSpace)
        A = np.stack([np.broadcast_to(np.asarray(a, np.float64), x.shape[:1]) for a in amounts], 1)
        return x + A @ D
    Nrm = np.stack([n for _, n in vecs])                  # (k, d)
    offsets = np.array([float(p.stats.get("offset", 0.0) or 0.0) for p in primals])
    dist = x @ Nrm.T + offsets                            # (N, k) current signed distances
    M = Nrm @ D.T                                         # (k, k): distance change per unit step
    if abs(np.linalg.det(M)) < 1e-10:
        raise EditError("these edits cannot reach their target distances together "
                        "(their directions are degenerate once kept attributes are removed)")
    steps = np.linalg.solve(M, (np.asarray(amounts)[None] - dist).T).T  # (N, k)
    return x + steps @ D


def _resolve(key, keep, space, bank, model) -> tuple[Direction, Direction]:
    """(direction to move along, its primal direction) for one edit key."""
    spaces = direction_spaces(space)
    if isinstance(key, Direction):
        if model is not None and key.model != model:
            raise EditError(f"direction {key.describe()} belongs to model {key.model!r}, "
                            f"not {model!r}")
        if key.space not in spaces:
            raise EditArgumentError(_space_message(key, space))
        kept = []
        if keep:
            if bank is None:
                raise EditError("keep=... needs a bank to look the kept attributes up")
            kept = [bank.get(k, model=key.model, space=key.space) for k in keep if k != key.name]
        return condition(key, kept), key
    if not isinstance(key, str):
        raise EditError(f"edit keys are attribute names or Direction objects, got {key!r}")
    if bank is None:
        raise EditError(f"no direction bank given to look {key!r} up in")
    if key in keep:
        raise EditArgumentError(f"cannot both edit and keep {key!r}")
    d = bank.direction(key, keep=keep, model=model, space=spaces)
    try:  # the hyperplane "distance" mode measures against (a learned W+ entry: its W primal)
        primal = bank.get(key, model=d.model, space=d.space if not d.conditions else spaces)
    except EditError:  # only a stored conditional entry exists: it is its own reference
        primal = d
    return d, primal


def _space_message(d: Direction, space: str) -> str:
    if d.space == "z":
        return (f"{d.describe()} is a Z direction and cannot edit a {space_label(space)} code: "
                f"invert into Z or use a W direction")
    if d.space == "wp" and space == "w":
        return f"{d.describe()} is a W+ direction: edit a W+ code (space 'wp')"
    return f"{d.describe()} is a {space_label(d.space)} direction and cannot edit a Z code"


def _check_fits(d: Direction, space: str, n_layers: int, dim: int) -> None:
    if d.dim != dim:
        raise EditError(f"{d.describe()} has {d.dim} dimensions but the code has {dim}: "
                        f"a direction from another model?")
    if space != "wp":
        return
    if d.layerwise and d.vector.shape[0] != n_layers:
        raise EditError(f"{d.describe()} has {d.vector.shape[0]} layer rows but the code has "
                        f"{n_layers} layers: a direction from another model?")
    if d.layers is not None and d.layers[-1] >= n_layers:
        raise EditError(f"{d.describe()} edits layers {format_layers(d.layers)} but the code "
                        f"has only {n_layers}")


def _row(d: Direction, layer: int) -> np.ndarray:
    return d.vector[layer] if d.layerwise else d.vector


def _to_numpy(latent, space):
    """(N, d) / (N, L, d) float64 copy, and a function restoring the caller's type and shape."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    is_torch = torch is not None and isinstance(latent, torch.Tensor)
    arr = latent.detach().cpu().double().numpy() if is_torch else np.asarray(latent, dtype=np.float64)
    want = 3 if space == "wp" else 2
    squeeze = arr.ndim == want - 1
    if squeeze:
        arr = arr[None]
    if arr.ndim != want:
        shape = "(N, layers, dim)" if space == "wp" else "(N, dim)"
        raise EditError(f"a {space_label(space)} code must have shape {shape}, got {tuple(np.shape(latent))}")
    if not np.all(np.isfinite(arr)):
        raise EditError("the latent code has NaN or infinite values")

    def restore(out: np.ndarray):
        out = out[0] if squeeze else out
        if is_torch:
            return torch.from_numpy(np.ascontiguousarray(out)).to(dtype=latent.dtype, device=latent.device)
        dtype = latent.dtype if isinstance(latent, np.ndarray) and latent.dtype.kind == "f" else np.float64
        return out.astype(dtype)

    return arr, restore
