"""Error hierarchy: one root for every domain error ketasim raises; imports nothing.

- :class:`ScenarioError`: a scenario that cannot be run (field, value, what is allowed);
- :class:`CatalogError`: a drug or species data file that does not validate, or an unknown
  name;
- :class:`ArgumentError`: a bad argument to a library function, named in the function's
  own terms (``sizes: ...``); the command line maps the name to its flag (``--n: ...``);
- :class:`SimulationError`: a whole cohort failed (one subject's failure is its status);
- :class:`SBMLExportError`: something the SBML exporter cannot write;
- :class:`CaseError`: a validation case file that does not follow the case format.

``str(err)`` of each is the single line the command line prints before exiting with
status 2.
"""

from __future__ import annotations

from collections.abc import Mapping


class KetasimError(Exception):
    """Root of every domain error raised by ketasim."""


class ScenarioError(KetasimError):
    """A scenario that cannot be run: one field, its value and what is allowed."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        shown = f'"{value}"' if isinstance(value, str) else repr(value)
        super().__init__(f"{field}: {shown} {allowed}")


class CatalogError(KetasimError):
    """A drug or species data file that does not validate, or an unknown name."""


class ArgumentError(KetasimError, ValueError):
    """A bad argument to a library function: ``argument`` is its name in the function's
    signature (``sizes``, ``endpoint.time``), ``detail`` what is wrong and what is allowed.

    Also a ValueError, as Python expects of a bad argument value. A reference to another
    argument inside ``detail`` is written ``name=value`` (``overwrite=True``) so that
    :meth:`worded` can show it as a flag.
    """

    def __init__(self, argument: str, detail: str) -> None:
        self.argument = argument
        self.detail = detail
        super().__init__(f"{argument}: {detail}")

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with the argument, and any ``name=value`` reference in the detail
        that ``names`` lists, replaced by their names in ``names`` (the command line's
        flags: ``{"sizes": "--n", "overwrite=True": "--overwrite"}``)."""
        detail = self.detail
        for lib, shown in names.items():
            if "=" in lib:
                detail = detail.replace(lib, shown)
        return f"{names.get(self.argument, self.argument)}: {detail}"


class SimulationError(KetasimError):
    """A whole cohort failed to integrate (every subject of it); a single subject's failure
    is that subject's status, never an exception."""


class SBMLExportError(KetasimError):
    """The model or protocol uses something the SBML exporter cannot write as SBML."""


class CaseError(KetasimError):
    """A validation case file that cannot be read or does not follow the case format."""


class WorkerLostError(SimulationError):
    """A worker process died and its executor does not retry the task (a process pool), or
    gave up after retries (Dask): the run stopped; the chunks it finished are kept, and a
    resumed run (``--resume``) continues from them."""
