"""Direction banks: named unit directions in a generator's latent spaces.

A :class:`Direction` is a unit vector (or one unit vector per W+ layer) tied to one model id
and one latent space:

- ``z``  - the input noise space; only edits Z codes;
- ``w``  - the mapped space; edits W codes, and W+ codes on its layer range (default all);
- ``wp`` - a W+ (layer-wise) direction; edits W+ codes only, on its layer range.

Sources read here: the released InterFaceGAN ``*_boundary.npy`` files (named
``{gan}_{dataset}_{attr}[_c_{cond}...][_w]_boundary.npy``), idinvert-style layer-wise dicts
(``{"boundary": (1, [L,] d), "meta_data": {"manipulate_layers": "0-5"}}``, also as a pickled
.npy read through an allow-list), and realedit's own bank format: ``NAME.npz`` (plain float64
arrays, read with ``allow_pickle=False``) next to ``NAME.json`` (all metadata).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import EditArgumentError, EditError, OutputError, UnsafePickleError
from ..fsutil import atomic_write_bytes, atomic_write_text

from ..args import DEFAULT_AMOUNT_RANGE  # noqa: F401 (re-exported)
from ..args import SPACES

BANK_FORMAT = "realedit-directions"
BANK_VERSION = 1

# {pggan|stylegan}_{celebahq|ffhq}_{attr}[_c_{cond1}[_{cond2}...]][_w]_boundary.npy
_INTERFACEGAN_RE = re.compile(
    r"^(?P<gan>pggan|stylegan|stylegan2)_(?P<data>[a-z0-9]+)_(?P<attr>[a-z0-9]+)"
    r"(?:_c_(?P<conds>[a-z0-9]+(?:_[a-z0-9]+)*?))?(?P<w>_w)?_boundary\.npy$")


# ----------------------------------------------------------------------------- Direction

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


def format_layers(layers: Sequence[int] | None) -> str:
    """(0,1,2,3,7) -> '0-3,7'."""
    if layers is None:
        return "all"
    out, run = [], []
    for i in sorted(layers):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def parse_layers(spec) -> tuple[int, ...] | None:
    """Layer spec as idinvert writes it: None/''/'all' (all), int, list, or '0-5' / '0,2,4-6'."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "all")):
        return None
    if isinstance(spec, (int, np.integer)):
        return (int(spec),)
    if isinstance(spec, str):
        out: list[int] = []
        try:
            for part in spec.replace(" ", "").split(","):
                a, sep, b = part.partition("-")
                out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
        except ValueError:
            raise EditError(f"bad layer range {spec!r}: use e.g. '0-5' or '0,2,4-6'") from None
        if not out:
            raise EditError(f"bad layer range {spec!r}")
        return tuple(sorted(set(out)))
    try:
        out = sorted({int(i) for i in spec})
    except (TypeError, ValueError):
        raise EditError(f"bad layer range {spec!r}") from None
    return tuple(out) if out else None


# ----------------------------------------------------------------------------- conditioning

def project_out(vector: np.ndarray, kept: Sequence[np.ndarray], *, name: str = "direction") -> np.ndarray:
    """Remove from ``vector`` its orthogonal projection onto span(kept), then renormalise.

    The projection is a least-squares fit of ``vector`` by the kept vectors (exact for any
    number of them, correlated or not; rank-deficient sets are fine). Layer-wise (L, d)
    vectors are handled row by row; a (d,) vector broadcasts against (L, d) ones.
    """
    v = np.asarray(vector, dtype=np.float64)
    ks = [np.asarray(k, dtype=np.float64) for k in kept]
    if not ks:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    rows = max([v.shape[0] if v.ndim == 2 else 1] + [k.shape[0] if k.ndim == 2 else 1 for k in ks])
    layerwise = v.ndim == 2 or any(k.ndim == 2 for k in ks)
    V = np.broadcast_to(v, (rows, v.shape[-1])) if layerwise else v[None]
    out = np.empty_like(V)
    for r in range(V.shape[0]):
        C = np.stack([(k[r] if k.ndim == 2 else k) for k in ks], axis=1)  # (d, k)
        coef, *_ = np.linalg.lstsq(C, V[r], rcond=None)
        res = V[r] - C @ coef
        n = np.linalg.norm(res)
        if n < 1e-8:
            raise EditError(f"{name} lies in the span of the kept attributes: nothing is left to edit")
        out[r] = res / n
    return out if layerwise else out[0]


