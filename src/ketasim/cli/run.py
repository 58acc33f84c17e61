"""``ketasim run``: simulate a scenario, print what a person reads first, write the result
files."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from ketasim.cli.app import (
    EXECUTOR_FLAGS,
    RESULT_FLAGS,
    Cluster,
    ConfirmLarge,
    Format,
    Jobs,
    RunProgress,
    Scheduler,
    api,
    app,
    check_jobs,
    console,
    fmt_number,
    fmt_p,
    frame_table,
    say,
    scenario_arg,
    user_errors,
)
from ketasim.errors import ArgumentError
from ketasim.units import format_hours


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
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Print every readout at every output time (the whole "
        "summary) instead of the headline.")] = False,
    jobs: Jobs = 1,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
    chunk_size: Annotated[int | None, typer.Option(
        "--chunk-size", help="Simulate in chunks of this many subjects and merge their "
        "summaries (default: whole cohorts up to 20000 human subjects, else 10000); the same "
        "summary for any chunk size on the fast and reference engines (batched: within "
        "the solver tolerance).",
        show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the interrupted run in --out from its finished "
        "chunks.")] = False,
) -> None:
    """Run a scenario and print the headline: Table 1 where the run fills it, every readout
    at the time of the primary endpoint, the whole-period endpoints, and where the full
    tables and the report are (write them with --out).

    With --out, every finished chunk is kept in the folder until the results are written,
    so --resume continues a run that was stopped (same numbers as an uninterrupted run).
    """
    sc = scenario_arg(file, confirm_large)
    if engine is not None:
        data = sc.as_dict()
        data.setdefault("engine", {})["method"] = engine
        sc = api("load_scenario")(data)
    from ketasim.experiments import executor as ex

    _check_run_options(jobs, chunk_size, resume, out)
    checkpoint = ex.out_checkpoint(out, overwrite, resume) if out is not None else None
    written: list[Path] = []
    with ex.discard_on_error(checkpoint, keep=resume), \
            ex.executor_for(jobs, cluster, scheduler, say=say) as pool:
        options: dict[str, Any] = {
            "executor": pool, "chunk_size": chunk_size, "checkpoint": checkpoint,
            "keep_subjects": True if subjects else None}  # a streamed run keeps all
        kwargs = {k: v for k, v in options.items() if v is not None}
        simulate = functools.partial(api("run"), **kwargs) if kwargs else api("run")
        with RunProgress(enabled=Console(stderr=True).is_terminal) as progress:
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
    _print_run(result, out, written, verbose)


def _check_run_options(jobs: int, chunk_size: int | None, resume: bool,
                       out: Path | None) -> None:
    check_jobs(jobs)
    if chunk_size is not None and chunk_size < 1:
        raise ArgumentError("chunk_size", f"{chunk_size} is not allowed; use a whole number "
                            ">= 1")
    if resume and out is None:
        raise ArgumentError("resume", "give out=DIR, the folder of the interrupted run")


def _print_run(result: Any, out: Path | None, written: list[Path], verbose: bool) -> None:
    """The header, then the headline (or with ``verbose`` every table), then where the
    files are."""
    con = console()
    _print_header(con, result)
    t1 = result.extra_tables.get("table1") if result.extra_tables else None
    table1 = (frame_table(t1, "Table 1: published values beside simulated ones")
              if t1 is not None else None)
    endpoints = _endpoint_table(result)
    tables = ([*_summary_tables(result, con.width), endpoints, table1] if verbose
              else [table1, _headline_table(result), endpoints])
    for table in tables:
        if table is not None:
            con.print(table)
    if written:
        con.print(f"wrote {len(written)} files to {out}: "
                  + ", ".join(p.name for p in written))
    if not verbose:
        con.print(_where_the_rest_is(out, written), style="dim")


def _where_the_rest_is(out: Path | None, written: list[Path]) -> str:
    if written and out is not None:
        names = {p.name for p in written}
        report = f"the report: {out / 'report.html'}; " if "report.html" in names else ""
        return f"{report}every readout at every time: {out / 'summary.csv'} or --verbose"
    return ("every readout at every time: --verbose; summary.csv, subjects.parquet, "
            "manifest.json and report.html: --out DIR")


def _print_header(con: Console, result: Any) -> None:
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


def _summary_tables(result: Any, width: int = 160) -> list[Table]:
    """One table per readout: rows = times, columns = arm (and period), then comparisons;
    where that is wider than ``width``, rows = (time, arm) with the comparison beside."""
    tables = []
    for title, view in _readout_views(result):
        table, needed = _wide_table(title, view)
        tables.append(table if needed <= width else _long_table(title, view))
    return tables


HEADLINE_AFTER_H = 24.0  # the primary endpoint of the field: 24 h after the (last) dose


def _headline_time(result: Any, times: list[float]) -> float:
    """The output time nearest :data:`HEADLINE_AFTER_H` after the start of the last dose of
    any arm (24 h after a single dose; 24 h after the last of a course)."""
    from ketasim.experiments.endpoints import last_dose_h

    sc = result.scenario
    last = max((last_dose_h(sc, a.name) for a in getattr(sc, "arms", ())), default=0.0)
    target = last + HEADLINE_AFTER_H
    return min(times, key=lambda t: (abs(t - target), t))


def _headline_table(result: Any) -> Table | None:
    """Every readout at the headline time (:func:`_headline_time`): rows = readouts,
    columns = arm (and period), then the comparisons with the control arm."""
    views = _readout_views(result)
    times = sorted({t for _, v in views for t in v.times})
    if not times:
        return None
    t = _headline_time(result, times)
    groups = list(dict.fromkeys(g for _, v in views for g in v.groups))
    comps = list(dict.fromkeys(c for _, v in views for c in v.comps))
    label = views[0][1].label
    table = Table(title=f"every readout at {format_hours(t)} (all times: --verbose)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("readout", no_wrap=True)
    for arm, period in groups:
        table.add_column(label(arm, period), justify="right", no_wrap=True)
    for c in comps:
        table.add_column(f"{c}: diff (p)", justify="right", no_wrap=True)
    for title, v in views:
        if t not in v.times:
            continue
        table.add_row(title, *[_cell(v.idx, arm, period, t, v.zero) for arm, period in groups],
                      *[v.comparison(c, t) for c in comps])
    return table


def _readout_views(result: Any) -> list[tuple[str, _Readout]]:
    """(title, view) of every readout in the summary with output times, in summary order."""
    s = result.summary
    if s is None or not len(s):
        return []
    s = s[s["time_h"].notna()]  # whole-period endpoints: _endpoint_table
    views = []
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
        views.append((title, view))
    return views


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
        return f"{fmt_number(diff, self.zero)} ({fmt_p(p)})"


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
        return fmt_number(frac)
    mean = idx.get((arm, period, t, "mean"))
    if mean is None:
        return "-"
    sd = idx.get((arm, period, t, "sd"))
    if sd is None or sd != sd:
        return fmt_number(mean, zero)
    return f"{fmt_number(mean, zero)} ± {fmt_number(sd, zero)}"


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
                cells.append(fmt_number(v))
            else:
                cells.append(f"{fmt_number(v)} {unit}")
        table.add_row(str(readout), str(statistic).replace("_", " "), *cells)
    return table
