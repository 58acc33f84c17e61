"""``ketasim sensitivity``: which catalog values matter for a scenario's readouts (SALib
Morris, Sobol or eFAST through the engine; needs ``pip install 'ketasim[analysis]'``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ketasim.cli.app import (
    EXECUTOR_FLAGS,
    Cluster,
    Format,
    Jobs,
    RecordsFormat,
    RunProgress,
    Scheduler,
    app,
    check_jobs,
    console,
    frame_table,
    records,
    say,
    scenario_arg,
    user_errors,
)
from ketasim.errors import KetasimError

SENSITIVITY_FLAGS = {"method": "--method", "n": "--n", "parameters": "--parameters",
                     "outputs": "--output", "mode": "--mode", "subjects": "--subjects",
                     "resamples": "--resamples", "conf_level": "--conf-level",
                     "engine": "--engine", "seed": "--seed", "out": "--out",
                     "overwrite=True": "--overwrite"}


def _salib() -> None:
    try:
        import SALib  # noqa: F401
    except ImportError:
        raise KetasimError("ketasim sensitivity needs SALib: pip install 'ketasim[analysis]'"
                           ) from None


@app.command()
@user_errors({**SENSITIVITY_FLAGS, **EXECUTOR_FLAGS})
def sensitivity(
    file: Annotated[Path | None, typer.Argument(
        help="Scenario TOML file; none: the built-in seed crossover.",
        show_default=False)] = None,
    method: Annotated[str | None, typer.Option(
        "--method", "-m", help="morris | sobol | efast (default: the scenario's "
        "sensitivity table (method), else morris).", show_default=False)] = None,
    n: Annotated[int | None, typer.Option(
        "--n", help="Morris trajectories (default 10), Sobol base sample (a power of 2, "
        "default 256) or eFAST samples per parameter (default 512).", show_default=False)
    ] = None,
    parameters: Annotated[str | None, typer.Option(
        "--parameters", "-p", help="Dotted catalog names or globs, comma-separated: "
        "mechanism.*, ratings.*, drugs.ketamine.pd.*, mechanism.structure.tau_spine "
        "(default: the scenario's sensitivity table, else mechanism.*).",
        show_default=False)] = None,
    output: Annotated[list[str] | None, typer.Option(
        "--output", help="READOUT@TIME[:ARM[ vs ARM]], repeatable, e.g. "
        "'madrs.change@24 h:ketamine vs saline' (default: endpoint readouts at 24 h).",
        show_default=False)] = None,
    mode: Annotated[str | None, typer.Option(
        "--mode", help="typical (variability off) or population (mean of --subjects "
        "virtual subjects per sample row).", show_default=False)] = None,
    subjects: Annotated[int | None, typer.Option(
        "--subjects", help="Subjects per sample row in population mode (default 20).",
        show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the sample (default: the scenario's).", show_default=False)
    ] = None,
    resamples: Annotated[int, typer.Option(
        "--resamples", help="Bootstrap resamples for the confidence intervals.")] = 200,
    conf_level: Annotated[float, typer.Option(
        "--conf-level", help="Level of the bootstrap intervals.")] = 0.95,
    convergence: Annotated[bool, typer.Option(
        "--convergence/--no-convergence", help="Evaluate 2N and compare the indices with "
        "those at N (same seed).")] = True,
    engine: Annotated[str | None, typer.Option(
        "--engine", help="reference | batched | fast (default: fast when numba is "
        "installed).", show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write indices.csv, convergence.csv, parameters.csv, samples.parquet, "
        "manifest.json and report.html here.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty --out.")] = False,
    top: Annotated[int, typer.Option("--top", help="Parameters shown per output.")] = 10,
    fmt: RecordsFormat = Format.table,
    jobs: Jobs = 1,
    cluster: Cluster = None,
    scheduler: Scheduler = None,
) -> None:
    """Rank catalog values by their effect on readouts (Morris, Sobol or eFAST indices with
    bootstrap intervals and an N-vs-2N convergence check)."""
    _salib()
    check_jobs(jobs)
    if top < 1:
        from ketasim.errors import ArgumentError

        raise ArgumentError("top", f"{top} is not allowed; use a whole number >= 1")
    from ketasim.analysis import sensitivity as sa
    from ketasim.experiments.executor import executor_for

    if out is not None:
        from ketasim.io.results import check_out_dir

        check_out_dir(out, overwrite)
    if engine is not None and engine not in ("reference", "batched", "fast"):
        from ketasim.errors import ArgumentError

        raise ArgumentError("engine", f'"{engine}" is not allowed; use reference, batched '
                            "or fast")
    sc = scenario_arg(file, confirm_large=False)
    with executor_for(jobs, cluster, scheduler, say=say) as pool, \
            RunProgress(enabled=Console(stderr=True).is_terminal,
                        what="simulating sample rows") as progress:
        res = sa.sensitivity(sc, parameters=parameters, outputs=output or None, method=method,
                             n=n, mode=mode, subjects=subjects, seed=seed, engine=engine,
                             executor=pool, progress=progress, resamples=resamples,
                             conf_level=conf_level, convergence=convergence)
    if out is not None:
        from ketasim.io.report_sensitivity import write_sensitivity

        write_sensitivity(res, out, overwrite)
    _show(res, top, fmt, out)


def _show(res: Any, top: int, fmt: Format, out: Path | None) -> None:
    from ketasim.analysis.sensitivity import top as top_rows

    table = top_rows(res, top)
    if fmt == Format.json:
        typer.echo(json.dumps({"indices": records(table), "manifest": {
            k: v for k, v in res.manifest.items() if k != "parameters"}}, indent=1,
            default=str))
        return
    con = console()
    shown = table[["output", "parameter", "index", "value", "conf", "rank"]]
    con.print(frame_table(shown, f"{res.method} (n = {res.n}, seed {res.seed}): top {top} "
                                 "parameters per output"))
    c = res.convergence
    if not c.empty:
        key = "mu_star" if res.method == "morris" else "ST"
        main = c[c["index"] == key]
        con.print(f"convergence N={res.n // 2} vs 2N={res.n}: {int(main['within_ci'].sum())} "
                  f"of {len(main)} {key} indices changed by less than their interval; "
                  f"largest change {main['change'].abs().max():.3g}")
    m = res.manifest
    if m.get("failed_rows"):
        con.print(f"{m['failed_rows']} sample rows gave no value (failed subjects); "
                  f"{m.get('dropped_trajectories', 0)} Morris trajectories left out")
    con.print(f"{m['rows_evaluated']} sample rows, {m.get('subjects_simulated')} subjects "
              f"simulated on {m.get('engine')} in {m['wall_time_s']} s"
              + (f"; wrote {out}" if out is not None else ""))
