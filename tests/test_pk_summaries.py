"""PK summaries as readouts (``<readout>.cmax``, ``.tmax``, ``.auc``) against closed forms,
arterial vs venous sampling, and bad input (issue 17, item 5).

- one-compartment oral dose (memantine, human, brain uptake off): AUC(0-inf) = F D / CL,
  tmax = ln(ka/k) / (ka - k), Cmax = F D ka / (V (ka - k)) (e^-k tmax - e^-ka tmax);
- one-compartment IV bolus: Cmax = D / V at tmax = 0; AUC from the period's start;
- ketamine IV bolus: arterial Cmax = D / V_arterial at t = 0; venous peak later and lower;
  AUC = sum over enantiomers of D / CL (both samples);
- per period: the same dose in both periods of a crossover gives the same AUC and Cmax;
- a summary name that is not one: exit 2, one line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.catalog import catalog
from ketasim.cli import app
from ketasim.scenario import load_scenario
from test_scenario import to_toml

ROOT = Path(__file__).resolve().parents[1]


def scenario(doses: list[dict[str, Any]], times: list[str], readouts: list[str],
             follow_up: str = "60 d", params: dict[str, float] | None = None,
             design: dict[str, Any] | None = None) -> dict[str, Any]:
    """One typical 70-kg man (no variability), reference engine at tight tolerances."""
    return {
        "name": "pk summaries", "species": "human", "seed": 3,
        "population": {"size": 1, "condition": "healthy", "variability": False,
                       "weight_kg": {"mean": 70, "sd": 0}, "female_fraction": 0.0},
        "design": design or {"type": "single_group", "follow_up": follow_up},
        "arms": [{"name": "a", "doses": doses}],
        "outputs": {"times": times, "readouts": readouts},
        "model": {"parameters": params or {}},
        "engine": {"method": "reference", "rtol": 1e-9, "atol": 1e-12},
    }


def value(data: Any, name: str, k: int = -1, period: int = 0) -> float:
    return float(data[name].values[0, period, k])


def subject_cl(cid: str, data: Any) -> float:
    """The subject's clearance of ``cid`` (L/h): catalog CL at 70 kg with lean mass."""
    disp = catalog().drugs[cid].pk["human"]
    lean = float(data["lean_ratio"].values[0])
    return disp.cl.to("L/h") * lean ** 0.75


def test_one_compartment_oral_auc_cmax_tmax_closed_form() -> None:
    disp = catalog().drugs["memantine"].pk["human"]
    ab = disp.routes["oral"]
    sc = load_scenario(scenario(
        [{"drug": "memantine", "amount": "20 mg", "route": "oral", "at": ["0 h"]}],
        ["1 h", "12 h", "60 d"],
        ["plasma.memantine", "plasma.memantine.cmax", "plasma.memantine.tmax",
         "plasma.memantine.auc"], params={"memantine_kpuu": 0.0}))
    data = ketasim.run(sc).data
    cl, v = subject_cl("memantine", data), disp.v1.to("L")
    f, ka, k = ab.f.to("1"), ab.ka.to("1/h"), cl / v  # type: ignore[union-attr]
    dose = 20_000.0  # ug
    assert value(data, "plasma.memantine.auc") == pytest.approx(f * dose / cl, rel=1e-4)
    tmax = math.log(ka / k) / (ka - k)
    cmax = f * dose * ka / (v * (ka - k)) * (math.exp(-k * tmax) - math.exp(-ka * tmax))
    assert value(data, "plasma.memantine.tmax") == pytest.approx(tmax, abs=1 / 60)
    assert value(data, "plasma.memantine.cmax") == pytest.approx(cmax, rel=1e-5)
    # running summaries: at 1 h the maximum so far is the value at 1 h (still rising)
    assert value(data, "plasma.memantine.cmax", 0) == pytest.approx(
        value(data, "plasma.memantine", 0), rel=1e-9)
    assert value(data, "plasma.memantine.tmax", 0) == pytest.approx(1.0, abs=1e-9)
    assert data["plasma.memantine.auc"].attrs["unit"] == "ng*h/mL"
    assert data["plasma.memantine.tmax"].attrs["unit"] == "h"


def test_one_compartment_iv_bolus_cmax_at_time_zero() -> None:
    disp = catalog().drugs["memantine"].pk["human"]
    sc = load_scenario(scenario(
        [{"drug": "memantine", "amount": "10 mg", "route": "iv_bolus", "at": ["2 h"]}],
        ["1 h", "3 h", "60 d"],
        ["plasma.memantine.cmax", "plasma.memantine.tmax", "plasma.memantine.auc"],
        params={"memantine_kpuu": 0.0}))
    data = ketasim.run(sc).data
    assert value(data, "plasma.memantine.cmax", 0) == 0.0  # before the dose
    assert value(data, "plasma.memantine.cmax") == pytest.approx(10_000 / disp.v1.to("L"),
                                                                 rel=1e-9)
    assert value(data, "plasma.memantine.tmax") == pytest.approx(2.0, abs=1e-9)
    cl = subject_cl("memantine", data)
    assert value(data, "plasma.memantine.auc") == pytest.approx(10_000 / cl, rel=1e-4)


