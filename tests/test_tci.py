"""Target-controlled infusion (``target = "150 ng/mL"``) against its own definition and
bad input (issue 17, item 5).

- every subject of a variable population: arterial plasma at the target (0.1 %) at the end
  of every pump step; venous within 1 % from 15 min on, never above the target;
- a lowered target: the pump stops (no negative amounts) until the concentration has
  fallen, then holds the new target;
- drug already in the body (a bolus before the TCI) is accounted for;
- bad input: exit 2, one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.cli import app
from ketasim.experiments import tci
from ketasim.experiments.run import cohorts, prepare_cohort
from ketasim.scenario import load_scenario
from test_scenario import to_toml

ROOT = Path(__file__).resolve().parents[1]
MIN = 1 / 60


def scenario(doses: list[dict[str, Any]], times: list[str], size: int = 4,
             variability: bool = True) -> dict[str, Any]:
    return {
        "name": "tci", "species": "human", "seed": 11,
        "population": {"size": size, "condition": "healthy", "variability": variability},
        "design": {"type": "single_group", "follow_up": "1 d"},
        "arms": [{"name": "tci", "doses": doses}],
        "outputs": {"times": times, "readouts": ["plasma.ketamine", "plasma_arterial.ketamine"]},
        "engine": {"method": "batched", "rtol": 1e-8, "atol": 1e-11},
    }


def tci_dose(target: str, duration: str, at: str = "0 h") -> dict[str, Any]:
    return {"drug": "ketamine", "target": target, "route": "iv_infusion",
            "duration": duration, "at": [at]}


def test_tci_holds_every_subject_at_the_target() -> None:
    times = [f"{m} min" for m in (1, 2, 5, 10, 15, 20, 30, 45, 60)]
    sc = load_scenario(scenario([tci_dose("150 ng/mL", "1 h")], times))
    data = ketasim.run(sc).data
    art = data["plasma_arterial.ketamine"].values[:, 0]
    ven = data["plasma.ketamine"].values[:, 0]
    np.testing.assert_allclose(art, 150.0, rtol=1e-3)
    assert np.all(ven <= 150.0 * 1.001)
    np.testing.assert_allclose(ven[:, 4:], 150.0, rtol=0.01)
    # the subjects differ, so their pumps do: the amounts delivered differ between them
    prot = prepare_cohort(sc, cohorts(sc)[0]).protocol
    total = sum(e.amount for e in prot.events)
    assert np.ptp(total) > 0.05 * np.mean(total)
    assert len(prot.events) == 2 * round(1 / tci.STEP_H)  # one per step and enantiomer


def test_tci_lowered_target_pump_stops_then_holds() -> None:
    doses = [tci_dose("300 ng/mL", "30 min"), tci_dose("200 ng/mL", "2 h", "30 min")]
    times = ["29 min", "30 min", "31 min", "40 min", "2 h", "150 min"]
    sc = load_scenario(scenario(doses, times, size=1))
    prot = prepare_cohort(sc, cohorts(sc)[0]).protocol
    assert all(np.all(e.amount >= 0) for e in prot.events)
    assert any(np.all(e.amount == 0) for e in prot.events if 0.5 <= e.time < 0.6)
    art = ketasim.run(sc).data["plasma_arterial.ketamine"].values[:, 0]
    np.testing.assert_allclose(art[:, 1], 300.0, rtol=1e-3)
    assert np.all(art[:, 2] > 200.0)  # still falling towards the new target
    np.testing.assert_allclose(art[:, 4:], 200.0, rtol=1e-3)


def test_tci_accounts_for_drug_already_given() -> None:
    doses = [{"drug": "ketamine", "amount": "20 mg", "route": "iv_bolus", "at": ["0 h"]},
             tci_dose("150 ng/mL", "30 min", "10 min")]
    data = ketasim.run(load_scenario(scenario(doses, ["11 min", "20 min", "40 min"],
                                              size=2))).data
    np.testing.assert_allclose(data["plasma_arterial.ketamine"].values[:, 0], 150.0,
                               rtol=1e-3)


@pytest.mark.parametrize(("dose", "path", "words"), [
    ({"drug": "ketamine", "target": "150 ng/mL", "route": "iv_bolus", "at": ["0 h"]},
     "arms[0].doses[0].target", "only for iv_infusion"),
    ({"drug": "ketamine", "target": "150 ng/mL", "amount": "1 mg", "route": "iv_infusion",
      "duration": "1 h", "at": ["0 h"]}, "arms[0].doses[0].target", "together with amount"),
    ({"drug": "ketamine", "target": "150 mg", "route": "iv_infusion", "duration": "1 h",
      "at": ["0 h"]}, "arms[0].doses[0].target", "ng/mL"),
    ({"drug": "ketamine", "target": "0 ng/mL", "route": "iv_infusion", "duration": "1 h",
      "at": ["0 h"]}, "arms[0].doses[0].target", "above 0"),
    ({"drug": "ketamine", "route": "iv_infusion", "duration": "1 h", "at": ["0 h"]},
     "arms[0].doses[0].amount", "target"),
])
def test_bad_tci_exit_2_one_line(dose: dict[str, Any], path: str, words: str,
                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(to_toml(scenario([dose], ["1 h"])), encoding="utf-8")
    res = CliRunner().invoke(app, ["run", str(bad)])
    assert res.exit_code == 2
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and path in err[0] and words in err[0]
    assert "Traceback" not in res.output


def test_tci_example_runs() -> None:
    """examples/tci_ketamine.toml: 150 then 300 ng/mL, venous sample at each target."""
    s = ketasim.run(load_scenario(ROOT / "examples" / "tci_ketamine.toml")).summary
    m = s[(s.statistic == "mean") & (s.arm == "ketamine TCI")].set_index(
        ["readout", "time_h"])["value"]
    assert m[("plasma.ketamine", 59 / 60)] == pytest.approx(150.0, rel=0.01)
    assert m[("plasma.ketamine", 89 / 60)] == pytest.approx(300.0, rel=0.01)
    assert m[("plasma.ketamine.cmax", 24.0)] == pytest.approx(300.0, rel=0.01)
