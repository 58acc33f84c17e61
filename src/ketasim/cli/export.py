"""``ketasim export-sbml`` and ``export-petab``: one subject's model and doses as SBML, or a
PEtab v1 problem around it."""

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


PETAB_FLAGS = {"cohort": "--cohort", "subject": "--subject", "estimate": "--estimate",
               "bounds": "--estimate", "readouts": "--readouts", "out": "--out",
               "overwrite=True": "--overwrite", "measurements": "--measurements",
               "noise_rel": "--noise"}


@app.command("export-petab")
@user_errors(PETAB_FLAGS)
def export_petab(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file; none: the built-in seed crossover.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder to write the PEtab v1 problem into.")] = Path("petab"),
    cohort: Annotated[str, typer.Option(
        "--cohort", help="Cohort (arm, or crossover sequence) to export: name or index.")
    ] = "0",
    subject: Annotated[int, typer.Option(
        "--subject", help="Subject of that cohort whose parameters are written.")] = 0,
    estimate: Annotated[str, typer.Option(
        "--estimate", help="Comma-separated base parameters to estimate (bounds: value/10 to "
        "value*10, log10 scale).")] = "",
    readouts: Annotated[str, typer.Option(
        "--readouts", help="Comma-separated model readouts to observe (default: the "
        "scenario's readouts that are model readouts).")] = "",
    measurements: Annotated[Path | None, typer.Option(
        "--measurements", help="PEtab measurement table (TSV) to use instead of ketasim's "
        "simulated data.")] = None,
    noise: Annotated[float, typer.Option(
        "--noise", help="Noise sd of the simulated data, as a fraction of each observable's "
        "largest value.")] = 0.05,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty folder.")] = False,
) -> None:
    """Write one scenario subject as a PEtab v1 problem (SBML model with doses as events,
    conditions with a burn-in pre-equilibration, observables, measurements, parameters)."""
    sc = scenario_arg(file, confirm_large=True)
    from ketasim.io.petab import export_petab as write

    which: int | str = int(cohort) if cohort.lstrip("-").isdigit() else cohort
    names = [x.strip() for x in estimate.split(",") if x.strip()]
    wanted = [x.strip() for x in readouts.split(",") if x.strip()] or None
    info = write(sc, out, subject=subject, cohort=which, estimate=names, readouts=wanted,
                 measurements=measurements, noise_rel=noise, overwrite=overwrite)
    pre = f", pre-equilibration {info.preequilibration!r}" if info.preequilibration else ""
    typer.echo(f"wrote {info.yaml}: condition {info.condition!r}{pre}, "
               f"{len(info.observables)} observables, {info.n_measurements} measurements, "
               f"{len(info.estimated)} estimated; PEtab time 0 = ketasim time "
               f"{info.time_offset:g} h")
