"""The ``ketasim`` command line: run, drugs, validate; user errors are one line, exit 2."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

import ketasim
from ketasim.cli import app
from ketasim.errors import SimulationError
from ketasim.result import SUMMARY_COLUMNS
from scenario_text import KETAMINE_VS_SALINE
from test_scenario import ALL_BAD, to_toml

CONTRACT_DRUGS = ["ketamine", "esketamine", "arketamine", "norketamine", "hnk_2r6r",
                  "memantine", "lanicemine", "mk801", "ro25_6981", "traxoprodil", "nbqx",
                  "rapamycin", "ana12", "nifedipine", "bdnf_antibody", "midazolam", "saline",
                  "escitalopram"]
CONTRACT_FILES = {"summary.csv", "subjects.parquet", "manifest.json", "report.html"}

SMALL = """
name = "small parallel test"
species = "human"
seed = 7

[population]
size = 4
condition = "trd"

[design]
type = "parallel"

""" + KETAMINE_VS_SALINE + """
[outputs]
times = ["40 min", "4 h", "1 d"]
readouts = ["plasma.ketamine", "madrs", "response"]
"""

runner = CliRunner()


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def flat(text: str) -> str:
    """Output with whitespace collapsed (table cells may wrap)."""
    return " ".join(text.split())


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.replace('amount = "0.5 mg/kg"', 'amount = "0.5 kg"'))
    return path


# ------------------------------------------------------------------------------ basics


def test_version() -> None:
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0
    assert ketasim.__version__ in res.stdout


def test_help_lists_commands() -> None:
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("run", "drugs", "validate"):
        assert cmd in res.stdout


# ------------------------------------------------------------------------------- drugs


def test_drugs_lists_every_contract_drug() -> None:
    res = runner.invoke(app, ["drugs"])
    assert res.exit_code == 0, res.output
    ids = {ln.split()[0] for ln in lines(res.stdout)}
    missing = [d for d in CONTRACT_DRUGS if d not in ids]
    assert not missing
    assert "iv_infusion" in res.stdout and "intranasal" in res.stdout


def test_drug_by_alias_shows_values_with_sources() -> None:
    res = runner.invoke(app, ["drugs", "dizocilpine"])
    assert res.exit_code == 0, res.output
    text = flat(res.stdout)
    assert "mk801" in text and "MK-801" in text
    cat = ketasim.catalog() if hasattr(ketasim, "catalog") else None
    assert cat is not None
    drug = cat.drug("mk801")
    # every section and a sample of values, units, tags and sources
    for section in ("molecular_weight", "pk.rat", "pk.mouse", "pd.nmda"):
        assert section in text, section
    cl = drug.pk["rat"].cl
    assert f"{cl.value:g}" in text and cl.unit in text and cl.tag in text
    assert " ".join(cl.source.split()[:4]) in text
    ic50 = drug.pd.nmda.ic50_glun2b
    assert "ic50_glun2b" in text and ic50.tag in text
    assert "routes.ip.ka" in text


def test_mixture_shows_components() -> None:
    res = runner.invoke(app, ["drugs", "ketamine"])
    assert res.exit_code == 0
    assert "esketamine 0.5" in res.stdout and "arketamine 0.5" in res.stdout


def test_unknown_drug_is_one_line_exit_2() -> None:
    res = runner.invoke(app, ["drugs", "unobtainium"])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert len(lines(res.stderr)) == 1
    assert "unobtainium" in res.stderr
    assert "Traceback" not in res.output


# ---------------------------------------------------------------------------- bad input


def test_bad_scenario_exit_2_one_line_nothing_written(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    err = lines(res.stderr)
    assert len(err) == 1
    assert "arms[0].doses[0].amount" in err[0] and "0.5 kg" in err[0]
    assert "mg/kg" in err[0]
    assert res.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(("base", "mutate", "path"), [c[1:] for c in ALL_BAD],
                         ids=[c[0] for c in ALL_BAD])
def test_every_bad_case_via_run(base: Callable[[], dict[str, Any]],
                                mutate: Callable[[dict[str, Any]], Any], path: str,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ketasim run FILE --out DIR`` on each bad case of tests/test_scenario.py, written as
    a TOML file: exit 2, one stderr line naming the field path, nothing on stdout, no DIR."""
    data = copy.deepcopy(base())
    mutate(data)
    scenario = tmp_path / "bad.toml"
    scenario.write_text(to_toml(data), encoding="utf-8")
    out = tmp_path / "out"

    def no_run(*a: object, **k: object) -> None:
        raise AssertionError("a rejected scenario must not be simulated")

    monkeypatch.setattr(ketasim, "run", no_run)
    res = runner.invoke(app, ["run", str(scenario), "--out", str(out)])
    assert res.exit_code == 2, res.output
    err = lines(res.stderr)
    assert len(err) == 1, res.stderr
    assert err[0].startswith(path + ":"), err[0]
    assert "Traceback" not in res.output
    assert res.stdout == ""
    assert not out.exists()


