"""Integration engines: ``reference`` (SciPy LSODA per subject, the accuracy oracle),
``batched`` (SciPy BDF on the stacked cohort) and ``fast`` (numba Rosenbrock over groups of
subjects in lockstep lanes, parallel; needs numba); ``auto`` is :func:`default_engine`. All share
``simulate(model, P, y0, protocol, t_out, t0, ...)`` (:class:`ketasim.engine.base.Engine`)
and return :class:`ketasim.engine.base.Trajectories`."""

from __future__ import annotations

import importlib
from typing import cast

from ketasim.engine.base import Engine

ENGINES = ("auto", "reference", "batched", "fast")


def default_engine(n_subjects: int | None = None) -> str:
    """The engine ``auto`` means: ``fast`` where numba can be imported, at every population
    size, else ``batched`` (which needs only SciPy). ``n_subjects`` is accepted for
    callers that pass the cohort size; the choice no longer depends on it.

    ``fast`` runs every model on one compiled interpreter (compiled once per installation
    and cached), so a new model costs a tape build of about a second, not a compilation;
    that is why ``auto`` no longer keeps small cohorts on ``batched``.
    """
    del n_subjects
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
