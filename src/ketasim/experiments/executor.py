"""Chunks of work through any :class:`concurrent.futures.Executor`, in order, resumable.

A run, a power analysis or a validation is a list of independent *tasks* (chunks of
subjects, batches of replicates, scenarios), each a call of one top-level function.
:func:`run_tasks` runs them in this process (``executor=None``), in a process pool, or on a
Dask cluster (``client.get_executor()``), and hands the results back **in task order**, so
whatever is merged from them is merged in the same order whoever computed them: the
numbers are the same serial, with 2 processes, or on any number of Dask workers (every
random draw is keyed by the global subject index, never by the worker).

With a :class:`Checkpoint`, every finished task's result is written to a folder as it
arrives (atomically: a temporary file renamed into place), and a later call with the same
folder loads those instead of running them again: a run killed half-way resumes where it
stopped and gives the numbers of an uninterrupted one.

Executors for the command line (``--jobs N``, ``--cluster local:N``, ``--scheduler ADDR``)
come from :func:`executor_for`; the Dask ones live in :mod:`ketasim.experiments.cluster`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    wait,
)
from pathlib import Path
from typing import Any

from ketasim.errors import ArgumentError, KetasimError, WorkerLostError

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "discard_on_error", "executor_for", "limit_threads",
           "out_checkpoint", "run_tasks"]

CHECKPOINT_DIR = ".ketasim-chunks"  # inside a run's --out folder, until the run is written
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


class Checkpoint:
    """Finished tasks of one piece of work, one pickle per task, in ``folder``.

    ``fingerprint`` (JSON-able) names the work: a folder written for other work (another
    scenario, version or chunking) is refused, so a resume never mixes two runs. Files are
    written by this process only and read back by it: pickles, not for exchange.
    """

    def __init__(self, folder: Path | str, fingerprint: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        stamp = self.folder / "work.json"
        if stamp.is_file():
            if json.loads(stamp.read_text(encoding="utf-8")) != self.fingerprint:
                raise KetasimError(f"{self.folder} holds finished chunks of other work "
                                   "(another scenario, version or chunk size); delete it or "
                                   "use another folder")
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._write(stamp, json.dumps(self.fingerprint, indent=1).encode())

    @staticmethod
    def key(fingerprint: dict[str, Any]) -> str:
        """A short stable name for ``fingerprint`` (for a folder per piece of work)."""
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _path(self, index: int) -> Path:
        return self.folder / f"task-{index:06d}.pkl"

    def done(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("task-*.pkl")}

    def load(self, index: int) -> Any:
        with self._path(index).open("rb") as fh:
            return pickle.load(fh)

    def save(self, index: int, result: Any) -> None:
        self._write(self._path(index), pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with tmp.open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def out_checkpoint(out: Path | str, overwrite: bool = False, resume: bool = False) -> Path:
    """The folder inside a run's ``out`` where its finished chunks are kept until the
    results are written, once ``out`` is known to be usable (KetasimError, one line, if
    not): absent or empty; holding an interrupted run only with ``resume`` (or
    ``overwrite``, which starts again); holding anything else only with ``overwrite``."""
    out = Path(out)
    folder = out / CHECKPOINT_DIR
    if out.exists() and not out.is_dir():
        raise ArgumentError("out", f"{out} exists and is not a directory")
    other = [p for p in out.iterdir() if p.name != CHECKPOINT_DIR] if out.is_dir() else []
    if other and not overwrite:
        raise ArgumentError("out", f"{out} holds finished results, not an interrupted run; "
                            "use overwrite=True to run again" if resume else
                            f"{out} exists; use overwrite=True")
    if folder.exists() and not resume:
        if not overwrite:
            raise ArgumentError("out", f"{out} holds an interrupted run; use resume=True to "
                                "continue it or overwrite=True to start again")
        shutil.rmtree(folder)
    return folder


@contextlib.contextmanager
def discard_on_error(folder: Path | None, keep: bool = False) -> Iterator[None]:
    """A run that fails (KetasimError) leaves nothing: its chunk ``folder`` is removed,
    and the output folder around it if that leaves it empty (unless ``keep``, for a resumed
    run). An interrupted run (Ctrl-C, a kill, a lost worker) keeps its chunks for
    ``--resume``."""
    parent_existed = folder is not None and folder.parent.exists()
    try:
        yield
    except KetasimError as exc:
        if folder is not None and not keep and not isinstance(exc, WorkerLostError):
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                if not parent_existed:
                    folder.parent.rmdir()  # only if empty
        raise


def run_tasks(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]],
              executor: Executor | None = None, checkpoint: Checkpoint | None = None,
              done: Callable[[int, Any], None] | None = None) -> Iterator[Any]:
    """``fn(*task)`` for every task; the results in task order.

    ``fn`` must be a top-level function (pickled to worker processes). ``executor``: None
    runs the tasks here, one after another; any Executor gets them all submitted at once.
    ``checkpoint``: tasks found there are loaded instead of run; the others are saved there
    as they finish. ``done(index, result)`` is called as each task finishes, in the order
    they finish (progress bars). Results that finish out of order wait in memory until
    their turn.
    """
    saved = checkpoint.done() if checkpoint is not None else set()

    def finished(i: int, result: Any) -> Any:
        if checkpoint is not None and i not in saved:
            checkpoint.save(i, result)
        if done is not None:
            done(i, result)
        return result

    if executor is None:
        for i, task in enumerate(tasks):
            yield finished(i, checkpoint.load(i) if i in saved else fn(*task))  # type: ignore[union-attr]
        return
    waiting: dict[Future[Any], int] = {}
    ready: dict[int, Any] = {}
    for i, task in enumerate(tasks):
        if i in saved:
            ready[i] = finished(i, checkpoint.load(i))  # type: ignore[union-attr]
        else:
            waiting[executor.submit(fn, *task)] = i
    turn = 0
    try:
        while turn < len(tasks):
            while turn in ready:
                yield ready.pop(turn)
                turn += 1
            if turn >= len(tasks):
                break
            finished_now, _ = wait(list(waiting), return_when=FIRST_COMPLETED)
            for fut in finished_now:
                i = waiting.pop(fut)
                ready[i] = finished(i, _result(fut))
    finally:
        for fut in waiting:
            fut.cancel()


def _result(fut: Future[Any]) -> Any:
    """The task's result; a lost worker becomes one line (WorkerLostError)."""
    try:
        return fut.result()
    except Exception as exc:
        killed = getattr(sys.modules.get("distributed"), "KilledWorker", None)
        if isinstance(exc, BrokenExecutor) or (killed is not None and isinstance(exc, killed)):
            raise WorkerLostError(f"a worker process died ({type(exc).__name__}); the "
                                  "finished chunks are kept: --resume continues the run"
                                  ) from None
        raise


