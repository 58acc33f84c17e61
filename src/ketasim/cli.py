"""The ``ketasim`` command line: run scenarios, browse the drug catalog, validate the model.

    ketasim run [FILE] [--out DIR] [--overwrite] [--format table|json]
                [--subjects/--no-subjects] [--confirm-large] [--engine NAME]
                [--jobs N | --cluster local:N | --scheduler ADDRESS] [--chunk-size N]
                [--resume]
    ketasim power [FILE] [--n 10,20,40,80] [--replicates 200] [--endpoint madrs.change]
                  [--time "1 d"] [--alpha 0.05] [--engine fast] [--format table|json]
                  [--jobs N | --cluster local:N | --scheduler ADDRESS]
    ketasim predictors [FILE] [--bootstrap 1000] [--subjects N] [--format table|json]
    ketasim drugs [NAME]
    ketasim validate [--out DIR] [--case NAME] [--jobs N | --cluster local:N |
                     --scheduler ADDRESS]
    ketasim export-sbml [FILE] -o MODEL.xml [--cohort NAME|INDEX] [--subject K]
    ketasim dashboard [--host 127.0.0.1] [--port 8080] [--max-subjects 1000] [--open]

A user error (a bad scenario, an unknown drug, an output directory that is in the way) is
one line on stderr and exit status 2, never a traceback; nothing is written then.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import re
import sys
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ketasim._version import __version__
from ketasim.errors import ArgumentError, KetasimError, ScenarioError
from ketasim.units import format_hours

app = typer.Typer(
    name="ketasim",
    help="An in-silico laboratory for ketamine's rapid antidepressant action.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

SPECIES_ORDER = ("human", "rat", "mouse")
SHOW_PROGRESS_AFTER_S = 1.0


class Format(StrEnum):
    table = "table"
    json = "json"


# options shared by run, power and predictors
RecordsFormat = Annotated[Format, typer.Option(
    "--format", "-f", help="stdout: a readable table, or JSON records.")]
ConfirmLarge = Annotated[bool, typer.Option(
    "--confirm-large", help="Allow more than 100000 subjects in the scenario.")]
# where the simulations run (run, power, validate): same numbers wherever they run
Cluster = Annotated[str | None, typer.Option(
    "--cluster", help="local:N: run on a Dask cluster of N workers on 127.0.0.1 "
    "(pip install 'ketasim[dask]').", show_default=False)]
Scheduler = Annotated[str | None, typer.Option(
    "--scheduler", help="Run on the Dask scheduler at this address (tcp://HOST:8786); "
    "see docs/distributed.md.", show_default=False)]


# ---------------------------------------------------------------------------- helpers


def _fail(message: object, code: int = 2) -> typer.Exit:
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
                raise _fail(exc.worded(names)) from None
            except KetasimError as exc:
                raise _fail(exc) from None

        return checked  # type: ignore[return-value]

    return wrap


RESULT_FLAGS = {"out": "--out", "overwrite=True": "--overwrite", "subjects": "--subjects",
                "keep_subjects=True": "--subjects"}
EXECUTOR_FLAGS = {"jobs": "--jobs", "cluster": "--cluster", "scheduler": "--scheduler",
                  "scheduler=ADDRESS": "--scheduler ADDRESS", "chunk_size": "--chunk-size",
                  "resume=True": "--resume"}


def _console() -> Console:
    """Console on stdout; wide when stdout is a pipe so tables are not folded."""
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, highlight=False, width=width)


_HOMES = {"load_scenario": "ketasim.scenario", "default_scenario": "ketasim.scenario",
          "run": "ketasim.experiments.run", "catalog": "ketasim.catalog"}


def _api(name: str) -> Any:
    """``ketasim.<name>`` from the flat API (imported when needed, so ``--help`` is fast),
    else from the module that defines it."""
    import ketasim

    fn = getattr(ketasim, name, None)
    return fn if fn is not None else getattr(importlib.import_module(_HOMES[name]), name)


def _load_scenario(file: Path | None, confirm_large: bool) -> Any:
    load_scenario = _api("load_scenario")
    if file is None:
        sc = _api("default_scenario")()
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


def _fmt(v: Any, zero: float = 0.0) -> str:
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


def _fmt_p(v: Any) -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    if x != x:
        return "-"
    return "<0.001" if x < 0.001 else f"{x:.3f}"


class _RunProgress:
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

    def __enter__(self) -> _RunProgress:
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


# -------------------------------------------------------------------------------- run


@app.command()
@user_errors({**RESULT_FLAGS, **EXECUTOR_FLAGS})
def run(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file; none: the built-in study set (the seed's crossover plus a "
        "six-infusion course) with the seed's Table 1.",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write summary.csv, subjects.parquet, manifest.json and "
        "report.html into this directory.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty --out.")] = False,
    fmt: Annotated[Format, typer.Option(
        "--format", "-f", help="stdout: a readable table, or the summary as JSON.")
    ] = Format.table,
    subjects: Annotated[bool | None, typer.Option(
        "--subjects/--no-subjects", show_default=False,
        help="Write subjects.parquet (default: when it has at most 5 million rows and the "
        "run was not streamed in chunks, i.e. up to 20000 human subjects).")] = None,
    confirm_large: ConfirmLarge = False,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="Override the scenario's [engine] method: auto, reference, "
        "batched or fast.", show_default=False)] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", help="Run the chunks (or cohorts) in this many worker processes; "
        "same numbers as a serial run.")] = 1,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
    chunk_size: Annotated[int | None, typer.Option(
        "--chunk-size", help="Simulate in chunks of this many subjects and merge their "
        "summaries (default: whole cohorts up to 20000 human subjects, else 10000).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the interrupted run in --out from its finished "
        "chunks.")] = False,
) -> None:
    """Run a scenario and print its summary (and write the result files with --out).

    With --out, every finished chunk is kept in the folder until the results are written,
    so --resume continues a run that was stopped (same numbers as an uninterrupted run).
    """
    sc = _load_scenario(file, confirm_large)
    if engine is not None:
        data = sc.as_dict()
        data.setdefault("engine", {})["method"] = engine
        sc = _api("load_scenario")(data)
    from ketasim.experiments import executor as ex

    _check_run_options(jobs, chunk_size, resume, out)
    checkpoint = ex.out_checkpoint(out, overwrite, resume) if out is not None else None
    written: list[Path] = []
    with ex.discard_on_error(checkpoint, keep=resume), \
            ex.executor_for(jobs, cluster, scheduler,
                            say=lambda m: typer.echo(m, err=True)) as pool:
        options: dict[str, Any] = {
            "executor": pool, "chunk_size": chunk_size, "checkpoint": checkpoint,
            "keep_subjects": True if subjects else None}  # a streamed run keeps all
        kwargs = {k: v for k, v in options.items() if v is not None}
        simulate = functools.partial(_api("run"), **kwargs) if kwargs else _api("run")
        with _RunProgress(enabled=Console(stderr=True).is_terminal) as progress:
            if file is None:  # the default study set: the crossover plus the course
                from ketasim.analysis.table1 import run_default

                result = run_default(progress, single=sc, simulate=simulate)
            else:
                result = simulate(sc, progress=progress)
        if out is not None:
            from ketasim.io.results import write_results

            # the folder was checked above; what is in it now is this run's chunks
            written = write_results(result, out, overwrite=True, subjects=subjects)

    if fmt is Format.json:
        from ketasim.io.results import summary_records

        typer.echo(json.dumps(summary_records(result)))
        if written:
            typer.echo(f"wrote {len(written)} files to {out}", err=True)
        return
    _print_run(result, out, written)


def _check_run_options(jobs: int, chunk_size: int | None, resume: bool,
                       out: Path | None) -> None:
    if jobs < 1:
        raise KetasimError(f"--jobs: {jobs} is not allowed; use a whole number >= 1")
    if chunk_size is not None and chunk_size < 1:
        raise KetasimError(f"--chunk-size: {chunk_size} is not allowed; use a whole number "
                           ">= 1")
    if resume and out is None:
        raise KetasimError("--resume: give the --out folder of the interrupted run")


def _print_run(result: Any, out: Path | None, written: list[Path]) -> None:
    con = _console()
    sc = result.scenario
    m = result.manifest
    name = getattr(sc, "name", None) or "scenario"
    con.print(f"[bold]{name}[/bold]")
    facts = []
    if sc is not None and hasattr(sc, "species"):
        facts += [sc.species, sc.design.type, f"{sc.population.size} subjects"]
        if getattr(sc.population, "condition", None):
            facts.insert(1, sc.population.condition)
    if "solver_status" in m:
        facts.append("solver " + ", ".join(f"{k} {v}" for k, v in m["solver_status"].items()))
    if isinstance(m.get("wall_time_s"), int | float):
        facts.append(f"{m['wall_time_s']:.1f} s")
    if "seed" in m:
        facts.append(f"seed {m['seed']}")
    if facts:
        con.print(" | ".join(str(f) for f in facts), style="dim")
    for table in _summary_tables(result, con.width):
        con.print(table)
    endpoints = _endpoint_table(result)
    if endpoints is not None:
        con.print(endpoints)
    t1 = result.extra_tables.get("table1") if result.extra_tables else None
    if t1 is not None:
        con.print(_frame_table(t1, "Table 1: published values beside simulated ones"))
    if written:
        con.print(f"wrote {len(written)} files to {out}: "
                  + ", ".join(p.name for p in written))


def _summary_tables(result: Any, width: int = 160) -> list[Table]:
    """One table per readout: rows = times, columns = arm (and period), then comparisons;
    where that is wider than ``width``, rows = (time, arm) with the comparison beside."""
    s = result.summary
    if s is None or not len(s):
        return []
    s = s[s["time_h"].notna()]  # whole-period endpoints: _endpoint_table
    tables = []
    crossover = s["period"].nunique() > 1
    for readout, rows in s.groupby("readout", sort=False):
        unit = str(rows["unit"].dropna().iloc[0]) if rows["unit"].notna().any() else ""
        title = f"{readout} ({unit})" if unit else str(readout)
        idx = rows.set_index(["arm", "period", "time_h", "statistic"])["value"]
        idx = idx[~idx.index.duplicated()]
        between = rows["arm"].astype(str).str.contains(" vs ", regex=False)
        per_arm = rows[~between]
        level = per_arm.loc[per_arm["statistic"].isin(["mean", "fraction"]), "value"].abs().max()
        view = _Readout(idx=idx, times=sorted(rows["time_h"].unique()),
                        groups=list(dict.fromkeys(zip(per_arm["arm"], per_arm["period"],
                                                      strict=True))),
                        comps=list(dict.fromkeys(rows.loc[between, "arm"])),
                        crossover=crossover,
                        zero=1e-9 * float(level) if level == level else 0.0)
        table, needed = _wide_table(title, view)
        tables.append(table if needed <= width else _long_table(title, view))
    return tables


@dataclass
class _Readout:
    """One readout's summary, indexed by (arm, period, time_h, statistic)."""

    idx: Any
    times: list[float]
    groups: list[tuple[str, int]]
    comps: list[str]
    crossover: bool
    zero: float

    def label(self, arm: str, period: int) -> str:
        return f"{arm} P{period}" if self.crossover else str(arm)

    def comparison(self, comp: str, t: float) -> str:
        diff = self.idx.get((comp, 1, t, "difference"))
        p = self.idx.get((comp, 1, t, "p_value"))
        if diff is None or diff != diff:
            return "-"
        return f"{_fmt(diff, self.zero)} ({_fmt_p(p)})"


