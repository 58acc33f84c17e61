"""``ketasim predictors``: ROC AUC against hand computations, the ranking on a made-up
population, one small real run and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from typer.testing import CliRunner

from ketasim.analysis.predictors import (
    auc,
    bootstrap_ci,
    delong_ci,
    predictor_table,
    predictors,
)
from ketasim.cli import app
from ketasim.errors import ArgumentError
from ketasim.scenario import load_scenario
from scenario_text import KETAMINE_VS_SALINE

runner = CliRunner()


def test_auc_of_hand_made_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert auc(np.array([1, 2, 3, 4]), y) == 1.0
    assert auc(np.array([4, 3, 2, 1]), y) == 0.0
    # responders {2, 4} vs non-responders {1, 3}: 3 of 4 pairs ordered
    assert auc(np.array([1, 3, 2, 4]), y) == 0.75
    # a tie counts one half: responders {2, 2} vs {1, 2}: (1 + 0.5 + 1 + 0.5) / 4
    assert auc(np.array([1, 2, 2, 2]), y) == 0.75
    assert np.isnan(auc(np.array([1, 2]), np.array([1, 1])))


def test_auc_is_the_mann_whitney_statistic() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=80).round(1), rng.random(80) < 0.4
    u = stats.mannwhitneyu(x[y], x[~y]).statistic
    assert auc(x, y) == pytest.approx(u / (y.sum() * (~y).sum()))


def test_delong_interval_of_a_hand_made_case() -> None:
    # psi = [[1, 0], [1, 1]]: V10 = (0.5, 1), V01 = (1, 0.5); var = 0.125/2 + 0.125/2
    a, lo, hi = delong_ci(np.array([1, 3, 2, 4]), np.array([0, 0, 1, 1]))
    half = 1.959964 * np.sqrt(0.125)
    assert a == 0.75
    assert lo == pytest.approx(0.75 - half, rel=1e-6) and hi == 1.0  # clipped


def _quadratic_delong(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """The oracle: DeLong's AUC and variance from the full responders x non-responders
    comparison matrix (the form delong_ci used before the midrank one)."""
    pos, neg = x[y], x[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


@pytest.mark.parametrize("seed", range(6))
def test_midrank_delong_equals_the_quadratic_form_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    y[:2], y[2:4] = True, False  # both outcomes, at least two of each
    x = (y * rng.uniform(0, 1.5) + rng.normal(size=n)).round(int(rng.integers(0, 2)))
    a, lo, hi = delong_ci(x, y, level=0.9)
    a_ref, var_ref = _quadratic_delong(x, y)
    half = stats.norm.ppf(0.95) * np.sqrt(var_ref)
    assert a == pytest.approx(a_ref, abs=1e-12)
    assert lo == pytest.approx(max(0.0, a_ref - half), abs=1e-12)
    assert hi == pytest.approx(min(1.0, a_ref + half), abs=1e-12)
    u = stats.mannwhitneyu(x[y], x[~y]).statistic
    assert a == pytest.approx(u / (y.sum() * (~y).sum()), abs=1e-12)


def test_delong_at_100000_subjects_stays_under_100_mb() -> None:
    import tracemalloc

    rng = np.random.default_rng(3)
    y = rng.random(100_000) < 0.5
    x = (y + rng.normal(size=y.size)).round(2)  # ties, as rating scores have
    tracemalloc.start()
    try:
        a, lo, hi = delong_ci(x, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100e6
    u = stats.mannwhitneyu(x[y], x[~y]).statistic
    assert a == pytest.approx(u / (y.sum() * (~y).sum()), abs=1e-12)
    assert lo < a < hi


def test_bootstrap_interval_contains_the_estimate() -> None:
    rng = np.random.default_rng(6)
    y = rng.random(120) < 0.5
    x = y + rng.normal(0, 1.0, 120)
    a = auc(x, y)
    lo, hi = bootstrap_ci(x, y, 300, seed=1)
    assert lo < a < hi and lo > 0.5
    assert (lo, hi) == bootstrap_ci(x, y, 300, seed=1)  # seeded


def _population(n: int = 60) -> tuple[object, xr.Dataset]:
    """A made-up crossover result: response at 24 h is exactly 'bmi > 25'; sex is noise;
    every subject is a CYP2B6 normal metaboliser (a constant: no information)."""
    sc = load_scenario({
        "name": "made up", "species": "human", "design": {"type": "crossover"},
        "arms": [{"name": "ketamine", "doses": [{"drug": "ketamine", "amount": "0.5 mg/kg",
                                                 "route": "iv_infusion", "duration": "40 min",
                                                 "at": ["0 h"]}]},
                 {"name": "saline", "doses": [{"drug": "saline", "amount": "0 mg/kg",
                                               "route": "iv_infusion", "duration": "40 min",
                                               "at": ["0 h"]}]}],
        "outputs": {"times": ["4 h", "1 d", "7 d"], "readouts": ["response"]}})
    rng = np.random.default_rng(8)
    bmi = rng.normal(26, 4, n)
    arm = np.array([["ketamine", "saline"] if k % 2 else ["saline", "ketamine"]
                    for k in range(n)], dtype=object)
    resp = np.zeros((n, 2, 3))
    on = arm == "ketamine"
    resp[on, 1] = (bmi > 25).astype(float)[np.nonzero(on)[0]]
    resp[on, 2] = rng.random(n) < 0.5
    data = xr.Dataset(
        {"response": (("subject", "period", "time"), resp),
         "status": ("subject", np.array(["ok"] * n, dtype=object))},
        coords={"subject": np.arange(n), "period": [1, 2], "time": [4.0, 24.0, 168.0],
                "arm": (("subject", "period"), arm), "bmi": ("subject", bmi),
                "female": ("subject", (rng.random(n) < 0.5).astype(float)),
                "cyp2b6_pm": ("subject", np.zeros(n))})
    return sc, data


def test_a_perfect_predictor_ranks_first_and_is_worth_measuring() -> None:
    sc, data = _population()
    table = predictor_table(sc, data)
    day1 = table[table["target"] == "response at 24 h"].reset_index(drop=True)
    assert day1.loc[0, "predictor"] == "BMI" and day1.loc[0, "auc"] == 1.0
    assert bool(day1.loc[0, "worth_measuring"]) and day1.loc[0, "direction"] == "higher"
    cyp = day1[day1["predictor"] == "CYP2B6 poor metaboliser"].iloc[0]
    assert np.isnan(cyp["auc"]) and not cyp["worth_measuring"]
    assert set(table["target"]) == {"response at 24 h", "response at day 7"}
    # the response at 4 h is a candidate too (all 0 here: constant, no information)
    assert "response at 4 h" in set(table["predictor"])


def test_predictors_cli_on_a_small_real_trial(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text("""
name = "small crossover"
species = "human"
seed = 4
[population]
size = 10
[design]
type = "crossover"
washout = "8 d"
period_length = "7 d"
""" + KETAMINE_VS_SALINE + """[outputs]
times = ["1 d"]
readouts = ["madrs"]
""")
    res = runner.invoke(app, ["predictors", str(path), "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    names = {r["predictor"] for r in rows}
    assert {"BMI", "BDNF Met carrier", "CADSS at 40 min", "plasma BDNF at 240 min",
            "response at 4 h", "family history of AUD", "sex (female)"} <= names
    for r in rows:
        assert r["auc"] is None or 0.0 <= r["auc"] <= 1.0
        assert r["responders"] + r["non_responders"] == 10


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    for args in (["--bootstrap", "-1"], ["--subjects", "1"]):
        res = runner.invoke(app, ["predictors", *args])
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
        assert res.stderr.startswith(args[0] + ": "), res.stderr
    path = tmp_path / "rat.toml"
    path.write_text('name = "rat"\nspecies = "rat"\n[population]\nsize = 4\n'
                    '[[arms]]\nname = "ketamine"\n[[arms.doses]]\ndrug = "ketamine"\n'
                    'amount = "10 mg/kg"\nroute = "ip"\nat = ["0 h"]\n'
                    '[outputs]\ntimes = ["1 d"]\nreadouts = ["fst.immobility"]\n')
    res = runner.invoke(app, ["predictors", str(path)])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "human" in res.stderr and res.stderr.startswith("scenario: ")


def test_library_errors_name_the_argument() -> None:
    sc = load_scenario({"name": "s", "species": "human", "population": {"size": 4},
                        "design": {"type": "parallel"},
                        "arms": [{"name": "ketamine", "doses": [
                            {"drug": "ketamine", "amount": "0.5 mg/kg", "route": "iv_infusion",
                             "duration": "40 min", "at": ["0 h"]}]}],
                        "outputs": {"times": ["1 d"], "readouts": ["madrs"]}})
    with pytest.raises(ArgumentError, match=r"^size: 1 is too few"):
        predictors(sc, size=1, simulate=lambda *a, **k: None)
    with pytest.raises(ArgumentError, match=r"^bootstrap: -1 "):
        predictors(sc, bootstrap=-1, simulate=lambda *a, **k: None)