# ----------------------------------------------------------------------------- bank

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

    # -- persistence
    def save(self, path: str | Path) -> tuple[Path, Path]:
        return save_bank(self, path)

    @classmethod
    def load(cls, source, *, model: str | None = None) -> "DirectionBank":
        return load_bank(source, model=model)


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


def _mean_cos(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two unit directions; layer-wise ones: mean over rows."""
    a, b = np.broadcast_arrays(np.atleast_2d(a), np.atleast_2d(b))
    return float(np.mean(np.sum(a * b, axis=-1)))


def cosine_matrix(directions: Sequence[Direction]) -> np.ndarray:
    if not directions:
        return np.zeros((0, 0))
    dims = {d.vector.size for d in directions}
    if len(dims) != 1:
        raise EditError("cannot compare directions of different sizes")
    M = np.stack([d.vector.ravel() / np.linalg.norm(d.vector.ravel()) for d in directions])
    return M @ M.T


# ----------------------------------------------------------------------------- loaders

def parse_interfacegan_name(filename: str) -> dict | None:
    """Parse a released boundary file name; None if it does not follow the scheme."""
    m = _INTERFACEGAN_RE.match(Path(filename).name)
    if not m:
        return None
    return {"model": f"{m['gan']}_{m['data']}", "name": m["attr"],
            "conditions": tuple(m["conds"].split("_")) if m["conds"] else (),
            "space": "w" if m["w"] else "z"}


def load_interfacegan_file(path: str | Path, *, model: str | None = None) -> Direction:
    path = Path(path)
    info = parse_interfacegan_name(path.name)
    if info is None:
        raise EditError(f"{path.name}: not an InterFaceGAN boundary name "
                        f"({{gan}}_{{dataset}}_{{attr}}[_c_{{conds}}][_w]_boundary.npy)")
    arr = _load_plain_npy(path)
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[0] != 1):
        raise EditError(f"{path.name}: expected a (1, dim) boundary, got shape {arr.shape}")
    return Direction(info["name"], arr.reshape(-1), model or info["model"], info["space"], None,
                     info["conditions"], "interfacegan", {"file": path.name})


def load_interfacegan_dir(folder: str | Path, *, model: str | None = None) -> DirectionBank:
    """Every InterFaceGAN-named file in ``folder`` (optionally only those of one model id)."""
    folder = Path(folder)
    bank = DirectionBank()
    for p in sorted(folder.glob("*_boundary.npy")):
        info = parse_interfacegan_name(p.name)
        if info is None or (model is not None and info["model"] != model):
            continue
        bank.add(load_interfacegan_file(p))
    return bank


def from_idinvert(obj, *, name: str, model: str = "styleganinv_ffhq256") -> Direction:
    """An idinvert-style dict ``{"boundary": (1, d) | (1, L, d), "meta_data": {...}}``.

    ``meta_data["manipulate_layers"]`` (e.g. '0-5') becomes the layer range; a plain array
    (no dict) is accepted as a boundary for all layers.
    """
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        boundary, meta = obj, {}
    elif isinstance(obj, Mapping) and "boundary" in obj:
        boundary, meta = obj["boundary"], obj.get("meta_data") or {}
        if not isinstance(meta, Mapping):
            raise EditError(f"idinvert boundary {name!r}: meta_data must be a dict")
    else:
        raise EditError(f"idinvert boundary {name!r}: expected a dict with a 'boundary' array")
    b = np.asarray(boundary, dtype=np.float64)
    if b.ndim >= 2 and b.shape[0] == 1:
        b = b[0]
    if b.ndim not in (1, 2):
        raise EditError(f"idinvert boundary {name!r}: bad shape {np.shape(boundary)}")
    if b.ndim == 2 and np.allclose(b, b[:1], atol=1e-12):
        b = b[0]  # the same vector on every layer: store it once
    layers = parse_layers(meta.get("manipulate_layers"))
    stats = {k: _jsonable(v) for k, v in meta.items() if k != "manipulate_layers"}
    return Direction(name, b, model, "wp", layers, (), "idinvert", stats)


def load_idinvert_file(path: str | Path, *, name: str | None = None,
                       model: str = "styleganinv_ffhq256") -> Direction:
    path = Path(path)
    obj = _load_npy_allowlisted(path)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    return from_idinvert(obj, name=name or path.stem, model=model)


def load_bank(source, *, model: str | None = None) -> DirectionBank:
    """Load directions from a bank, a bank file (.npz/.json), an InterFaceGAN .npy file or
    folder, an idinvert .npy, or a model's registry name (its registered bank).

    ``model`` keeps only directions of that model id (for folders of released files).
    """
    if isinstance(source, DirectionBank):
        return source.filter(model) if model else source
    if isinstance(source, Direction):
        return DirectionBank([source])
    path = Path(source)
    if path.is_dir():
        bank = load_interfacegan_dir(path, model=model)
        for npz in sorted(path.glob("*.npz")):
            bank = bank.merge(_load_own(npz))
        bank = bank.filter(model) if model else bank
        if not len(bank):
            raise EditError(f"no direction files{' for ' + model if model else ''} in {path}")
        return bank
    # NAME.npz, NAME.json, or the stem NAME itself (as a manifest's "bank" names it)
    if path.suffix in (".npz", ".json") or _bank_paths(path)[1].is_file():
        bank = _load_own(path)
        return bank.filter(model) if model else bank
    if path.suffix == ".npy":
        if not path.is_file():
            raise EditError(f"direction file not found: {path}")
        if parse_interfacegan_name(path.name):
            return DirectionBank([load_interfacegan_file(path)])
        return DirectionBank([load_idinvert_file(path, model=model or "styleganinv_ffhq256")])
    if not path.exists() and isinstance(source, str):
        try:
            from .. import weights
            weights.entry(source)
        except Exception:  # not a registered name either: report both possibilities below
            pass
        else:
            return bank_for_model(source)
    raise EditError(f"no direction bank at {source!r}: pass a bank (.npz/.json), an InterFaceGAN "
                    f".npy file or folder, or a model name whose registry entry names a bank")


BOUNDARIES_ENV = "REALEDIT_BOUNDARIES"


def boundaries_dirs() -> list[Path]:
    """Where released InterFaceGAN files are looked for, in order: $REALEDIT_BOUNDARIES,
    $REALEDIT_HOME/interfacegan_boundaries and the shipped weights/interfacegan_boundaries.
    (The tests point $REALEDIT_BOUNDARIES at ../shared's copy: tests/conftest.py.)"""
    out = []
    if os.environ.get(BOUNDARIES_ENV):
        out.append(Path(os.environ[BOUNDARIES_ENV]).expanduser())
    try:
        from .. import weights
        out += [weights.cache_dir() / "interfacegan_boundaries",
                weights.bundled_dir() / "interfacegan_boundaries"]
    except Exception:  # weights module unavailable: only the explicit locations
        pass
    return out


def bank_for_model(name: str, download: bool = True) -> DirectionBank:
    """Every direction known for the registered model ``name``, labelled with that name.

    Sources: the model's direction set (``boundaries = "stylegan_ffhq"`` in its entry): a folder
    of released InterFaceGAN files named with that prefix in :func:`boundaries_dirs` if there is
    one, else the registered direction files of the set (``bank = "stylegan_ffhq"``), fetched
    on first use and verified (``download=False``: only files already here); and the model's
    own realedit bank as :func:`realedit.manifest.resolve_model` finds it (its manifest's
    ``bank``, else the entry's ``directions`` key or ``weights/<name>.directions.json``).
    EditError if none is found; WeightsNotFound (naming the file, where it goes and the command
    that fetches it) when a registered direction file cannot be had.
    """
    from .. import weights

    e = weights.entry(name)  # WeightsNotFound with suggestions for unknown names
    bank = DirectionBank()
    prefix = getattr(e, "boundaries", "") or ""
    if prefix:
        for folder in boundaries_dirs():
            if folder.is_dir() and any(folder.glob(f"{prefix}_*_boundary.npy")):
                bank = bank.merge(load_interfacegan_dir(folder, model=prefix).relabel(prefix, name))
                break
        else:
            bank = bank.merge(_registered_set(name, prefix, download))
    from ..manifest import resolve_model

    own_ref = resolve_model(name).bank  # the manifest's bank, or the registry's `directions`
    if own_ref is not None:
        npz, js = _bank_paths(own_ref)
        if js.is_file():
            own = _load_own(js)
            # A bank fitted under another id (e.g. a file path) serves this registered model.
            for m in own.models():
                own = own.relabel(m, name)
            bank = bank.merge(own)
    if not len(bank):
        where = ", ".join(str(d) for d in boundaries_dirs())
        raise EditError(f"no direction bank for {name}: "
                        + (f"InterFaceGAN files {prefix}_* not found in {where}" if prefix else
                           f"fit one with `realedit directions fit --model {name} ...` and save it "
                           f"as weights/{name}.directions.npz/.json"))
    return bank


def bank_for_set(model: str, prefix: str, download: bool = True) -> DirectionBank:
    """The registered direction files of the set ``prefix`` (e.g. "e4e_ffhq") for ``model`` (an
    id or path), fetched on first use; EditError when the set has no files."""
    bank = _registered_set(model, prefix, download, registered=False)
    if not len(bank):
        raise EditError(f"no registered direction files of the set {prefix!r}")
    return bank


def _registered_set(model: str, prefix: str, download: bool,
                    registered: bool = True) -> DirectionBank:
    """The registered direction files of set ``prefix``, read into one bank for ``model``
    (``registered``: ``model`` is a registry name, which `weights download --all` takes)."""
    from .. import weights
    from ..errors import WeightsError
    from ..manifest import direction_entries
    from .formats import read_direction_file

    bank = DirectionBank()
    for d in direction_entries(prefix):
        try:
            path = weights.resolve(d, download=download)
        except WeightsError as exc:
            if not registered:
                raise
            raise type(exc)(f"{exc}; `realedit weights download {model} --all` fetches every "
                            f"file {model} uses") from None
        bank = bank.merge(read_direction_file(path, d.format, model, d.extra.get("direction")))
    return bank


# ----------------------------------------------------------------------------- own format

def _bank_paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def save_bank(bank: DirectionBank, path: str | Path) -> tuple[Path, Path]:
    """Write ``NAME.npz`` (arrays) and ``NAME.json`` (metadata) atomically (temp + replace)."""
    npz_path, json_path = _bank_paths(path)
    arrays, entries = {}, []
    for i, d in enumerate(bank):
        key = f"d{i}"
        arrays[key] = np.ascontiguousarray(d.vector, dtype=np.float64)
        entries.append({"key": key, "name": d.name, "model": d.model, "space": d.space,
                        "layers": None if d.layers is None else list(d.layers),
                        "conditions": list(d.conditions), "source": d.source,
                        "shape": list(d.vector.shape),
                        "sha256": hashlib.sha256(arrays[key].tobytes()).hexdigest(),
                        "scale": d.scale, "range": d.amount_range,
                        "stats": _jsonable(d.stats)})
    meta = {"format": BANK_FORMAT, "version": BANK_VERSION, "arrays": npz_path.name,
            "directions": entries}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        npz_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(npz_path, buf.getvalue())
        atomic_write_text(json_path, json.dumps(meta, indent=1, allow_nan=False) + "\n")
    except OSError as exc:
        raise OutputError(f"cannot write direction bank {json_path}: {exc.strerror or exc}") from None
    return npz_path, json_path


def _load_own(path: str | Path) -> DirectionBank:
    npz_path, json_path = _bank_paths(path)
    for p in (npz_path, json_path):
        if not p.is_file():
            raise EditError(f"direction bank incomplete: {p} is missing (a bank is NAME.npz + NAME.json)")
    try:
        meta = json.loads(json_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise EditError(f"{json_path.name}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != BANK_FORMAT:
        raise EditError(f"{json_path.name}: not a realedit direction bank (format != {BANK_FORMAT!r})")
    if meta.get("version") != BANK_VERSION:
        raise EditError(f"{json_path.name}: unsupported bank version {meta.get('version')!r}")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zip / header / pickled-object errors all mean "malformed"
        raise EditError(f"{npz_path.name}: unreadable arrays ({type(exc).__name__}: {exc})") from None
    bank = DirectionBank()
    for e in meta.get("directions", []):
        try:
            arr = arrays[e["key"]]
            if hashlib.sha256(np.ascontiguousarray(arr, dtype=np.float64).tobytes()).hexdigest() != e["sha256"]:
                raise EditError(f"{npz_path.name}: array {e['key']} ({e['name']}) does not match "
                                f"{json_path.name} (files out of sync or corrupt)")
            bank.add(Direction(e["name"], arr, e["model"], e["space"], e.get("layers"),
                               tuple(e.get("conditions", ())), e.get("source", ""), e.get("stats", {}),
                               # Banks written before calibration existed: amounts are unit normals.
                               e.get("scale", 1.0), e.get("range")))
        except (KeyError, TypeError) as exc:
            raise EditError(f"{json_path.name}: malformed entry ({type(exc).__name__}: {exc})") from None
    return bank


# ----------------------------------------------------------------------------- helpers

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


def _load_plain_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":  # np.load would otherwise try to unpickle it
            raise EditError(f"{path.name}: not a readable .npy file")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError:
        raise EditError(f"{path.name}: holds pickled objects, not a plain boundary array") from None
    except Exception as exc:
        raise EditError(f"{path.name}: not a readable .npy file ({type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise EditError(f"{path.name}: expected a numeric array")
    return arr


# Globals a numpy-pickled dict of arrays needs, and nothing else.
_NPY_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _NPY_PICKLE_ALLOWED:
            raise UnsafePickleError(f"refusing to load {module}.{name} from a direction file")
        if name == "OrderedDict":
            from collections import OrderedDict
            return OrderedDict
        if name in ("ndarray", "dtype"):
            return getattr(np, name)
        try:  # numpy >= 2 (old pickles name numpy.core, which numpy 2 only aliases)
            from numpy._core import multiarray as ma
        except ImportError:  # numpy 1.x
            from numpy.core import multiarray as ma
        return getattr(ma, name)


def _load_npy_allowlisted(path: Path):
    """np.load for a .npy that may hold pickled objects, through an allow-list unpickler."""
    if not path.is_file():
        raise EditError(f"direction file not found: {path}")
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
        except Exception:
            raise EditError(f"{path.name}: not a .npy file") from None
        if not dtype.hasobject:
            f.seek(0)
            return _load_plain_npy(path)
        try:
            return _AllowListUnpickler(f).load()
        except UnsafePickleError:
            raise
        except Exception as exc:
            raise EditError(f"{path.name}: malformed pickled boundary ({type(exc).__name__})") from None