def limit_threads(threads: int) -> None:
    """Set the thread counts of numba and the BLAS libraries for this process (a worker
    initializer: numba reads NUMBA_NUM_THREADS when it is first imported)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(int(threads))


@contextlib.contextmanager
def executor_for(jobs: int | None = None, cluster: str | None = None,
                 scheduler: str | None = None,
                 say: Callable[[str], None] | None = None) -> Iterator[Executor | None]:
    """The executor the command line asked for, shut down on exit.

    ``jobs``: that many worker processes (spawned, one numba thread each); ``cluster``:
    ``local:N``, a Dask LocalCluster of N one-thread workers on 127.0.0.1; ``scheduler``:
    the address of a running Dask scheduler. None of them: None (run here). ``say`` gets
    one-line notes for the user (the Dask dashboard's address).
    """
    chosen = [x for x in (jobs if jobs and jobs > 1 else None, cluster, scheduler)
              if x is not None]
    if len(chosen) > 1:
        raise ArgumentError("jobs", "give only one of jobs, cluster and scheduler")
    if cluster is not None or scheduler is not None:
        from ketasim.experiments.cluster import dask_executor

        one_thread = {name: "1" for name in THREAD_VARIABLES}
        with dask_executor(cluster=cluster, scheduler=scheduler, say=say,
                           worker_env=one_thread) as ex:
            yield ex
        return
    if jobs is not None and jobs > 1:
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=mp.get_context("spawn"),
                                 initializer=limit_threads, initargs=(1,)) as pool:
            yield pool
        return
    yield None
