"""Where banks come from: ``load_bank`` (a bank, a file or folder of direction files, or a
registered model's name) and a registered model's bank: the released InterFaceGAN files of its
direction set, the registered direction files of the set (fetched on first use), and the
model's own realedit bank as its manifest names it."""
from __future__ import annotations

import os
from pathlib import Path


from ..errors import EditError
from .bank import Direction, DirectionBank
from .files import (_bank_paths, _load_own, load_idinvert_file, load_interfacegan_dir,
                    load_interfacegan_file, parse_interfacegan_name)


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