def _wide_table(title: str, v: _Readout) -> tuple[Table, int]:
    """The table and the width it needs unfolded."""
    headers = ["time", *(v.label(a, p) for a, p in v.groups),
               *(f"{c}: diff (p)" for c in v.comps)]
    rows = []
    for t in v.times:
        cells = [format_hours(t)]
        cells += [_cell(v.idx, arm, period, t, v.zero) for arm, period in v.groups]
        cells += [v.comparison(c, t) for c in v.comps]
        rows.append(cells)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for k, h in enumerate(headers):
        table.add_column(h, justify="left" if k == 0 else "right", no_wrap=True)
    for cells in rows:
        table.add_row(*cells)
    needed = sum(max(len(h), *(len(r[k]) for r in rows)) + 3 for k, h in enumerate(headers))
    return table, needed


def _long_table(title: str, v: _Readout) -> Table:
    controls = {c.split(" vs ", 1)[1] for c in v.comps}
    against = f"vs {next(iter(controls))}" if len(controls) == 1 else "vs control"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("time", no_wrap=True)
    table.add_column("arm", overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    if v.comps:
        table.add_column(f"difference {against} (p)", justify="right", no_wrap=True)
    for t in v.times:
        for k, (arm, period) in enumerate(v.groups):
            cells = [format_hours(t) if k == 0 else "", v.label(arm, period),
                     _cell(v.idx, arm, period, t, v.zero)]
            if v.comps:
                comp = next((c for c in v.comps if c.split(" vs ", 1)[0] == arm), None)
                first = period == min(p for a, p in v.groups if a == arm)
                cells.append(v.comparison(comp, t) if comp and first else "")
            table.add_row(*cells, end_section=k == len(v.groups) - 1)
    return table


def _cell(idx: Any, arm: str, period: int, t: float, zero: float = 0.0) -> str:
    frac = idx.get((arm, period, t, "fraction"))
    if frac is not None:
        return _fmt(frac)
    mean = idx.get((arm, period, t, "mean"))
    if mean is None:
        return "-"
    sd = idx.get((arm, period, t, "sd"))
    if sd is None or sd != sd:
        return _fmt(mean, zero)
    return f"{_fmt(mean, zero)} ± {_fmt(sd, zero)}"


def _endpoint_table(result: Any) -> Table | None:
    """Whole-period endpoints (summary rows without a time): rows = (readout, statistic),
    columns = arm and period; times in hours are shown as times."""
    s = result.summary
    if s is None or not len(s) or "time_h" not in s:
        return None
    s = s[s["time_h"].isna()]
    if not len(s):
        return None
    crossover = s["period"].nunique() > 1
    groups = list(dict.fromkeys(zip(s["arm"], s["period"], strict=True)))
    table = Table(title="endpoints over each period (time to event from the period's time "
                  "zero; relapse from the last dose)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("readout", no_wrap=True)
    table.add_column("statistic", no_wrap=True)
    for arm, period in groups:
        table.add_column(f"{arm} P{period}" if crossover else str(arm), justify="right",
                         no_wrap=True)
    idx = s.set_index(["readout", "statistic", "arm", "period"])
    idx = idx[~idx.index.duplicated()]
    for readout, statistic in dict.fromkeys(zip(s["readout"], s["statistic"], strict=True)):
        cells = []
        for arm, period in groups:
            key = (readout, statistic, arm, period)
            if key not in idx.index:
                cells.append("")
                continue
            v, unit = idx.loc[key, "value"], idx.loc[key, "unit"]
            if unit == "h":
                none = "not reached" if "median" in str(statistic) else "-"
                cells.append(format_hours(float(v)) if v == v else none)
            elif unit == "fraction":
                cells.append(_fmt(v))
            else:
                cells.append(f"{_fmt(v)} {unit}")
        table.add_row(str(readout), str(statistic).replace("_", " "), *cells)
    return table


def _frame_table(df: Any, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    from pandas.api.types import is_numeric_dtype

    for col in df.columns:
        table.add_column(str(col), justify="right" if is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[v if isinstance(v, str) else _fmt(v) for v in row])
    return table


# ------------------------------------------------------------------------------ power

POWER_FLAGS = {"sizes": "--n", "replicates": "--replicates", "endpoint.alpha": "--alpha",
               "endpoint.time": "--time", "endpoint.readout": "--endpoint", "batch": "--batch",
               "engine": "--engine", "sc": "scenario"}


@app.command()
@user_errors({**POWER_FLAGS, **EXECUTOR_FLAGS})
def power(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file; none: the built-in seed crossover.",
        show_default=False)] = None,
    n: Annotated[str, typer.Option(
        "--n", help="Trial sizes, comma-separated (per arm in parallel designs, per trial "
        "in crossovers); each at least 2.")] = "10,20,40,80",
    replicates: Annotated[int, typer.Option(
        "--replicates", "-r", help="Simulated trials per size (each with new subjects).")
    ] = 200,
    endpoint: Annotated[str, typer.Option(
        "--endpoint", help="Primary endpoint readout (e.g. madrs.change, response).")
    ] = "madrs.change",
    time: Annotated[str, typer.Option(
        "--time", help="Time of the primary endpoint after the (period's) first dose.")
    ] = "1 d",
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided significance level.")
                     ] = 0.05,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="reference | batched | fast (default: fast when numba is "
        "installed, else the scenario's).", show_default=False)] = None,
    batch: Annotated[int | None, typer.Option(
        "--batch", help="Replicates simulated per run (default: about 1000 subjects a run).",
        show_default=False)] = None,
    fmt: RecordsFormat = Format.table,
    confirm_large: ConfirmLarge = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", help="Batches to simulate at once in worker processes (same table "
        "as a serial run).")] = 1,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
) -> None:
    """Probability that the primary endpoint is significant, by trial size (simulated)."""
    from ketasim.analysis import power as pw

    sizes = pw.parse_sizes(n)
    pw.check_run_options(engine, batch)
    if jobs < 1:
        raise KetasimError(f"--jobs: {jobs} is not allowed; use a whole number >= 1")
    sc = _load_scenario(file, confirm_large)
    _check_readout(sc, endpoint, "--endpoint")
    ep = pw.Endpoint(endpoint, time, alpha)
    pw.check(sc, sizes, replicates, ep)
    chosen = engine or pw.default_engine(sc)
    from ketasim.experiments.executor import executor_for

    with executor_for(jobs, cluster, scheduler, say=lambda m: typer.echo(m, err=True)
                      ) as pool, _RunProgress(enabled=Console(stderr=True).is_terminal,
                                              what="simulating trials") as progress:
        table = pw.power(sc, sizes, replicates, ep, engine=chosen, batch=batch,
                         progress=progress, simulate=_api("run"),
                         **({"executor": pool} if pool is not None else {}))
    if fmt is Format.json:
        typer.echo(json.dumps(_records(table)))
        return
    con = _console()
    con.print(f"[bold]power: {getattr(sc, 'name', 'scenario')}[/bold]")
    con.print(f"{sc.design.type} | primary endpoint {ep.describe()} | {replicates} "
              f"replicates per size | engine {chosen} | seed {sc.seed}", style="dim")
    shown = table.copy()
    shown["power"] = [f"{100 * v:.0f}%" for v in shown["power"]]
    shown["95% CI"] = [f"{100 * lo:.0f}-{100 * hi:.0f}%" for lo, hi in
                       zip(table["ci_low"], table["ci_high"], strict=True)]
    shown = shown[["n", "comparison", "power", "95% CI", "significant", "replicates",
                   "mean_difference", "mean_cohens_d"]]
    con.print(_frame_table(shown.astype({"n": str, "significant": str, "replicates": str}),
                           "power (two-sided test as in the summary; Wilson 95% CI)"))


