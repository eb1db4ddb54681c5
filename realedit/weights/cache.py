"""Where an entry's file is (user path, bundled, cache, an installed package, torch hub), whether
it is intact (size, sha256, md5, pins of the first good copy), and adding local files."""
from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from ..fsutil import atomic_copy
from ..errors import ChecksumError, FormatError, UsageError, WeightsError, WeightsNotFound
from . import entries
from .entries import (CHUNK, _META_FIELDS, _NAME_RE, VerifyResult, WeightEntry, _atomic_write_text,
                      _dump_toml, _load_toml, _unknown_name, entry, pins_path, registry,
                      user_registry_path, weights_dir)


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
        return entries.bundled_dir() / e.bundled  # looked up at call time (tests point it elsewhere)
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


# Pins: size + sha256 recorded for files whose authors publish no checksum.
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


def _how_to_get(e: WeightEntry) -> str:
    src = e.urls[0] if e.urls else (e.page or "its publisher")
    what = f"{e.file}.bz2 (then decompress it)" if e.compression == "bz2" and e.urls else e.file
    return f"download {what} from {src}"


def _fetch_command(e: WeightEntry) -> str:
    """The command that fetches ``e``; for a model, the one that fetches everything it uses."""
    if e.role == "generator" or e.format in ("e4e-pt", "psp-pt"):
        return f"`realedit weights download {e.name} --all` fetches it (with all the model uses)"
    return f"`realedit weights download {e.name}` fetches it"


def _fetch_hint(e: WeightEntry) -> str:
    """The command that fetches ``e`` (for one-line "missing file" messages)."""
    return _fetch_command(e) if e.urls else "it has no download URL"


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


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_copy(src, dst, CHUNK)
