"""Sensitivity analysis: known answers through the analysis code path (Ishigami Sobol
indices, a linear model's Morris effects), the engine path against ordinary runs with
overrides, parameter selection and ranges, and the command line's one-line errors."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from typer.testing import CliRunner

import ketasim as ks
from ketasim import parameters as kp
from ketasim.analysis import sensitivity as sa
from ketasim.cli import app
from ketasim.errors import ArgumentError, CatalogError, ScenarioError

pytest.importorskip("SALib")

PI = math.pi


def _u(name: str, lo: float, hi: float, dist: str = "uniform") -> kp.Uncertain:
    return kp.Uncertain(name, (lo + hi) / 2, "1", "assumed", dist, lo, hi, "test")


# ------------------------------------------------------------------- known answers


def ishigami(X: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    x1, x2, x3 = X[:, 0], X[:, 1], X[:, 2]
    return (np.sin(x1) + a * np.sin(x2) ** 2 + b * x3 ** 4 * np.sin(x1))[:, None]


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> tuple[list[float], list[float]]:
    """Analytic first and total order indices (Ishigami & Homma 1990; Sobol' 1999)."""
    v1 = 0.5 * (1 + b * PI ** 4 / 5) ** 2
    v2 = a ** 2 / 8
    v13 = b ** 2 * PI ** 8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return [v1 / v, v2 / v, 0.0], [(v1 + v13) / v, v2 / v, v13 / v]


def test_sobol_recovers_ishigami_indices_with_intervals_and_convergence() -> None:
    calls: list[int] = []

    def evaluate(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return ishigami(X)

    params = [_u(f"x{i}", -PI, PI) for i in (1, 2, 3)]
    res = sa.analyse(params, evaluate, ["y"], method="sobol", n=1024, seed=7, resamples=100)
    assert calls == [2 * 1024 * 5]  # one batched call: 2N base rows x (D + 2)
    s1, st = ishigami_indices()
    for index, truth in (("S1", s1), ("ST", st)):
        got = res.indices[res.indices["index"] == index].set_index("parameter")
        for name, t in zip(("x1", "x2", "x3"), truth, strict=True):
            assert got.loc[name, "value"] == pytest.approx(t, abs=0.04)
            assert 0 < got.loc[name, "conf"] < 0.1
    conv = res.convergence
    assert set(conv["n"]) == {1024} and len(conv) == 6
    assert conv["change"].abs().max() < 0.05


def test_morris_of_a_linear_model_gives_slope_times_range() -> None:
    """For y = 3 a - 2 log b (+ 0 c), mu* is |slope| x range on the sampled scale
    (log for a log-uniform value) and sigma is 0."""
    params = [_u("a", 0.0, 2.0), _u("b", 0.5, 2.0, "loguniform"), _u("c", 1.0, 1.5)]

    def f(X: np.ndarray) -> np.ndarray:
        return (3 * X[:, 0] - 2 * np.log(X[:, 1]) + 0 * X[:, 2])[:, None]

    res = sa.analyse(params, f, ["y"], method="morris", n=8, seed=1)
    w = res.indices.pivot(index="parameter", columns="index", values="value")
    assert w.loc["a", "mu_star"] == pytest.approx(6.0)
    assert w.loc["b", "mu_star"] == pytest.approx(2 * math.log(4))
    assert w.loc["c", "mu_star"] == pytest.approx(0.0, abs=1e-12)
    assert w["sigma"].abs().max() < 1e-9
    assert list(res.ranking()["parameter"]) == ["a", "b", "c"]


def test_efast_of_an_additive_model_matches_its_variance_shares() -> None:
    """y = x1 + 2 x2 with independent uniforms: shares 1/5 and 4/5."""
    params = [_u("x1", 0.0, 1.0), _u("x2", 0.0, 1.0)]
    res = sa.analyse(params, lambda X: (X[:, 0] + 2 * X[:, 1])[:, None], ["y"],
                     method="efast", n=257, seed=3, resamples=50)
    s1 = res.indices[res.indices["index"] == "S1"].set_index("parameter")["value"]
    assert s1["x1"] == pytest.approx(0.2, abs=0.03)
    assert s1["x2"] == pytest.approx(0.8, abs=0.03)


def test_analysis_rejects_bad_options_and_failed_rows() -> None:
    params = [_u("a", 0, 1), _u("b", 0, 1)]
    with pytest.raises(ArgumentError, match=r"^n: 3 is not allowed for Sobol"):
        sa.analyse(params, ishigami, ["y"], method="sobol", n=3)
    with pytest.raises(ArgumentError, match=r"^method:"):
        sa.analyse(params, ishigami, ["y"], method="fourier", n=8)
    with pytest.raises(ArgumentError, match=r"^parameters:"):
        sa.analyse(params[:1], ishigami, ["y"], method="morris", n=4)
    with pytest.raises(ks.SimulationError, match="fewer than 2 are left"):
        sa.analyse(params, lambda X: np.full((len(X), 1), np.nan), ["y"], "morris", 4)
    with pytest.raises(ks.SimulationError, match="sobol needs every row"):
        sa.analyse(params, lambda X: np.full((len(X), 1), np.nan), ["y"], "sobol", 8)


def test_morris_leaves_out_trajectories_with_a_failed_row() -> None:
    params = [_u("a", 0.0, 2.0), _u("b", 0.0, 1.0)]

    def f(X: np.ndarray) -> np.ndarray:
        y = 3 * X[:, 0] + X[:, 1]
        return np.where(X[:, 1] > 0.9, np.nan, y)[:, None]  # the top level of b fails

    res = sa.analyse(params, f, ["y"], method="morris", n=8, seed=2)
    assert 0 < res.manifest["dropped_trajectories"] < 16
    assert len(res.Y) == (16 - res.manifest["dropped_trajectories"]) * 3
    w = res.indices.pivot(index="parameter", columns="index", values="value")
    assert w.loc["a", "mu_star"] == pytest.approx(6.0)
    assert w.loc["b", "mu_star"] == pytest.approx(1.0)


# ---------------------------------------------------------------- parameters as data


def test_uncertainty_defaults_by_evidence_tag() -> None:
    trap = kp.uncertainty("drugs.esketamine.pd.nmda.trapping")  # P, 0.86, a fraction
    assert trap is not None and trap.dist == "uniform"
    assert trap.low == pytest.approx(0.86 * 0.8) and trap.high == 1.0  # cut at 1
    tau = kp.uncertainty("mechanism.structure.tau_spine")  # calibrated, 120 h
    assert tau is not None and tau.dist == "loguniform"
    assert (tau.low, tau.high) == pytest.approx((80.0, 180.0))
    assert "calibrated" in tau.reason
    assert kp.uncertainty("drugs.esketamine.molecular_weight") is None  # fixed
    own = kp.uncertainty("population.ratings.relief_n")
    assert own is not None and (own.low, own.high) == (4.0, 12.0)
    with pytest.raises(CatalogError, match="unknown catalog value"):
        kp.uncertainty("mechanism.nope")


def test_every_varied_value_has_a_valid_range_and_reason() -> None:
    for name, value in kp.catalog_values().items():
        u = kp.uncertainty(name)
        if u is None:
            continue
        assert u.low < u.high and u.reason, name
        if u.dist == "uniform" and u.low != u.high and value.value != 0:
            assert u.low <= value.value <= u.high, name


def test_uncertainty_file_is_validated_with_one_line_errors(monkeypatch) -> None:
    good = kp._read("uncertainty.toml")
    cases = [
        ({"parameters": {"mechanism.structure.tau_spine": {"dist": "uniform", "factor": 2,
                                                            "reason": "x"}}}, "factor"),
        ({"parameters": {"mechanism.nothing*": {"dist": "fixed", "reason": "x"}}},
         "matches no catalog value"),
        ({"parameters": {"mechanism.structure.tau_spine": {"dist": "uniform", "low": 2,
                                                            "high": 1, "reason": "x"}}},
         "not below"),
        ({"defaults": {k: v for k, v in good["defaults"].items() if k != "P"}},
         "defaults.P: missing"),
    ]
    for patch, message in cases:
        monkeypatch.setattr(kp, "_read", lambda _n, p=patch: {**good, **p})
        kp.uncertainty_table.cache_clear()
        with pytest.raises(CatalogError, match=message) as err:
            kp.uncertainty_table()
        assert "\n" not in str(err.value) and "uncertainty.toml" in str(err.value)
    monkeypatch.undo()
    kp.uncertainty_table.cache_clear()


def test_select_groups_globs_and_mixtures() -> None:
    sc = ks.default_scenario()
    from ketasim.experiments.run import Cohort, cohort_model

    model = cohort_model(sc, Cohort("k", np.arange(1), [sc.arms[0]], [0.0]))
    where = kp.targets(model, "human")
    pd_names = kp.select("drugs.ketamine.pd.nmda.*", where)
    assert "drugs.esketamine.pd.nmda.ic50_glun2b" in pd_names
    assert "drugs.arketamine.pd.nmda.ic50_glun2b" in pd_names
    assert where["drugs.esketamine.pd.nmda.ic50_glun2b"] == ["esketamine_ic50_2b"]
    ratings = kp.select(["ratings.*"], where)
    assert ratings and all(n.startswith("population.ratings.") for n in ratings)
    assert where[ratings[0]] == []  # a measurement constant, not a model parameter
    mech = kp.select(["mechanism.*"], where)
    assert "mechanism.structure.tau_spine" in mech
    assert not any(n.startswith("mechanism.hypotheses.") for n in mech)  # fixed
    for bad, message in (("mechanism.nope", "is not a catalog value"),
                         ("drugs.mk801.pd.nmda.trapping", "does not act"),
                         ("drugs.esketamine.molecular_weight", "is fixed"),
                         ("zz.*", "matches no parameter"), ("", "no parameters given")):
        with pytest.raises(ArgumentError, match=message):
            kp.select(bad, where)


# ----------------------------------------------------------------- the engine path


def _typical_run(sc, overrides: dict[str, float], arms: int = 2) -> dict[tuple, float]:
    """(arm, readout) -> mean of an ordinary run of the typical subject: MADRS change at
    24 h, CADSS at 40 min."""
    d = sc.as_dict()
    d["population"].update(variability=False, size=1)
    d["engine"]["method"] = "batched"
    d["design"] = {"type": "parallel", "follow_up": "2 d"}
    d["outputs"]["times"] = ["40 min", "1 d"]
    d["model"]["parameters"] = overrides
    d["arms"] = d["arms"][:arms]
    s = ks.run(ks.load_scenario(d)).summary
    s = s[(s.statistic == "mean") & (((s.readout == "madrs.change") & (s.time_h == 24))
                                     | ((s.readout == "cadss") & (s.time_h < 1)))]
    return {(a, r): v for a, r, v in zip(s.arm, s.readout, s.value, strict=True)}


def test_sample_rows_as_subject_columns_match_runs_with_overrides(monkeypatch) -> None:
    """Each row of the batch (a mechanism constant, a drug's value, a rating constant) gives
    what an ordinary run with that value gives."""
    sc = ks.default_scenario()
    outs = [sa.parse_output(t, sc) for t in (
        "madrs.change@1 d:ketamine", "madrs.change@1 d:ketamine vs saline",
        "cadss@40 min:ketamine")]
    names = ["mechanism.structure.spine_cap", "drugs.esketamine.pd.nmda.ic50_glun2b",
             "population.ratings.relief_max"]
    ev = sa.ScenarioEvaluator(sc, names, outs, engine="batched",
                              executor=ThreadPoolExecutor(2))
    X = np.array([[1.5, 2.9, 0.71], [0.8, 2.9, 0.71], [1.5, 8.0, 0.71], [1.5, 2.9, 0.4]])
    Y = ev(X)
    nominal = _typical_run(sc, {})
    for row, overrides, arms in ((0, {}, 2), (1, {"spine_cap": 0.8}, 2),
                                 (2, {"esketamine_ic50_2b": 8.0}, 1)):
        ref = {**nominal, **(_typical_run(sc, overrides, arms) if overrides else {})}
        k, p = ref[("ketamine", "madrs.change")], ref[("saline", "madrs.change")]
        assert Y[row] == pytest.approx([k, k - p, ref[("ketamine", "cadss")]], rel=1e-4)
    assert not np.allclose(Y[1], Y[0], rtol=1e-3)  # the rows differ: no value is shared
    assert Y[2, 2] != pytest.approx(Y[0, 2], rel=1e-3)
    from ketasim.experiments import measures

    real = measures._pv
    monkeypatch.setattr(measures, "_pv", lambda s, n: 0.4 if n == "relief_max" else real(s, n))
    ref = _typical_run(sc, {}, 1)
    assert Y[3, 0] == pytest.approx(ref[("ketamine", "madrs.change")], rel=1e-4)
    assert Y[3, 0] != pytest.approx(Y[0, 0], rel=1e-3)
    assert ev.failures["subjects"] == 0


def test_morris_on_a_rodent_example_reads_sucrose_preference() -> None:
    sc = ks.load_scenario("examples/li2011_cus.toml")
    res = sa.sensitivity(sc, parameters="behaviour.spt_*,mechanism.structure.tau_spine",
                         method="morris", n=2, engine="batched", resamples=20)
    assert res.outputs == ["sucrose_preference@1 d:ketamine 10 mg/kg",
                           "sucrose_preference@1 d:ketamine 10 mg/kg vs vehicle"]
    r = res.ranking(res.outputs[0]).set_index("parameter")
    # preference = healthy - gain (1 - mood): one-to-one in spt_healthy, uniform over
    # 75-90 %, so its mu* is that range (15 points), whatever the other values
    u = kp.uncertainty("population.behaviour.spt_healthy")
    assert u is not None and (u.dist, u.low, u.high) == ("uniform", 75.0, 90.0)
    assert r.loc["population.behaviour.spt_healthy", "value"] == pytest.approx(15.0, rel=1e-9)
    diff = res.ranking(res.outputs[1]).set_index("parameter")
    assert diff.loc["population.behaviour.spt_healthy", "value"] == pytest.approx(0, abs=1e-9)
    assert diff.loc["population.behaviour.spt_sd", "value"] == pytest.approx(0, abs=1e-9)
    assert diff.loc["population.behaviour.spt_gain", "value"] > 0
    assert len(res.convergence) == 2 * 4 * 3


def test_scenario_sensitivity_table_is_checked() -> None:
    d = ks.default_scenario().as_dict()
    d["sensitivity"] = {"parameters": ["ratings.*"], "method": "sobol", "n": 64}
    assert ks.load_scenario(d).sensitivity.method == "sobol"
    d["sensitivity"] = {"method": "fourier"}
    with pytest.raises(ScenarioError, match=r"^sensitivity.method"):
        ks.load_scenario(d)


# -------------------------------------------------------------------- command line

runner = CliRunner()


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "fourier"], "--method:"),
    (["--method", "sobol", "--n", "100"], "--n: 100 is not allowed for Sobol"),
    (["--parameters", "mechanism.nope"], "--parameters:"),
    (["--output", "madrs.change"], "--output:"),
    (["--output", "madrs.change@1 d:placebo"], '--output: arm "placebo"'),
    (["--output", "madrs.change@soon"], "--output:"),
    (["--mode", "everyone"], "--mode:"),
    (["--jobs", "0"], "--jobs:"),
    (["--engine", "warp"], "--engine:"),
    (["--resamples", "2"], "--resamples:"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    res = runner.invoke(app, ["sensitivity", *args])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), res.output


