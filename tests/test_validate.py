"""``ketasim validate``: the case files, the generic runner and the scorecard."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import ketasim as ks
from ketasim import validation as v
from ketasim.errors import CaseError, KetasimError
from ketasim.io.scorecard import render_html
from ketasim.validation import runner, schema

CASES = v.load_cases()

# Every row of the seed's Tables 1 and 2, the behaviours of model.md and the calibration
# numbers of ../shared/reference/ that the mechanism and trial layers touch.
REQUIRED = {
    # seed Table 1
    "seed_t1_dose", "seed_t1_onset", "seed_t1_peak", "seed_t1_response_24h",
    "seed_t1_repeated_response", "seed_t1_duration", "seed_t1_relapse",
    # seed Table 2
    "seed_t2_plasma_bdnf", "seed_t2_hippocampal_gaba", "seed_t2_pfc_glutamate",
    "seed_t2_glu_gln_14h", "seed_t2_gaba_glu_72h",
    # model.md behaviours
    "bdnf_transient_synapse_persists", "maeng2008_nbqx_blocks", "li2010_rapamycin",
    "zanos2016_hnk", "hnk_no_dissociation", "li2010_dose_inverted_u", "li2011_cus_reversal",
    "ketamine_faster_than_escitalopram",
    # calibration numbers
    "milak2016_glx_gaba", "li2010_time_course", "autry2011_mouse_3mgkg",
    "moghaddam1997_glutamate", "homayoun2007_interneurons_first", "han2016_pooled_response",
    "kishimoto2016_effect_size", "murrough2013_first_infusion", "murrough2013_midazolam",
    "dissociation_end_of_infusion", "abdallah2018_cycling", "garcia2008_rat_fst_bdnf",
}


# ------------------------------------------------------------------------------ case files


def test_required_cases_are_present() -> None:
    ids = {c.id for c in CASES}
    assert not REQUIRED - ids, f"missing cases: {sorted(REQUIRED - ids)}"
    assert len(ids) == len(CASES), "case ids must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_parses_and_its_scenario_validates(case: v.Case) -> None:
    assert case.claim and case.source and case.checks
    assert re.search(r"\[(P|S|U)[\] ,]|\[\d+\]|Seed|seed|issue|model\.md", case.source), \
        "the source names a citation with its tag"
    ks.load_scenario(case.scenario)  # raises ScenarioError if not
    assert v.case_problems(case) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case_keeps_populations_small(case: v.Case) -> None:
    """Small enough for `ketasim validate` to stay within minutes; the largest is the shared
    400-per-arm parallel trial, whose effect-size checks need a Cohen's d SE of about 0.07."""
    sc = ks.load_scenario(case.scenario)
    assert 1 <= sc.population.size <= 400


def test_cases_are_data_not_code() -> None:
    """No case id appears in the runner: nothing is special-cased."""
    source = "".join(Path(m.__file__).read_text(encoding="utf-8") for m in (runner, schema))
    for c in CASES:
        assert c.id not in source, f"case {c.id} is named in the runner or the schema"


def test_shared_scenarios_run_once() -> None:
    keys = {v.scenario_key(ks.load_scenario(c.scenario)) for c in CASES}
    assert len(keys) < len(CASES)


# ------------------------------------------------------------------------------ bad files


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


RODENT = """
    [scenario]
    name = "tiny mouse experiment"
    species = "mouse"
    seed = 1
    population = { size = 2, condition = "naive", variability = false }
    design = { type = "parallel", follow_up = "24 h" }
    outputs = { times = ["30 min", "1 h", "24 h"], readouts = ["fst.immobility", "p_mtor"] }

    [[scenario.arms]]
    name = "vehicle"
    doses = [{ drug = "saline", amount = "0 mg/kg", route = "ip", at = ["0 h"] }]

    [[scenario.arms]]
    name = "ketamine"
    doses = [{ drug = "ketamine", amount = "10 mg/kg", route = "ip", at = ["0 h"] }]
"""


