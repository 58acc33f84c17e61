"""Error hierarchy: one root for every domain error ketasim raises.

Bad calls to the Python API raise ``ValueError`` naming the argument; problems with a
scenario, the catalog or a simulation raise a subclass of :class:`KetasimError`.
"""

from __future__ import annotations


class KetasimError(Exception):
    """Root of every domain error raised by ketasim."""


class ScenarioError(KetasimError):
    """A scenario that cannot be run: one field, its value and what is allowed.

    ``str(err)`` is the single line the command line prints before exiting with status 2.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = value if isinstance(value, str) else repr(value)
        if isinstance(value, str):
            shown = f'"{value}"'
        super().__init__(f"{field}: {shown} {allowed}")


class CatalogError(KetasimError):
    """A drug or species data file that does not validate, or an unknown name."""


class SimulationError(KetasimError):
    """A failure of the whole simulation (single-subject failures are statuses)."""


class SBMLExportError(KetasimError):
    """The model or protocol uses something the SBML exporter cannot write as SBML."""


class WorkerLostError(SimulationError):
    """A worker process died and its executor does not retry the task (a process pool), or
    gave up after retries (Dask): the run stopped; the chunks it finished are kept, and a
    resumed run (``--resume``) continues from them."""
