"""A batch job's plan and its ledger: which photos, where their outputs go, what is done.

The ledger is a JSON-lines manifest in the output folder. Only the driver appends to it, one
line per finished photo (after the photo's outputs were renamed into place), so a line means
"these outputs are complete". Output paths in it are relative to the output folder, so a copied
or moved job folder is judged by its own files. A rerun of the same command reads it back and
skips every photo whose last line says ``ok`` and whose outputs (where this job puts them) still
match the sizes and hashes recorded there; photos that failed are skipped too unless
``retry_failed`` (their error stays in the ledger), except those that failed because the output
folder refused the write (cause "output"): once the folder is fixed, a plain rerun redoes them.
A first ``job`` line records the settings: resuming with other edits would mix two jobs' outputs
in one folder, so it is refused.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import OutputError, UsageError
from ..fsutil import TMP_SUFFIX
from ..io import expand_source

MANIFEST = "manifest.jsonl"
LOCK = ".realedit-batch.lock"
MANIFEST_SUFFIXES = {".txt", ".csv", ".lst"}


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to edit one photo; the same for every photo of the job."""

    edits: dict
    keep: tuple = ()
    faces: str | int = "largest"
    model: str | None = None
    inverter: str = "hybrid"
    steps: int | None = None
    space: str | None = None
    detail: str | None = None    # None: Editor.apply's default transfer
    blend: str | None = None
    compare: bool = False
    device: str = "cpu"
    threads: int | None = None   # torch threads per worker (None: from the free CPUs)
    min_face: float | None = None  # smallest face the detector looks for (None: its default)
    detector: str = "hog"        # dlib's HOG, or "cnn" (MMOD: slower, finds more faces)

    def __hash__(self) -> int:  # edits is a dict: hash the whole spec by value
        return hash(json.dumps(asdict(self), sort_keys=True, default=str))

    def settings(self) -> dict:
        """What must match for a rerun to resume this job (not how it is run)."""
        d = asdict(self)
        for k in ("device", "threads"):
            d.pop(k)
        if self.min_face is None:  # jobs started before the option existed resume as before
            d.pop("min_face")
        if self.detector == "hog":
            d.pop("detector")
        d["keep"] = list(self.keep)
        return d


@dataclass(frozen=True)
class Task:
    """One photo of the job: where it is read from, where its outputs go (absolute paths)."""

    key: str                    # stable id: the input's path relative to the job's root
    src: str
    outputs: tuple              # (edited, [compare])


@dataclass
class Record:
    """One ledger line: a photo finished (ok or failed) on some worker."""

    key: str
    src: str
    status: str                 # "ok" | "failed"
    outputs: list = field(default_factory=list)   # [{"path", "bytes", "sha256"}]
    faces: int = 0
    error: str = ""
    exit_code: int = 0
    skipped: list = field(default_factory=list)  # faces left out, each with its reason
    timings: dict = field(default_factory=dict)
    worker: str = ""
    time: float = 0.0
    type: str = "photo"
    cause: str = ""             # "output": the output folder refused the write (the job stops;
                                # a plain rerun redoes the photo); "": the photo's own failure


# ---------------------------------------------------------------------------- inputs
def list_inputs(sources: Sequence[str]) -> list[Path]:
    """Photos named by SRC arguments: folders (recursive, sorted), globs, files, and manifests
    (a .txt/.lst file with one path per line, or a .csv whose first column is a path; relative
    paths are taken from the manifest's folder). Duplicates are dropped, order kept."""
    out: list[Path] = []
    for item in sources:
        p = Path(item)
        found = expand_source(item, recursive=True)  # folders and globs: realedit edit's rules
        if found is not None:
            out += found
        elif p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES:
            out += _read_path_list(p)
        elif p.exists():
            out.append(p)
        else:
            raise UsageError(f"{item}: no such file, folder or manifest")
    seen, unique = set(), []
    for p in out:
        a = os.path.abspath(p)
        if a not in seen:
            seen.add(a)
            unique.append(Path(a))
    return unique


