"""Result writers and the HTML report, on a small hand-built RunResult."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ketasim.errors import KetasimError
from ketasim.io import report as report_mod
from ketasim.io import results as results_mod
from ketasim.io.report import render_report
from ketasim.io.results import summary_records, write_results
from ketasim.result import SUMMARY_COLUMNS, RunResult

CONTRACT_FILES = {"summary.csv", "subjects.parquet", "manifest.json", "report.html"}
TIDY_COLUMNS = ["subject", "arm", "period", "readout", "time_h", "value"]
SEED_TIMES_H = (40 / 60, 80 / 60, 110 / 60, 230 / 60, 24.0, 48.0, 72.0, 168.0)


def make_result(n: int = 6, crossover: bool = True, times: tuple[float, ...] = SEED_TIMES_H,
                extra: bool = True, with_summary: bool = True) -> RunResult:
    """A tiny synthetic result shaped like ``ketasim.run``'s (dims subject/period/time)."""
    rng = np.random.default_rng(0)
    periods = [1, 2] if crossover else [1]
    t = np.asarray(times, float)
    order = [["ketamine", "saline"], ["saline", "ketamine"]]
    arm = np.array([order[i % 2][: len(periods)] for i in range(n)], dtype=object)
    active = (arm == "ketamine")[..., None]
    conc = np.where(active, 150 * np.exp(-t / 3.0), 0.0)
    conc = conc * rng.lognormal(0, 0.2, (n, len(periods), 1))
    madrs = 32 - np.where(active, 12 * np.exp(-t / 100), 2.0)
    madrs = madrs + rng.normal(0, 3, (*arm.shape, t.size))
    units = {"plasma.ketamine": "ng/mL", "brain.ketamine": "uM", "madrs": "points",
             "response": "fraction"}
    values = {"plasma.ketamine": conc, "brain.ketamine": conc / 500, "madrs": madrs,
              "response": (madrs < 16).astype(float)}
    data = xr.Dataset(
        {**{r: (("subject", "period", "time"), v, {"unit": units[r]}) for r, v in values.items()},
         "status": ("subject", np.array(["ok"] * n, dtype=object))},
        coords={"subject": np.arange(n), "period": periods, "time": t,
                "arm": (("subject", "period"), arm)},
    )
    rows: list[tuple] = []
    if with_summary:
        for r, v in values.items():
            for p_i, p in enumerate(periods):
                for a in ("ketamine", "saline"):
                    sel = arm[:, p_i] == a
                    for k, tk in enumerate(t):
                        x = v[sel, p_i, k]
                        if r == "response":
                            rows.append((a, p, r, tk, "fraction", float(x.mean()), units[r],
                                         x.size))
                            continue
                        stats = {"mean": x.mean(), "sd": x.std(ddof=1), "median": np.median(x),
                                 "p05": np.percentile(x, 5), "p95": np.percentile(x, 95)}
                        rows += [(a, p, r, tk, s, float(val), units[r], x.size)
                                 for s, val in stats.items()]
            for tk in t:
                rows += [("ketamine vs saline", 1, r, tk, s, val, units[r], n)
                         for s, val in (("difference", -8.0), ("cohens_d", float("nan")),
                                        ("p_value", 0.0004))]
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    scenario = {
        "name": "Synthetic <crossover> & test", "species": "human", "seed": 1,
        "population": {"size": n, "condition": "trd"},
        "design": {"type": "crossover" if crossover else "parallel", "washout": "14 d",
                   "period_length": "7 d"},
        "arms": [{"name": "ketamine", "doses": [{"drug": "ketamine", "amount": "0.5 mg/kg",
                                                 "route": "iv_infusion", "duration": "40 min",
                                                 "at": ["0 h"]}]},
                 {"name": "saline", "doses": [{"drug": "saline", "amount": "0 mg/kg",
                                               "route": "iv_infusion", "duration": "40 min",
                                               "at": ["0 h"]}]}],
    }
    manifest = {"scenario": scenario, "ketasim_version": "0.1.0", "seed": 1,
                "engine": "reference", "wall_time_s": 0.25, "subjects": n,
                "solver_status": {"ok": n}, "some_number": np.float64(1.5)}
    tables = {}
    if extra:
        tables["table1"] = pd.DataFrame({"time": ["40 min", "1 d"], "published": [20.1, 18.0],
                                         "simulated": [19.0, float("nan")]})
    return RunResult(scenario, data, summary, manifest, tables)


@pytest.fixture
def result() -> RunResult:
    return make_result()


# ------------------------------------------------------------------------------ writers


def test_write_results_contract_files(result: RunResult, tmp_path) -> None:
    out = tmp_path / "res"
    paths = write_results(result, out)
    names = {p.name for p in paths}
    assert names >= CONTRACT_FILES
    assert "table1.csv" in names
    assert all(p.parent == out and p.is_file() for p in paths)
    assert {p.name for p in out.iterdir()} == names

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert len(summary) == len(result.summary)
    assert set(summary["statistic"]) >= {"mean", "sd", "median", "p05", "p95", "fraction",
                                         "difference", "cohens_d", "p_value"}

    tidy = pd.read_parquet(out / "subjects.parquet")
    assert list(tidy.columns) == TIDY_COLUMNS
    d = result.data
    assert len(tidy) == 4 * d.sizes["subject"] * d.sizes["period"] * d.sizes["time"]
    assert set(tidy["arm"]) == {"ketamine", "saline"}

    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["files"]) == names
    for key in ("ketasim_version", "seed", "engine", "wall_time_s", "solver_status", "scenario"):
        assert key in manifest
    assert manifest["some_number"] == 1.5
    assert manifest["subjects_parquet"].startswith("written")

    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html


