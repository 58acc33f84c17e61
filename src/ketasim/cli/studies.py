"""``ketasim power`` and ``ketasim predictors``: studies made of many simulated trials or
of one large one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ketasim.cli.app import (
    EXECUTOR_FLAGS,
    Cluster,
    ConfirmLarge,
    Format,
    Jobs,
    RecordsFormat,
    RunProgress,
    Scheduler,
    api,
    app,
    check_jobs,
    console,
    fmt_number,
    frame_table,
    records,
    say,
    scenario_arg,
    user_errors,
)
from ketasim.errors import KetasimError

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

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
    jobs: Jobs = 1,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
) -> None:
    """Probability that the primary endpoint is significant, by trial size (simulated)."""
    from ketasim.analysis import power as pw

    sizes = pw.parse_sizes(n)
    pw.check_run_options(engine, batch)
    sc = scenario_arg(file, confirm_large)
    _check_readout(sc, endpoint, "--endpoint")
    ep = pw.Endpoint(endpoint, time, alpha)
    pw.check(sc, sizes, replicates, ep)
    chosen = engine or pw.default_engine(sc)
    check_jobs(jobs)
    from ketasim.experiments.executor import executor_for

    with executor_for(jobs, cluster, scheduler, say=say) as pool, \
            RunProgress(enabled=Console(stderr=True).is_terminal,
                        what="simulating trials") as progress:
        where: dict[str, Any] = {"executor": pool} if pool is not None else {}
        table = pw.power(sc, sizes, replicates, ep, engine=chosen, batch=batch,
                         progress=progress, simulate=api("run"), **where)
    if fmt is Format.json:
        typer.echo(json.dumps(records(table)))
        return
    con = console()
    con.print(f"[bold]power: {getattr(sc, 'name', 'scenario')}[/bold]")
    con.print(f"{sc.design.type} | primary endpoint {ep.describe()} | {replicates} "
              f"replicates per size | engine {chosen} | seed {sc.seed}", style="dim")
    shown = table.copy()
    shown["power"] = [f"{100 * v:.0f}%" for v in shown["power"]]
    shown["95% CI"] = [f"{100 * lo:.0f}-{100 * hi:.0f}%" for lo, hi in
                       zip(table["ci_low"], table["ci_high"], strict=True)]
    shown = shown[["n", "comparison", "power", "95% CI", "significant", "replicates",
                   "mean_difference", "mean_cohens_d"]]
    con.print(frame_table(shown.astype({"n": str, "significant": str, "replicates": str}),
                           "power (two-sided test as in the summary; Wilson 95% CI)"))


def _check_readout(sc: Scenario, readout: str, option: str) -> None:
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

    sc = scenario_arg(file, confirm_large)
    with RunProgress(enabled=Console(stderr=True).is_terminal) as progress:
        table = rank(sc, bootstrap=bootstrap, progress=progress, simulate=api("run"),
                     size=subjects)
    if fmt is Format.json:
        typer.echo(json.dumps(records(table)))
        return
    con = console()
    con.print(f"[bold]predictors of response: {getattr(sc, 'name', 'scenario')}[/bold]")
    how = f"bootstrap ({bootstrap} resamples)" if bootstrap else "DeLong"
    con.print(f"ROC AUC (Mann-Whitney) with 95% CI ({how}); AUC < 0.5: lower values go "
              "with response", style="dim")
    for target in dict.fromkeys(table["target"]):
        sub = table[table["target"] == target]
        shown = pd_frame({
            "predictor": sub["predictor"], "kind": sub["kind"],
            "AUC": [fmt_number(v) for v in sub["auc"]],
            "95% CI": [f"{fmt_number(lo)}-{fmt_number(hi)}" for lo, hi in
                       zip(sub["ci_low"], sub["ci_high"], strict=True)],
            "direction": sub["direction"],
            "responders": [f"{a}/{a + b}" for a, b in
                           zip(sub["responders"], sub["non_responders"], strict=True)],
            "worth measuring": ["yes" if w else "no" for w in sub["worth_measuring"]],
        })
        con.print(frame_table(shown, f"{target} (ranked by discrimination)"))
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
