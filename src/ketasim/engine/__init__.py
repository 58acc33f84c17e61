"""Integration engines: ``reference`` (SciPy LSODA per subject, the accuracy oracle),
``batched`` (SciPy BDF on the stacked cohort) and ``fast`` (numba Rosenbrock per subject,
parallel; needs numba); ``auto`` is :func:`default_engine`. All share
``simulate(model, P, y0, protocol, t_out, t0, ...)`` (:class:`ketasim.engine.base.Engine`)
and return :class:`ketasim.engine.base.Trajectories`."""

from __future__ import annotations

import importlib
from typing import cast

from ketasim.engine.base import Engine

ENGINES = ("auto", "reference", "batched", "fast")


# Population size from which ``auto`` uses the fast engine. Measured on the default
# scenario (2-core Xeon, see ketasim.engine.fast): ``batched`` costs ~5 s per cohort plus
# ~0.1 s per subject; ``fast`` ~0.006 s per subject once compiled, but the first run of a
# model compiles it for ~2 min (cached afterwards). 1,000 subjects is where fast wins even
# when it has to compile; below that a cold compile costs more than it saves.
AUTO_FAST_FROM = 1_000


def default_engine(n_subjects: int | None = None) -> str:
    """The engine ``auto`` means: ``fast`` where numba can be imported and the population
    has at least :data:`AUTO_FAST_FROM` subjects (``n_subjects`` None: any size), else
    ``batched``. Without numba (the ``fast`` extra) ``batched`` needs only SciPy.

    The choice depends on the scenario only, never on the state of numba's cache, so the
    same scenario always runs on the same engine.
    """
    if n_subjects is not None and n_subjects < AUTO_FAST_FROM:
        return "batched"
    try:
        importlib.import_module("numba")
    except ImportError:
        return "batched"
    return "fast"


def get(name: str) -> Engine:
    """The engine module called ``name`` (imported on first use); see
    :class:`ketasim.engine.base.Engine` for its interface."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    if name == "auto":
        name = default_engine()
    return cast(Engine, importlib.import_module(f"ketasim.engine.{name}"))
