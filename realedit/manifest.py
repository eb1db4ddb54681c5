"""One answer to "which files make up this model?".

A model folder holds a manifest ``<name>.model.json`` beside its generator, in the spirit of
diffusers' ``model_index.json``::

    {"format": "realedit-model-manifest", "version": 1, "name": "realedit-celeba64",
     "generator": "realedit-celeba64.pt", "discriminator": "realedit-celeba64.pt",
     "encoder": "realedit-celeba64.encoder.pt", "bank": "realedit-celeba64.directions",
     "licence": "research-only", "default_space": "wp", "card": "README.md"}

File names are relative to the manifest's folder; every key but ``generator`` may be absent or
null. :func:`resolve_model` reads it for a registry name (the manifest beside the registered
file), a generator file (the manifest beside it) or the manifest itself. A model without a
manifest (an official download, a file saved by ``realedit`` before manifests) falls back to
the older sidecar names: ``<stem>.encoder.pt`` and ``<stem>.directions.json`` beside the file,
and the registry entry's ``directions`` key.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import FormatError, WeightsError

FORMAT = "realedit-model-manifest"
VERSION = 1
SUFFIX = ".model.json"
_FILE_KEYS = ("generator", "discriminator", "encoder", "bank", "card")


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's parts are (None: the model has no such part / it is not known)."""

    name: str                    # registry name, or the generator path as given
    generator: Path | None       # None only for a registered model not downloaded yet
    encoder: Path | None = None
    discriminator: Path | None = None
    bank: Path | None = None     # bank stem: <bank>.npz + <bank>.json (see edit.load_bank)
    licence: str = ""
    default_space: str | None = None
    card: Path | None = None
    manifest: Path | None = None  # the manifest read, or None when sidecar names were used


def manifest_path(generator: str | os.PathLike) -> Path:
    """Where the manifest of a generator file lives: ``<stem>.model.json`` beside it."""
    p = Path(generator)
    return p.with_name(p.stem + SUFFIX)


def read_manifest(path: str | os.PathLike, name: str | None = None) -> ModelFiles:
    """Parse a manifest file; FormatError (one line) if it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path}: not a readable model manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"{path}: not a realedit model manifest (format {FORMAT!r} expected)")
    if int(data.get("version", 0)) > VERSION:
        raise FormatError(f"{path}: manifest version {data['version']} is newer than this "
                          f"realedit reads ({VERSION}); upgrade realedit")
    if not isinstance(data.get("generator"), str):
        raise FormatError(f"{path}: the manifest names no generator file")
    files = {}
    for key in _FILE_KEYS:
        v = data.get(key)
        if v is not None and not isinstance(v, str):
            raise FormatError(f"{path}: {key!r} must be a file name, not {type(v).__name__}")
        files[key] = (path.parent / v) if v else None
    for key in ("encoder", "discriminator", "card"):
        # a manifest that names a part promises it: a missing file is a broken model folder
        if files[key] is not None and not files[key].is_file():
            raise FormatError(f"{path}: names {key} {files[key].name}, which is not in "
                              f"{path.parent}")
    return ModelFiles(name=name or str(data.get("name") or files["generator"]),
                      licence=str(data.get("licence") or ""),
                      default_space=data.get("default_space") or None, manifest=path, **files)


def _sidecars(name: str, generator: Path | None, licence: str = "",
              bank_ref: str | None = None, base: Path | None = None) -> ModelFiles:
    """The pre-manifest conventions, for models that have no manifest."""
    encoder = bank = None
    if generator is not None:
        enc = generator.with_name(generator.stem + ".encoder.pt")
        encoder = enc if enc.is_file() else None
        side = generator.with_suffix("")
        if side.with_name(side.name + ".directions.json").is_file():
            bank = side.with_name(side.name + ".directions")
    if bank is None and bank_ref:
        p = Path(bank_ref)
        bank = p if p.is_absolute() or base is None else base / p
    return ModelFiles(name=name, generator=generator, encoder=encoder, bank=bank, licence=licence)


def resolve_model(name_or_path) -> ModelFiles:
    """The files of a model given as a registry name, a generator file or a manifest.

    Never downloads: a registered model whose file is not here yet gets ``generator=None``
    (``realedit.models.load`` fetches it). WeightsNotFound for an unknown name.
    """
    from . import weights

    s = os.fspath(name_or_path)
    p = Path(s).expanduser()
    if p.is_file():
        if p.name.endswith(SUFFIX):
            return read_manifest(p)
        m = manifest_path(p)
        if m.is_file():
            files = read_manifest(m, name=s)
            if files.generator is not None and files.generator.resolve() == p.resolve():
                return files
        return _sidecars(s, p)
    e = weights.entry(s)  # WeightsNotFound with suggestions for an unknown name
    try:
        gen = Path(weights.resolve(e, download=False))
    except WeightsError:
        gen = None
    if gen is not None and manifest_path(gen).is_file():
        files = read_manifest(manifest_path(gen), name=s)
        return files if files.licence or not e.licence else _replace_licence(files, e.licence)
    ref = getattr(e, "extra", {}).get("directions")
    base = weights.bundled_dir()
    if not ref and (base / f"{s}.directions.json").is_file():
        ref = f"{s}.directions"
    return _sidecars(s, gen, e.licence or "", ref, base)


def _replace_licence(files: ModelFiles, licence: str) -> ModelFiles:
    from dataclasses import replace

    return replace(files, licence=licence)


def write_manifest(path: str | os.PathLike, *, generator: str, encoder: str | None = None,
                   discriminator: str | None = None, bank: str | None = None,
                   licence: str = "", default_space: str | None = None,
                   card: str | None = None, name: str | None = None) -> Path:
    """Write a manifest (file names relative to its folder) atomically."""
    from .fsutil import atomic_write_text

    data = {"format": FORMAT, "version": VERSION, "name": name, "generator": generator,
            "discriminator": discriminator, "encoder": encoder, "bank": bank, "licence": licence,
            "default_space": default_space, "card": card}
    return atomic_write_text(Path(path), json.dumps(data, indent=2) + "\n")