@pytest.mark.parametrize(("body", "message"), [
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\nwhat = 1\n' + RODENT, '"what" is not a known key'),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n' + RODENT, "has no [[checks]]"),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\nmin = 1\n',
     "exactly one of [scenario]"),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n' + RODENT + '\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\n'
     'compare_to = { readout = "p_mtor", arm = "vehicle", time = "1 h" }\nop = "=="\n',
     'is not "<" or ">"'),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n' + RODENT + '\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\n',
     "no criterion"),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n' + RODENT + '\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 hour ago" }\nmin = 1\n',
     "is not a time"),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\n' + RODENT + '\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 h", statistic = "avg" }\n'
     'min = 1\n', '"avg" is not one of'),
    ('id = "x"\nclaim = "c"\nsource = "s [P]"\nscenario_case = "nope"\n[[checks]]\n'
     'value = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\nmin = 1\n',
     "is not a case id"),
])
def test_bad_case_files_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    _write(tmp_path, "bad", body)
    with pytest.raises(CaseError) as err:
        v.load_cases(folder=tmp_path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_case_name_lists_the_known_ones(tmp_path: Path) -> None:
    _write(tmp_path, "ok", 'id = "ok"\nclaim = "c"\nsource = "s [P]"\n' + RODENT
           + '\n[[checks]]\nvalue = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\n'
           "min = 1\n")
    with pytest.raises(KetasimError, match='"nope" is not a validation case; use one of: ok'):
        v.run_validation(["nope"], folder=tmp_path)


def test_overrides_deep_merge_and_reach_dotted_keys() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "arms": [{"name": "x"}]}
    out = schema.deep_merge(base, {"a": {"c": [3]}, "arms.0.name": "y", "d.e": 2})
    assert out == {"a": {"b": 1, "c": [3]}, "arms": [{"name": "y"}], "d": {"e": 2}}
    assert base["arms"][0]["name"] == "x"


# ------------------------------------------------------------------------------ evaluation


def _summary() -> pd.DataFrame:
    rows = []
    times = [0.5, 1.0, 24.0, 72.0]
    series = {"vehicle": [100, 100, 100, 100], "ketamine": [150, 180, 120, 101]}
    for arm, vals in series.items():
        for t, x in zip(times, vals, strict=True):
            rows.append((arm, 1, "p_mtor", t, "mean", float(x), "% of baseline", 2))
    for t, x in zip(times, [1.0, 0.9, 0.6, 0.2], strict=True):
        rows.append(("ketamine", 1, "relapse_free", t, "fraction", x, "fraction", 10))
        rows.append(("ketamine", 1, "response", t, "fraction", x / 2, "fraction", 10))
    rows.append(("ketamine vs vehicle", 1, "p_mtor", 1.0, "cohens_d", -1.1, "% of baseline", 4))
    return pd.DataFrame(rows, columns=["arm", "period", "readout", "time_h", "statistic",
                                       "value", "unit", "n"])


def _check(**kw: object) -> v.Check:
    raw = {"value": {"readout": "p_mtor", "arm": "ketamine", "time": "1 h"}, **kw}
    return schema.parse_check(raw, None, 0)


@pytest.mark.parametrize(("kw", "passed", "expected"), [
    ({"min": 150, "max": 250}, True, "150-250 % of baseline"),
    ({"min": 190}, False, ">= 190 % of baseline"),
    ({"expected": 170, "abs_tol": 15}, True, "170 +- 15 % of baseline"),
    ({"expected": 200, "rel_tol": 0.05}, False, "200 % of baseline +- 5 %"),
    ({"compare_to": {"readout": "p_mtor", "arm": "vehicle", "time": "1 h"}, "op": ">",
      "factor": 1.5}, True, "> 1.50 x p_mtor @ 1 h, vehicle (100 % of baseline)"),
    ({"compare_to": {"readout": "p_mtor", "arm": "vehicle", "time": "1 h"}, "op": "<"},
     False, "< p_mtor @ 1 h, vehicle (100 % of baseline)"),
    ({"relative_to": {"readout": "p_mtor", "arm": "vehicle", "time": "1 h"}, "min": 1.5,
      "max": 2.5}, True, "1.50-2.50 x p_mtor @ 1 h, vehicle"),
    # a tolerance on a ratio (1.80 x vehicle): a miss must fail, not fall through to no bounds
    ({"relative_to": {"readout": "p_mtor", "arm": "vehicle", "time": "1 h"}, "expected": 1.2,
      "abs_tol": 0.1}, False, "1.20 +- 0.10 x p_mtor @ 1 h, vehicle"),
    ({"relative_to": {"readout": "p_mtor", "arm": "vehicle", "time": "1 h"}, "expected": 1.75,
      "abs_tol": 0.1}, True, "1.75 +- 0.10 x p_mtor @ 1 h, vehicle"),
])
def test_evaluate_value_checks(kw: dict, passed: bool, expected: str) -> None:
    exp, sim, ok, _x, _ = v.evaluate(_check(**kw), _summary())
    assert ok is passed
    assert exp == expected
    assert sim.split()[0] in ("180", "1.80")


