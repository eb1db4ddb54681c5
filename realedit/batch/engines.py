"""Two ways to run the same job: in this process ("local": realedit.stream, the engine
`realedit PHOTOS...` runs on), or on a Ray cluster ("ray"). An engine turns tasks into Records
(`records`); `drive` keeps the ledger: it records each photo as it comes, writes progress, and
stops the job when the output folder refuses a write.

Ray's stages: ``prepare`` (decode, detect, align; CPU) runs as many small tasks; ``process``
(batched inversion + edit + write) runs on actors that each hold one loaded model. Its loop
keeps a bounded window of photos in flight, so memory stays flat on a 200 000-photo job, and
hands prepared photos to the actors in batches as soon as a batch is full (or the CPU stage
has nothing more to give).
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator, Sequence

from ..errors import OutputError, RealeditError, UsageError
from . import work
from .job import JobSpec, Ledger, Record, Task


class LocalEngine:
    """realedit.stream in this process: ``cpu_workers`` threads (at least one) read, detect
    and align photos, each with its own detector, while this thread inverts their faces
    ``batch`` at a time, then edits and writes each photo. No process is started, so a plain
    script needs no ``if __name__ == "__main__"`` guard."""

    name = "local"

    def __init__(self, spec: JobSpec, cpu_workers: int = 1):
        self.spec = spec
        self.workers = max(int(cpu_workers), 1)
        # load the model now: a bad --model fails before any photo is touched
        self.editor = work.load_editor(spec)

    def records(self, tasks: Sequence[Task], *, batch: int) -> Iterator[list[Record]]:
        """[Record] per task, in order."""
        from ..stream import invert_stream

        stream = invert_stream(self.editor, [t.src for t in tasks], self.spec.faces, batch=batch,
                               workers=self.workers)
        with contextlib.closing(stream):  # stopped early: the prepare threads are let go
            for task, (_, inverted) in zip(tasks, stream):
                yield [work.finish(self.editor, self.spec, task, inverted)]

    def shutdown(self):
        pass


class RayEngine:
    """Prepare as Ray tasks; process on ``workers`` Ray actors, each holding one Editor.
    Actors restart when their process dies and the call in flight is retried (outputs are
    written under their final names only when complete, so a retry cannot leave two)."""

    name = "ray"

    def __init__(self, spec: JobSpec, *, address: str | None = None, workers: int = 1,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0,
                 num_cpus: int | None = None):
        if not address:
            # A new one-machine cluster: Ray's single-node switch (read when ray is imported)
            # keeps its sockets on 127.0.0.1 instead of the machine's network address.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError:
            raise UsageError("--engine ray needs Ray: pip install 'realedit[cluster]'") from None
        self.ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            kw = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False,
                  "ignore_reinit_error": True}
            if address:
                kw["address"] = address
            elif num_cpus:
                kw["num_cpus"] = int(num_cpus)
            try:
                ray.init(**kw)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UsageError(f"cannot reach a Ray cluster at {address or 'a new local one'}: "
                                 f"{exc}".splitlines()[0]) from None
        self.spec = spec
        self.slots = max(int(workers), 1)
        # The CPU stage needs a CPU the actors have not reserved, or its tasks wait forever.
        cpus = ray.cluster_resources().get("CPU", 0)
        if self.slots * cpus_per_worker > cpus - 1:
            if self._owns:
                ray.shutdown()
            raise UsageError(f"{self.slots} workers x {cpus_per_worker:g} CPUs leave none of the "
                             f"cluster's {cpus:g} CPUs for decoding and detection: lower --workers "
                             "or --cpus-per-worker")
        self._prepare = ray.remote(num_cpus=1, max_retries=3)(work.prepare)
        actor_cls = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                               max_restarts=-1, max_task_retries=-1)(_EditActor)
        self._actors = [actor_cls.remote(spec) for _ in range(self.slots)]
        self._busy: dict = {}  # process ref -> actor
        # every actor loads its model now: a bad model fails before the job starts
        try:
            self._opts = ray.get([a.prepare_options.remote() for a in self._actors])[0]
        except ray.exceptions.RayTaskError as exc:
            self.shutdown()
            cause = getattr(exc, "cause", None)
            if isinstance(cause, RealeditError):  # e.g. a bad --model: its own one-line error
                raise cause from None
            raise

    def records(self, tasks: Sequence[Task], *, batch: int,
                window: int | None = None) -> Iterator[list[Record] | None]:
        """Each batch's Records as it finishes (in the order batches finish), and None about
        once a second while nothing finishes. window: photos in flight at most (prepared or
        being prepared, and being processed)."""
        batch = max(int(batch), 1)
        window = window or max(4 * batch * self.slots, 16)
        todo = list(tasks)[::-1]            # pop() from the end keeps the input order
        preparing: dict = {}                # handle -> task
        ready: list = []                    # (task, handle) prepared, waiting for an actor
        processing: dict = {}               # handle -> tasks
        in_flight = 0
        while todo or preparing or ready or processing:
            while todo and in_flight < window:
                t = todo.pop()
                preparing[self._submit_prepare(t)] = t
                in_flight += 1
            # hand full batches (or the tail, once nothing is being prepared) to free actors
            while ready and len(processing) < self.slots and (len(ready) >= batch or not preparing):
                chunk, ready = ready[:batch], ready[batch:]
                h = self._submit_process([t for t, _ in chunk], [p for _, p in chunk])
                processing[h] = [t for t, _ in chunk]
            handles = list(preparing) + list(processing)
            if not handles:
                continue
            done = self._wait(handles, timeout=1.0)
            if not done:
                yield None
            for h in done:
                if h in preparing:
                    ready.append((preparing.pop(h), h))
                else:
                    processing.pop(h)
                    recs = self._result(h)
                    in_flight -= len(recs)
                    yield recs

    def _submit_prepare(self, task: Task):
        return self._prepare.remote(self._opts, task)

    def _submit_process(self, tasks, prepared_handles):
        idle = [a for a in self._actors if a not in self._busy.values()]
        actor = idle[0]
        # the prepared photos travel worker-to-worker through the object store, not via here
        ref = actor.process.remote(list(tasks), *prepared_handles)
        self._busy[ref] = actor
        return ref

    def _wait(self, handles, timeout):
        done, _ = self.ray.wait(list(handles), num_returns=1, timeout=timeout)
        return done

    def _result(self, handle):
        self._busy.pop(handle, None)
        return self.ray.get(handle)

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self._actors])

    def shutdown(self):
        for a in self._actors:
            self.ray.kill(a)
        if self._owns:
            self.ray.shutdown()


class _EditActor:
    def __init__(self, spec: JobSpec):
        self.spec = spec  # the model loads on first use (lazily, also after a restart)

    def _editor(self):
        editor = work.load_editor(self.spec)
        if self.spec.threads is None:
            # Ray set OMP_NUM_THREADS to this actor's CPUs (unless the user did): a ceiling
            # for the thread count chosen from the free CPUs, not a fixed count.
            import math

            import ray

            from ..threads import Governor, env_threads

            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            ray_set = max(math.floor(cpus or 1), 1)
            if env_threads() == ray_set and editor.threads.limit is None:
                editor.threads = Governor(limit=ray_set)
        return editor

    def prepare_options(self) -> dict:
        return work.prepare_options(self._editor(), self.spec)

    def pid(self) -> int:
        import os
        return os.getpid()

    def process(self, tasks, *prepared):
        self._editor()
        return work.process(self.spec, tasks, prepared)


def drive(engine, tasks: Sequence[Task], ledger: Ledger, *, batch: int = 8,
          on_record: Callable[[Record], None] | None = None,
          on_progress: Callable[[dict], None] | None = None, progress_every: float = 5.0) -> None:
    """Run ``tasks`` on ``engine``, recording each finished photo in ``ledger`` as it comes."""
    import time

    last_progress = time.monotonic()
    remaining = len(tasks)
    with contextlib.closing(engine.records(tasks, batch=max(int(batch), 1))) as finished:
        for records in finished:  # None: nothing finished for a while
            stop = None
            for rec in records or ():
                ledger.record(rec)
                remaining -= 1
                if on_record:
                    on_record(rec)
                if rec.cause == "output" and stop is None:
                    stop = rec
            if stop is not None:
                # the output folder refused a write: every further photo would be inverted for
                # nothing and fail the same way
                ledger.write_progress(remaining)
                raise OutputError(f"{stop.error}; the job stopped there (every photo would fail "
                                  "the same way): fix the output folder and rerun the same "
                                  "command, which redoes the photos that failed so")
            now = time.monotonic()
            if now - last_progress >= progress_every:
                last_progress = now
                p = ledger.write_progress(remaining)
                if on_progress:
                    on_progress(p)
    p = ledger.write_progress(0)
    if on_progress:
        on_progress(p)
