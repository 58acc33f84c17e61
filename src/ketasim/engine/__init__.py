"""Integration engines: ``reference`` (SciPy LSODA per subject, the accuracy oracle),
``batched`` (SciPy BDF on the stacked cohort) and ``fast`` (numba Rosenbrock per subject,
parallel; needs numba). All share ``simulate(model, P, y0, protocol, t_out, t0, ...)``."""

from __future__ import annotations

import importlib
from types import ModuleType

ENGINES = ("reference", "batched", "fast")


def get(name: str) -> ModuleType:
    """The engine module called ``name`` (imported on first use)."""
    if name not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {name!r}")
    return importlib.import_module(f"ketasim.engine.{name}")
