"""The direction bank's model: a :class:`Direction` is a unit vector (or one per W+ layer) tied to
one model id and one latent space:

- ``z``  - the input noise space; only edits Z codes;
- ``w``  - the mapped space; edits W codes, and W+ codes on its layer range (default all);
- ``wp`` - a W+ (layer-wise) direction; edits W+ codes only, on its layer range.

A :class:`DirectionBank` looks them up by (model, name, space, conditions) and conditions a
direction on kept attributes (realedit.edit.vectors.project_out). Files: realedit.edit.files;
where a model's bank comes from: realedit.edit.banks."""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import EditArgumentError, EditError
from ..args import DEFAULT_AMOUNT_RANGE, SPACES
from .vectors import _mean_cos, cosine_matrix, format_layers, parse_layers, project_out


@dataclass(frozen=True, eq=False)
class Direction:
    """One named edit direction.

    ``vector`` is float64, either (dim,) with unit norm, or (num_layers, dim) for a layer-wise
    W+ direction with every row of unit norm (rows are normalised on construction; a changed
    norm is recorded in ``stats["input_norm"]``). ``layers`` lists the W+ indices an edit
    touches (None: all). ``conditions`` are the attributes whose span was projected out.
    ``stats`` holds fitting statistics (accuracies, SVM offset, eigenvalue, ...), JSON-safe.

    ``scale`` calibrates amounts: ``--attr NAME=+1`` moves the code by ``scale`` unit normals,
    so that a calibrated bank can make +-1 a just-visible change and +-3 a clear one whatever
    the direction's latent sensitivity (1: an amount is a plain multiple of the unit normal).
    ``amount_range``: the largest |amount| measured to keep the face (None: not measured, the
    InterFaceGAN default of 3 applies); beyond it a caller is warned, not refused.
    """

    name: str
    vector: np.ndarray
    model: str
    space: str
    layers: tuple[int, ...] | None = None
    conditions: tuple[str, ...] = ()
    source: str = ""
    stats: dict = field(default_factory=dict)
    scale: float = 1.0
    amount_range: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise EditError("a direction needs a non-empty name")
        for what, val in (("scale", self.scale), ("amount range", self.amount_range)):
            if val is None and what != "scale":
                continue
            try:
                ok = float(val) > 0 and math.isfinite(float(val))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise EditError(f"direction {self.name!r}: {what} must be a positive number, got {val!r}")
        object.__setattr__(self, "scale", float(self.scale))
        if self.amount_range is not None:
            object.__setattr__(self, "amount_range", float(self.amount_range))
        if self.space not in SPACES:
            raise EditError(f"direction {self.name!r}: space must be one of {SPACES}, got {self.space!r}")
        v = np.array(self.vector, dtype=np.float64)
        if v.ndim == 2 and v.shape[0] == 1 and self.space != "wp":
            v = v[0]  # the (1, d) shape of the released files
        if v.ndim not in (1, 2) or v.shape[-1] == 0 or not np.all(np.isfinite(v)):
            raise EditError(f"direction {self.name!r}: expected a finite (dim,) or (layers, dim) "
                            f"vector, got shape {tuple(v.shape)}")
        norms = np.linalg.norm(v, axis=-1, keepdims=True)
        if np.any(norms == 0):
            raise EditError(f"direction {self.name!r} is the zero vector")
        stats = dict(self.stats)
        if np.any(np.abs(norms - 1) > 1e-6):
            stats.setdefault("input_norm", _jsonable(norms.ravel().tolist()))
        if np.any(np.abs(norms - 1) > 8 * np.finfo(np.float64).eps):
            v = v / norms  # already-unit vectors stay bit-exact (files round-trip unchanged)
        v.setflags(write=False)
        layers = None if self.layers is None else tuple(sorted({int(i) for i in self.layers}))
        if layers is not None and (not layers or layers[0] < 0):
            raise EditError(f"direction {self.name!r}: bad layer range {self.layers!r}")
        if v.ndim == 2 and layers is not None and layers[-1] >= v.shape[0]:
            raise EditError(f"direction {self.name!r}: layer {layers[-1]} outside its "
                            f"{v.shape[0]} layer-wise rows")
        if v.ndim == 2 and self.space != "wp":
            raise EditError(f"direction {self.name!r}: a layer-wise vector must be in space 'wp'")
        object.__setattr__(self, "vector", v)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "conditions", tuple(str(c) for c in self.conditions))
        object.__setattr__(self, "stats", stats)

    @property
    def dim(self) -> int:
        return int(self.vector.shape[-1])

    @property
    def layerwise(self) -> bool:
        return self.vector.ndim == 2

    @property
    def key(self) -> tuple:
        """Identity inside a bank: model, name, space and the *set* of conditions."""
        return (self.model, self.name, self.space, tuple(sorted(self.conditions)))

    @property
    def label(self) -> str:
        cond = f"|{','.join(self.conditions)}" if self.conditions else ""
        return f"{self.name}{cond}"

    def with_layers(self, layers) -> "Direction":
        """The same direction restricted to other W+ layers ('0-5', [0, 1], None = all)."""
        if self.space == "z":
            raise EditError(f"{self.describe()}: a Z direction has no layers")
        return replace(self, layers=parse_layers(layers))

    @property
    def sensible_range(self) -> float:
        """Largest |amount| to ask for without a warning (measured, else DEFAULT_AMOUNT_RANGE)."""
        return self.amount_range if self.amount_range is not None else DEFAULT_AMOUNT_RANGE

    def describe(self) -> str:
        layers = "all" if self.layers is None else format_layers(self.layers)
        return f"{self.model}:{self.label} ({self.space}, layers {layers}, {self.source or '?'})"


