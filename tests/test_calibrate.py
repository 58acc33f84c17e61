"""ketasim calibrate: the committed synthetic data set (calibration/synthetic, simulated by
make_data.py with known parameter values and 5 % noise) is fitted back with pyPESTO on
ketasim itself; the estimates recover the known values and their 95 % profile intervals
contain them; the batched objective agrees with one-point evaluations; bad input names
its argument (library) or flag (command line)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pypesto")

from ketasim.analysis.calibrate import (
    BatchedObjective,
    FitParameter,
    calibrate,
    read_overrides,
    write_overrides,
)
from ketasim.errors import ArgumentError

ROOT = Path(__file__).resolve().parents[1]
SYN = ROOT / "calibration" / "synthetic"
sys.path.insert(0, str(SYN))
from make_data import SCENARIO, true_values  # noqa: E402

DATA = SYN / "measurements.tsv"
CONDITIONS = {"esketamine_ip": SCENARIO}


def _params() -> list[FitParameter]:
    return [FitParameter(k, v / 5, v * 5) for k, v in true_values().items()]


def test_batched_points_equal_single_points() -> None:
    """Three points in one engine call give the objective each gives alone, up to the
    integrator's tolerance (the batched engine steps all columns together)."""
    obj = BatchedObjective(DATA, CONDITIONS, _params())
    truth = np.array(list(true_values().values()))
    X = np.vstack([truth, truth * 1.2, truth * [0.8, 1.1]])
    batched = obj.nllh(X)
    single = [float(obj.nllh(x[None, :])[0]) for x in X]
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-3)
    assert batched[0] < batched[1] and batched[0] < batched[2]
    assert obj.evaluations == 4 and obj.points == 6


@pytest.mark.slow  # minutes: multistart and two profiles on ketasim
def test_synthetic_calibration_recovers_known_parameters(tmp_path: Path) -> None:
    truth = true_values()
    cal = calibrate(DATA, CONDITIONS, _params(), n_starts=2, seed=0)
    table = cal.table.set_index("parameter")
    for name, value in truth.items():
        row = table.loc[name]
        assert row["estimate"] == pytest.approx(value, rel=0.05), name
        assert row["ci95_low"] < value < row["ci95_high"], name
        assert bool(row["identifiable"]), name
    out = write_overrides(cal, tmp_path / "calibrated.toml", DATA.name,
                          units={k: "L/h" for k in truth})
    back = read_overrides(out)
    assert back == pytest.approx(dict(table["estimate"]))
    text = out.read_text()
    assert "calibrated: against measurements.tsv" in text and 'tag = "calibrated"' in text


def test_bad_arguments_name_themselves() -> None:
    with pytest.raises(ArgumentError, match=r"^parameters: "):
        BatchedObjective(DATA, CONDITIONS, [FitParameter("nope", 1.0, 2.0)])
    with pytest.raises(ArgumentError, match=r"^parameters: "):
        BatchedObjective(DATA, CONDITIONS, [FitParameter("esketamine_cl_ref", 2.0, 1.0)])
    with pytest.raises(ArgumentError, match=r"^conditions: "):
        BatchedObjective(DATA, {}, _params())
    bad = pd.read_csv(DATA, sep="\t").drop(columns=["noiseParameters"])
    with pytest.raises(ArgumentError, match=r"^data: "):
        BatchedObjective(bad, CONDITIONS, _params())


def test_cli_errors_are_one_line_with_flags(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ketasim.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["calibrate", str(DATA), "--condition", f"esketamine_ip={SCENARIO}",
                              "--fit", "esketamine_cl_ref:1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("--fit: ")
    res = runner.invoke(app, ["calibrate", str(DATA), "--condition", "other=x.toml",
                              "--fit", "esketamine_cl_ref:0.1:1", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.startswith("--condition: ")
    assert not (tmp_path / "o").exists()