def _records(df: Any) -> list[dict[str, Any]]:
    out = []
    for row in df.to_dict(orient="records"):
        rec = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            rec[str(k)] = None if isinstance(v, float) and v != v else v
        out.append(rec)
    return out


def _check_readout(sc: Any, readout: str, option: str) -> None:
    from ketasim.catalog import catalog
    from ketasim.readouts import lookup

    if lookup(readout, catalog().families()) is None:
        raise KetasimError(f'{option}: "{readout}" is not a readout; e.g. madrs.change, madrs, '
                           "response, remission")
    if sc.species != "human" and readout in ("madrs", "hamd17", "madrs.change",
                                             "hamd17.change", "response", "remission",
                                             "cadss", "relapse_free"):
        raise KetasimError(f'{option}: "{readout}" is a human readout; this scenario is '
                           f"{sc.species}")
    if readout == "relapse_free":
        raise KetasimError(f'{option}: "relapse_free" is counted among responders only; '
                           "use response or remission")


# ------------------------------------------------------------------------- predictors

PREDICTOR_FLAGS = {"bootstrap": "--bootstrap", "size": "--subjects", "sc": "scenario"}


@app.command()
@user_errors(PREDICTOR_FLAGS)
def predictors(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file (human); none: the built-in seed crossover.",
        show_default=False)] = None,
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", help="Bootstrap resamples for the AUC interval (0: DeLong).")] = 0,
    subjects: Annotated[int | None, typer.Option(
        "--subjects", help="Population size to simulate (default: the scenario's).",
        show_default=False)] = None,
    fmt: RecordsFormat = Format.table,
    confirm_large: ConfirmLarge = False,
) -> None:
    """Rank baseline covariates and early readouts by how well they predict response."""
    from ketasim.analysis.predictors import predictors as rank

    sc = _load_scenario(file, confirm_large)
    with _RunProgress(enabled=Console(stderr=True).is_terminal) as progress:
        table = rank(sc, bootstrap=bootstrap, progress=progress, simulate=_api("run"),
                     size=subjects)
    if fmt is Format.json:
        typer.echo(json.dumps(_records(table)))
        return
    con = _console()
    con.print(f"[bold]predictors of response: {getattr(sc, 'name', 'scenario')}[/bold]")
    how = f"bootstrap ({bootstrap} resamples)" if bootstrap else "DeLong"
    con.print(f"ROC AUC (Mann-Whitney) with 95% CI ({how}); AUC < 0.5: lower values go "
              "with response", style="dim")
    for target in dict.fromkeys(table["target"]):
        sub = table[table["target"] == target]
        shown = pd_frame({
            "predictor": sub["predictor"], "kind": sub["kind"],
            "AUC": [_fmt(v) for v in sub["auc"]],
            "95% CI": [f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in
                       zip(sub["ci_low"], sub["ci_high"], strict=True)],
            "direction": sub["direction"],
            "responders": [f"{a}/{a + b}" for a, b in
                           zip(sub["responders"], sub["non_responders"], strict=True)],
            "worth measuring": ["yes" if w else "no" for w in sub["worth_measuring"]],
        })
        con.print(_frame_table(shown, f"{target} (ranked by discrimination)"))
    worth = table[table["worth_measuring"]]
    if len(worth):
        con.print("worth measuring in a real trial (CI excludes 0.5): " + "; ".join(
            f"{t}: " + ", ".join(worth.loc[worth["target"] == t, "predictor"])
            for t in dict.fromkeys(worth["target"])))
    else:
        con.print("no candidate's CI excludes 0.5")


