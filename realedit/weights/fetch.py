"""Resolving a name to a file, downloading it when allowed: ``<file>.part`` resumed with HTTP
Range, checked, then renamed into place, so the cache never holds a half-written or
unverified file."""
from __future__ import annotations

import bz2
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ChecksumError, DownloadError, FormatError, WeightsError, WeightsNotFound
from .cache import (_check_digests, _existing, _fetch_command, _fetch_hint, _file_digests,
                    _how_to_get, _page_kind, _quick_check, _read_head, _record_pin, _refuse_page,
                    _target_path)
from .entries import (_WEIGHT_SUFFIXES, CHUNK, ENV_OFFLINE, WeightEntry, _unknown_name, entry,
                      offline, registry, weights_dir)


PART = ".part"
USER_AGENT = "realedit-weights/1 (+urllib)"
HTTP_TIMEOUT_S = 60.0


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
