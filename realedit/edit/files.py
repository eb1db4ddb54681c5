"""Direction files: the released InterFaceGAN ``*_boundary.npy`` files (named
``{gan}_{dataset}_{attr}[_c_{cond}...][_w]_boundary.npy``), idinvert-style layer-wise dicts
(``{"boundary": (1, [L,] d), "meta_data": {"manipulate_layers": "0-5"}}``, also as a pickled
.npy read through realedit.models.unpickle's allow-list), and realedit's own bank format:
``NAME.npz`` (plain float64 arrays, read with ``allow_pickle=False``) next to ``NAME.json`` (all
metadata). Other projects' files (e4e, GANSpace): realedit.edit.formats."""
from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import EditError, OutputError, UnsafePickleError
from ..fsutil import atomic_write_bytes, atomic_write_text
from ..models.unpickle import NUMPY_ONLY, restricted_load
from .bank import Direction, DirectionBank, _jsonable
from .vectors import parse_layers


BANK_FORMAT = "realedit-directions"
BANK_VERSION = 1
# {pggan|stylegan}_{celebahq|ffhq}_{attr}[_c_{cond1}[_{cond2}...]][_w]_boundary.npy
_INTERFACEGAN_RE = re.compile(
    r"^(?P<gan>pggan|stylegan|stylegan2)_(?P<data>[a-z0-9]+)_(?P<attr>[a-z0-9]+)"
    r"(?:_c_(?P<conds>[a-z0-9]+(?:_[a-z0-9]+)*?))?(?P<w>_w)?_boundary\.npy$")


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
            return restricted_load(f, allowed=NUMPY_ONLY, what="plain arrays")
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path.name}: {exc}") from None
        except Exception as exc:
            raise EditError(f"{path.name}: malformed pickled boundary ({type(exc).__name__})") from None
