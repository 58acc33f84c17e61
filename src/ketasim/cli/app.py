"""The ``ketasim`` Typer app and what its commands share: one error-handling decorator
(:func:`user_errors`: a KetasimError is one line on stderr and exit status 2, with library
argument names shown as the command's flags), the scenario argument, the progress bar,
number formatting and tables. The commands live in the sibling modules.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from ketasim._version import __version__
from ketasim.errors import ArgumentError, KetasimError, ScenarioError

# click's exception classes, wherever this typer takes click from (recent typers vendor it)
_USAGE_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class OneLineUsageErrors(TyperGroup):
    """The command group, with click's usage errors (an unknown flag, a flag value of the
    wrong type or not among the choices, a missing argument) printed as one line on stderr
    with exit status 2, like every other user error, instead of a usage panel."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone = kwargs.pop("standalone_mode", True)
        kwargs["standalone_mode"] = False
        if not standalone:
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **kwargs)
        except _USAGE_ERROR as exc:
            err: Any = exc
            where = f"{err.ctx.command_path}: " if getattr(err, "ctx", None) else ""
            if err.format_message().strip():  # (no arguments: the help, printed already)
                typer.echo(" ".join((where + err.format_message()).split()), err=True)
            sys.exit(err.exit_code)
        except _CLICK_ERROR as exc:
            other: Any = exc
            other.show()
            sys.exit(other.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=OneLineUsageErrors,
    name="ketasim",
    help="An in-silico laboratory for ketamine's rapid antidepressant action.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

SHOW_PROGRESS_AFTER_S = 1.0


class Format(StrEnum):
    table = "table"
    json = "json"


# options shared by run, power and predictors
RecordsFormat = Annotated[Format, typer.Option(
    "--format", "-f", help="stdout: a readable table, or JSON records.")]
ConfirmLarge = Annotated[bool, typer.Option(
    "--confirm-large", help="Allow more than 100000 subjects in the scenario.")]
# where the simulations run (run, power, validate): the same numbers wherever they run
Jobs = Annotated[int, typer.Option(
    "--jobs", "-j", help="Run the tasks (chunks, batches, scenarios) in this many worker "
    "processes; same numbers as a serial run.")]
Cluster = Annotated[str | None, typer.Option(
    "--cluster", help="local:N: run on a Dask cluster of N workers on 127.0.0.1 "
    "(pip install 'ketasim[dask]').", show_default=False)]
Scheduler = Annotated[str | None, typer.Option(
    "--scheduler", help="Run on the Dask scheduler at this address (tcp://HOST:8786); "
    "see docs/distributed.md.", show_default=False)]


# ---------------------------------------------------------------------------- helpers


def say(message: str) -> None:
    """A note for the user on stderr (the Dask dashboard's address)."""
    typer.echo(message, err=True)


def check_jobs(jobs: int) -> None:
    if jobs < 1:
        raise ArgumentError("jobs", f"{jobs} is not allowed; use a whole number >= 1")


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print ``message`` as one line on stderr; return the Exit to raise."""
    line = " ".join(str(message).split())
    typer.echo(line, err=True)
    return typer.Exit(code)


Command = TypeVar("Command", bound=Callable[..., Any])


def user_errors(flags: Mapping[str, str] | None = None) -> Callable[[Command], Command]:
    """Decorate a command: a KetasimError it raises is one line on stderr and exit status
    2, never a traceback. ``flags`` maps the library's argument names (and ``name=value``
    references in messages) to the command's flags: ``{"sizes": "--n"}``."""
    names = dict(flags or {})

    def wrap(command: Command) -> Command:
        @functools.wraps(command)
        def checked(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except ArgumentError as exc:
                raise fail(exc.worded(names)) from None
            except KetasimError as exc:
                raise fail(exc) from None

        return checked  # type: ignore[return-value]

    return wrap


EXECUTOR_FLAGS = {"jobs": "--jobs", "cluster": "--cluster", "scheduler": "--scheduler",
                  "scheduler=ADDRESS": "--scheduler ADDRESS", "chunk_size": "--chunk-size",
                  "resume": "--resume", "resume=True": "--resume", "out=DIR": "--out DIR"}
RESULT_FLAGS = {"out": "--out", "overwrite=True": "--overwrite", "subjects": "--subjects",
                "keep_subjects=True": "--subjects"}


def console() -> Console:
    """Console on stdout; wide when stdout is a pipe so tables are not folded."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, highlight=False, width=width)


HOMES = {"load_scenario": "ketasim.scenario", "default_scenario": "ketasim.scenario",
          "run": "ketasim.experiments.run", "catalog": "ketasim.catalog"}


def api(name: str) -> Any:
    """``ketasim.<name>`` from the flat API (imported when needed, so ``--help`` is fast),
    else from the module that defines it."""
    import ketasim

    fn = getattr(ketasim, name, None)
    return fn if fn is not None else getattr(importlib.import_module(HOMES[name]), name)


def scenario_arg(file: Path | None, confirm_large: bool) -> Any:
    load_scenario = api("load_scenario")
    if file is None:
        sc = api("default_scenario")()
        if not confirm_large:
            return sc
        data = sc.as_dict()
        data.setdefault("population", {})["confirm_large"] = True
        return load_scenario(data)
    try:
        return load_scenario(file)
    except ScenarioError as exc:
        if not (confirm_large and "confirm_large" in str(exc)):
            raise
    # a large population, confirmed on the command line
    data = tomllib.loads(Path(file).read_text(encoding="utf-8"))
    pop = data.setdefault("population", {})
    if isinstance(pop, dict):
        pop["confirm_large"] = True
    return load_scenario(data)


def fmt_number(v: Any, zero: float = 0.0) -> str:
    """A number for a table cell: about three significant digits; |v| <= ``zero`` is 0."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "-"
    ax = abs(x)
    if ax <= zero or ax == 0:
        return "0"
    if ax >= 1000:
        return f"{x:.4g}" if ax < 1e5 else f"{x:.3g}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    if ax >= 1e-3:
        return f"{x:.3g}"
    return f"{x:.2e}"


def fmt_p(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "-"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


class RunProgress:
    """The ``progress(advance, total=None)`` callback for ``ketasim.run``: a rich progress
    bar on stderr that appears only when the run has taken longer than a second."""

    def __init__(self, enabled: bool, what: str = "simulating subjects") -> None:
        self.enabled = enabled
        self.what = what
        self.total: int | None = None
        self.done = 0
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._timer = threading.Timer(SHOW_PROGRESS_AFTER_S, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.enabled = False
            if self._timer is not None:
                self._timer.cancel()
            if self._bar is not None:
                self._bar.stop()
                self._bar = None

    def _show(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with self._lock:
            if not self.enabled or self._bar is not None:
                return
            self._bar = Progress(SpinnerColumn(), TextColumn(self.what),
                                 BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True),
                                 transient=True)
            self._task = self._bar.add_task("run", total=self.total, completed=self.done)
            self._bar.start()

    def __call__(self, advance: int = 0, total: int | None = None) -> None:
        with self._lock:
            if total is not None:
                self.total = int(total)
            self.done += int(advance or 0)
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done, total=self.total)


def frame_table(df: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    from pandas.api.types import is_numeric_dtype

    for col in df.columns:
        table.add_column(str(col), justify="right" if is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[v if isinstance(v, str) else fmt_number(v) for v in row])
    return table


def records(df: Any) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        rec = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            rec[str(k)] = None if isinstance(v, float) and v != v else v
        out.append(rec)
    return out


# -------------------------------------------------------------------------------- app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ketasim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """An in-silico laboratory for ketamine's rapid antidepressant action."""


# ------------------------------------------------------------------------------- main


def main() -> None:
    """Entry point of the ``ketasim`` script."""
    try:
        app()
    except KetasimError as exc:  # a user error that escaped a command: still one line
        typer.echo(" ".join(str(exc).split()), err=True)
        sys.exit(2)