def test_cli_refuses_a_non_empty_out_before_simulating(tmp_path) -> None:
    (tmp_path / "x").write_text("keep")
    res = runner.invoke(app, ["sensitivity", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--overwrite" in res.output
    assert (tmp_path / "x").read_text() == "keep"


def test_cli_writes_the_report_of_a_small_morris_run(tmp_path) -> None:
    out = tmp_path / "sens"
    res = runner.invoke(app, ["sensitivity", "--parameters",
                              "ratings.relief_max,ratings.relief_share_median", "--n", "2",
                              "--engine", "batched", "--resamples", "20", "--out", str(out)])
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"indices.csv", "convergence.csv", "parameters.csv", "samples.parquet",
            "report.html", "manifest.json"} <= names
    html = (out / "report.html").read_text()
    assert html.count("<img") == 2 * 3  # bars and mu*-sigma for each of the 3 outputs
    assert "convergence" in res.output


def test_sobol_on_a_rodent_example_has_intervals_and_convergence() -> None:
    """Sobol through the engine: sucrose preference at 24 h is one-to-one in spt_healthy
    and does not depend on spt_sd (no noise for the typical animal)."""
    sc = ks.load_scenario("examples/li2011_cus.toml")
    res = sa.sensitivity(sc, parameters="behaviour.spt_healthy,behaviour.spt_sd",
                         outputs=["sucrose_preference@1 d:ketamine 10 mg/kg"],
                         method="sobol", n=8, engine="batched", resamples=50)
    assert res.manifest["rows_evaluated"] == 2 * 8 * (2 + 2)
    st = res.indices[res.indices["index"] == "ST"].set_index("parameter")
    # the estimator's own error at 2N = 16 base rows: a few per cent (0.993 measured)
    assert st.loc["population.behaviour.spt_healthy", "value"] == pytest.approx(1.0, abs=0.05)
    assert st.loc["population.behaviour.spt_sd", "value"] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(st["conf"]).all()
    assert set(res.convergence["n"]) == {8}


def test_rows_that_fail_are_simulated_again_on_the_batched_engine(monkeypatch) -> None:
    """A row whose subject the fast engine could not integrate is simulated again on the
    batched engine; one that fails there too stays NaN, and the analysis says so."""
    seen: list[tuple[str, int]] = []

    def fake(sc, arm, X, names, per_row, wanted):
        seen.append((str(sc.engine.method), len(X)))
        bad = (X[:, 0] > 0.5) if sc.engine.method == "fast" else (X[:, 0] > 0.9)
        values = np.where(bad, np.nan, X[:, 0])[:, None].repeat(len(wanted), axis=1)
        return values, bad.astype(int), "step size too small" if bad.any() else ""

    monkeypatch.setattr(sa, "evaluate_part", fake)
    sc = ks.default_scenario()
    ev = sa.ScenarioEvaluator(sc, ["a"], [sa.parse_output("cadss@40 min:ketamine", sc)],
                              engine="fast")
    X = np.array([[0.1], [0.6], [0.95], [0.3]])
    Y = ev(X)
    assert seen == [("fast", 4), ("batched", 2)]
    assert Y[[0, 1, 3], 0] == pytest.approx([0.1, 0.6, 0.3])
    assert np.isnan(Y[2, 0])
    assert ev.failures["rows"] == 2 and ev.retried["rows"] == 2
    assert ev.retried["failed_again"] == 1


@pytest.mark.slow
def test_worker_processes_give_the_numbers_of_a_serial_analysis() -> None:
    from ketasim.experiments.executor import executor_for

    sc = ks.load_scenario("examples/li2011_cus.toml")
    kw = {"parameters": "mechanism.structure.spine_gain,behaviour.spt_gain", "method": "morris",
          "n": 2, "engine": "batched", "resamples": 20}
    serial = sa.sensitivity(sc, **kw)
    with executor_for(jobs=2) as pool:
        parallel = sa.sensitivity(sc, executor=pool, **kw)
    assert np.array_equal(serial.Y, parallel.Y)
