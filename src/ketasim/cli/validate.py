"""``ketasim validate``: the scorecard of published results."""

from __future__ import annotations

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
    RunProgress,
    Scheduler,
    app,
    check_jobs,
    console,
    fmt_number,
    say,
    user_errors,
)
from ketasim.errors import ArgumentError


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

    check_jobs(jobs)
    if jobs > 1 and (cluster or scheduler):
        raise ArgumentError("jobs", "give only one of jobs, cluster and scheduler")
    if out is not None:
        from ketasim.io.results import check_out_dir

        check_out_dir(out, overwrite)
    from ketasim.experiments.executor import executor_for

    with executor_for(None, cluster, scheduler, say=say) as pool, \
            RunProgress(enabled=Console(stderr=True).is_terminal, what="running cases") as bar:
        where: dict[str, Any] = {"executor": pool} if pool is not None else {}
        table = validation.run_validation(case or None, progress=bar, jobs=jobs, **where)
    if not len(table):
        typer.echo("no validation cases")
        return
    if out is not None:
        _write_scorecard(table, out, overwrite)
    console().print(_validation_table(table))
    passed = table["passed"].astype(bool)
    n_fail = int((~passed).sum())
    by_case = passed.groupby(table["case"].astype(str), sort=False).all()
    typer.echo(f"{len(table) - n_fail} of {len(table)} checks passed "
               f"({int(by_case.sum())} of {len(by_case)} cases)")
    if "role" in table:
        parts = [f"{int(passed[table['role'] == role].sum())} of "
                 f"{int((table['role'] == role).sum())} {label}"
                 for role, label in (("validation", "independent checks"),
                                     ("calibration", "calibration-target checks"))]
        typer.echo("; ".join(parts) + " passed")
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
                cells.append(v if isinstance(v, str) else fmt_number(v))
        table.add_row(*cells)
    return table
