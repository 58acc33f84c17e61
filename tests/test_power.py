"""``ketasim power``: power by simulation, exact properties with a stand-in simulator, one
small real run, and one-line errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from ketasim.analysis import power as pw
from ketasim.cli import app
from ketasim.errors import ArgumentError, KetasimError
from ketasim.experiments.run import cohorts
from ketasim.scenario import load_scenario
from scenario_text import KETAMINE_VS_SALINE

runner = CliRunner()


def _scenario(design: str = "crossover", size: int = 10) -> Any:
    arms = [{"name": "ketamine", "doses": [{"drug": "ketamine", "amount": "0.5 mg/kg",
                                            "route": "iv_infusion", "duration": "40 min",
                                            "at": ["0 h"]}]},
            {"name": "saline", "doses": [{"drug": "saline", "amount": "0 mg/kg",
                                          "route": "iv_infusion", "duration": "40 min",
                                          "at": ["0 h"]}]}]
    data: dict[str, Any] = {"name": "power test", "species": "human", "seed": 7,
                            "population": {"size": size}, "design": {"type": design},
                            "arms": arms,
                            "outputs": {"times": ["4 h", "1 d"],
                                        "readouts": ["madrs.change", "response"]}}
    if design == "crossover":
        data["design"].update(washout="3 d", period_length="2 d")
    return load_scenario(data)


class FakeSim:
    """A stand-in for ketasim.run: the run's own cohort assignment, normal scores
    (subject effect + ``effect`` on the active arm + noise), response = change <= -15."""

    def __init__(self, effect: float, noise: float = 6.0) -> None:
        self.effect, self.noise = effect, noise
        self.seeds: list[int] = []
        self.sizes: list[int] = []

    def __call__(self, sc: Any, progress: Any = None) -> Any:
        self.seeds.append(sc.seed)
        self.sizes.append(sc.population.size)
        groups = cohorts(sc)
        n = sum(len(c.subjects) for c in groups)
        n_per = len(groups[0].arms)
        arm = np.empty((n, n_per), dtype=object)
        order = np.concatenate([c.subjects for c in groups])
        for c in groups:
            for k, s in enumerate(c.subjects):
                arm[np.searchsorted(np.sort(order), s)] = [a.name for a in c.arms]
                del k
        times = np.asarray(sc.output_times_h)
        rng = np.random.default_rng(sc.seed)
        subj = rng.normal(0, 4, (n, 1, 1))
        v = subj + self.noise * rng.standard_normal((n, n_per, times.size))
        v = v + self.effect * (arm == "ketamine")[:, :, None]
        data = xr.Dataset(
            {"madrs.change": (("subject", "period", "time"), v),
             "response": (("subject", "period", "time"), (v <= -15).astype(float)),
             "status": ("subject", np.array(["ok"] * n, dtype=object))},
            coords={"subject": np.sort(order), "period": np.arange(1, n_per + 1),
                    "time": times, "arm": (("subject", "period"), arm)})

        class R:
            pass

        r = R()
        r.data = data  # type: ignore[attr-defined]
        return r


@pytest.mark.parametrize("design", ["crossover", "parallel"])
def test_trivially_separated_design_has_power_one(design: str) -> None:
    table = pw.power(_scenario(design), [4, 10], 30, simulate=FakeSim(effect=-40, noise=1))
    assert table["power"].tolist() == [1.0, 1.0]
    assert table["replicates"].tolist() == [30, 30]
    assert (table["ci_low"] <= table["power"]).all()


@pytest.mark.parametrize("design", ["crossover", "parallel"])
def test_identical_arms_reject_about_alpha(design: str) -> None:
    table = pw.power(_scenario(design), [10, 20], 1000, simulate=FakeSim(effect=0.0))
    # binomial(1000, 0.05)/1000: sd 0.007 (the seed is fixed: this is not a flaky test)
    assert ((table["power"] > 0.03) & (table["power"] < 0.07)).all(), table


def test_response_endpoint_uses_the_fraction_tests() -> None:
    ep = pw.Endpoint("response", "1 d")
    table = pw.power(_scenario("parallel"), [30], 20, ep, simulate=FakeSim(effect=-30))
    assert table["power"].iloc[0] == 1.0
    assert table["mean_difference"].iloc[0] > 0.5  # a risk difference, not points


def test_power_is_deterministic_and_batches_are_independent() -> None:
    sc = _scenario("crossover")
    a, b = FakeSim(-5.0), FakeSim(-5.0)
    t1 = pw.power(sc, [6, 10], 25, batch=4, simulate=a)
    t2 = pw.power(sc, [6, 10], 25, batch=4, simulate=b)
    assert t1.equals(t2)
    assert len(a.seeds) == 7 and len(set(a.seeds)) == 7  # 25 replicates, 4 per batch
    assert a.sizes[:6] == [40] * 6 and a.sizes[-1] == 10  # the last batch: 1 replicate


def test_replicates_are_disjoint_and_balanced() -> None:
    sc = _scenario("crossover", size=40)  # a pool of 4 replicates of 10
    data = FakeSim(-5.0)(sc).data
    reps = pw._split(sc, data, 4, 10, pw.Endpoint(), "saline")
    seen: set[int] = set()
    for rep in reps:
        ids = set(rep["seq1"]) | set(rep["seq2"])
        assert len(rep["seq1"]) == len(rep["seq2"]) == 5
        assert not ids & seen
        seen |= ids
    assert len(seen) == 40


def test_parse_sizes() -> None:
    assert pw.parse_sizes("40, 10,20") == [10, 20, 40]
    for bad in ("1,10", "10,x", "10,10", "0", ""):
        with pytest.raises(ArgumentError, match=r"^sizes: ") as err:
            pw.parse_sizes(bad)
        assert err.value.argument == "sizes" and isinstance(err.value, KetasimError)


def test_library_errors_name_the_argument_and_the_cli_its_flag() -> None:
    sc = _scenario()
    with pytest.raises(ArgumentError, match=r"^endpoint.time: "):
        pw.check(sc, [10], 5, pw.Endpoint(time="30 d"))
    with pytest.raises(ArgumentError, match=r"^replicates: "):
        pw.check(sc, [10], 0, pw.Endpoint())
    with pytest.raises(ArgumentError, match=r"^batch: "):
        pw.power(sc, [4], 2, batch=0, simulate=FakeSim(effect=-1))
    for args, flag in ((["--n", "1,10"], "--n: "), (["--time", "30 d"], "--time: "),
                       (["--alpha", "2"], "--alpha: "), (["--batch", "0"], "--batch: "),
                       (["--replicates", "0"], "--replicates: ")):
        res = runner.invoke(app, ["power", *args])
        assert res.exit_code == 2 and res.stderr.startswith(flag), (args, res.stderr)


def test_single_group_tests_the_readout_against_zero() -> None:
    data = _scenario("parallel").as_dict()
    data["design"] = {"type": "single_group"}
    data["arms"] = data["arms"][:1]
    sc = load_scenario(data)
    table = pw.power(sc, [8], 10, simulate=FakeSim(effect=-30, noise=2))
    assert table["comparison"].iloc[0] == "ketamine vs 0" and table["power"].iloc[0] == 1.0
    with pytest.raises(KetasimError):
        pw.power(sc, [8], 10, pw.Endpoint("response"), simulate=FakeSim(effect=-30))


# ------------------------------------------------------------------------------ CLI


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("args", [
    ["--n", "1,10"], ["--n", "10,abc"], ["--n", ""], ["--replicates", "0"],
    ["--alpha", "1.5"], ["--endpoint", "nope"], ["--endpoint", "relapse_free"],
    ["--time", "30 d"], ["--time", "soon"], ["--engine", "warp"], ["--batch", "0"],
])
def test_bad_options_exit_2_with_one_line(args: list[str]) -> None:
    res = runner.invoke(app, ["power", *args])
    assert res.exit_code == 2, res.output
    assert len(_lines(res.stderr)) == 1 and "Traceback" not in res.output


def test_rodent_scenario_has_no_madrs(tmp_path: Path) -> None:
    path = tmp_path / "rat.toml"
    path.write_text('name = "rat"\nspecies = "rat"\n[population]\nsize = 4\n'
                    '[[arms]]\nname = "ketamine"\n[[arms.doses]]\ndrug = "ketamine"\n'
                    'amount = "10 mg/kg"\nroute = "ip"\nat = ["0 h"]\n'
                    '[[arms]]\nname = "saline"\n[[arms.doses]]\ndrug = "saline"\n'
                    'amount = "0 mg/kg"\nroute = "ip"\nat = ["0 h"]\n'
                    '[outputs]\ntimes = ["1 d"]\nreadouts = ["fst.immobility"]\n')
    res = runner.invoke(app, ["power", str(path)])
    assert res.exit_code == 2 and len(_lines(res.stderr)) == 1
    assert "human readout" in res.stderr


def test_power_cli_runs_a_small_real_trial(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text("""
name = "small crossover"
species = "human"
seed = 3
[population]
size = 4
[design]
type = "crossover"
washout = "2 d"
period_length = "1 d"
""" + KETAMINE_VS_SALINE + """[outputs]
times = ["40 min", "1 d"]
readouts = ["madrs.change"]
""")
    args = ["power", str(path), "--n", "4", "--replicates", "2", "--engine", "batched"]
    res = runner.invoke(app, [*args, "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 1 and rows[0]["n"] == 4 and rows[0]["replicates"] == 2
    assert 0.0 <= rows[0]["power"] <= 1.0 and rows[0]["mean_difference"] < 0


def test_power_cli_prints_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import ketasim

    monkeypatch.setattr(ketasim, "run", FakeSim(effect=-10.0))
    res = runner.invoke(app, ["power", "--n", "6,12", "--replicates", "5"])
    assert res.exit_code == 0, res.output
    assert "ketamine vs saline" in res.stdout and "madrs.change at 1 d" in res.stdout
    assert "5 replicates per size" in res.stdout
