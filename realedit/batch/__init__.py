"""Large, resumable batch jobs: a folder, glob or list of photos edited on this machine or on
a Ray cluster, with a JSON-lines ledger that makes reruns finish the job without redoing or
losing a photo. `realedit batch` is the command; `run_job` the same from Python.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .job import (MANIFEST, JobSpec, Ledger, Record, Task, list_inputs, plan_tasks, read_ledger,
                  remove_stale_temporaries)

__all__ = ["JobSpec", "JobSummary", "run_job", "list_inputs", "plan_tasks", "read_ledger",
           "Record", "Task", "MANIFEST"]


@dataclass
class JobSummary:
    total: int
    already_done: int
    skipped_failed: int
    done: int
    failed: int
    seconds: float
    manifest: Path

    @property
    def complete(self) -> bool:
        return self.failed == 0 and self.skipped_failed == 0


def run_job(sources: Sequence[str], out, spec: JobSpec, *, engine: str = "local",
            address: str | None = None, workers: int = 1, cpu_workers: int = 1,
            batch: int = 8, retry_failed: bool = False, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0, num_cpus: int | None = None,
            on_start: Callable[[int, int, int], None] | None = None,
            on_record: Callable[[Record], None] | None = None,
            on_progress: Callable[[dict], None] | None = None,
            on_warning: Callable[[str], None] | None = None) -> JobSummary:
    """Edit every photo of ``sources`` into ``out`` (see `realedit batch --help`).

    on_warning: told what opening the ledger found and repaired (a torn last line); logged
    by default. Raises OutputError when the output folder refuses a write (the job stops
    there; a plain rerun redoes the photos that failed so)."""
    import logging
    import time

    from ..errors import RealeditError, UsageError
    from .engines import LocalEngine, RayEngine, drive

    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine {engine!r}: use local or ray")
    if batch < 1 or workers < 1 or cpu_workers < 0:
        raise UsageError("batch and workers must be >= 1, cpu workers >= 0")
    inputs = list_inputs(sources)
    if not inputs:
        raise UsageError("no photos found in " + ", ".join(map(str, sources)))
    tasks = plan_tasks(inputs, Path(out), compare=spec.compare)
    t0 = time.perf_counter()
    with Ledger(Path(out), spec, len(tasks)) as ledger:
        for note in ledger.warnings:
            (on_warning or logging.getLogger("realedit.batch").warning)(note)
        todo, already, skipped = ledger.pending(tasks, retry_failed=retry_failed)
        if on_start:
            on_start(len(tasks), already, skipped)
        if todo:
            try:
                if engine == "ray":
                    eng = RayEngine(spec, address=address, workers=workers,
                                    cpus_per_worker=cpus_per_worker,
                                    gpus_per_worker=gpus_per_worker, num_cpus=num_cpus)
                else:
                    eng = LocalEngine(spec, cpu_workers=cpu_workers)
            except RealeditError:
                ledger.discard()  # nothing ran: leave no job folder behind
                raise
            try:
                drive(eng, todo, ledger, batch=batch, on_record=on_record, on_progress=on_progress)
                # every photo came back, so no writer is live: a worker killed mid-write left
                # its temporary behind (its photo was redone elsewhere)
                remove_stale_temporaries(Path(out))
            finally:
                eng.shutdown()
        return JobSummary(len(tasks), already, skipped, ledger.done_now, ledger.failed_now,
                          time.perf_counter() - t0, ledger.path)