def test_no_temporary_directories_left(result: RunResult, tmp_path) -> None:
    write_results(result, tmp_path / "res")
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_existing_directory_refused_then_overwritten(result: RunResult, tmp_path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(KetasimError, match=r"out: .* exists; use overwrite=True"):
        write_results(result, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["res"]

    write_results(result, out, overwrite=True)
    names = {p.name for p in out.iterdir()}
    assert "keep.txt" not in names and names >= CONTRACT_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["res"]


def test_empty_directory_is_fine(result: RunResult, tmp_path) -> None:
    out = tmp_path / "res"
    out.mkdir()
    write_results(result, out)
    assert {p.name for p in out.iterdir()} >= CONTRACT_FILES


def test_a_file_in_the_way_is_refused(result: RunResult, tmp_path) -> None:
    out = tmp_path / "res"
    out.write_text("x")
    with pytest.raises(KetasimError, match="not a directory"):
        write_results(result, out, overwrite=True)
    assert out.read_text() == "x"


def test_failure_leaves_nothing_behind(result: RunResult, tmp_path, monkeypatch) -> None:
    def broken(_: RunResult) -> str:
        raise RuntimeError("figure failed")

    monkeypatch.setattr(report_mod, "render_report", broken)
    out = tmp_path / "res"
    with pytest.raises(RuntimeError):
        write_results(result, out)
    assert list(tmp_path.iterdir()) == []

    out.mkdir()
    (out / "old.csv").write_text("old")
    with pytest.raises(RuntimeError):
        write_results(result, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    assert (out / "old.csv").read_text() == "old"


def test_subjects_switch_and_size_limit(result: RunResult, tmp_path, monkeypatch) -> None:
    names = {p.name for p in write_results(result, tmp_path / "a", subjects=False)}
    assert "subjects.parquet" not in names
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert "skipped" in manifest["subjects_parquet"]

    monkeypatch.setattr(results_mod, "SUBJECTS_ROW_LIMIT", 10)
    names = {p.name for p in write_results(result, tmp_path / "b")}
    assert "subjects.parquet" not in names
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert "more than 10" in manifest["subjects_parquet"]

    names = {p.name for p in write_results(result, tmp_path / "c", subjects=True)}
    assert "subjects.parquet" in names


def test_extra_table_names_are_sanitised(tmp_path) -> None:
    res = make_result()
    res.extra_tables = {"summary": pd.DataFrame({"a": [1]}), "../evil name": pd.DataFrame()}
    names = {p.name for p in write_results(res, tmp_path / "res")}
    assert {"extra_summary.csv", "evil_name.csv"} <= names
    assert list(pd.read_csv(tmp_path / "res" / "summary.csv").columns) == SUMMARY_COLUMNS


def test_summary_records_are_json(result: RunResult) -> None:
    records = summary_records(result)
    assert len(records) == len(result.summary)
    text = json.dumps(records, allow_nan=False)
    back = json.loads(text)
    assert all(list(r) == SUMMARY_COLUMNS for r in back)
    d = [r for r in back if r["statistic"] == "cohens_d"]
    assert d and all(r["value"] is None for r in d)
    assert all(isinstance(r["n"], int) and isinstance(r["period"], int) for r in back)


# ------------------------------------------------------------------------------- report


def test_report_has_sections_and_figures(result: RunResult) -> None:
    html = render_report(result)
    assert "<title>ketasim: Synthetic &lt;crossover&gt; &amp; test</title>" in html
    assert html.count("data:image/png;base64,") == 3  # concentrations, readouts, fractions
    for text in ("Scenario", "Run", "Summary", "Per arm", "Between arms", "Table 1",
                 "ketamine vs saline", "0.5 mg/kg", "iv_infusion", "reference", "ok: 6",
                 "40 min", "7 d", "<figcaption>"):
        assert text in html, text
    assert "<script" not in html and 'src="http' not in html and "<link" not in html


def test_report_parallel_short_followup_and_no_summary() -> None:
    res = make_result(crossover=False, times=(0.5, 1, 2, 6, 24), extra=False,
                      with_summary=False)
    html = render_report(res)
    assert html.count("data:image/png;base64,") == 3
    assert "The summary is empty" in html
    assert "time in hours" in html


def test_report_time_axis_choice(result: RunResult) -> None:
    assert "logarithmic time axis" in render_report(result)  # single dose, 7-day follow-up
    result.scenario["arms"][0]["doses"][0]["at"] = ["0 h", "48 h"]
    html = render_report(result)
    assert "time in days" in html and "logarithmic" not in html


def test_report_all_zero_concentrations_skips_pk_figure() -> None:
    res = make_result(extra=False)
    res.data["plasma.ketamine"][:] = 0.0
    res.data["brain.ketamine"][:] = 0.0
    res.summary = res.summary[~res.summary["readout"].str.contains(".", regex=False)]
    html = render_report(res)
    assert html.count("data:image/png;base64,") == 2


def test_single_time_point_report_draws_no_time_courses() -> None:
    res = make_result(crossover=False, times=(24.0,), extra=False)
    html = render_report(res)
    assert "data:image/png;base64," not in html  # no panel of single dots
    assert "One output time: no time courses to draw" in html
    assert "1 d" in html and "Per arm" in html  # the values are in the tables