def space_label(space: str) -> str:
    """'z' -> 'Z', 'w' -> 'W', 'wp' -> 'W+' (for messages)."""
    return {"z": "Z", "w": "W", "wp": "W+"}.get(space, space)


class DirectionBank:
    """A set of directions, looked up by (model, name, space, conditions).

    ``direction(name, keep=[...])`` returns the stored entry conditioned on exactly ``keep``
    when there is one (in a space at least as preferred as the primal's), else a conditional
    direction computed from the primal and kept directions (exact orthogonal projection).
    """

    def __init__(self, directions: Iterable[Direction] = ()):
        self._entries: dict[tuple, Direction] = {}
        for d in directions:
            self.add(d)

    # -- container
    def add(self, direction: Direction, replace_existing: bool = True) -> None:
        if not isinstance(direction, Direction):
            raise EditError(f"a bank holds Direction objects, got {type(direction).__name__}")
        if not replace_existing and direction.key in self._entries:
            raise EditError(f"bank already has {direction.describe()}")
        self._entries[direction.key] = direction

    def __iter__(self) -> Iterator[Direction]:
        return iter(sorted(self._entries.values(), key=lambda d: (d.model, d.name, d.space,
                                                                  len(d.conditions), d.conditions)))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: str) -> bool:
        return any(d.name == name for d in self._entries.values())

    def __repr__(self) -> str:
        return f"DirectionBank({len(self)} directions, models={self.models()})"

    def models(self) -> list[str]:
        return sorted({d.model for d in self._entries.values()})

    def names(self, model: str | None = None, space: str | Sequence[str] | None = None) -> list[str]:
        """Attribute names with a primal (unconditioned) entry, optionally filtered."""
        spaces = _as_spaces(space)
        return sorted({d.name for d in self._entries.values()
                       if (model is None or d.model == model) and (spaces is None or d.space in spaces)
                       and not d.conditions})

    def filter(self, model: str | None = None, space: str | Sequence[str] | None = None) -> "DirectionBank":
        spaces = _as_spaces(space)
        return DirectionBank(d for d in self._entries.values()
                             if (model is None or d.model == model) and (spaces is None or d.space in spaces))

    def relabel(self, model_from: str, model_to: str) -> "DirectionBank":
        """Same directions with model id ``model_from`` renamed (e.g. to a registry name)."""
        return DirectionBank(replace(d, model=model_to) if d.model == model_from else d for d in self)

    def merge(self, other: "DirectionBank") -> "DirectionBank":
        return DirectionBank(list(self) + list(other))

    # -- lookup
    def get(self, name: str, *, model: str | None = None, space: str | Sequence[str] | None = None,
            conditions: Sequence[str] = ()) -> Direction:
        """The stored entry ``name`` with exactly these conditions (order does not matter)."""
        cands = self._candidates(name, model, space, tuple(sorted(conditions)))
        return self._pick(cands, name, model, space)

    def direction(self, name: str, keep: Sequence[str] = (), *, model: str | None = None,
                  space: str | Sequence[str] | None = None) -> Direction:
        """Unit direction for ``name``, orthogonal to every attribute in ``keep``.

        ``space`` may be a tuple of acceptable spaces in order of preference. ``keep`` entries
        are looked up in the same model and space as the primal direction.
        """
        keep = _dedupe(keep)
        if name in keep:
            raise EditArgumentError(f"cannot both edit and keep {name!r}")
        try:
            primal = self.get(name, model=model, space=space)
        except EditError:
            if not keep:
                raise
            primal = None
        if not keep:
            return primal
        # A stored entry fitted for exactly these kept attributes (a released _c_ file, or one
        # learned with them held still) is used before a projection computed from primals,
        # unless the primal sits in a space the caller prefers.
        spaces = _as_spaces(space)
        stored = self._candidates(name, model if primal is None else primal.model, space,
                                  tuple(sorted(keep)))
        if stored:
            pick = self._pick(stored, name, model, space)
            if primal is None or spaces is None or \
                    spaces.index(pick.space) <= spaces.index(primal.space):
                return pick
        if primal is not None:
            missing = [k for k in keep if not self._candidates(k, primal.model, primal.space, ())]
            if not missing:
                kept = [self.get(k, model=primal.model, space=primal.space) for k in keep]
                return condition(primal, kept)
        if primal is None:
            self.get(name, model=model, space=space)  # raises the informative error
        avail = self.names(primal.model, primal.space)
        raise EditArgumentError(f"cannot keep {', '.join(missing)} while editing {name!r}: no such "
                        f"{space_label(primal.space)} direction for {primal.model} "
                        f"(available: {', '.join(avail) or 'none'})")

    def _candidates(self, name, model, space, conditions) -> list[Direction]:
        spaces = _as_spaces(space)
        return [d for d in self._entries.values()
                if d.name == name and (model is None or d.model == model)
                and (spaces is None or d.space in spaces) and tuple(sorted(d.conditions)) == conditions]

    def _pick(self, cands: list[Direction], name, model, space) -> Direction:
        spaces = _as_spaces(space)
        if not cands:
            raise EditArgumentError(self._unknown_message(name, model, spaces))
        models = sorted({d.model for d in cands})
        if len(models) > 1:
            raise EditError(f"direction {name!r} exists for several models ({', '.join(models)}): "
                            f"say which model")
        if spaces is not None:
            for s in spaces:  # preference order
                hit = [d for d in cands if d.space == s]
                if hit:
                    return hit[0]
        if len({d.space for d in cands}) > 1:
            raise EditError(f"direction {name!r} of {models[0]} exists in several spaces "
                            f"({', '.join(sorted({d.space for d in cands}))}): say which space")
        return cands[0]

    def _unknown_message(self, name, model, spaces) -> str:
        if model is not None and model not in self.models():
            return (f"no directions for model {model!r} in this bank "
                    f"(it has: {', '.join(self.models()) or 'nothing'})")
        where = f" for {model}" if model else ""
        sp = "/".join(space_label(s) for s in spaces) if spaces else ""
        other = [d for d in self._entries.values() if d.name == name
                 and (model is None or d.model == model)]
        if other and spaces and not any(d.space in spaces for d in other):
            have = sorted({space_label(d.space) for d in other})
            return (f"attribute {name!r}{where} has no {sp} direction (only {', '.join(have)}); "
                    f"use a code in that space or fit a {sp} direction")
        if other:
            labels = ", ".join(sorted(d.label for d in other))
            return (f"attribute {name!r}{where} is stored only as conditional directions "
                    f"({labels}): keep exactly those attributes, or add its primal direction")
        avail = self.names(model, spaces)
        return (f"unknown attribute {name!r}{where}{' in ' + sp if sp else ''}; "
                f"available: {', '.join(avail) or 'none'}")

    # -- reports
    def cosine(self, names: Sequence[str] | None = None, *, model: str | None = None,
               space: str | None = None) -> tuple[list[str], np.ndarray]:
        """Cosine similarities between primal directions of one model and space.

        Returns (labels, matrix). Layer-wise directions are compared on their flattened rows.
        """
        models = [model] if model else self.models()
        if len(models) != 1:
            raise EditError(f"bank holds several models ({', '.join(models)}): say which model")
        sub = self.filter(models[0], space)
        spaces = sorted({d.space for d in sub})
        if len(spaces) > 1:
            raise EditError(f"directions of {models[0]} span several spaces ({', '.join(spaces)}): "
                            f"say which space")
        names = list(names) if names else sub.names()
        dirs = [sub.get(n) for n in names]
        return names, cosine_matrix(dirs)