def _read_path_list(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the list of photos ({exc})") from None
    rows: Iterable[str]
    if path.suffix.lower() == ".csv":
        rows = (r[0] for r in csv.reader(text.splitlines()) if r)
    else:
        rows = text.splitlines()
    out = []
    for i, row in enumerate(rows):
        row = row.strip()
        if not row or row.startswith("#"):
            continue
        if i == 0 and path.suffix.lower() == ".csv" and row.lower() in ("path", "file", "input"):
            continue  # a header
        q = Path(row)
        out.append(q if q.is_absolute() else path.parent / q)
    return out


def output_name(photo: Path, kind: str) -> str:
    """The name of one of a photo's outputs, as `realedit PHOTOS...` and `realedit batch` both
    write them: NAME_edited.EXT (the photo's own format), NAME_compare.EXT (a JPEG or PNG like
    the photo, else PNG), NAME_latent.npz."""
    photo = Path(photo)
    if kind == "compare":
        ext = photo.suffix if photo.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
    else:
        ext = ".npz" if kind == "latent" else photo.suffix
    return f"{photo.stem}_{kind}{ext}"


def plan_tasks(inputs: Sequence[Path], out: Path, compare: bool = False) -> list[Task]:
    """One Task per input; outputs mirror the inputs' folders below their common root, so
    a/x.jpg and b/x.jpg cannot collide, and refuse to land on an input."""
    if not inputs:
        return []
    root = Path(os.path.commonpath([str(p.parent) for p in inputs]))
    out = Path(os.path.abspath(out))
    srcs = {str(p) for p in inputs}
    tasks = []
    for p in inputs:
        rel = p.relative_to(root)
        base = out / rel.parent
        names = [base / output_name(p, "edited")]
        if compare:
            names.append(base / output_name(p, "compare"))
        for n in names:
            if str(n) in srcs:
                raise OutputError(f"{n}: an output would overwrite an input photo; use another -o")
        tasks.append(Task(key=rel.as_posix(), src=str(p), outputs=tuple(str(n) for n in names)))
    return tasks


# ---------------------------------------------------------------------------- ledger
def file_digest(path: str | os.PathLike) -> dict:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {"path": str(path), "bytes": os.path.getsize(path), "sha256": h.hexdigest()}


def outputs_valid(rec: dict, paths: Sequence[str]) -> bool:
    """The job's outputs of a photo, at ``paths`` (where this job puts them: Task.outputs),
    have the sizes and hashes the record gives, in order. The paths written in the record are
    not used: in an old ledger they are absolute, and may name another copy of the folder."""
    outs = rec.get("outputs") or []
    if not outs or len(outs) != len(paths):
        return False
    for o, path in zip(outs, paths):
        try:
            if os.path.getsize(path) != o["bytes"] or file_digest(path)["sha256"] != o["sha256"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def redo_on_rerun(rec: dict) -> bool:
    """A failure that a plain rerun retries: the output folder refused the write (exit 7 in
    ledgers written before the cause was recorded)."""
    if "cause" in rec:
        return rec["cause"] == "output"
    return rec.get("exit_code") == OutputError.exit_code


class Ledger:
    """The job's manifest, held open for appending, with an exclusive lock on the folder so
    two drivers never run one job at once."""

    def __init__(self, out: Path, spec: JobSpec, total: int):
        self.out = Path(out)
        self.path = self.out / MANIFEST
        self.spec = spec
        self.total = total
        self._lock_fh = None
        self._fh = None
        self.last: dict[str, dict] = {}     # key -> its latest photo record
        self.warnings: list[str] = []       # what opening found and repaired, to be said
        self.started = time.time()
        self.done_now = 0
        self.failed_now = 0

    # -- opening
    def open(self) -> "Ledger":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._lock_fh = open(self.out / LOCK, "a+")
        except OSError as exc:
            raise OutputError(f"{self.out}: cannot use as output folder ({exc.strerror or exc})") from None
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_fh.close()
            raise UsageError(f"{self.out}: another batch job is running on this folder") from None
        remove_stale_temporaries(self.out)
        header = None
        if self.path.exists():
            note = repair_torn_tail(self.path)
            if note:
                self.warnings.append(note)
            records, unreadable = _read_lines(self.path)
            if unreadable:
                self.warnings.append(f"{self.path}: {unreadable} unreadable line(s) skipped (cut "
                                     "by a crash); their photos are redone if their outputs "
                                     "are not recorded elsewhere")
            for rec in records:
                if rec.get("type") == "job" and header is None:
                    header = rec
                elif rec.get("type") == "photo":
                    self.last[rec["key"]] = rec
        settings = self.spec.settings()
        if header is not None and header.get("settings") != settings:
            self.close()
            raise UsageError(f"{self.out} holds a job with other settings ({_diff(header.get('settings'), settings)}); "
                             "use another output folder")
        self._fh = open(self.path, "a", encoding="utf-8")
        self.fresh = header is None
        if header is None:
            self._append({"type": "job", "settings": settings, "time": time.time()})
        return self

    def discard(self) -> None:
        """Undo a fresh job that never started (e.g. no Ray cluster): close, and remove the
        manifest, the lock and the output folder if this left them empty."""
        self.close()
        if not getattr(self, "fresh", False):
            return
        for p in (self.path, self.out / LOCK):
            try:
                p.unlink()
            except OSError:
                pass
        try:
            self.out.rmdir()
        except OSError:
            pass

    def close(self) -> None:
        for fh in (self._fh, self._lock_fh):
            if fh is not None:
                fh.close()
        self._fh = self._lock_fh = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # -- planning
    def pending(self, tasks: Sequence[Task], retry_failed: bool = False) -> tuple[list[Task], int, int]:
        """(tasks still to do, number already done, number failed earlier and skipped)."""
        todo, done, skipped = [], 0, 0
        for t in tasks:
            rec = self.last.get(t.key)
            if rec is not None and rec.get("status") == "ok" and outputs_valid(rec, t.outputs):
                done += 1
            elif (rec is not None and rec.get("status") == "failed" and not retry_failed
                  and not redo_on_rerun(rec)):
                skipped += 1
            else:
                todo.append(t)
        return todo, done, skipped

    # -- recording
    def record(self, rec: Record) -> None:
        rec.time = rec.time or time.time()
        d = asdict(rec)
        # outputs relative to the job folder: a copy of the folder checks its own files
        d["outputs"] = [{**o, "path": Path(os.path.relpath(o["path"], self.out)).as_posix()}
                        for o in d["outputs"]]
        self._append(d)
        self.last[rec.key] = d
        if rec.status == "ok":
            self.done_now += 1
        else:
            self.failed_now += 1

    def progress(self, remaining: int) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        finished = self.done_now + self.failed_now
        rate = finished / elapsed
        p = {"type": "progress", "time": time.time(), "done": self.done_now,
             "failed": self.failed_now, "remaining": remaining, "photos_per_s": round(rate, 3),
             "eta_s": round(remaining / rate, 1) if rate > 0 else None}
        return p

    def write_progress(self, remaining: int) -> dict:
        p = self.progress(remaining)
        self._append(p)
        return p

    def _append(self, obj: dict) -> None:
        # one write per line + fsync: a driver killed mid-job leaves whole lines only (a torn
        # last line is skipped by read_ledger)
        self._fh.write(json.dumps(obj, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())


def remove_stale_temporaries(out: Path) -> None:
    """Temporaries (realedit.fsutil's hidden ``.NAME.XXXX.tmp``) left in ``out`` by a job
    killed mid-write. Called with the job's lock held, so no live writer of this job owns them."""
    import re

    pattern = re.compile(r"^\..+\.[0-9a-f]{12}" + re.escape(TMP_SUFFIX) + "$")
    for p in out.rglob(".*" + TMP_SUFFIX):
        if pattern.match(p.name) and p.is_file():
            try:
                p.unlink()
            except OSError:
                pass


def read_ledger(path: str | os.PathLike) -> list[dict]:
    """The records of a job's ledger (OUT/manifest.jsonl) in file order; a torn line (a driver
    killed mid-write) is left out. Output paths are relative to the ledger's folder (absolute
    in ledgers written before that). Not realedit.manifest.read_manifest: that reads a model's
    manifest."""
    return _read_lines(path)[0]


def _read_lines(path) -> tuple[list[dict], int]:
    """(records, number of lines that are not a JSON object)."""
    out, bad = [], 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
                rec = None
            if isinstance(rec, dict):
                out.append(rec)
            elif line.strip():
                bad += 1
    return out, bad


def repair_torn_tail(path: Path) -> str | None:
    """A ledger whose last line lacks its newline (a driver killed mid-write): the line is cut
    off when it is not whole JSON (else the next line appended would be glued to it and lost),
    or given its newline when it is. Returns what was done, to be said, or None."""
    with open(path, "rb+") as fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return None
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return None
        start, block = end, 1 << 16       # find the last newline, reading backwards
        while start > 0:
            start = max(0, start - block)
            fh.seek(start)
            i = fh.read(end - start).rfind(b"\n")
            if i >= 0:
                start += i + 1
                break
        fh.seek(start)
        tail = fh.read()
        try:
            whole = isinstance(json.loads(tail), dict)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            whole = False
        if whole:
            fh.write(b"\n")
            what = "had no newline (a crash right after writing it); the newline was added"
        else:
            fh.truncate(start)
            what = (f"was torn ({len(tail)} bytes: the job was killed while writing it) and was "
                    "removed; a photo it recorded is done again")
        fh.flush()
        os.fsync(fh.fileno())
    return f"{path}: the last line {what}"


def _diff(a, b) -> str:
    a, b = a or {}, b or {}
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} then, {b.get(k)!r} now" for k in keys[:3])