def test_evaluate_fractions_show_as_percent() -> None:
    chk = schema.parse_check({"value": {"readout": "response", "arm": "ketamine", "time": "1 d"},
                    "expected": 0.35, "abs_tol": 0.1}, None, 0)
    exp, sim, ok, x, unit = v.evaluate(chk, _summary())
    assert (exp, sim, ok, x, unit) == ("35 % +- 10 pp", "30 %", True, 0.3, "fraction")


def test_evaluate_between_arm_statistic() -> None:
    chk = schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine vs vehicle",
                              "time": "1 h", "statistic": "cohens_d"}, "max": -0.5}, None, 0)
    exp, sim, ok, *_ = v.evaluate(chk, _summary())
    assert (exp, sim, ok) == ("d <= -0.50", "d -1.10", True)


def test_evaluate_mean_over_a_window() -> None:
    """Trapezoid mean over 30 min-24 h of 150, 180, 120 % at 0.5, 1, 24 h:
    (0.5 (150 + 180) / 2 + 23 (180 + 120) / 2) / 23.5 = 150.3 %."""
    chk = schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine",
                              "mean_over": ["30 min", "24 h"]}, "expected": 150.3,
                    "abs_tol": 0.1}, None, 0)
    exp, _sim, ok, x, _ = v.evaluate(chk, _summary())
    assert ok and x == pytest.approx((0.5 * 165 + 23 * 150) / 23.5)
    assert exp == "150 +- 0.10 % of baseline"
    assert runner.check_label(chk) == "p_mtor mean over 30 min-24 h, ketamine"
    off = schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine",
                              "mean_over": ["0 min", "24 h"]}, "min": 1}, None, 0)
    with pytest.raises(KetasimError, match="needs output times at both ends"):
        v.evaluate(off, _summary())
    with pytest.raises(KetasimError, match="time or mean_over, not both"):
        schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine", "time": "1 h",
                            "mean_over": ["30 min", "24 h"]}, "min": 1}, None, 0)


def test_evaluate_peak_and_crossing() -> None:
    peak = schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine"},
                     "peak_between": ["30 min", "2 h"]}, None, 0)
    exp, sim, ok, t, _ = v.evaluate(peak, _summary())
    assert ok and t == 1.0 and sim.startswith("peak at 1 h (180 %")
    late = schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine"},
                     "peak_between": ["12 h", "36 h"]}, None, 0)
    assert v.evaluate(late, _summary())[2] is False
    cross = schema.parse_check({"value": {"readout": "relapse_free", "arm": "ketamine"},
                      "crosses": 0.5, "crossing_between": ["1 d", "3 d"]}, None, 0)
    exp, sim, ok, t, _ = v.evaluate(cross, _summary())
    assert ok and t == pytest.approx(24 + 48 * 0.1 / 0.4)
    assert exp == "falls to 50 % at 1 d-3 d"
    never = schema.parse_check({"value": {"readout": "relapse_free", "arm": "ketamine"},
                      "crosses": 0.1, "crossing_between": ["1 d", "3 d"]}, None, 0)
    exp, sim, ok, t, _ = v.evaluate(never, _summary())
    assert not ok and sim == "not by 3 d"