def condition(primal: Direction, kept: Sequence[Direction]) -> Direction:
    """Conditional direction: ``primal`` minus its projection on span(kept), renormalised."""
    for k in kept:
        if k.model != primal.model or k.space != primal.space or k.dim != primal.dim:
            raise EditError(f"cannot keep {k.describe()} while editing {primal.describe()}: "
                            f"different model/space")
    if not kept:
        return primal
    vec = project_out(primal.vector, [k.vector for k in kept], name=f"direction {primal.name!r}")
    stats = {"primal_source": primal.source,
             "cos_with_kept": {k.name: _mean_cos(primal.vector, k.vector) for k in kept}}
    if "offset" in primal.stats:
        stats["primal_offset"] = primal.stats["offset"]
    # The projection keeps the primal's calibration: an amount means the same with or without --keep.
    return Direction(primal.name, vec, primal.model, primal.space, primal.layers,
                     tuple(primal.conditions) + tuple(k.name for k in kept), "conditional", stats,
                     primal.scale, primal.amount_range)


def _as_spaces(space) -> tuple[str, ...] | None:
    if space is None:
        return None
    spaces = (space,) if isinstance(space, str) else tuple(space)
    for s in spaces:
        if s not in SPACES:
            raise EditError(f"unknown latent space {s!r}: use one of {', '.join(SPACES)}")
    return spaces


def _dedupe(items) -> tuple[str, ...]:
    if isinstance(items, str):
        items = [items]
    out: list[str] = []
    for x in items or ():
        if x not in out:
            out.append(x)
    return tuple(out)


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if x is None or isinstance(x, (str, int, bool)):
        return x
    return str(x)
