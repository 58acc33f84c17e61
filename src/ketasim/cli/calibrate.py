"""``ketasim calibrate``: fit model constants to a PEtab measurement table with pyPESTO."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ketasim.cli.app import app, console, frame_table, user_errors
from ketasim.errors import ArgumentError

CALIBRATE_FLAGS = {"data": "DATA", "conditions": "--condition", "parameters": "--fit",
                   "n_starts": "--starts", "out": "--out", "overwrite=True": "--overwrite"}


def _fits(specs: list[str]) -> list[tuple[str, float, float]]:
    out = []
    for spec in specs:
        parts = spec.split(":")
        try:
            name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise ArgumentError("parameters", f"{spec!r} is not NAME:LOWER:UPPER") from None
        out.append((name, lo, hi))
    return out


def _conditions(specs: list[str]) -> dict[str, Path]:
    out = {}
    for spec in specs:
        cid, sep, path = spec.partition("=")
        if not sep or not cid or not path:
            raise ArgumentError("conditions", f"{spec!r} is not CONDITION=SCENARIO.toml")
        out[cid] = Path(path)
    return out


@app.command("calibrate")
@user_errors(CALIBRATE_FLAGS)
def calibrate(
    data: Annotated[Path, typer.Argument(
        help="PEtab measurement table (TSV: observableId, simulationConditionId, time, "
        "measurement, noiseParameters).")],
    condition: Annotated[list[str], typer.Option(
        "--condition", help="CONDITION=SCENARIO.toml: the scenario a simulationConditionId "
        "of the table is (repeat per condition).")],
    fit: Annotated[list[str], typer.Option(
        "--fit", help="NAME:LOWER:UPPER: a base model parameter to fit and its bounds "
        "(repeat per parameter; fitted on log10 scale).")],
    starts: Annotated[int, typer.Option("--starts", help="Multistart points.")] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the start points.")] = 0,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for calibration.csv, profiles.png and "
        "calibrated.toml.")] = Path("calibration-out"),
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace files in a non-empty folder.")] = False,
) -> None:
    """Fit model constants to measurements: pyPESTO multistart on ketasim itself (points and
    finite-difference neighbours in one batched engine call), profile likelihood of every
    fitted parameter, and the fitted values as a TOML override file."""
    from ketasim.analysis.calibrate import (
        FitParameter,
        plot_profiles,
        read_measurements,
        write_overrides,
    )
    from ketasim.analysis.calibrate import calibrate as run_calibration

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ArgumentError("out", f"{out} exists and is not empty; use overwrite=True")
    table = read_measurements(data)
    params = [FitParameter(n, lo, hi) for n, lo, hi in _fits(fit)]
    cal = run_calibration(table, _conditions(condition), params, n_starts=starts, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    cal.table.to_csv(out / "calibration.csv", index=False)
    plot_profiles(cal, out / "profiles.png")
    write_overrides(cal, out / "calibrated.toml", data.name)
    console().print(frame_table(cal.table, title=f"calibration against {data.name} "
                                f"(best -log L {cal.best_nllh:.4g}; "
                                f"{cal.objective.evaluations} engine calls, "
                                f"{cal.objective.points} points)"))
    typer.echo(f"wrote {out / 'calibration.csv'}, {out / 'profiles.png'}, "
               f"{out / 'calibrated.toml'}")
