"""The default study set, Table 1, trial endpoints in the summary and the report section,
on small simulated trials (properties that hold by construction, not calibrated values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.analysis import table1 as t1
from ketasim.cli import app
from ketasim.experiments.endpoints import kaplan_meier_table
from ketasim.result import SUMMARY_COLUMNS, RunResult
from ketasim.scenario import default_scenario, load_scenario
from ketasim.stats import kaplan_meier

runner = CliRunner()

_DOSE = {"amount": "0.5 mg/kg", "route": "iv_infusion", "duration": "40 min"}


def _single() -> Any:
    return load_scenario({
        "name": "small crossover", "species": "human", "seed": 11,
        "population": {"size": 8, "condition": "trd"},
        "design": {"type": "crossover", "washout": "4 d", "period_length": "3 d"},
        "arms": [{"name": "ketamine", "doses": [{"drug": "ketamine", "at": ["0 h"], **_DOSE}]},
                 {"name": "saline", "doses": [{"drug": "saline", "at": ["0 h"], **_DOSE,
                                               "amount": "0 mg/kg"}]}],
        "outputs": {"times": ["40 min", "2 h", "4 h", "1 d", "2 d", "3 d"],
                    "readouts": ["plasma.ketamine", "madrs", "madrs.change", "response",
                                 "remission", "cadss", "sbp.change"]}})


def _course() -> Any:
    return load_scenario({
        "name": "small course", "species": "human", "seed": 12,
        "population": {"size": 6, "condition": "trd"},
        "design": {"type": "single_group", "follow_up": "26 d"},
        "arms": [{"name": "ketamine x3", "doses": [{"drug": "ketamine",
                                                    "at": ["0 d", "2 d", "4 d"], **_DOSE}]}],
        "outputs": {"times": ["40 min", "4 h", "1 d", "2 d", "5 d", "7 d", "10 d", "14 d",
                              "18 d", "22 d", "26 d"],
                    "readouts": ["madrs", "response", "remission", "relapse_free"]}})


@pytest.fixture(scope="module")
def study() -> tuple[RunResult, RunResult]:
    single, course = ketasim.run(_single()), ketasim.run(_course())
    return single, course


@pytest.fixture(scope="module")
def combined(study: tuple[RunResult, RunResult]) -> RunResult:
    cache = {r.scenario.name: r for r in study}
    return t1.run_default(single=study[0].scenario, course=study[1].scenario,
                          simulate=lambda sc, progress=None: cache[sc.name])


# --------------------------------------------------------------------- built-ins


def test_builtin_study_set_is_the_seed_crossover_plus_a_six_infusion_course() -> None:
    single, course = default_scenario(), t1.course_scenario()
    dose = single.arm("ketamine").doses[0]
    assert (dose.amount, dose.duration) == ("0.5 mg/kg", "40 min")
    assert {2.0, 4.0, 24.0, 48.0, 72.0, 96.0, 120.0, 144.0, 168.0} <= set(single.output_times_h)
    assert single.design.type == "crossover" and single.follow_up_h >= 14 * 24
    arm = course.arms[0]
    assert arm.doses[0].times_h() == [0.0, 48.0, 96.0, 168.0, 216.0, 264.0]  # M-W-F x 2
    assert course.follow_up_h - 264.0 >= 35 * 24  # at least 5 weeks after the last one
    assert "relapse_free" in course.outputs.readouts
    # no rating inside the sixth infusion: relapse counts responders 24 h after it
    assert not [t for t in course.output_times_h if 264.0 <= t < 288.0]


# ------------------------------------------------------------------------ Table 1


def test_table1_has_every_row_of_the_seed(combined: RunResult) -> None:
    table = combined.extra_tables["table1"]
    assert list(table.columns) == ["Study parameter", "Finding (published)", "Simulated"]
    # the seed's Table 1, row by row (read from the seed validation cases)
    assert list(zip(table["Study parameter"], table["Finding (published)"], strict=True)) == [
        ("Dosage", "0.5 mg/kg infused over 40 minutes"),
        ("Onset of Action", "Within 2-4 hours post-infusion"),
        ("Peak Effect", "24 hours post-infusion"),
        ("Response Rate (Single Infusion)", "25% to 85% at 24 hours"),
        ("Response Rate (Repeated Infusions)", "~71% after six infusions"),
        ("Duration of Effect (Single Infusion)", "7-14 days"),
        ("Median Time to Relapse (After Repeated Infusions)", "18 days")]
    assert table.loc[0, "Simulated"].startswith("0.5 mg/kg over 40 min")
    for text in table["Simulated"]:
        assert text and text != "not simulated"
    assert {"course_summary", "kaplan_meier"} <= set(combined.extra_tables)
    assert combined.manifest["companion_studies"][0]["subjects"] == 6


def _summary(diff: list[float], p: list[float], d: list[float],
             times: list[float]) -> RunResult:
    rows = []
    for t, a, b, c in zip(times, diff, p, d, strict=True):
        rows += [("ketamine vs saline", 1, "madrs.change", t, "difference", a, "points", 20),
                 ("ketamine vs saline", 1, "madrs.change", t, "p_value", b, "points", 20),
                 ("ketamine vs saline", 1, "madrs.change", t, "cohens_d", c, "points", 20)]
    import xarray as xr

    data = xr.Dataset({"madrs.change": (("subject", "period", "time"),
                                        np.zeros((1, 2, len(times))))})
    return RunResult(_single(), data, pd.DataFrame(rows, columns=SUMMARY_COLUMNS))


def test_onset_peak_and_duration_follow_their_rules() -> None:
    times = [2 / 3, 2.0, 4.0, 24.0, 72.0, 168.0, 240.0]
    diff = [-1.0, -2.5, -4.0, -9.0, -6.0, -2.0, -0.5]
    p = [0.01, 0.20, 0.01, 1e-5, 1e-4, 0.03, 0.5]
    d = [-0.1, -0.3, -0.5, -1.0, -0.7, -0.25, -0.05]
    got = t1.onset_peak_duration(_summary(diff, p, d, times))
    # 40 min: only 1 point; 2 h: not significant; from 4 h on every rating to 24 h qualifies
    assert got["onset_h"] == 4.0
    assert got["peak_h"] == 24.0 and got["peak_difference"] == -9.0
    assert got["duration_h"] == 168.0 and got["after_duration_h"] == 240.0


def test_no_onset_when_the_effect_lapses_before_24_h() -> None:
    times = [2.0, 4.0, 24.0]
    got = t1.onset_peak_duration(_summary([-3.0, -3.0, -1.0], [0.01, 0.01, 0.4],
                                          [-0.5, -0.5, -0.1], times))
    assert np.isnan(got["onset_h"]) and np.isnan(got["duration_h"])


# ------------------------------------------------------------- endpoint rows


def test_whole_period_endpoints_are_rows_without_a_time(study: tuple[RunResult, RunResult]
                                                        ) -> None:
    single = study[0]
    s = single.summary
    ends = s[s["time_h"].isna()]
    assert set(ends["statistic"]) >= {"median_time_to_response", "fraction_ever",
                                      "median_time_to_remission", "peak", "time_of_peak",
                                      "subject_peak_mean"}
    # median time to response: the Kaplan-Meier median of the first responding rating
    data, times = single.data, single.data["time"].values
    resp = data["response"].values[:, 0, :][data["arm"].values[:, 0] == "ketamine"]
    first = [times[np.argmax(r > 0.5)] if (r > 0.5).any() else times[-1] for r in resp]
    med = kaplan_meier(np.array(first), resp.max(axis=1) > 0.5).median()
    row = ends[(ends["arm"] == "ketamine") & (ends["period"] == 1)
               & (ends["statistic"] == "median_time_to_response")]
    assert row["unit"].iloc[0] == "h"
    assert (np.isnan(med) and np.isnan(row["value"].iloc[0])) or row["value"].iloc[0] == med
    # safety: the peak is the largest per-time mean, at its time
    for readout in ("cadss", "sbp.change"):
        mean = s[(s["arm"] == "ketamine") & (s["period"] == 1) & (s["readout"] == readout)
                 & (s["statistic"] == "mean")]
        k = int(np.argmax(mean["value"].to_numpy()))
        get = ends[(ends["arm"] == "ketamine") & (ends["period"] == 1)
                   & (ends["readout"] == readout)].set_index("statistic")["value"]
        assert get["peak"] == pytest.approx(mean["value"].iloc[k])
        assert get["time_of_peak"] == mean["time_h"].iloc[k]
        assert get["subject_peak_mean"] >= get["peak"] - 1e-9


def test_between_arm_rows_of_a_crossover(study: tuple[RunResult, RunResult]) -> None:
    s = study[0].summary
    comp = s[s["arm"] == "ketamine vs saline"]
    for t in comp["time_h"].unique():
        c = comp[(comp["time_h"] == t) & (comp["readout"] == "madrs")].set_index(
            "statistic")["value"]
        assert c["ci_low"] <= c["difference_adjusted"] <= c["ci_high"]
        r = comp[(comp["time_h"] == t) & (comp["readout"] == "response")].set_index(
            "statistic")["value"]
        if r["difference"] != 0:
            assert r["nnt"] == pytest.approx(1 / r["difference"])


def test_kaplan_meier_matches_relapse_free(study: tuple[RunResult, RunResult]) -> None:
    course = study[1]
    km = kaplan_meier_table(course.scenario, course.data)
    s = course.summary
    rf = s[(s["readout"] == "relapse_free") & (s["statistic"] == "fraction")
           & s["value"].notna()].set_index("time_h")["value"]
    n = s[(s["statistic"] == "responders")]["value"]
    if not len(km):
        assert n.iloc[0] == 0
        return
    last = 4 * 24.0
    # nobody is censored before the last rating: KM = the fraction still relapse-free
    for _, row in km.iterrows():
        assert row["survival"] == pytest.approx(rf.loc[row["time_h"] + last])
    assert km["at_risk"].iloc[0] == n.iloc[0]


# ------------------------------------------------------- CLI, files and report


def test_a_single_rating_time_draws_no_time_courses(study: tuple[RunResult, RunResult]
                                                     ) -> None:
    from ketasim.io.report import render_report

    full = study[0]  # times 40 min, 2 h, 4 h, 1 d, 2 d, 3 d: keep 1 d only
    s = full.summary
    one = RunResult(full.scenario, full.data.isel(time=[3]),
                    s[(s["time_h"] == 24.0) | s["time_h"].isna()], full.manifest)
    page = render_report(one)
    assert "Rating-scale trajectories" in render_report(full)
    assert "Rating-scale trajectories" not in page and "Mean per arm (lines)" not in page
    assert "One output time" in page and "Response (&gt;= 50 % fall" in page  # bars stay


def test_table1_rules_travel_with_the_result(combined: RunResult) -> None:
    # the report shows them from the result: io never reads analysis modules
    rules = combined.notes["table1"]
    assert rules.startswith("Each simulated value follows") and "Onset of action" in rules
    from ketasim.io.report import render_report

    assert "How Table 1" in render_report(combined)
    combined_without = RunResult(combined.scenario, combined.data, combined.summary,
                                 combined.manifest, combined.extra_tables)
    assert "How Table 1" not in render_report(combined_without)


def test_cli_run_without_a_file_prints_table1(monkeypatch: pytest.MonkeyPatch,
                                              study: tuple[RunResult, RunResult],
                                              tmp_path: Path) -> None:
    cache = {r.scenario.name: r for r in study}
    monkeypatch.setattr(ketasim, "default_scenario", _single)
    monkeypatch.setattr(t1, "course_scenario", _course)
    monkeypatch.setattr(ketasim, "run", lambda sc, progress=None, **options: cache[sc.name])
    res = runner.invoke(app, ["run", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "Table 1" in res.stdout and "Median Time to Relapse" in res.stdout
    assert "endpoints over each period" in res.stdout
    # the headline: Table 1 first, then every readout 24 h after the dose; not every time
    assert res.stdout.index("Table 1") < res.stdout.index("every readout at 1 d")
    assert "madrs.change (points)" in res.stdout and "report.html" in res.stdout
    verbose = runner.invoke(app, ["run", "--verbose"])
    assert verbose.exit_code == 0, verbose.output
    assert "every readout at 1 d" not in verbose.stdout and "Table 1" in verbose.stdout
    assert len(res.stdout.splitlines()) < len(verbose.stdout.splitlines())
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"table1.csv", "course_summary.csv", "kaplan_meier.csv", "summary.csv",
            "report.html"} <= written
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Virtual trial" in page and "Table 1" in page
    assert "Kaplan-Meier" in page and "How Table 1" in page
    assert page.count("<img") >= 6
    assert "<h2>course summary</h2>" not in page  # drawn, not dumped as a table


@pytest.mark.slow
def test_default_run_fills_every_row_of_table1() -> None:
    result = t1.run_default()
    table = result.extra_tables["table1"]
    assert len(table) == 7 and "not simulated" not in set(table["Simulated"])


def test_open_label_multiplies_the_expectancy_of_a_saline_arm() -> None:
    # typical subject, saline: the whole change is expectancy, so open label scales it
    # by exactly ratings.open_label_gain (patients know they get the drug)
    from ketasim.population import _pv

    def change(blinding: str) -> float:
        sc = load_scenario({
            "name": "saline", "species": "human", "seed": 3,
            "population": {"size": 1, "condition": "trd", "variability": False},
            "design": {"type": "single_group", "follow_up": "2 d", "blinding": blinding},
            "arms": [{"name": "saline", "doses": [{"drug": "saline", "at": ["0 h"], **_DOSE,
                                                   "amount": "0 mg/kg"}]}],
            "outputs": {"times": ["1 d"], "readouts": ["madrs.change"]}})
        s = ketasim.run(sc).summary
        return float(s[(s.readout == "madrs.change") & (s.statistic == "mean")].value.iloc[0])

    gain = _pv("ratings", "open_label_gain")
    blind, open_ = change("double_blind"), change("open_label")
    assert blind < -0.5
    assert open_ == pytest.approx(gain * blind, rel=1e-6)
