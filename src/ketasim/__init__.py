"""ketasim: an in-silico laboratory for ketamine's rapid antidepressant action.

The public API is flat::

    import ketasim as ks
    sc = ks.load_scenario("examples/seed_crossover.toml")   # or ks.default_scenario()
    result = ks.run(sc)            # RunResult: .data (xarray), .summary (pandas), .manifest
    ks.catalog().drug("ketamine")  # drug data with sources

Units: time in hours, plasma concentrations in ng/mL, unbound brain concentrations in uM,
amounts in nmol inside the model; see docs/model.md.
"""

from __future__ import annotations

from typing import Any

from ketasim._version import __version__
from ketasim.catalog import Catalog, catalog
from ketasim.errors import (
    ArgumentError,
    CaseError,
    CatalogError,
    KetasimError,
    SBMLExportError,
    ScenarioError,
    SimulationError,
)
from ketasim.result import RunResult


def load_scenario(source: Any) -> Any:
    """Load and validate a scenario from a TOML path or a dict (raises ScenarioError)."""
    from ketasim.scenario import load_scenario as _load

    return _load(source)


def default_scenario() -> Any:
    """The built-in default scenario: the seed's saline-controlled crossover."""
    from ketasim.scenario import default_scenario as _default

    return _default()


def run(scenario: Any, progress: Any = None) -> RunResult:
    """Simulate a scenario (a Scenario, a dict or a path); return a RunResult.

    ``progress`` is an optional callable ``progress(advance, total=None)``.
    """
    from ketasim.experiments.run import run as _run

    if not hasattr(scenario, "arms"):
        scenario = load_scenario(scenario)
    return _run(scenario, progress)


__all__ = [
    "ArgumentError", "CaseError", "Catalog", "CatalogError", "KetasimError", "RunResult",
    "SBMLExportError", "ScenarioError", "SimulationError",
    "__version__", "catalog", "default_scenario", "load_scenario", "run",
]
