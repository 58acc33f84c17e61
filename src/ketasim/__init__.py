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
from ketasim.catalog import Catalog, catalog, load_catalog
from ketasim.errors import (
    ArgumentError,
    CaseError,
    CatalogError,
    KetasimError,
    SBMLExportError,
    ScenarioError,
    SimulationError,
    WorkerLostError,
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


def run(scenario: Any, progress: Any = None, *, executor: Any = None,
        chunk_size: int | None = None, checkpoint: Any = None,
        keep_subjects: bool | None = None) -> RunResult:
    """Simulate a scenario (a Scenario, a dict or a path); return a RunResult.

    ``progress`` is an optional callable ``progress(advance, total=None)``. ``executor``:
    any ``concurrent.futures.Executor`` (a process pool, Dask's ``client.get_executor()``)
    runs the chunks of subjects (``chunk_size`` each; default: whole cohorts, or 10,000
    subjects above 20,000 human subjects) in its workers, with the same numbers as a serial
    run. ``checkpoint``: a folder that keeps finished chunks, so a run killed half-way
    resumes from it. ``keep_subjects``: keep every subject of a chunked run in ``data``.
    """
    from ketasim.experiments.run import run as _run

    if not hasattr(scenario, "arms"):
        scenario = load_scenario(scenario)
    return _run(scenario, progress, keep_subjects=keep_subjects, chunk_size=chunk_size,
                executor=executor, checkpoint=checkpoint)


def run_default(progress: Any = None, single: Any = None) -> RunResult:
    """The built-in study set of ``ketasim run`` without a file: the seed's crossover
    (``single``, default :func:`default_scenario`) plus the six-infusion course, with the
    seed's Table 1 in ``extra_tables["table1"]``."""
    from ketasim.analysis.table1 import run_default as _run_default

    return _run_default(progress, single=single, simulate=run)


def write_results(result: RunResult, out: Any, overwrite: bool = False,
                  subjects: bool | None = None) -> list[Any]:
    """Write summary.csv, subjects.parquet, manifest.json and report.html into the
    directory ``out``, atomically (see :mod:`ketasim.io.results`); return the paths."""
    from ketasim.io.results import write_results as _write

    return _write(result, out, overwrite=overwrite, subjects=subjects)


__all__ = [
    "ArgumentError", "CaseError", "Catalog", "CatalogError", "KetasimError", "RunResult",
    "SBMLExportError", "ScenarioError", "SimulationError", "WorkerLostError",
    "__version__", "catalog", "default_scenario", "load_catalog", "load_scenario", "run",
    "run_default", "write_results",
]
