"""What a job does to each photo. The local engine streams photos through realedit.stream (the
engine `realedit PHOTOS...` runs on); Ray runs the same two stages as its own tasks: `prepare`
(read, detect, align) and `process` (invert a batch of faces from many photos). Either way each
photo ends in `finish` (edit, paste, write, its Record), so local and Ray jobs make the same
files.

A failure of one photo becomes a failed Record for that photo alone; nothing it started
writing is left behind (outputs go to a temporary name first, see realedit.io.write_image).
"""
from __future__ import annotations

import errno
import functools
import os
import socket
import time
from typing import Sequence

from ..errors import OutputError, RealeditError
from .job import JobSpec, Record, Task, file_digest

# Errors of the output folder itself, not of one photo: every photo written there would fail
# the same way (no permission, read-only or full file system, a file where a folder must be).
FOLDER_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                           errno.EEXIST, errno.ENOTDIR, errno.EIO})


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _failure(task: Task, exc: BaseException, stage: str, timings: dict | None = None) -> Record:
    if isinstance(exc, RealeditError):
        msg, code = str(exc), exc.exit_code
    else:  # a bug on one photo must not stop the job; say what it was
        msg, code = f"internal error in {stage}: {type(exc).__name__}: {exc}", 1
    return Record(task.key, task.src, "failed", error=msg, exit_code=code,
                  timings=dict(timings or {}), worker=worker_id())


@functools.lru_cache(maxsize=2)
def load_editor(spec: JobSpec):
    """One Editor per process and job settings (a worker process serves one job). Its torch
    threads: spec.threads when given, else chosen per batch from the CPUs free at the time
    (realedit.threads)."""
    from ..pipeline import Editor

    detector = None  # the process-wide default, as `realedit PHOTOS...` has it
    if spec.detector != "hog" or spec.min_face is not None:
        from ..align import Detector

        detector = Detector(spec.detector, min_face=spec.min_face)
    editor = Editor.from_pretrained(spec.model, inverter=spec.inverter, space=spec.space,
                                    steps=spec.steps, device=spec.device, threads=spec.threads,
                                    detector=detector)
    editor.check_edits(spec.edits, spec.keep)
    from ..args import DEFAULT_DETAIL
    from ..blend.transfer import strategy

    strategy(spec.detail or DEFAULT_DETAIL, spec.blend or "alpha")  # a bad mode fails the job now
    return editor


def prepare_options(editor, spec: JobSpec) -> dict:
    """What Ray's CPU stage needs from the model (its input size, the smallest face it takes),
    so CPU workers never load the network."""
    return {"faces": spec.faces, "resolution": int(editor.G.resolution),
            "min_face": float(editor.min_face), "detect_min_face": spec.min_face,
            "detector": spec.detector}


def prepare(opts: dict, task: Task):
    """Ray's CPU stage: the photo read, its faces found and aligned (a PreparedPhoto), or the
    failed Record that ends this photo."""
    from ..prepare import prepare_photo
    from ..stream import local_detector

    t0 = time.perf_counter()
    try:
        # one per thread (a dlib detector keeps the image it scans), made once per thread
        det = local_detector(opts.get("detector") or "hog", opts.get("detect_min_face"))
        return prepare_photo(task.src, opts["faces"], resolution=opts["resolution"],
                             min_face=opts["min_face"], detector=det)
    except Exception as exc:  # noqa: BLE001 - isolated per photo, reported in its record
        return _failure(task, exc, "prepare", {"prepare": time.perf_counter() - t0})


def process(spec: JobSpec, tasks: Sequence[Task], prepared: Sequence) -> list[Record]:
    """Ray's network stage for a batch: one inversion over all faces of the prepared photos,
    then each photo edited and written (`finish`). Returns one Record per task, in order."""
    editor = load_editor(spec)
    records: list[Record | None] = [None] * len(tasks)
    todo = []
    for i, (t, p) in enumerate(zip(tasks, prepared)):
        if isinstance(p, Record):
            records[i] = p
        else:
            todo.append(i)
    if todo:
        inverted = editor.invert_each([prepared[i] for i in todo], batch=len(todo))
        for i, inv in zip(todo, inverted):
            records[i] = finish(editor, spec, tasks[i], inv)
    return records  # type: ignore[return-value]


def finish(editor, spec: JobSpec, task: Task, inverted) -> Record:
    """The Record of one photo out of the inversion (an InvertedPhoto, or the exception that
    ended it while it was read, detected, aligned or inverted): edited and written, or failed.
    Both engines end every photo here."""
    if isinstance(inverted, BaseException):
        return _failure(task, inverted, "prepare or invert")
    t = inverted.timings
    timings = {"prepare": round(sum(float(t.get(k, 0.0)) for k in ("read", "detect", "align")), 4),
               "invert": round(float(t.get("invert", 0.0)), 4)}
    return _edit_and_write(editor, spec, task, inverted, timings)


def _folder_error(exc: BaseException) -> OSError | None:
    """The OSError behind a failed write when it is the output folder's (FOLDER_ERRNOS)."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in FOLDER_ERRNOS:
        return cause
    return None


def _edit_and_write(editor, spec: JobSpec, task: Task, inverted, timings: dict) -> Record:
    from pathlib import Path

    from ..io import write_image

    try:
        t0 = time.perf_counter()
        how = {k: v for k, v in (("blend", spec.blend), ("detail", spec.detail)) if v is not None}
        result = editor.apply(inverted, spec.edits, spec.keep, **how)
        timings["edit"] = round(time.perf_counter() - t0, 4)
    except Exception as exc:  # noqa: BLE001
        return _failure(task, exc, "edit", timings)
    written: list[Path] = []
    try:
        t0 = time.perf_counter()
        dst = Path(task.outputs[0])
        dst.parent.mkdir(parents=True, exist_ok=True)
        written.append(result.save(dst))
        if spec.compare:
            written.append(write_image(task.outputs[1], result.compare_image()))
        timings["write"] = round(time.perf_counter() - t0, 4)
        from ..align.select import skipped_lines

        return Record(task.key, task.src, "ok", outputs=[file_digest(p) for p in written],
                      faces=len(result.faces), skipped=skipped_lines(result.skipped),
                      timings=timings, worker=worker_id())
    except Exception as exc:  # noqa: BLE001
        for p in written:  # no half set of outputs
            try:
                os.unlink(p)
            except OSError:
                pass
        folder = _folder_error(exc)
        if folder is None:  # this photo's own trouble (e.g. its name): an ordinary failure
            return _failure(task, exc, "write", timings)
        # the folder's: the driver stops the job, and a plain rerun redoes this photo
        return Record(task.key, task.src, "failed", exit_code=OutputError.exit_code,
                      error=f"{Path(task.outputs[0]).parent}: cannot write the output there "
                            f"({folder.strerror or folder})",
                      timings=timings, worker=worker_id(), cause="output")
