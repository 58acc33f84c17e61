"""PEtab export: petablint on a human and a rodent scenario, the burn-in as PEtab
pre-equilibration (ketasim's 150-day burn-in ends at a steady state), a
pyPESTO + libRoadRunner fit that recovers the parameter ketasim simulated the data with,
and the command line's one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

petab = pytest.importorskip("petab.v1")
pytest.importorskip("libsbml")

from ketasim.errors import ArgumentError  # noqa: E402
from ketasim.io.petab import BURN_IN, export_petab, observable_id  # noqa: E402
from ketasim.io.sbml import subject_setup  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _example(name: str, n: int = 2) -> dict[str, Any]:
    d = tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text())
    d["population"]["size"] = n
    return d


def _default() -> dict[str, Any]:
    import ketasim

    d = ketasim.default_scenario().as_dict()
    d["population"]["size"] = 1
    return d


def _lint(yaml: Path) -> None:
    problem = petab.Problem.from_yaml(str(yaml))
    assert petab.lint_problem(problem) is False  # False: no error found
    exe = shutil.which("petablint")
    if exe:
        res = subprocess.run([exe, str(yaml)], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="module")
def default_export(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return export_petab(_default(), tmp_path_factory.mktemp("pe") / "default",
                        estimate=["esketamine_cl_ref"])


def test_default_scenario_passes_petablint(default_export: Any) -> None:
    info = default_export
    _lint(info.yaml)
    problem = petab.Problem.from_yaml(str(info.yaml))
    # the depressed population's drug-free burn-in is PEtab pre-equilibration, doses off
    assert info.preequilibration == BURN_IN
    assert set(problem.measurement_df["preequilibrationConditionId"]) == {BURN_IN}
    cond = problem.condition_df
    doses = [c for c in cond.columns if c.startswith("dose_")]
    assert doses and (cond.loc[BURN_IN, doses] == 0).all()
    assert (cond.loc[info.condition, doses] > 0).all()
    assert observable_id("plasma.ketamine") in problem.observable_df.index
    par = problem.parameter_df
    assert par.loc["esketamine_cl_ref", "estimate"] == 1
    assert par.loc["esketamine_cl_ref", "parameterScale"] == "log10"
    assert int(par["estimate"].sum()) == 1


def test_burn_in_reaches_the_steady_state_pre_equilibration_asks_for() -> None:
    """PEtab pre-equilibration is a steady state; ketasim's burn-in is 150 drug-free days
    from the model's initial state. They are the same state where the burn-in ends at the
    steady state: every state's rate there is below 1e-4 of its size per hour, and the
    burn-in moved the state (it is not the initial state the SBML file starts from)."""
    s = subject_setup(_default())
    y = s.y0[:, 0]
    inp = s.protocol.inputs_at(-np.inf, s.model.input_names)
    rate = s.model.rhs(0.0, s.y0, s.P, inp)[:, 0]
    scale = np.maximum(np.abs(y), 1e-6)
    worst = int(np.argmax(np.abs(rate) / scale))
    assert abs(rate[worst]) / scale[worst] < 1e-4, s.model.state_names[worst]
    start = s.model.initial(s.P, inp)[:, 0]
    assert np.max(np.abs(y - start) / np.maximum(np.abs(start), 1e-6)) > 1e-2


def test_rodent_scenario_passes_petablint(tmp_path: Path) -> None:
    """Rats under chronic stress: the stress schedule is an input signal inside the
    timeline (no burn-in: the drug-free healthy state is the initial state)."""
    info = export_petab(_example("li2011_cus"), tmp_path / "rat", cohort=1,
                        readouts=["plasma.ketamine", "spine_density"])
    _lint(info.yaml)
    assert info.preequilibration is None
    meas = pd.read_csv(info.folder / "measurements.tsv", sep="\t")
    assert set(meas["observableId"]) == {"obs_plasma__ketamine", "obs_spine_density"}
    assert (meas["noiseParameters"] > 0).all()


def test_fit_recovers_the_simulated_parameter(tmp_path: Path) -> None:
    """Mice given ketamine 10 mg/kg i.p.: ketasim simulates plasma ketamine, pyPESTO fits
    the S-ketamine clearance with libRoadRunner from a random start in value/10..value*10
    and recovers the value the data were simulated with (within 5 %)."""
    pytest.importorskip("roadrunner")
    pypesto = pytest.importorskip("pypesto")
    import pypesto.optimize as optimize
    from pypesto.objective.roadrunner import PetabImporterRR, SolverOptions

    d = _example("zanos2016_hnk")
    d["outputs"]["times"] = ["0.25 h", "0.5 h", "1 h", "2 h", "4 h"]
    info = export_petab(d, tmp_path / "fit", cohort=1, estimate=["esketamine_cl_ref"],
                        readouts=["plasma.ketamine"])
    _lint(info.yaml)
    problem_pe = petab.Problem.from_yaml(str(info.yaml))
    true = float(problem_pe.parameter_df.loc["esketamine_cl_ref", "nominalValue"])
    problem = PetabImporterRR(problem_pe).create_problem()
    problem.objective.solver_options = SolverOptions(
        relative_tolerance=1e-6, absolute_tolerance=1e-9, maximum_num_steps=100_000)
    np.random.seed(1)
    res = optimize.minimize(problem, optimizer=optimize.ScipyOptimizer(
        method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6}), n_starts=1,
        progress_bar=False)
    best = res.optimize_result.list[0]
    i = problem.x_names.index("esketamine_cl_ref")
    start = 10 ** float(best.x0[i])
    fitted = 10 ** float(best.x[i])
    assert abs(start / true - 1) > 0.05  # the fit had to move
    assert fitted == pytest.approx(true, rel=0.05)
    assert isinstance(pypesto.Result, type)


def test_bad_arguments_name_themselves(tmp_path: Path) -> None:
    d = _example("zanos2016_hnk")
    with pytest.raises(ArgumentError, match=r"^estimate: ") as e:
        export_petab(d, tmp_path / "a", cohort=1, estimate=["nope"])
    assert isinstance(e.value, ValueError)
    with pytest.raises(ArgumentError, match=r"^readouts: "):
        export_petab(d, tmp_path / "a", cohort=1, readouts=["madrs"])
    with pytest.raises(ArgumentError, match=r"^bounds: "):
        export_petab(d, tmp_path / "a", cohort=1, estimate=["esketamine_cl_ref"],
                     bounds={"esketamine_cl_ref": (1.0, 2.0)})  # excludes the value
    bad = pd.DataFrame({"observableId": ["obs_x"], "simulationConditionId": ["c"],
                        "time": [1.0], "measurement": [1.0], "noiseParameters": [1.0]})
    with pytest.raises(ArgumentError, match=r"^measurements: "):
        export_petab(d, tmp_path / "a", cohort=1, readouts=["plasma.ketamine"],
                     measurements=bad)
    assert not (tmp_path / "a").exists()


def test_cli_export_petab(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ketasim.cli import app

    runner = CliRunner()
    path = ROOT / "examples" / "zanos2016_hnk.toml"
    out = tmp_path / "pe"
    ok = runner.invoke(app, ["export-petab", str(path), "-o", str(out), "--cohort", "1",
                             "--readouts", "plasma.ketamine", "--estimate",
                             "esketamine_cl_ref"])
    assert ok.exit_code == 0, ok.output
    assert "wrote" in ok.output and (out / "problem.yaml").exists()
    again = runner.invoke(app, ["export-petab", str(path), "-o", str(out), "--cohort", "1",
                                "--readouts", "plasma.ketamine"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = runner.invoke(app, ["export-petab", str(path), "-o", str(tmp_path / "b"),
                              "--cohort", "1", "--estimate", "nope"])
    assert bad.exit_code == 2
    assert len(bad.output.strip().splitlines()) == 1
    assert bad.output.startswith("--estimate: ")
    assert not (tmp_path / "b").exists()
