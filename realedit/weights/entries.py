"""The weights registry's entries: their schema, the registry files they come from (built-in,
$REALEDIT_REGISTRY, the user registry) and the TOML the user registry is written in; where
realedit keeps its cache."""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10 only
    import tomli as tomllib

from ..fsutil import atomic_write_text
from ..errors import UsageError, WeightsError, WeightsNotFound


ENV_HOME = "REALEDIT_HOME"
ENV_OFFLINE = "REALEDIT_OFFLINE"
ENV_REGISTRY = "REALEDIT_REGISTRY"
USER_REGISTRY = "registry.user.toml"
PINS_FILE = "pins.json"
CHUNK = 1 << 20
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEXPREFIX = re.compile(r"^[0-9a-f]{6,64}$")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".pkl", ".dat", ".bz2", ".npy", ".safetensors")


@dataclass(frozen=True)
class WeightEntry:
    """One registered file. Empty strings / empty tuples / None mean "not known"."""

    name: str
    file: str  # file name in the cache (after decompression)
    kind: str = "other"  # family: pggan, stylegan, stylegan2, e4e, dlib, lpips, torchvision, ...
    format: str = "unknown"  # on-disk layout: nvidia-tf1-pickle, stylegan2-ada-pickle, ...
    role: str = ""  # generator, encoder, landmarks68, face-detector, perceptual-head, backbone, ...
    resolution: int | None = None
    dataset: str = ""
    urls: tuple[str, ...] = ()  # tried in order
    page: str = ""  # human page where the file is offered (for "download it by hand" messages)
    size: int | None = None  # bytes of the final (decompressed) file
    sha256: tuple[str, ...] = ()  # accepted digests of the final file (several = known variants)
    md5: tuple[str, ...] = ()
    sha256_prefix: str = ""  # e.g. torchvision's "-397923af" in the file name
    checksum_source: str = "none"  # published | computed | mirror | name-prefix | added | none
    compression: str = ""  # "" or "bz2": how the URL serves it
    licence: str = ""
    licence_note: str = ""
    boundaries: str = ""  # its direction set: InterFaceGAN prefix "stylegan_ffhq", or "e4e_ffhq"
    bank: str = ""  # a direction file: the set it belongs to (a generator's `boundaries`)
    encoder: str = ""  # a generator: registry name of the encoder that inverts into it
    pairs_with: str = ""  # another registry name this file needs (e.g. an encoder's generator)
    bundled: str = ""  # path relative to the repo's weights/ folder
    path: str = ""  # absolute path of a user-added file kept where it is
    package: str = ""  # installed package that may ship the file ...
    package_path: str = ""  # ... at this path inside the package folder
    torch_hub: bool = False  # also look in torch hub's checkpoints folder
    notes: str = ""
    source: str = ""  # registry file the entry came from
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # unknown keys, kept

    @property
    def has_full_hash(self) -> bool:
        return bool(self.sha256)

    @property
    def downloadable(self) -> bool:
        return bool(self.urls) and not self.bundled and not self.path


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of checking one entry. ``status``: ok, pinned, missing, mismatch, page."""

    name: str
    path: Path
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "pinned")


_STR_FIELDS = {
    "file", "kind", "format", "role", "dataset", "page", "sha256_prefix", "checksum_source",
    "compression", "licence", "licence_note", "boundaries", "bank", "encoder", "pairs_with",
    "bundled", "path",
    "package", "package_path", "notes",
}


_LIST_FIELDS = {"urls", "sha256", "md5"}
_FIELD_NAMES = {f.name for f in dataclasses.fields(WeightEntry)}
# fields a user may set through add(**meta)
_META_FIELDS = {
    "kind", "format", "role", "resolution", "dataset", "page", "licence", "licence_note",
    "boundaries", "pairs_with", "notes", "urls",
}


def cache_dir() -> Path:
    """realedit's cache root: ``$REALEDIT_HOME``, default ``~/.cache/realedit`` (not created)."""
    env = os.environ.get(ENV_HOME, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "realedit"


def weights_dir() -> Path:
    """Folder of downloaded weight files inside the cache."""
    return cache_dir() / "weights"


def bundled_dir() -> Path:
    """The shipped ``weights/`` folder, home of the built-in registry and the embedded model:
    inside an installed package (``realedit/_weights``, mapped from the repository's top-level
    ``weights/`` by setup.py), else the source checkout's ``weights/`` (editable installs)."""
    here = Path(__file__).resolve().parent.parent  # the realedit package
    packaged = here / "_weights"
    return packaged if packaged.is_dir() else here.parent / "weights"


def builtin_registry_path() -> Path:
    return bundled_dir() / "registry.toml"


def user_registry_path() -> Path:
    return cache_dir() / USER_REGISTRY


def pins_path() -> Path:
    return cache_dir() / PINS_FILE


def offline() -> bool:
    """True when ``$REALEDIT_OFFLINE`` is set to anything but empty/0/false/no/off."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no", "off")


def _load_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise WeightsError(f"registry file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"registry file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise WeightsError(f"cannot read registry file {path}: {exc.strerror or exc}") from None


def _parse_entry(name: str, raw, src: Path) -> WeightEntry:
    where = f"{src}: entry '{name}'"
    if not _NAME_RE.match(name):
        raise WeightsError(f"{where}: names use letters, digits, '.', '_' and '-' only")
    if not isinstance(raw, dict):
        raise WeightsError(f"{where}: must be a table")
    kw: dict = {"name": name, "source": str(src)}
    extra = {}
    for key, val in raw.items():
        if key not in _FIELD_NAMES or key in ("name", "source", "extra"):
            extra[key] = val
            continue
        if key in _STR_FIELDS:
            if not isinstance(val, str):
                raise WeightsError(f"{where}: '{key}' must be a string")
            kw[key] = val
        elif key in _LIST_FIELDS:
            vals = [val] if isinstance(val, str) else val
            if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                raise WeightsError(f"{where}: '{key}' must be a string or a list of strings")
            kw[key] = tuple(v.lower() if key != "urls" else v for v in vals)
        elif key in ("resolution", "size"):
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise WeightsError(f"{where}: '{key}' must be a positive integer")
            kw[key] = val
        elif key == "torch_hub":
            if not isinstance(val, bool):
                raise WeightsError(f"{where}: 'torch_hub' must be true or false")
            kw[key] = val
    for h in kw.get("sha256", ()):
        if not _HEX64.match(h):
            raise WeightsError(f"{where}: sha256 '{h}' is not 64 hex digits")
    for h in kw.get("md5", ()):
        if not _HEX32.match(h):
            raise WeightsError(f"{where}: md5 '{h}' is not 32 hex digits")
    if kw.get("sha256_prefix"):
        kw["sha256_prefix"] = kw["sha256_prefix"].lower()
        if not _HEXPREFIX.match(kw["sha256_prefix"]):
            raise WeightsError(f"{where}: sha256_prefix must be 6-64 hex digits")
    if kw.get("compression", "") not in ("", "bz2"):
        raise WeightsError(f"{where}: compression must be \"bz2\" or absent")
    for u in kw.get("urls", ()):
        if not u.startswith(("http://", "https://")):
            raise WeightsError(f"{where}: URL '{u}' is not http(s)")
    bundled = kw.get("bundled", "")
    if bundled and (Path(bundled).is_absolute() or ".." in Path(bundled).parts):
        raise WeightsError(f"{where}: 'bundled' must be a path inside the weights/ folder")
    if kw.get("path") and not Path(kw["path"]).is_absolute():
        raise WeightsError(f"{where}: 'path' must be absolute")
    if "file" not in kw:
        if bundled or kw.get("path"):
            kw["file"] = Path(bundled or kw["path"]).name
        else:
            raise WeightsError(f"{where}: 'file' is required")
    if not kw["file"] or Path(kw["file"]).name != kw["file"]:
        raise WeightsError(f"{where}: 'file' must be a plain file name")
    kw["extra"] = extra
    return WeightEntry(**kw)


def _load_registry_file(path: Path) -> dict[str, WeightEntry]:
    data = _load_toml(path)
    table = data.get("weights", {})
    if not isinstance(table, dict):
        raise WeightsError(f"{path}: [weights] must be a table of entries")
    return {name: _parse_entry(name, raw, path) for name, raw in table.items()}


def registry_files() -> list[Path]:
    """Registry files in merge order (later override earlier); a missing user registry is
    skipped, a missing built-in one is a broken installation (WeightsError), not silence."""
    builtin = builtin_registry_path()
    if not builtin.is_file():
        raise WeightsError(f"the built-in weights registry {builtin} is missing: this realedit "
                           "installation is incomplete (reinstall it from its repository or wheel)")
    files = [builtin]
    for part in os.environ.get(ENV_REGISTRY, "").split(os.pathsep):
        if part.strip():
            # must exist: a typo should not pass silently
            files.append(Path(part.strip()).expanduser())
    if user_registry_path().is_file():
        files.append(user_registry_path())
    return files


def registry(path: str | os.PathLike | None = None) -> dict[str, WeightEntry]:
    """All entries by name. With ``path``, only the entries of that one registry file."""
    if path is not None:
        return _load_registry_file(Path(path))
    merged: dict[str, WeightEntry] = {}
    for f in registry_files():
        merged.update(_load_registry_file(f))
    return merged


def _unknown_name(name: str, reg: dict, or_file: bool = False) -> WeightsNotFound:
    close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `realedit weights list`"
    also = " and no such file" if or_file else ""
    return WeightsNotFound(f"unknown weights name '{name}'{also}{hint}")


def entry(name: str) -> WeightEntry:
    """The registry entry called ``name``; WeightsNotFound (with suggestions) if there is none."""
    reg = registry()
    if name not in reg:
        raise _unknown_name(name, reg)
    return reg[name]


def _atomic_write_text(dst: Path, text: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dst, text)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=True)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise UsageError(f"cannot store {type(v).__name__} in the registry")


def _dump_toml(data: dict) -> str:
    """Enough TOML for registry files: top-level scalars and [weights."name"] tables of scalars."""
    lines = ["# realedit user weights registry (written by `realedit weights add`)"]
    for k, v in data.items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {_toml_value(v)}")
    for name, fields in data.get("weights", {}).items():
        lines.append("")
        lines.append(f"[weights.{json.dumps(name)}]")
        for k, v in fields.items():
            lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def iter_entries(names: Iterable[str] | None = None) -> list[WeightEntry]:
    """Entries sorted by name (all, or the given names)."""
    reg = registry()
    if names is None:
        return [reg[n] for n in sorted(reg)]
    return [entry(n) for n in names]
