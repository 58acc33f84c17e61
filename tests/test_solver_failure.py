"""A subject whose integration fails is that subject's status, counted in the manifest;
never a silent NaN in the summary (issues 2 and 3).

Healthy subjects (no burn-in, so the test is quick). One subject of the ketamine arm gets a
negative esketamine clearance after the population is drawn, so its plasma amount grows
without bound once dosed: the engines must stop it (divergence), flag it ``failed`` with a
message, keep the other subjects' results, and leave it out of the summary statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.cli import app
from ketasim.experiments import run as run_mod
from ketasim.scenario import load_scenario
from scenario_text import KETAMINE_VS_SALINE

N = 3
BAD_SUBJECT = 1  # global index: the second subject of the ketamine arm


def _scenario(engine: str) -> Any:
    inf = {"route": "iv_infusion", "duration": "40 min", "at": ["0 h"]}
    return load_scenario({
        "name": "one subject fails",
        "species": "human",
        "seed": 3,
        "population": {"size": N, "condition": "healthy"},
        "design": {"type": "parallel", "follow_up": "1 d"},
        "arms": [
            {"name": "ketamine", "doses": [{"drug": "ketamine", "amount": "0.5 mg/kg", **inf}]},
            {"name": "saline", "doses": [{"drug": "saline", "amount": "0 mg/kg", **inf}]},
        ],
        "outputs": {"times": ["40 min", "4 h", "1 d"],
                    "readouts": ["plasma.ketamine", "madrs", "response"]},
        "engine": {"method": engine},
    })


@pytest.fixture
def one_failing_subject(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make subject BAD_SUBJECT's esketamine clearance -1e6 L/h; returns the cohorts hit."""
    real = run_mod.parameter_matrix
    hit: list[str] = []

    def sabotaged(model: Any, subjects: pd.DataFrame, *a: Any, **k: Any) -> np.ndarray:
        P = real(model, subjects, *a, **k)
        cols = np.flatnonzero(subjects.index.to_numpy() == BAD_SUBJECT)
        if "esketamine_CL" not in model.param_names or cols.size == 0:
            return P
        P = P.copy()
        P[model.param_index("esketamine_CL"), cols] = -1e6
        hit.append(",".join(map(str, subjects.index)))
        return P

    monkeypatch.setattr(run_mod, "parameter_matrix", sabotaged)
    return hit


@pytest.mark.parametrize("engine", ["reference", "batched",
                                    pytest.param("fast", marks=pytest.mark.slow)])
def test_failed_subject_is_a_status_and_counted(engine: str, one_failing_subject: list[str]
                                                ) -> None:
    if engine == "fast":
        pytest.importorskip("numba")
    result = ketasim.run(_scenario(engine))
    assert one_failing_subject, "the sabotage did not reach the ketamine cohort"
    data = result.data
    status = dict(zip(data["subject"].values.tolist(), data["status"].values.tolist(),
                      strict=True))
    assert status[BAD_SUBJECT] == "failed"
    assert sorted(status.values()).count("failed") == 1
    msg = data["message"].values[list(data["subject"].values).index(BAD_SUBJECT)]
    assert isinstance(msg, str) and msg
    assert result.manifest["solver_status"] == {"ok": 2 * N - 1, "failed": 1}

    # the other subjects keep finite results; the summary counts only the ok subjects
    ok = data["status"].values == "ok"
    assert np.isfinite(data["plasma.ketamine"].values[ok]).all()
    s = result.summary
    ket = s[(s["arm"] == "ketamine") & (s["readout"] == "plasma.ketamine")
            & (s["statistic"] == "mean")]
    assert len(ket) == 3 and (ket["n"] == N - 1).all()
    assert np.isfinite(ket["value"]).all()
    sal = s[(s["arm"] == "saline") & (s["readout"] == "madrs") & (s["statistic"] == "mean")]
    assert (sal["n"] == N).all()


def test_failed_subject_in_manifest_on_disk(one_failing_subject: list[str],
                                            tmp_path: Path) -> None:
    """Through the command line: the run succeeds, the manifest counts the failure and the
    printed summary says so."""
    path = tmp_path / "s.toml"
    path.write_text(f"""
name = "one subject fails"
species = "human"
seed = 3
[population]
size = {N}
condition = "healthy"
[design]
type = "parallel"
follow_up = "1 d"
""" + KETAMINE_VS_SALINE + """[outputs]
times = ["40 min", "4 h", "1 d"]
readouts = ["plasma.ketamine", "madrs"]
[engine]
method = "reference"
""")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["solver_status"] == {"ok": 2 * N - 1, "failed": 1}
    assert "failed 1" in res.stdout
    summary = pd.read_csv(out / "summary.csv")
    means = summary[(summary["arm"] == "ketamine") & (summary["statistic"] == "mean")]
    assert (means["n"] == N - 1).all() and means["value"].notna().all()


def test_a_cohort_whose_every_subject_fails_is_a_simulation_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every subject of the ketamine arm diverges: no result for that arm, so the run
    raises SimulationError naming the cohort, and the command line says so in one line
    (exit 2) and writes nothing."""
    real = run_mod.parameter_matrix

    def sabotaged(model: Any, subjects: pd.DataFrame, *a: Any, **k: Any) -> np.ndarray:
        P = real(model, subjects, *a, **k)
        if "esketamine_CL" in model.param_names:
            P = P.copy()
            P[model.param_index("esketamine_CL"), :] = -1e6
        return P

    monkeypatch.setattr(run_mod, "parameter_matrix", sabotaged)
    with pytest.raises(ketasim.SimulationError, match='cohort "ketamine": all 3 subjects'):
        ketasim.run(_scenario("reference"))
    path = tmp_path / "s.toml"
    path.write_text(f"""
name = "every ketamine subject fails"
species = "human"
seed = 3
[population]
size = {N}
condition = "healthy"
[design]
type = "parallel"
follow_up = "1 d"
""" + KETAMINE_VS_SALINE + """[outputs]
times = ["40 min", "1 d"]
readouts = ["plasma.ketamine"]
[engine]
method = "reference"
""")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1
    assert res.stderr.startswith('cohort "ketamine": all 3 subjects failed')
    assert res.stdout == "" and not out.exists()
