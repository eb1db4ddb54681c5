"""The engine for many photos: worker threads read, detect and align photos (the prepare
stage) while the network inverts the faces of several photos in one batch. `realedit PHOTOS...`
(through Editor.invert_many) and `realedit batch`'s local engine (realedit.batch.engines) both
run on `invert_stream`; they differ only in what they do with each inverted photo (the CLI's
output names and messages; the batch job's ledger).

Threads, not processes: reading (PIL), detection (dlib) and alignment (OpenCV) release the GIL
while they work, and a thread needs no new interpreter. Worker processes started with spawn or
forkserver import the caller's main script again: a plain script that calls `invert_many` or
`run_job` at top level (README's example, without an ``if __name__ == "__main__"`` guard) ran
itself once per worker and hung, or failed with BrokenProcessPool. A dlib detector keeps the
image it scans inside itself, so each thread has its own (the 68-point model is shared: it is
read-only).
"""
from __future__ import annotations

import concurrent.futures as cf
import copy
import os
import threading
from collections import deque

import torch

from .errors import UsageError
from .prepare import PreparedPhoto, prepare_photo

_END = object()
_local = threading.local()


def default_workers(device) -> int:
    """Threads that read/detect/align while the network works: with a GPU, most cores
    (up to 8); on the CPU one, beside the torch thread(s) (bench/edit.py measures it)."""
    cores = os.cpu_count() or 1
    if torch.device(device).type == "cpu":
        return 1 if cores >= 2 else 0
    return max(1, min(8, cores - 2))


def thread_detector(detector):
    """A detector with ``detector``'s settings for one worker thread (None: the default
    settings). A callable that is not a Detector is shared as given."""
    from .align.detect import Detector

    if detector is None:
        return Detector().load()
    if isinstance(detector, Detector):  # its state leaves dlib's models out: loaded here
        return copy.copy(detector).load()
    return detector


def local_detector(kind: str = "hog", min_face: float | None = None):
    """This thread's detector of ``kind`` and ``min_face``, made once per thread: building a
    detector's dlib HOG models costs ~0.3 s."""
    from .align.detect import Detector

    cache = _local.__dict__.setdefault("detectors", {})
    if (kind, min_face) not in cache:
        cache[kind, min_face] = Detector(kind, min_face=min_face).load()
    return cache[kind, min_face]


def _prepare_job(src, faces, opts):
    """A PreparedPhoto, or the exception it raised (each photo fails alone)."""
    try:
        return prepare_photo(src, faces, **opts)
    except Exception as exc:  # noqa: BLE001 - isolated per photo, re-raised nowhere
        return exc


def prepared_stream(photos, faces, *, resolution: int, min_face: float, detector=None,
                    workers: int = 1, ahead: int = 0):
    """(input, PreparedPhoto or exception) per photo, in order; prepared in ``workers``
    threads (0: here) up to ``ahead`` photos ahead of the consumer (a whole next batch can be
    made while this one is inverted; bounded, so memory stays flat on long folders)."""
    from .align.select import parse_policy

    parse_policy(faces)  # a bad policy is the caller's error, not every photo's
    opts = dict(resolution=resolution, min_face=min_face, detector=detector)
    if workers == 0:
        for src in photos:
            yield src, _prepare_job(src, faces, opts)
        return

    local = threading.local()  # this stream's threads: each its own detector

    def job(src):
        if not hasattr(local, "opts"):
            local.opts = dict(opts, detector=thread_detector(detector))
        return _prepare_job(src, faces, local.opts)

    with cf.ThreadPoolExecutor(workers, thread_name_prefix="realedit-prepare") as pool:
        queue: deque = deque()
        it = iter(photos)
        try:
            for src in it:
                queue.append((src, pool.submit(job, src)))
                if len(queue) >= max(ahead, 2 * workers):
                    break
            while queue:
                src, fut = queue.popleft()
                nxt = next(it, _END)
                if nxt is not _END:
                    queue.append((nxt, pool.submit(job, nxt)))
                try:
                    yield src, fut.result()
                except Exception as exc:  # noqa: BLE001 - this photo fails alone
                    yield src, exc
        finally:  # the consumer stopped early (or Ctrl-C): photos not started are dropped
            for _, fut in queue:
                fut.cancel()


def invert_stream(editor, photos, faces="largest", *, batch: int | None = None,
                  workers: int | None = None, progress=None):
    """``(input, InvertedPhoto or the exception)`` for each photo, in input order: the
    photos prepared in ``workers`` threads, their faces inverted ``batch`` at a time by
    ``editor`` (see Editor.invert_many)."""
    from .device import default_batch

    batch = default_batch(editor.device) if batch is None else int(batch)
    if batch < 1:
        raise UsageError(f"batch must be >= 1, got {batch}")
    workers = default_workers(editor.device) if workers is None else int(workers)
    if workers < 0:
        raise UsageError(f"workers must be >= 0, got {workers}")
    pending: list = []   # (input, PreparedPhoto or exception), in input order

    def flush():
        ready = [p for _, p in pending if isinstance(p, PreparedPhoto)]
        done = iter(editor.invert_each(ready, batch=batch, progress=progress))
        for src, p in pending:
            yield src, (next(done) if isinstance(p, PreparedPhoto) else p)
        pending.clear()

    n_faces = 0
    stream = prepared_stream(photos, faces, resolution=editor.G.resolution,
                             min_face=editor.min_face, detector=editor.detector,
                             workers=workers, ahead=batch + 2 * workers)
    for src, prepared in stream:
        pending.append((src, prepared))
        if isinstance(prepared, PreparedPhoto):
            n_faces += len(prepared.faces)
        if n_faces >= batch:
            yield from flush()
            n_faces = 0
    yield from flush()