def test_ketamine_bolus_arterial_and_venous_summaries() -> None:
    """Arterial Cmax = D / V_arterial at the bolus (both enantiomers mix in the same
    volume); the venous sample peaks minutes later, lower; both AUCs = sum D_i / CL_i."""
    cat = catalog()
    sc = load_scenario(scenario(
        [{"drug": "ketamine", "amount": "10 mg", "route": "iv_bolus", "at": ["0 h"]}],
        ["30 min", "30 d"],
        [f"{p}.ketamine.{s}" for p in ("plasma", "plasma_arterial")
         for s in ("cmax", "tmax", "auc")], follow_up="30 d"))
    data = ketasim.run(sc).data
    va = cat.drugs["esketamine"].pk["human"].v_arterial.to("L")  # type: ignore[union-attr]
    assert value(data, "plasma_arterial.ketamine.cmax") == pytest.approx(10_000 / va,
                                                                         rel=1e-9)
    assert value(data, "plasma_arterial.ketamine.tmax") == 0.0
    venous_t = value(data, "plasma.ketamine.tmax")
    assert 0.5 / 60 < venous_t < 5 / 60
    assert value(data, "plasma.ketamine.cmax") < 0.5 * value(data,
                                                              "plasma_arterial.ketamine.cmax")
    auc = sum(5_000 / subject_cl(c, data) for c in ("esketamine", "arketamine"))
    for p in ("plasma", "plasma_arterial"):
        # the unbound brain water holds a little drug, so the plasma AUC is not reduced
        assert value(data, f"{p}.ketamine.auc") == pytest.approx(auc, rel=1e-3)


def test_summaries_per_period_of_a_crossover() -> None:
    design = {"type": "crossover", "washout": "7 d", "period_length": "2 d"}
    data: dict[str, Any] = scenario(
        [{"drug": "ketamine", "amount": "0.5 mg/kg", "route": "iv_infusion",
          "duration": "40 min", "at": ["0 h"]}], ["2 d"],
        ["plasma.ketamine.cmax", "plasma.ketamine.tmax", "plasma.ketamine.auc"],
        design=design)
    data["population"]["size"] = 2
    data["arms"].append({"name": "b", "doses": data["arms"][0]["doses"]})
    out = ketasim.run(load_scenario(data)).data
    for name in ("plasma.ketamine.cmax", "plasma.ketamine.tmax", "plasma.ketamine.auc"):
        v = out[name].values[:, :, -1]
        np.testing.assert_allclose(v[:, 1], v[:, 0], rtol=1e-3)
    # the end of the infusion is the venous peak (within the 2-min arm transit)
    assert 40 / 60 <= out["plasma.ketamine.tmax"].values[0, 0, -1] <= 45 / 60


@pytest.mark.parametrize("name", ["plasma.ketamine.cmin", "plasma.ketamine.cmax.auc",
                                  "brain.unobtainium.auc", "madrs.cmax"])
def test_bad_summary_name_exit_2_one_line(name: str, tmp_path: Path) -> None:
    data = scenario([{"drug": "ketamine", "amount": "10 mg", "route": "iv_bolus",
                      "at": ["0 h"]}], ["1 h"], ["plasma.ketamine", name], follow_up="1 d")
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(path)])
    assert res.exit_code == 2
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "outputs.readouts[1]" in err[0] and name in err[0]
    assert ".cmax, .tmax or .auc" in err[0]
    assert "Traceback" not in res.output


def test_pk_routes_example_runs() -> None:
    """examples/pk_routes.toml: venous and arterial curves and summaries for three routes."""
    sc = load_scenario(ROOT / "examples" / "pk_routes.toml")
    s = ketasim.run(sc).summary
    mean = s[s.statistic == "mean"].set_index(["arm", "readout", "time_h"])["value"]
    day = 24.0
    iv, oral, nasal = "iv bolus 10 mg", "oral 25 mg", "esketamine nasal 56 mg"
    assert mean[(iv, "plasma.ketamine.tmax", day)] < 0.1
    assert mean[(oral, "plasma.ketamine.tmax", day)] > 0.3
    # nasal: the mucosal part peaks 20-40 min after the last spray (at 5 min)
    assert 25 / 60 <= mean[(nasal, "plasma.ketamine.tmax", day)] <= 45 / 60
    # first pass: far more norketamine per ketamine after oral than after IV dosing
    ratio = {a: mean[(a, "plasma.norketamine.cmax", day)] / mean[(a, "plasma.ketamine.cmax",
                                                                    day)] for a in (iv, oral)}
    assert ratio[oral] > 10 * ratio[iv]
    # by 2 min the arterial pool has mixed out while the arm still drains the early spike:
    # venous above arterial after a bolus (Henthorn 2018: drug eluting from tissue)
    assert mean[(iv, "plasma.ketamine", 2 / 60)] > mean[(iv, "plasma_arterial.ketamine",
                                                          2 / 60)]