def test_bad_scenario_leaves_an_existing_empty_out_dir_empty(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    res = runner.invoke(app, ["run", str(bad), "--out", str(out), "--overwrite"])
    assert res.exit_code == 2
    assert len(lines(res.stderr)) == 1 and "arms[0].doses[0].amount" in res.stderr
    assert list(out.iterdir()) == []


def test_bad_scenario_does_not_touch_a_non_empty_out_dir(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("old")
    for extra in ([], ["--overwrite"]):
        res = runner.invoke(app, ["run", str(bad), "--out", str(out), *extra])
        assert res.exit_code == 2
        assert len(lines(res.stderr)) == 1 and "arms[0].doses[0].amount" in res.stderr
        assert [p.name for p in out.iterdir()] == ["summary.csv"]
        assert (out / "summary.csv").read_text() == "old"


def test_out_is_a_file(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("x")
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 2
    assert lines(res.stderr) == [f"--out: {out} exists and is not a directory"]
    assert out.read_text() == "x"


@pytest.mark.parametrize("kind", ["json", "binary", "directory", "broken toml", "empty"])
def test_non_toml_file_via_run(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    if kind == "json":
        path = tmp_path / "scenario.json"
        path.write_text('{"name": "x", "species": "human"}')
    elif kind == "binary":
        path.write_bytes(b"\xff\xfe\x00\x01PNG")
    elif kind == "directory":
        path.mkdir()
    elif kind == "broken toml":
        path.write_text('name = "x"\nspecies = "human\n[population\n')
    else:
        path.write_text("")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 2
    err = lines(res.stderr)
    assert len(err) == 1, res.stderr
    # a file that is not TOML names the file; an empty one the first missing field
    assert str(path) in err[0] or err[0].startswith("name:"), err[0]
    assert res.stdout == "" and "Traceback" not in res.output
    assert not out.exists()


def test_bad_scenario_via_the_entry_point(bad: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "ketasim.cli", "run", str(bad), "--out",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert lines(proc.stderr) == [
        'arms[0].doses[0].amount: "0.5 kg" is not a dose; use mg/kg, mg, ug/kg or nmol']
    assert proc.stdout == "" and not out.exists()


def test_unknown_model_parameter_is_one_line_nothing_written(small: Path,
                                                              tmp_path: Path) -> None:
    """Parameter names are checked by the model when the run starts: still exit 2, one
    line, and no output folder."""
    small.write_text(small.read_text() + "\n[model]\nparameters = { no_such_parameter = 2.0 }\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 2, res.output
    err = lines(res.stderr)
    assert len(err) == 1 and err[0].startswith("model.parameters.no_such_parameter:"), err
    assert res.stdout == "" and not out.exists()


def test_export_sbml_checks_model_parameter_names_as_run_does(small: Path,
                                                              tmp_path: Path) -> None:
    """The exporter prepares the cohort as a run does, with the same check of names."""
    small.write_text(small.read_text() + "\n[model]\nparameters = { no_such_parameter = 2.0 }\n")
    out = tmp_path / "model.xml"
    res = runner.invoke(app, ["export-sbml", str(small), "-o", str(out)])
    assert res.exit_code == 2, res.output
    err = lines(res.stderr)
    assert len(err) == 1 and err[0].startswith("model.parameters.no_such_parameter:"), err
    assert res.stdout == "" and not out.exists()


def test_bad_scenario_json_format_too(bad: Path) -> None:
    res = runner.invoke(app, ["run", str(bad), "--format", "json"])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert len(lines(res.stderr)) == 1


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    res = runner.invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2
    assert len(lines(res.stderr)) == 1 and "nope.toml" in res.stderr


def test_existing_out_dir_refused_before_running(small: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("keep")

    def no_run(*a: object, **k: object) -> None:
        raise AssertionError("must not simulate")

    monkeypatch.setattr(ketasim, "run", no_run)
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 2
    assert lines(res.stderr) == [f"--out: {out} exists; use --overwrite"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_simulation_error_is_one_line(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*a: object, **k: object) -> None:
        raise SimulationError("the solver gave up\non every subject")

    monkeypatch.setattr(ketasim, "run", failing)
    res = runner.invoke(app, ["run", str(small)])
    assert res.exit_code == 2
    assert lines(res.stderr) == ["the solver gave up on every subject"]


def test_entry_point_exit_status(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ketasim.cli", "drugs", "unobtainium"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(lines(proc.stderr)) == 1 and "Traceback" not in proc.stderr
    assert proc.stdout == ""


# ---------------------------------------------------------------------------------- run


def test_run_json_is_only_json(small: Path) -> None:
    res = runner.invoke(app, ["run", str(small), "--format", "json"])
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert records and all(list(r) == SUMMARY_COLUMNS for r in records)
    assert {r["readout"] for r in records} == {"plasma.ketamine", "madrs", "response"}
    assert {"mean", "sd", "fraction"} <= {r["statistic"] for r in records}
    assert any(r["arm"] == "ketamine vs saline" for r in records)


def test_run_writes_contract_files(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} >= CONTRACT_FILES
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == SUMMARY_COLUMNS
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 7 and "solver_status" in manifest
    assert "madrs" in res.stdout and "plasma.ketamine" in res.stdout

    # again: refused, then replaced with --overwrite and without subjects
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 2 and len(lines(res.stderr)) == 1
    res = runner.invoke(app, ["run", str(small), "--out", str(out), "--overwrite",
                              "--no-subjects"])
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert "subjects.parquet" not in names and "summary.csv" in names


def test_run_without_out_writes_nothing(small: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["run", str(small)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]
    assert "response" in res.stdout and "madrs" in res.stdout
    # the headline, then where the rest is
    assert "every readout at 1 d" in res.stdout and "40 min" not in res.stdout
    assert lines(res.stdout)[-1].startswith("every readout at every time: --verbose")
    assert "--out DIR" in lines(res.stdout)[-1]


def test_run_prints_the_headline_and_verbose_every_table(small: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    result = ketasim.run(ketasim.load_scenario(small))
    monkeypatch.setattr(ketasim, "run", lambda sc, progress=None, **options: result)
    short = runner.invoke(app, ["run", str(small)])
    full = runner.invoke(app, ["run", str(small), "--verbose"])
    assert short.exit_code == full.exit_code == 0, short.output + full.output
    # headline: one row per readout at the primary time (24 h after the dose)
    head = flat(short.stdout)
    assert "every readout at 1 d" in head and "ketamine vs saline: diff (p)" in head
    for readout in ("plasma.ketamine (ng/mL)", "madrs (points)", "response (fraction)"):
        assert readout in head
    assert "endpoints over each period" in head
    # verbose: today's tables, one per readout with every output time
    text = flat(full.stdout)
    assert "every readout at" not in text and "--verbose" not in text
    for t in ("40 min", "4 h", "1 d"):
        assert f" {t} " in text
    assert len(lines(short.stdout)) < len(lines(full.stdout))
    # with --out: where the report and the full summary are
    out = tmp_path / "out"
    res = runner.invoke(app, ["run", str(small), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert flat(res.stdout).endswith(f"the report: {out / 'report.html'}; every readout at "
                                     f"every time: {out / 'summary.csv'} or --verbose")


def test_run_prints_table1_when_present(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ketasim.run

    def with_table1(sc: object, progress: object = None) -> object:
        result = real(sc, progress=progress)
        result.extra_tables["table1"] = pd.DataFrame({"time": ["40 min"], "published": [21.5],
                                                      "simulated": [20.25]})
        return result

    monkeypatch.setattr(ketasim, "run", with_table1)
    res = runner.invoke(app, ["run", str(small)])
    assert res.exit_code == 0, res.output
    assert "Table 1" in res.stdout and "21.5" in res.stdout


def test_progress_callback_protocol(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int | None]] = []
    real = ketasim.run

    def spy(sc: object, progress: object = None) -> object:
        assert callable(progress)
        progress(0, total=8)
        progress(3)
        calls.append((progress.done, progress.total))  # type: ignore[attr-defined]
        return real(sc)

    monkeypatch.setattr(ketasim, "run", spy)
    res = runner.invoke(app, ["run", str(small), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert calls == [(3, 8)]
    json.loads(res.stdout)


# ----------------------------------------------------------------------------- validate


def _fake_validation(monkeypatch: pytest.MonkeyPatch, passed: list[bool]) -> None:
    from ketasim import validation
    from ketasim.errors import ArgumentError
    from ketasim.io import scorecard

    def run_validation(names: list[str] | None = None, progress: object = None, *,
                       jobs: int = 1) -> pd.DataFrame:
        assert callable(progress)
        progress(0, total=1)
        table = pd.DataFrame({"case": [f"case{i}" for i in range(len(passed))],
                              "source": ["Zarate 2006"] * len(passed),
                              "expected": ["25-85 %"] * len(passed),
                              "simulated": [0.5] * len(passed), "passed": passed})
        for name in names or []:
            if name not in set(table["case"]):
                raise ArgumentError("names", f'"{name}" is not a validation case')
        progress(1)
        return table if names is None else table[table["case"].isin(names)]

    monkeypatch.setattr(validation, "run_validation", run_validation)
    monkeypatch.setattr(scorecard, "render_html",
                        lambda df, notes=None: f"<html>{len(df)} checks</html>")


def test_validate_pass_and_fail(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_validation(monkeypatch, [True, True])
    res = runner.invoke(app, ["validate", "--out", str(tmp_path / "v")])
    assert res.exit_code == 0, res.output
    assert "case1" in res.stdout and "2 of 2 checks passed (2 of 2 cases)" in res.stdout
    assert (tmp_path / "v" / "validation.csv").exists()
    assert (tmp_path / "v" / "validation.html").read_text() == "<html>2 checks</html>"
    res = runner.invoke(app, ["validate", "--out", str(tmp_path / "v")])
    assert res.exit_code == 2 and "--overwrite" in res.stderr and len(lines(res.stderr)) == 1
    res = runner.invoke(app, ["validate", "--case", "case0", "--case", "case1"])
    assert res.exit_code == 0 and "case0" in res.stdout and "case1" in res.stdout
    res = runner.invoke(app, ["validate", "--jobs", "0"])
    assert res.exit_code == 2 and "--jobs" in res.stderr and len(lines(res.stderr)) == 1

    _fake_validation(monkeypatch, [True, False])
    res = runner.invoke(app, ["validate"])
    assert res.exit_code == 1
    assert "FAIL" in res.stdout and "1 of 2 checks passed (1 of 2 cases)" in res.stdout

    res = runner.invoke(app, ["validate", "--case", "case0"])
    assert res.exit_code == 0 and "case1" not in res.stdout

    res = runner.invoke(app, ["validate", "--case", "nope"])
    assert res.exit_code == 2 and len(lines(res.stderr)) == 1
    assert res.stderr.startswith('--case: "nope" is not a validation case')


def _capture_run(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Replace ketasim.run by a stub that records the scenario and returns an empty result."""
    import xarray as xr

    from ketasim.result import RunResult

    seen: list[object] = []

    def stub(sc: object, progress: object = None) -> RunResult:
        seen.append(sc)
        return RunResult(sc, xr.Dataset(), pd.DataFrame(columns=SUMMARY_COLUMNS), {})

    monkeypatch.setattr(ketasim, "run", stub)
    return seen


def test_run_without_file_uses_default_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture_run(monkeypatch)
    res = runner.invoke(app, ["run", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == []
    assert seen[0].name == ketasim.default_scenario().name  # type: ignore[attr-defined]


def test_confirm_large(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small.write_text(small.read_text().replace("size = 4", "size = 200000"))
    seen = _capture_run(monkeypatch)
    res = runner.invoke(app, ["run", str(small)])
    assert res.exit_code == 2 and len(lines(res.stderr)) == 1
    assert "confirm_large" in res.stderr and not seen
    res = runner.invoke(app, ["run", str(small), "--confirm-large"])
    assert res.exit_code == 0, res.output
    assert seen[0].population.size == 200000  # type: ignore[attr-defined]


def test_argument_error_is_worded_with_the_command_flags() -> None:
    from ketasim.errors import ArgumentError

    err = ArgumentError("out", "/x exists; use overwrite=True")
    assert str(err) == "out: /x exists; use overwrite=True" and isinstance(err, ValueError)
    assert err.worded({"out": "--out", "overwrite=True": "--overwrite"}) == \
        "--out: /x exists; use --overwrite"
    assert err.worded({}) == str(err)
