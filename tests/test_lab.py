"""The virtual animal laboratory: assay noise, group statistics, 2 x 2 designs, the lab
report section, the issue-5 example scenarios and bad input (exit 2, one line)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats
from typer.testing import CliRunner

import ketasim
from ketasim import units
from ketasim.catalog.schema import Sourced
from ketasim.cli import app
from ketasim.experiments import lab
from ketasim.io import report_lab
from ketasim.model.system import MECHANISM_READOUTS
from ketasim.result import RunResult
from ketasim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FAST_EXAMPLES = ["li2011_cus.toml", "li2011_nonstressed.toml", "autry2011_bdnf.toml",
                 "gerhard2020_glun2b_interneuron.toml", "gerhard2020_wild_type.toml",
                 "liu2012_bdnf_met_met.toml"]
SLOW_EXAMPLES = ["li2010_time_course.toml", "maeng2008_nbqx.toml", "zanos2016_hnk.toml",
                 "moghaddam1997_glutamate.toml", "escitalopram_vs_ketamine_cus.toml"]
runner = CliRunner()


def _dose(drug: str, amount: str, at: str = "0 h", route: str = "ip") -> dict[str, Any]:
    return {"drug": drug, "amount": amount, "route": route, "at": [at]}


def rodent(arms: dict[str, list[dict[str, Any]]], size: int = 4, seed: int = 1,
           times: list[str] | None = None, readouts: list[str] | None = None,
           **population: Any) -> dict[str, Any]:
    """A rat scenario dict with the given arms (name -> doses)."""
    times = times or ["30 min", "24 h"]
    return {
        "name": "lab test", "species": "rat", "seed": seed,
        "population": {"size": size, "condition": "naive", **population},
        "design": {"type": "parallel", "follow_up": max(times, key=units.hours)},
        "arms": [{"name": n, "doses": d} for n, d in arms.items()],
        "outputs": {"times": times, "readouts": readouts or ["p_mtor", "spine_density"]},
    }


VEH_KET = {"vehicle": [_dose("saline", "0 mg/kg")], "ketamine": [_dose("ketamine", "10 mg/kg")]}


def synthetic(sc: Any, values: dict[str, np.ndarray], units: dict[str, str],
              times: list[float]) -> xr.Dataset:
    """A run-like dataset: (subject, period=1, time) readouts, arms in scenario order."""
    n = sc.population.size * len(sc.arms)
    arm = np.repeat([a.name for a in sc.arms], sc.population.size).astype(object)
    coords = {"subject": np.arange(n), "period": [1], "time": np.asarray(times, float),
              "arm": (("subject", "period"), arm[:, None])}
    dv: dict[str, Any] = {"status": ("subject", np.array(["ok"] * n, dtype=object))}
    for r, v in values.items():
        dv[r] = (("subject", "period", "time"), v.reshape(n, 1, len(times)), {"unit": units[r]})
        dv[f"{r}@baseline"] = (("subject", "period"), np.full((n, 1), 100.0), {"unit": units[r]})
    return xr.Dataset(dv, coords=coords)


# ------------------------------------------------------------------------- catalogue


def test_every_technique_is_sourced_and_every_mechanism_readout_is_placed() -> None:
    table = lab.assay_table()
    assert {"western_blot", "spine_count", "microdialysis", "mrs", "metabolomics"} <= set(table)
    for tech in table.values():
        assert isinstance(tech.cv, Sourced) and tech.cv.source and tech.cv.unit == "1"
        assert 0.0 < tech.cv.value < 0.5
    assert table["microdialysis"].bin is not None
    assert table["microdialysis"].bin.to("min") == pytest.approx(20.0)
    import tomllib

    raw = tomllib.loads((ROOT / "src/ketasim/catalog/assays.toml").read_text())
    unassayed = set(raw["unassayed"]["readouts"])
    for r in MECHANISM_READOUTS:
        assert (lab.technique_of(r) is not None) != (r in unassayed), r
    assert lab.technique_of("plasma.ketamine").id == "bioanalysis"
    assert lab.technique_of("p_mtor").id == "western_blot"
    assert lab.technique_of("glutamate.pfc").id == "microdialysis"
    assert lab.technique_of("spine_density").id == "spine_count"
    assert lab.technique_of("firing.pyramidal").id == "unit_recording"


# ------------------------------------------------------------------------ assay noise


@pytest.fixture(scope="module")
def big() -> tuple[Any, xr.Dataset]:
    sc = load_scenario(rodent(VEH_KET, size=1500, readouts=["p_mtor", "spine_density"]))
    n = 3000
    ds = synthetic(sc, {"p_mtor": np.full(n * 2, 100.0), "spine_density": np.full(n * 2, 80.0)},
                   {"p_mtor": "% of baseline", "spine_density": "% of healthy control"},
                   [0.5, 24.0])
    return sc, ds


def test_assay_noise_has_the_catalogue_cv(big: tuple[Any, xr.Dataset]) -> None:
    sc, ds = big
    out = lab.apply_assays(sc, ds)
    for r, tech in (("p_mtor", "western_blot"), ("spine_density", "spine_count")):
        nominal = lab.assay_table()[tech].cv.value
        v = out[r].values[:, 0, :]
        cv = v.std(axis=0, ddof=1) / v.mean(axis=0)
        assert np.all(np.abs(cv / nominal - 1) < 0.2), (r, cv, nominal)
        assert out[r].attrs["assay"] == tech
    # spines keep "% of healthy control" and are unbiased (mean-1 error)
    assert out["spine_density"].attrs["unit"] == "% of healthy control"
    assert out["spine_density"].values.mean() == pytest.approx(80.0, rel=0.01)
    # a Western blot readout in % of baseline becomes % of the vehicle mean at each time
    assert out["p_mtor"].attrs["unit"] == "% of vehicle"
    veh = out["arm"].values[:, 0] == "vehicle"
    assert np.allclose(out["p_mtor"].values[veh, 0, :].mean(axis=0), 100.0)


def test_assay_noise_is_reproducible_and_seed_dependent(big: tuple[Any, xr.Dataset]) -> None:
    sc, ds = big
    a = lab.apply_assays(sc, ds)["spine_density"].values
    b = lab.apply_assays(sc, ds)["spine_density"].values
    assert np.array_equal(a, b)
    other = load_scenario({**sc.as_dict(), "seed": sc.seed + 1})
    c = lab.apply_assays(other, ds)["spine_density"].values
    assert not np.allclose(a, c)
    # each animal's own stream: a readout's error does not depend on the others
    alone = load_scenario({**sc.as_dict(), "outputs": {**sc.as_dict()["outputs"],
                                                       "readouts": ["spine_density"]}})
    assert np.array_equal(lab.apply_assays(alone, ds)["spine_density"].values, a)


def test_no_measurement_error_without_variability(big: tuple[Any, xr.Dataset]) -> None:
    sc, ds = big
    d = sc.as_dict()
    d["population"]["variability"] = False
    out = lab.apply_assays(load_scenario(d), ds)
    assert np.all(out["spine_density"].values == 80.0)
    assert np.allclose(out["p_mtor"].values, 100.0)


def test_microdialysis_bins_and_point_samples() -> None:
    arms = {"vehicle": [_dose("saline", "0 mg/kg")]}
    times_h = [1 / 3, 2 / 3, 1.0]
    sc = load_scenario(rodent(arms, size=2, times=["20 min", "40 min", "60 min"],
                              readouts=["glutamate.pfc"], variability=False))
    ramp = np.tile(np.array([110.0, 130.0, 120.0]), 2)
    ds = synthetic(sc, {"glutamate.pfc": ramp}, {"glutamate.pfc": "% of baseline"}, times_h)
    out = lab.apply_assays(sc, ds)["glutamate.pfc"]
    assert "bins" in out.attrs["sampling"]
    # bin 0-20 min: (100 + 110) / 2; 20-40: (110 + 130) / 2; 40-60: (130 + 120) / 2
    assert np.allclose(out.values[0, 0], [105.0, 120.0, 125.0])
    # sparse times: point samples, unchanged values
    sc2 = load_scenario(rodent(arms, size=2, times=["30 min", "2 h", "3 h"],
                               readouts=["glutamate.pfc"], variability=False))
    ds2 = synthetic(sc2, {"glutamate.pfc": ramp}, {"glutamate.pfc": "% of baseline"},
                    [0.5, 2.0, 3.0])
    out2 = lab.apply_assays(sc2, ds2)["glutamate.pfc"]
    assert out2.attrs["sampling"].startswith("point")
    assert np.allclose(out2.values[0, 0], [110.0, 130.0, 120.0])
    # every 10 min: bins at 20, 40 min; 10 and 30 min end no bin
    sc3 = load_scenario(rodent(arms, size=2, times=["10 min", "20 min", "30 min", "40 min"],
                               readouts=["glutamate.pfc"], variability=False))
    ds3 = synthetic(sc3, {"glutamate.pfc": np.tile([120.0, 140.0, 140.0, 100.0], 2)},
                    {"glutamate.pfc": "% of baseline"}, [1 / 6, 1 / 3, 0.5, 2 / 3])
    v3 = lab.apply_assays(sc3, ds3)["glutamate.pfc"].values[0, 0]
    assert np.isnan(v3[0]) and np.isnan(v3[2])
    assert v3[1] == pytest.approx(((100 + 120) / 2 + (120 + 140) / 2) / 2)
    assert v3[3] == pytest.approx(((140 + 140) / 2 + (140 + 100) / 2) / 2)


# ------------------------------------------------------------------------- statistics


def _groups_dataset(sc: Any, seed: int = 3) -> tuple[xr.Dataset, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = sc.population.size
    shifts = {a.name: 10.0 * i for i, a in enumerate(sc.arms)}
    groups = {a: rng.normal(100 + s, 12, n) for a, s in shifts.items()}
    v = np.concatenate(list(groups.values()))
    ds = synthetic(sc, {"fst.immobility": v}, {"fst.immobility": "s"}, [24.0])
    return ds, groups


def test_anova_and_tukey_match_scipy() -> None:
    arms = {"vehicle": [_dose("saline", "0 mg/kg")], "k5": [_dose("ketamine", "5 mg/kg")],
            "k10": [_dose("ketamine", "10 mg/kg")]}
    sc = load_scenario(rodent(arms, size=9, times=["24 h"], readouts=["fst.immobility"]))
    ds, groups = _groups_dataset(sc)
    got = lab.group_statistics(sc, ds)
    st, te = got["lab_stats"], got["lab_tests"]
    for arm, x in groups.items():
        row = st[st["arm"] == arm].iloc[0]
        assert row["n"] == 9 and row["mean"] == pytest.approx(x.mean())
        assert row["sem"] == pytest.approx(x.std(ddof=1) / 3.0)
    f = stats.f_oneway(*groups.values())
    anova = te[te["test"] == "one-way ANOVA"].iloc[0]
    assert anova["statistic"] == pytest.approx(f.statistic)
    assert anova["p"] == pytest.approx(f.pvalue)
    assert anova["df"] == "2, 24"
    tk = stats.tukey_hsd(*groups.values())
    names = list(groups)
    tukey = te[te["test"] == "Tukey HSD"].set_index("comparison")
    assert len(tukey) == 3
    for i, j in itertools.combinations(range(3), 2):
        a, b = (names[j], names[i])
        assert tukey.loc[f"{a} vs {b}", "p_adjusted"] == pytest.approx(tk.pvalue[j, i])
        assert tukey.loc[f"{a} vs {b}", "statistic"] == pytest.approx(
            groups[a].mean() - groups[b].mean())
    marks = lab.significance_vs(te, "fst.immobility", 1, 24.0, "vehicle")
    assert set(marks) == {"k5", "k10"}
    assert marks["k10"] == pytest.approx(tk.pvalue[2, 0])


def test_two_arms_get_a_welch_t_test() -> None:
    sc = load_scenario(rodent(VEH_KET, size=7, times=["24 h"], readouts=["fst.immobility"]))
    ds, groups = _groups_dataset(sc)
    te = lab.group_statistics(sc, ds)["lab_tests"]
    assert list(te["test"]) == ["Welch t-test"]
    ref = stats.ttest_ind(groups["ketamine"], groups["vehicle"], equal_var=False)
    assert te["comparison"].iloc[0] == "ketamine vs vehicle"
    assert te["statistic"].iloc[0] == pytest.approx(ref.statistic)
    assert te["p"].iloc[0] == pytest.approx(ref.pvalue)


def test_constant_groups_give_a_note_not_a_test() -> None:
    sc = load_scenario(rodent(VEH_KET, size=3, times=["24 h"], readouts=["fst.immobility"]))
    ds = synthetic(sc, {"fst.immobility": np.repeat([150.0, 120.0], 3)},
                   {"fst.immobility": "s"}, [24.0])
    te = lab.group_statistics(sc, ds)["lab_tests"]
    assert np.isnan(te["p"].iloc[0]) and "variance" in te["note"].iloc[0]


MAENG = {
    "vehicle": [_dose("saline", "0 mg/kg", "-10 min"), _dose("saline", "0 mg/kg")],
    "ketamine": [_dose("saline", "0 mg/kg", "-10 min"), _dose("ketamine", "10 mg/kg")],
    "NBQX": [_dose("nbqx", "10 mg/kg", "-10 min"), _dose("saline", "0 mg/kg")],
    "NBQX + ketamine": [_dose("nbqx", "10 mg/kg", "-10 min"), _dose("ketamine", "10 mg/kg")],
}


def test_a_2x2_factorial_is_detected() -> None:
    fact = lab.factorial_2x2(load_scenario(rodent(MAENG)))
    assert fact is not None
    assert fact["arms"] == {"vehicle": (0, 0), "NBQX": (1, 0), "ketamine": (0, 1),
                            "NBQX + ketamine": (1, 1)}
    assert fact["factors"][0] == "NBQX"  # the pretreatment (earlier) factor comes first
    assert lab.factorial_2x2(load_scenario(rodent(VEH_KET))) is None
    zanos = {**{k: v for k, v in MAENG.items() if k != "NBQX"},
             "HNK": [_dose("hnk_2r6r", "10 mg/kg")]}
    assert lab.factorial_2x2(load_scenario(rodent(zanos))) is None
    assert lab.factorial_2x2(load_scenario(EXAMPLES / "maeng2008_nbqx.toml")) is not None


def test_two_way_anova_matches_the_balanced_formula() -> None:
    sc = load_scenario(rodent(MAENG, size=6, times=["24 h"], readouts=["fst.immobility"]))
    ds, groups = _groups_dataset(sc, seed=11)
    te = lab.group_statistics(sc, ds)["lab_tests"]
    two = te[te["test"] == "two-way ANOVA"].reset_index(drop=True)
    assert len(two) == 3
    g = {k: groups[k] for k in ("vehicle", "ketamine", "NBQX", "NBQX + ketamine")}
    n = 6
    cell = {k: v.mean() for k, v in g.items()}
    grand = np.mean(np.concatenate(list(g.values())))
    a1 = (cell["NBQX"] + cell["NBQX + ketamine"]) / 2
    a0 = (cell["vehicle"] + cell["ketamine"]) / 2
    b1 = (cell["ketamine"] + cell["NBQX + ketamine"]) / 2
    b0 = (cell["vehicle"] + cell["NBQX"]) / 2
    ss_a = 2 * n * ((a0 - grand) ** 2 + (a1 - grand) ** 2)
    ss_b = 2 * n * ((b0 - grand) ** 2 + (b1 - grand) ** 2)
    ss_cells = n * sum((m - grand) ** 2 for m in cell.values())
    ss_ab = ss_cells - ss_a - ss_b
    ms_err = sum(((v - v.mean()) ** 2).sum() for v in g.values()) / (4 * n - 4)
    for row, ss in zip(two.itertuples(), (ss_a, ss_b, ss_ab), strict=True):
        assert row.statistic == pytest.approx(ss / ms_err)
        assert row.p == pytest.approx(stats.f.sf(ss / ms_err, 1, 4 * n - 4))
        assert row.df == f"1, {4 * n - 4}"
    assert "interaction" in two["comparison"].iloc[2]


# ------------------------------------------------------------------ runs and the report


@pytest.fixture(scope="module")
def small_run() -> RunResult:
    return ketasim.run(load_scenario(rodent(VEH_KET, size=4, times=["30 min", "24 h"],
                                            readouts=["p_mtor", "spine_density",
                                                      "fst.immobility"])))


def test_a_rodent_run_carries_lab_tables(small_run: RunResult) -> None:
    st, te = small_run.extra_tables["lab_stats"], small_run.extra_tables["lab_tests"]
    assert set(st["readout"]) == {"p_mtor", "spine_density", "fst.immobility"}
    assert set(st["arm"]) == {"vehicle", "ketamine"} and set(st["n"]) == {4}
    assert set(te["test"]) == {"Welch t-test"}
    assert small_run.data["p_mtor"].attrs["unit"] == "% of vehicle"
    assert small_run.data["p_mtor"].attrs["assay"] == "western_blot"
    # the summary is computed on the assayed values
    s = small_run.summary
    veh = s[(s["readout"] == "p_mtor") & (s["arm"] == "vehicle") & (s["statistic"] == "mean")]
    assert np.allclose(veh["value"], 100.0)


def test_same_seed_same_assays_other_seed_other_assays(small_run: RunResult) -> None:
    sc = small_run.scenario
    again = ketasim.run(sc)
    assert np.array_equal(again.data["p_mtor"].values, small_run.data["p_mtor"].values)
    other = ketasim.run(load_scenario({**sc.as_dict(), "seed": sc.seed + 5}))
    assert not np.allclose(other.data["spine_density"].values,
                           small_run.data["spine_density"].values)


def test_report_lab_renders_figures_for_a_rodent_run(small_run: RunResult) -> None:
    html = report_lab.render(small_run)
    assert html.count("<img") == 3  # one figure per readout
    assert "Laboratory figures" in html and "Welch" in html
    from ketasim.io.report import render_report

    page = render_report(small_run)
    assert "Laboratory figures" in page and "lab tests" in page


def test_report_lab_is_empty_for_human_runs() -> None:
    sc = ketasim.default_scenario()
    assert report_lab.render(RunResult(sc, xr.Dataset(), pd.DataFrame())) == ""


# --------------------------------------------------------------------------- examples


@pytest.mark.parametrize("name", FAST_EXAMPLES + SLOW_EXAMPLES)
def test_every_lab_example_loads(name: str) -> None:
    sc = load_scenario(EXAMPLES / name)
    assert sc.species in ("rat", "mouse") and sc.population.size >= 2
    assert lab.vehicle_arm(sc) == "vehicle"


def _check_example(name: str) -> RunResult:
    sc = load_scenario(EXAMPLES / name)
    res = ketasim.run(sc)
    st, te = res.extra_tables["lab_stats"], res.extra_tables["lab_tests"]
    assert set(st["arm"]) == {a.name for a in sc.arms}
    assert set(st["readout"]) == set(sc.outputs.readouts)
    assert st["n"].max() == sc.population.size
    assert len(te) and te["p"].fillna(te["p_adjusted"]).notna().any()
    return res


@pytest.mark.parametrize("name", FAST_EXAMPLES)
def test_fast_lab_examples_run(name: str) -> None:
    _check_example(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_EXAMPLES)
def test_slow_lab_examples_run(name: str) -> None:
    res = _check_example(name)
    te = res.extra_tables["lab_tests"]
    if name == "maeng2008_nbqx.toml":
        assert (te["test"] == "two-way ANOVA").sum() == 3 * 3 * 2  # 3 readouts x 2 times
    if name == "moghaddam1997_glutamate.toml":
        assert "bins" in res.data["glutamate.pfc"].attrs["sampling"]
        assert "<img" in report_lab.render(res)


# -------------------------------------------------------------------------- bad input


BAD = {
    "a group of one animal": (lambda d: d["population"].update(size=1), "population.size"),
    "an icv dose in mg/kg": (
        lambda d: d["arms"][1]["doses"].insert(0, _dose("rapamycin", "0.2 mg/kg", "-30 min",
                                                        "icv")),
        "arms[1].doses[0].amount"),
    "a stress schedule ending before it starts": (
        lambda d: d["population"].update(condition="cus",
                                         stress={"start": "-7 d", "end": "-21 d"}),
        "population.stress.end"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_lab_input_exits_2_with_one_line(case: str, tmp_path: Path) -> None:
    change, field = BAD[case]
    d = rodent(VEH_KET)
    change(d)
    path = tmp_path / "bad.toml"
    path.write_text(_toml(d))
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    err = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(field), err
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def _toml(d: dict[str, Any]) -> str:
    """Just enough TOML for the scenario dicts of this file."""

    def val(v: Any) -> str:
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        return str(v)

    out = [f"{k} = {val(v)}" for k, v in d.items() if not isinstance(v, dict | list)]
    for table in ("population", "design", "outputs"):
        out.append(f"[{table}]")
        out += [f"{k} = {val(v)}" for k, v in d[table].items()]
    for arm in d["arms"]:
        out += ["[[arms]]", f"name = {val(arm['name'])}"]
        for dose in arm["doses"]:
            out.append("[[arms.doses]]")
            out += [f"{k} = {val(v)}" for k, v in dose.items()]
    return "\n".join(out) + "\n"
