"""``ketasim export-sbml``: one subject's model and doses as SBML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ketasim.cli.app import (
    app,
    scenario_arg,
    user_errors,
)
from ketasim.errors import KetasimError

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
    sc = scenario_arg(file, confirm_large=True)
    from ketasim.io.sbml import export_scenario

    which: int | str = int(cohort) if cohort.lstrip("-").isdigit() else cohort
    info = export_scenario(sc, out, subject=subject, cohort=which)
    typer.echo(f"wrote {out}: {len(info.state_ids)} states, {len(info.readout_ids)} readouts, "
               f"{len(info.dose_parameters)} doses; SBML time 0 = ketasim time "
               f"{info.time_offset:g} h")
