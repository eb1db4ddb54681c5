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

# Models tried, in order, when no model is named: official generators that come with a
# direction bank, if their files (generator, and encoder where they have one) are in the
# cache, then the embedded model shipped in weights/.
DEFAULT_MODELS = ("stylegan2-ffhq-1024", "stylegan-ffhq-1024", "stylegan-celebahq-1024",
                  "pggan-celebahq-1024", "realedit-celeba64")
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


# ----------------------------------------------------------------------------- registered parts

@dataclass(frozen=True)
class RegisteredParts:
    """The registry entries a registered model uses: what `realedit weights download NAME --all`
    fetches and `realedit weights list` counts."""

    model: object                 # the model's own WeightEntry
    encoder: object | None        # its encoder's entry (the model itself for a pSp / e4e file)
    directions: tuple = ()        # direction files of its set (entries whose bank is its set)
    loss: tuple = ()              # what its default inversion's loss needs (LPIPS VGG), if any

    @property
    def entries(self) -> list:
        out = [self.model]
        if self.encoder is not None and self.encoder is not self.model:
            out.append(self.encoder)
        return out + list(self.directions) + list(self.loss)


# Generator files whose discriminator realedit reads: their inversions' default loss uses its
# features; other models optimise with LPIPS (VGG16 backbone + linear heads).
_WITH_DISCRIMINATOR = {("stylegan2", "stylegan2-ada-pickle"), ("stylegan2", "nvidia-tf1-pickle"),
                       ("stylegan2", "realedit-model")}
LPIPS_PARTS = ("lpips-vgg-head", "vgg16-backbone")


def direction_entries(bank: str) -> list:
    """Registered direction files of the set ``bank`` (e.g. "stylegan_ffhq", "e4e_ffhq")."""
    from . import weights

    if not bank:
        return []
    return [e for e in weights.iter_entries() if e.role == "directions" and e.bank == bank]


def registered_parts(name: str) -> RegisteredParts:
    """The parts of a registered model; WeightsNotFound for an unknown name."""
    from . import weights
    from .models.legacy.psp import REGISTRY_FORMATS

    e = weights.entry(name)
    # Files that name this model as their partner (realedit's own encoder and bank files).
    partners = [p for p in weights.iter_entries() if p.pairs_with == name and p.name != name]
    if e.format in REGISTRY_FORMATS:
        encoder = e
    elif e.encoder:
        encoder = weights.entry(e.encoder)
    else:
        encoder = next((p for p in partners if p.role == "encoder"), None)
    dirs = direction_entries(e.boundaries) + [p for p in partners if p.role == "directions"]
    # The default inversion refines with a loss unless the encoder is a pSp / e4e one.
    refines = encoder is None or encoder.format not in REGISTRY_FORMATS
    loss = ()
    if e.role == "generator" and refines and (e.kind, e.format) not in _WITH_DISCRIMINATOR:
        loss = tuple(weights.entry(n) for n in LPIPS_PARTS)
    return RegisteredParts(e, encoder, tuple(dirs), loss)


def default_encoder(name_or_path, files: ModelFiles, source_format: str = "",
                    download: bool = True) -> tuple[Path | None, bool]:
    """(encoder file, whether it is a pSp / e4e encoder) for a model: the model file itself when
    it is a pSp / e4e checkpoint; a registered model's ``encoder`` entry (fetched on first use
    unless ``download=False``); else the manifest's / sidecar's realedit encoder, or None."""
    from . import weights
    from .models.legacy.psp import ENCODER_TYPES, REGISTRY_FORMATS

    if source_format in ENCODER_TYPES.values():
        return (files.generator or Path(weights.resolve(str(name_or_path), download=download)), True)
    if not Path(os.fspath(name_or_path)).exists():
        e = weights.entry(os.fspath(name_or_path))
        if e.encoder:
            enc = weights.entry(e.encoder)
            return Path(weights.resolve(enc, download=download)), enc.format in REGISTRY_FORMATS
    return files.encoder, False


def official_bank_set(source_format: str, opts: dict | None) -> str:
    """The registered direction set a pSp / e4e file given as a path uses: e4e's FFHQ set for
    an FFHQ encoder of a 1024 px generator (what the released files are), else ''."""
    opts = opts or {}
    if source_format in ("e4e", "psp") and opts.get("dataset_type") == "ffhq_encode" \
            and int(opts.get("stylegan_size") or opts.get("output_size") or 0) == 1024:
        return "e4e_ffhq"
    return ""


def default_inverter(name_or_path) -> str:
    """The inverter a model is used with when none is asked for: "encoder" when its encoder is
    a pSp / e4e file (the official StyleGAN2 FFHQ models), else "hybrid". Reads no weights
    (a model file is only opened to see whether it is a pSp / e4e checkpoint)."""
    from . import weights
    from .models.legacy.psp import REGISTRY_FORMATS, is_psp_object

    if name_or_path is None:
        name_or_path = default_model_name()
    p = Path(os.fspath(name_or_path))
    if p.is_file():
        from .models.legacy import read_torch_object
        try:
            return "encoder" if is_psp_object(read_torch_object(p)) else "hybrid"
        except WeightsError:
            return "hybrid"  # not a torch file: the model loader reports what it is
    e = weights.entry(os.fspath(name_or_path))
    enc = weights.entry(e.encoder) if e.encoder else e
    return "encoder" if enc.format in REGISTRY_FORMATS else "hybrid"

def default_model_name() -> str:
    """The first model of DEFAULT_MODELS whose file is available without a download."""
    from . import weights

    for name in DEFAULT_MODELS:
        try:
            parts = registered_parts(name)
            if all(weights.where_found(e) for e in (parts.model, parts.encoder) if e is not None):
                return name
        except WeightsError:
            continue
    raise WeightsError("no model available: the embedded model weights/realedit-celeba64.pt is "
                       "missing from this installation (reinstall realedit from its repository)")


def _likely_default_model() -> str:
    """default_model_name without torch (registered_parts reads the pSp formats, which import
    it): the first of DEFAULT_MODELS whose generator file is here. Used only to read a bank's
    JSON before anything loads; the loaded model's own bank decides again afterwards."""
    from . import weights

    for name in DEFAULT_MODELS:
        try:
            if weights.where_found(weights.entry(name)):
                return name
        except WeightsError:
            continue
    return DEFAULT_MODELS[-1]


def bank_entries(name_or_path=None) -> list[dict]:
    """The direction entries (name, range, scale, conditions, stats, ...) of a model's own
    realedit bank JSON, read with nothing but json: what the command line may know before
    torch and the model load (the amounts' limits, help text). [] when the model is unknown,
    has no own bank (InterFaceGAN files only) or it cannot be read."""
    try:
        name = name_or_path or _likely_default_model()
        ref = resolve_model(name).bank
        if ref is None:
            return []
        p = Path(ref)
        stem = p.with_suffix("") if p.suffix in (".npz", ".json") else p  # edit.load_bank's rule
        js = stem.with_name(stem.name + ".json")
        data = json.loads(js.read_text(encoding="utf-8"))
        return [d for d in data.get("directions", []) if isinstance(d, dict) and d.get("name")]
    except (WeightsError, FormatError, OSError, ValueError, AttributeError, TypeError):
        return []