def test_missing_values_fail_with_a_reason() -> None:
    case = v.Case("syn", "claim", "source [P]", {}, [
        _check(min=1),
        schema.parse_check({"value": {"readout": "p_mtor", "arm": "nobody", "time": "1 h"},
                            "min": 1}, None, 0),
        schema.parse_check({"value": {"readout": "p_mtor", "arm": "ketamine", "time": "5 h"},
                            "min": 1}, None, 0),
    ])
    res = v.run_case(case, SimpleNamespace(summary=_summary()))
    assert [r.passed for r in res] == [True, False, False]
    assert 'arm "nobody"' in res[1].simulated and "no output at 5 h" in res[2].simulated


# ------------------------------------------------------------------------------ running


def test_runner_on_a_synthetic_case(tmp_path: Path) -> None:
    head = 'claim = "Ketamine raises p-mTOR in mice."\nsource = "synthetic [U]"\n'
    _write(tmp_path, "a_first", 'id = "first"\n' + head + RODENT + """
        [[checks]]
        value = { readout = "p_mtor", arm = "ketamine", time = "1 h" }
        compare_to = { readout = "p_mtor", arm = "vehicle", time = "1 h" }
        op = ">"

        [[checks]]
        value = { readout = "p_mtor", arm = "vehicle", time = "1 h" }
        expected = 100
        abs_tol = 1
    """)
    _write(tmp_path, "b_second", 'id = "second"\n' + head + """
        scenario_case = "first"

        [[checks]]
        value = { readout = "fst.immobility", arm = "ketamine", time = "24 h" }
        max = 1
    """)
    calls: list[tuple] = []
    df = v.run_validation(progress=lambda a, total=None: calls.append((a, total)),
                          folder=tmp_path)
    assert list(df.columns) == ["case", "role", *v.COLUMNS[1:]]
    assert list(df["case"]) == ["first", "first", "second"]
    assert calls == [(0, 1), (1, None)], "two cases with one scenario run once"
    assert list(df["passed"]) == [True, True, False]
    assert df["simulated"].iloc[2].endswith(" s")
    html = render_html(df)
    assert html.startswith("<!DOCTYPE html>") and "FAIL" in html and "pass" in html
    assert "2 of 3 checks passed; 1 of 2 cases passed" in html
    one = v.run_validation(case="second", folder=tmp_path)
    assert list(one["case"]) == ["second"]


def test_worker_processes_give_the_serial_table(tmp_path: Path) -> None:
    """Three cases on two scenarios (one seeded with rating noise): jobs=2 runs them in
    worker processes and returns the same table, row for row, in case order."""
    head = 'claim = "c"\nsource = "synthetic [U]"\n'
    check = """
        [[checks]]
        value = { readout = "fst.immobility", arm = "ketamine", time = "24 h" }
        compare_to = { readout = "fst.immobility", arm = "vehicle", time = "24 h" }
        op = "<"
    """
    noisy = RODENT.replace("variability = false", "variability = true")
    assert noisy != RODENT
    _write(tmp_path, "a", 'id = "a"\n' + head + RODENT + check)
    _write(tmp_path, "b", 'id = "b"\n' + head + noisy.replace("seed = ", "seed = 9") + check)
    _write(tmp_path, "c", 'id = "c"\n' + head + 'scenario_case = "a"\n' + check)
    calls: list[tuple] = []
    serial = v.run_validation(folder=tmp_path)
    parallel = v.run_validation(folder=tmp_path, jobs=2,
                                progress=lambda a, total=None: calls.append((a, total)))
    assert list(parallel["case"]) == ["a", "b", "c"]
    pd.testing.assert_frame_equal(serial, parallel)
    assert calls == [(0, 2), (1, None), (1, None)], "one tick per scenario run"
    with pytest.raises(ValueError, match="jobs"):
        v.run_validation(folder=tmp_path, jobs=0)


def test_scenario_errors_become_failed_rows(tmp_path: Path) -> None:
    bad = RODENT.replace('route = "ip", at = ["0 h"] }]\n\n    [[scenario.arms]]',
                         'route = "nasal", at = ["0 h"] }]\n\n    [[scenario.arms]]')
    _write(tmp_path, "bad", 'id = "bad"\nclaim = "c"\nsource = "s [P]"\n' + bad
           + '\n[[checks]]\nvalue = { readout = "p_mtor", arm = "ketamine", time = "1 h" }\n'
           "min = 1\n")
    df = v.run_validation(folder=tmp_path)
    assert not df["passed"].any() and df["simulated"].iloc[0].startswith("error: ")