def pd_frame(columns: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame({k: list(v) for k, v in columns.items()})


# ------------------------------------------------------------------------------ drugs


@app.command()
@user_errors()
def drugs(
    name: Annotated[str | None, typer.Argument(
        help="A drug id or alias: show every value with its unit, source and tag.",
        show_default=False)] = None,
) -> None:
    """List the drug catalog, or show one drug in full."""
    cat = _api("catalog")()
    if name is None:
        _console().print(_drug_list(cat))
        return
    try:
        drug = cat.drug(name)
    except KetasimError as exc:
        raise KetasimError(f"{exc}; `ketasim drugs` lists the catalog") from None
    _print_drug(cat, drug)


def _routes(cat: Any, drug_id: str, species: str) -> str:
    if species not in cat.species:
        return "-"
    try:
        routes = cat.routes(drug_id, species)
    except KetasimError:
        return "-"
    return ", ".join(routes) if routes else "-"


def _one_line(text: str, limit: int = 80) -> str:
    """The first sentence of ``text``, cut at a word boundary to at most ``limit`` chars."""
    text = " ".join(str(text).split())
    first = re.split(r"(?<=[a-z0-9)])\.\s+(?=[A-Z(])", text, maxsplit=1)[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"


def _role(drug: Any) -> str:
    if drug.role == "compound" and not drug.dosable:
        return "metabolite"
    return str(drug.role)


def _drug_list(cat: Any) -> Table:
    table = Table(title="ketasim drug catalog", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, expand=True)
    table.add_column("id", no_wrap=True, style="bold")
    table.add_column("name", ratio=2)
    table.add_column("role", no_wrap=True)
    for sp in SPECIES_ORDER:
        table.add_column(f"{sp} routes", ratio=2)
    table.add_column("description", ratio=5)
    for d in cat.drugs.values():
        table.add_row(d.id, d.name, _role(d), *[_routes(cat, d.id, sp) for sp in SPECIES_ORDER],
                      _one_line(d.description))
    return table


def _sourced_rows(obj: Any, path: str, rows: list[tuple[str, Any]]) -> None:
    """Walk a catalog model; collect (path, Sourced) for every sourced value in it."""
    from pydantic import BaseModel

    from ketasim.catalog.schema import Sourced

    if obj is None:
        return
    if isinstance(obj, Sourced):
        rows.append((path, obj))
    elif isinstance(obj, BaseModel):
        for field in type(obj).model_fields:
            _sourced_rows(getattr(obj, field), f"{path}.{field}" if path else field, rows)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _sourced_rows(v, f"{path}.{k}" if path else str(k), rows)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            key = getattr(v, "to", None) or i  # metabolites are named by what they form
            _sourced_rows(v, f"{path}[{key}]", rows)


def _value_table(title: str, rows: list[tuple[str, Any]], strip: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("parameter", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("unit", no_wrap=True)
    table.add_column("tag", no_wrap=True)
    table.add_column("source (note)", overflow="fold")
    for path, s in rows:
        label = path[len(strip):].lstrip(".") if strip and path.startswith(strip) else path
        src = s.source + (f" [dim]({s.note})[/dim]" if s.note else "")
        table.add_row(label or path, f"{s.value:g}", s.unit, s.tag, src)
    return table


def _print_drug(cat: Any, drug: Any) -> None:
    from rich.markup import escape

    con = _console()
    con.print(f"[bold]{escape(drug.name)}[/bold]  [dim]id:[/dim] {drug.id}")
    if drug.aliases:
        con.print(f"[dim]aliases:[/dim] {escape(', '.join(drug.aliases))}")
    role = _role(drug) + ("" if drug.dosable else " (not dosable)")
    line = f"[dim]role:[/dim] {role}"
    if drug.readout:
        line += f"   [dim]readout family:[/dim] {drug.readout}"
    con.print(line)
    if drug.description:
        con.print(escape(drug.description))
    con.print("[dim]routes:[/dim] " + "; ".join(
        f"{sp}: {_routes(cat, drug.id, sp)}" for sp in SPECIES_ORDER))
    if drug.components:
        con.print("[dim]components (mass fraction):[/dim] " + ", ".join(
            f"{k} {v:g}" for k, v in drug.components.items()))

    rows: list[tuple[str, Any]] = []
    _sourced_rows(drug, "", rows)
    sections: dict[str, list[tuple[str, Any]]] = {}
    for path, s in rows:
        parts = path.split(".")
        if parts[0] == "pk" and len(parts) > 2:
            key = f"pk.{parts[1]}"
        elif parts[0] == "pd" and len(parts) > 2:
            key = f"pd.{parts[1]}"
        else:
            key = parts[0].split("[")[0]
        sections.setdefault(key, []).append((path, s))
    for key, items in sections.items():
        con.print(_value_table(escape(key), [(p, s) for p, s in items], key))
    if drug.notes:
        con.print("[bold]notes[/bold]")
        for n in drug.notes:
            con.print(f"- {escape(n)}")


# --------------------------------------------------------------------------- validate


@app.command()
@user_errors({**RESULT_FLAGS, **EXECUTOR_FLAGS, "names": "--case"})
def validate(
    out: Annotated[Path | None, typer.Option(
        "--out", "-o",
        help="Write validation.csv and validation.html (the scorecard) into this directory."
    )] = None,
    case: Annotated[list[str] | None, typer.Option(
        "--case", help="Run only this case (repeat for several).")] = None,
    jobs: Annotated[int, typer.Option(
        "--jobs", "-j", help="Scenarios to run at once in worker processes (same table as "
        "a serial run).")] = 1,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty --out.")] = False,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
) -> None:
    """Compare the model with published results; exit 1 if any case fails."""
    from ketasim import validation

    if jobs < 1:
        raise ArgumentError("jobs", f"{jobs} is not allowed; use a whole number >= 1")
    if out is not None:
        from ketasim.io.results import check_out_dir

        check_out_dir(out, overwrite)
    from ketasim.experiments.executor import executor_for

    if jobs > 1 and (cluster or scheduler):
        raise ArgumentError("jobs", "give only one of jobs, cluster and scheduler")
    with executor_for(None, cluster, scheduler, say=lambda m: typer.echo(m, err=True)
                      ) as pool, \
            _RunProgress(enabled=Console(stderr=True).is_terminal, what="running cases") as bar:
        where: dict[str, Any] = {"executor": pool} if pool is not None else {}
        table = validation.run_validation(case or None, progress=bar, jobs=jobs, **where)
    if not len(table):
        typer.echo("no validation cases")
        return
    if out is not None:
        _write_scorecard(table, out, overwrite)
    _console().print(_validation_table(table))
    passed = table["passed"].astype(bool)
    n_fail = int((~passed).sum())
    by_case = passed.groupby(table["case"].astype(str), sort=False).all()
    typer.echo(f"{len(table) - n_fail} of {len(table)} checks passed "
               f"({int(by_case.sum())} of {len(by_case)} cases)")
    if n_fail:
        raise typer.Exit(1)


def _write_scorecard(table: Any, out: Path, overwrite: bool) -> None:
    """validation.csv and validation.html (with the cases' notes): both or none."""
    from ketasim import validation
    from ketasim.io import scorecard
    from ketasim.io.results import write_files

    notes = {c.id: c.notes for c in validation.load_cases()}
    write_files(out, {"validation.csv": table.to_csv(index=False),
                      "validation.html": scorecard.render_html(table, notes=notes)}, overwrite)


def _validation_table(df: Any) -> Table:
    table = Table(title="validation against published results", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for col in df.columns:
        table.add_column(str(col), overflow="fold")
    for row in df.to_dict(orient="records"):
        cells = []
        for col in df.columns:
            v = row[col]
            if col == "passed":
                cells.append("[green]pass[/green]" if bool(v) else "[red]FAIL[/red]")
            else:
                cells.append(v if isinstance(v, str) else _fmt(v))
        table.add_row(*cells)
    return table


# ------------------------------------------------------------------------ export-sbml

SBML_FLAGS = {"cohort": "--cohort", "subject": "--subject"}


@app.command("export-sbml")
@user_errors(SBML_FLAGS)
def export_sbml(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file; none: the built-in seed crossover.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="SBML file to write (SBML Level 3 Version 2).")] = Path("model.xml"),
    cohort: Annotated[str, typer.Option(
        "--cohort", help="Cohort (arm, or crossover sequence) to export: name or index.")
    ] = "0",
    subject: Annotated[int, typer.Option(
        "--subject", help="Subject of that cohort whose parameters are written.")] = 0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Write the model of one scenario subject, with its dosing as SBML events."""
    if out.exists() and not overwrite:
        raise KetasimError(f"--out: {out} exists; use --overwrite")
    sc = _load_scenario(file, confirm_large=True)
    from ketasim.io.sbml import export_scenario

    which: int | str = int(cohort) if cohort.lstrip("-").isdigit() else cohort
    info = export_scenario(sc, out, subject=subject, cohort=which)
    typer.echo(f"wrote {out}: {len(info.state_ids)} states, {len(info.readout_ids)} readouts, "
               f"{len(info.dose_parameters)} doses; SBML time 0 = ketasim time "
               f"{info.time_offset:g} h")


# -------------------------------------------------------------------------- dashboard


@app.command()
def dashboard(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but 127.0.0.1 lets other machines "
        "run simulations here (there is no login).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    max_subjects: Annotated[int, typer.Option(
        "--max-subjects", help="Largest run (subjects in all) a page may start.")] = 1000,
    examples: Annotated[Path | None, typer.Option(
        "--examples", help="Folder of example scenarios offered in the page (default: "
        "examples/ of a source checkout).", show_default=False)] = None,
    open_browser: Annotated[bool, typer.Option(
        "--open", help="Open the page in a web browser.")] = False,
) -> None:
    """Serve the web dashboard: edit a scenario, run it, read and download the results."""
    if max_subjects < 1:
        raise _fail(f"--max-subjects: {max_subjects} is not a whole number >= 1")
    if examples is not None and not examples.is_dir():
        raise _fail(f'--examples: "{examples}" is not a folder')
    if importlib.util.find_spec("nicegui") is None:
        raise _fail("the dashboard needs NiceGUI: pip install 'ketasim[dashboard]'")
    from ketasim.dashboard import app as web

    if host not in web.LOCAL_HOSTS:
        typer.echo(f"warning: --host {host}: the dashboard is open to other machines; anyone "
                   "who reaches it can run simulations on this one", err=True)
    web.serve(host=host, port=port, examples_dir=examples, max_subjects=max_subjects,
              show=open_browser)


# ------------------------------------------------------------------------------- main


def main() -> None:
    """Entry point of the ``ketasim`` script."""
    try:
        app()
    except KetasimError as exc:  # a user error that escaped a command: still one line
        typer.echo(" ".join(str(exc).split()), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
