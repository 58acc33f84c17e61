"""Dask clusters as executors for ketasim runs (``pip install 'ketasim[dask]'``).

``local:N`` starts a :class:`distributed.LocalCluster` of N worker processes with one
thread each, bound to 127.0.0.1 (scheduler, workers and the dashboard); an address joins a
running scheduler (a SLURM or Kubernetes cluster: docs/distributed.md). Either way the
run submits its chunks through ``client.get_executor()``; Dask retries a chunk whose worker
died (up to ``distributed.scheduler.allowed-failures`` times), and because every chunk is
a pure function of the scenario and its subjects' global indices, the result is the same.

Workers of a local cluster get NUMBA_NUM_THREADS (and the BLAS thread counts) set to their
thread count, so N workers use N cores, not N x cores; the fast engine's compiled models
are compiled once by the client before the chunks are submitted and loaded by the workers
from the shared cache (``KETASIM_CACHE_DIR``, default ``~/.cache/ketasim``).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any

from ketasim.errors import ArgumentError, KetasimError

__all__ = ["dask_executor", "parse_cluster"]

LOCAL = re.compile(r"local:([0-9]{1,4})")
CONNECT_TIMEOUT_S = 30


def parse_cluster(text: str) -> int:
    """``"local:N"`` -> N (workers on this machine); KetasimError (one line) otherwise."""
    m = LOCAL.fullmatch(str(text).strip())
    if m is None or int(m.group(1)) < 1:
        raise ArgumentError("cluster", f'"{text}" is not allowed; use local:N (N >= 1 worker '
                            "processes on this machine), or the address of a running "
                            "scheduler as scheduler=ADDRESS")
    return int(m.group(1))


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise KetasimError("Dask is not installed: pip install 'ketasim[dask]'") from None
    return distributed


@contextlib.contextmanager
def dask_executor(cluster: str | None = None, scheduler: str | None = None,
                  say: Callable[[str], None] | None = None,
                  worker_env: Mapping[str, str] | None = None) -> Iterator[Executor]:
    """``client.get_executor()`` of a new local cluster or a running scheduler; closed
    (and the local cluster stopped) on exit. ``say`` is told the dashboard's address;
    ``worker_env`` is set in the local cluster's worker processes (the thread counts)."""
    distributed = _dask()
    local = None
    with contextlib.ExitStack() as stack:
        if cluster is not None:
            n = parse_cluster(cluster)
            env = dict(worker_env or {})
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=env))
            client = stack.enter_context(distributed.Client(local))
        else:
            try:
                client = stack.enter_context(distributed.Client(
                    scheduler, timeout=f"{CONNECT_TIMEOUT_S}s"))
            except (OSError, TimeoutError, ValueError) as exc:
                raise ArgumentError("scheduler", f'cannot reach "{scheduler}" '
                                    f"({' '.join(str(exc).split())})") from None
        if say is not None:
            workers = len(client.scheduler_info().get("workers", {}))
            link = client.dashboard_link or "none (pip install bokeh for one)"
            say(f"Dask: {workers} workers; dashboard {link}")
        yield client.get_executor()