# ------------------------------------------------------------------------------ scorecard


@pytest.mark.slow
def test_the_whole_scorecard_passes() -> None:
    df = v.run_validation()
    failed = df[~df["passed"].astype(bool)]
    assert failed.empty, "failing checks:\n" + failed[
        ["case", "check", "expected", "simulated"]].to_string()


# ------------------------------------------------------------ shipped with the package


def test_case_scenarios_ship_inside_the_package() -> None:
    """Every scenario_file of a packaged case is a packaged file (an installed ketasim
    validate needs no examples/ folder), and each examples/ copy of one is identical."""
    package = schema.cases_dir().parent
    examples = Path(__file__).resolve().parents[1] / "examples"
    used = set()
    for path in sorted(schema.cases_dir().glob("*.toml")):
        raw = schema.tomllib.loads(path.read_text(encoding="utf-8"))
        if "scenario_file" in raw:
            full = (path.parent / raw["scenario_file"]).resolve()
            assert full.is_relative_to(package / "scenarios"), (path.name, full)
            used.add(full)
    assert len(used) >= 4
    for full in sorted(package.glob("scenarios/*.toml")):
        assert full.resolve() in used, f"{full.name} is shipped but no case uses it"
        copy = examples / full.name
        if copy.exists():
            assert copy.read_bytes() == full.read_bytes(), f"examples/{full.name} differs"


def test_cases_load_from_any_working_directory(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert [c.id for c in v.load_cases()] == [c.id for c in CASES]


def test_seed_table_1_lives_in_the_seed_cases() -> None:
    rows = v.published_table("seed Table 1")
    assert [p.row for p in rows] == list(range(1, 8))
    assert {c.id for c in CASES if c.published is not None} == {
        "seed_t1_dose", "seed_t1_onset", "seed_t1_peak", "seed_t1_response_24h",
        "seed_t1_repeated_response", "seed_t1_duration", "seed_t1_relapse"}


@pytest.mark.parametrize(("published", "message"), [
    ('"x"', "published is not a table"),
    ('{ table = "T", row = 0, parameter = "p", finding = "f" }', "published.row: 0"),
    ('{ table = "T", row = 1, parameter = "p" }', "published.finding is missing"),
    ('{ table = "T", row = 1, parameter = "p", finding = "f", x = 1 }', '"x" is not a known'),
])
def test_bad_published_row(published: str, message: str) -> None:
    raw = schema.tomllib.loads(f"published = {published}")
    with pytest.raises(CaseError, match=re.escape(message)):
        schema.parse_case({"id": "a", "claim": "c", "source": "s", "scenario": {},
                           "checks": [{"value": {"readout": "madrs", "arm": "k",
                                                 "time": "1 d"}, "min": 1}], **raw})


def test_two_cases_on_one_published_row() -> None:
    one = v.Published("T", 1, "p", "f")
    cases = [v.Case("a", "c", "s", {}, [], published=one),
             v.Case("b", "c", "s", {}, [], published=one)]
    with pytest.raises(CaseError, match="two cases give row 1"):
        v.published_table("T", cases)



def test_case_role_marks_calibration_targets_apart() -> None:
    """A case is independent validation unless it says a constant was fitted to it; a role
    outside the two is one clear error."""
    base = {"id": "a", "claim": "c", "source": "s", "scenario": {},
            "checks": [{"value": {"readout": "madrs", "arm": "k", "time": "1 d"}, "min": 1}]}
    assert schema.parse_case(dict(base)).role == "validation"
    assert schema.parse_case({**base, "role": "calibration"}).role == "calibration"
    with pytest.raises(CaseError, match=re.escape("role: 'fitted' is not one of")):
        schema.parse_case({**base, "role": "fitted"})
    roles = {c.id: c.role for c in CASES}
    assert roles["han2016_pooled_response"] == "calibration"
    assert roles["zarate2006_memantine"] == "validation"
