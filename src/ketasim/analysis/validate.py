"""``ketasim validate``: the scorecard of reference cases.

Each case is a small TOML data file in ``src/ketasim/validation/cases/`` (one claim of the
seed or of ../shared/reference/): an ``id``, the ``claim`` in one sentence, its ``source``
(citation and evidence tag), a scenario, and ``[[checks]]`` on the simulated summary. The
runner below is generic: no case is special-cased in code.

Case file::

    id = "example_response_24h"
    claim = "One 0.5 mg/kg infusion gives a 24-h response rate of 25-85 %."
    source = "Seed 001 Table 1 [29]"
    notes = "why the tolerance is what it is"          # optional

    # the scenario: one of
    [scenario]                                          # an inline scenario table
    scenario_file = "examples/seed_crossover.toml"      # a file (repo root or case folder)
    scenario_case = "other_case_id"                     # another case's scenario (run once)

    [overrides]                                         # optional, deep-merged into it
    population = { size = 120, variability = false }
    "outputs.times" = ["2 h", "1 d"]                    # dotted keys reach into tables

    [[checks]]
    label = "response at 24 h"                          # optional; made from value if absent
    value = { readout = "response", arm = "ketamine", period = 1, time = "1 d" }
    min = 0.25                                          # range (either bound may be left out)
    max = 0.85

A ``value`` names one row of ``RunResult.summary``: ``readout``, ``arm`` (or
``"<arm> vs <control>"``), ``period`` (default 1), ``time`` (a time string) and
``statistic`` (default ``fraction`` for response/remission/relapse_free, else ``mean``);
instead of ``time``, ``mean_over = ["0 min", "40 min"]`` takes the time-weighted mean over
the output times of that window (both ends must be output times).
Values are in the summary's units (fractions as 0-1, shown as %). Kinds of check:

- range: ``min`` and/or ``max``;
- tolerance: ``expected`` with ``abs_tol`` or ``rel_tol``;
- comparison: ``compare_to`` (another value), ``op`` ``"<"`` or ``">"``, optional
  ``factor`` (value op factor x other);
- ratio: ``relative_to`` (another value) with a range or tolerance on value / other;
- time of peak: ``peak_between = ["12 h", "36 h"]``, ``peak = "max"`` (default) or
  ``"min"``, over all output times of the value (``time`` left out);
- crossing time: ``crosses = 0.5`` with ``crossing_between = ["22 d", "36 d"]``: the
  first time (linear interpolation between output times) the value falls to the
  threshold (``direction = "up"``: rises to it).

Scenarios that resolve to the same validated scenario are run once.
"""

from __future__ import annotations

import copy
import html
import json
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.integrate import trapezoid

from ketasim import units
from ketasim.errors import ArgumentError, CaseError, KetasimError
from ketasim.readouts import FIXED
from ketasim.units import format_hours

COLUMNS = ["case", "claim", "source", "check", "expected", "simulated", "passed"]
CASE_KEYS = {"id", "claim", "source", "notes", "scenario", "scenario_file", "scenario_case",
             "overrides", "checks"}
VALUE_KEYS = {"readout", "arm", "period", "time", "statistic", "mean_over"}
CHECK_KEYS = {"label", "value", "min", "max", "expected", "abs_tol", "rel_tol", "compare_to",
              "op", "factor", "relative_to", "peak_between", "peak", "crosses",
              "crossing_between", "direction"}
STATISTICS = ("mean", "sd", "median", "p05", "p95", "fraction", "difference", "cohens_d",
              "p_value")
TIME_TOL_H = 1e-6
Progress = Callable[..., Any]


# ------------------------------------------------------------------------------ data types


@dataclass(frozen=True)
class ValueSpec:
    """One row of a run's summary."""

    readout: str
    arm: str
    period: int = 1
    time: str | None = None
    statistic: str | None = None
    mean_over: tuple[str, str] | None = None

    @property
    def stat(self) -> str:
        if self.statistic:
            return self.statistic
        fixed = FIXED.get(self.readout)
        return "fraction" if fixed is not None and fixed.kind == "fraction" else "mean"

    @property
    def time_h(self) -> float | None:
        return None if self.time is None else units.hours(self.time)

    def describe(self) -> str:
        when = f" @ {self.time}" if self.time else ""
        if self.mean_over:
            when = f" mean over {self.mean_over[0]}-{self.mean_over[1]}"
        per = f" (period {self.period})" if self.period != 1 else ""
        stat = "" if self.stat in ("mean", "fraction") else f" {self.stat}"
        return f"{self.readout}{stat}{when}, {self.arm}{per}"


@dataclass
class Check:
    """One comparison of a case (see the module docstring for the kinds)."""

    value: ValueSpec
    label: str = ""
    min: float | None = None
    max: float | None = None
    expected: float | None = None
    abs_tol: float | None = None
    rel_tol: float | None = None
    compare_to: ValueSpec | None = None
    op: str | None = None
    factor: float = 1.0
    relative_to: ValueSpec | None = None
    peak_between: tuple[str, str] | None = None
    peak: str = "max"
    crosses: float | None = None
    crossing_between: tuple[str, str] | None = None
    direction: str = "down"

    @property
    def kind(self) -> str:
        if self.peak_between is not None:
            return "peak"
        if self.crosses is not None:
            return "crossing"
        if self.compare_to is not None:
            return "compare"
        if self.relative_to is not None:
            return "ratio"
        if self.expected is not None:
            return "tolerance"
        return "range"


@dataclass
class Case:
    """A validation case: a claim, its source, a scenario and its checks."""

    id: str
    claim: str
    source: str
    scenario: dict[str, Any]
    checks: list[Check]
    notes: str = ""
    path: Path | None = None


@dataclass
class CheckResult:
    """The outcome of one check: what was expected, what was simulated, pass or fail."""

    case: str
    claim: str
    source: str
    check: str
    expected: str
    simulated: str
    passed: bool
    value: float = math.nan
    unit: str = ""
    detail: str = ""

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass
class _Series:
    """Values of one (readout, arm, period, statistic) over the output times."""

    times_h: np.ndarray
    values: np.ndarray
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ loading


def cases_dir() -> Path:
    """The folder holding the case files (shipped as package data)."""
    return Path(__file__).resolve().parents[1] / "validation" / "cases"


def _repo_roots() -> list[Path]:
    roots = [Path.cwd()]
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").exists():
            roots.append(parent)
            break
    return roots


def _bad(path: Path | None, msg: str) -> CaseError:
    where = path.name if path is not None else "case"
    return CaseError(f"{where}: {msg}")


def _closed(table: dict[str, Any], allowed: set[str], path: Path | None, where: str) -> None:
    for key in table:
        if key not in allowed:
            raise _bad(path, f'{where}: "{key}" is not a known key; allowed: '
                       f"{', '.join(sorted(allowed))}")


def _value_spec(raw: Any, path: Path | None, where: str) -> ValueSpec:
    if not isinstance(raw, dict):
        raise _bad(path, f"{where} is not a table {{ readout, arm, period, time, statistic }}")
    _closed(raw, VALUE_KEYS, path, where)
    for key in ("readout", "arm"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise _bad(path, f"{where}.{key} is missing or not a string")
    time = raw.get("time")
    if time is not None:
        try:
            units.hours(time)
        except ValueError:
            raise _bad(path, f'{where}.time: "{time}" is not a time with units') from None
    stat = raw.get("statistic")
    if stat is not None and stat not in STATISTICS:
        raise _bad(path, f'{where}.statistic: "{stat}" is not one of {", ".join(STATISTICS)}')
    period = raw.get("period", 1)
    if not isinstance(period, int) or period < 1:
        raise _bad(path, f"{where}.period: {period!r} is not a period number (1, 2)")
    window = None
    if "mean_over" in raw:
        if time is not None:
            raise _bad(path, f"{where}: give time or mean_over, not both")
        window = _window(raw["mean_over"], path, f"{where}.mean_over")
    return ValueSpec(raw["readout"], raw["arm"], period, time, raw.get("statistic"), window)


def _window(raw: Any, path: Path | None, where: str) -> tuple[str, str]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _bad(path, f'{where} is not a pair of times, e.g. ["12 h", "36 h"]')
    try:
        lo, hi = units.hours(raw[0]), units.hours(raw[1])
    except (ValueError, TypeError):
        raise _bad(path, f"{where}: {raw!r} are not times with units") from None
    if lo > hi:
        raise _bad(path, f"{where}: {raw!r} ends before it starts")
    return str(raw[0]), str(raw[1])


def _check(raw: Any, path: Path | None, k: int) -> Check:
    where = f"checks[{k}]"
    if not isinstance(raw, dict):
        raise _bad(path, f"{where} is not a table")
    _closed(raw, CHECK_KEYS, path, where)
    if "value" not in raw:
        raise _bad(path, f"{where}.value is missing")
    chk = Check(value=_value_spec(raw["value"], path, f"{where}.value"),
                label=str(raw.get("label", "")))
    for key in ("min", "max", "expected", "abs_tol", "rel_tol", "factor", "crosses"):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise _bad(path, f"{where}.{key}: {v!r} is not a number")
            setattr(chk, key, float(v))
    for key in ("compare_to", "relative_to"):
        if key in raw:
            setattr(chk, key, _value_spec(raw[key], path, f"{where}.{key}"))
    if "peak_between" in raw:
        chk.peak_between = _window(raw["peak_between"], path, f"{where}.peak_between")
    if "crossing_between" in raw:
        chk.crossing_between = _window(raw["crossing_between"], path,
                                       f"{where}.crossing_between")
    if "op" in raw:
        chk.op = str(raw["op"])
    if "peak" in raw:
        chk.peak = str(raw["peak"])
    if "direction" in raw:
        chk.direction = str(raw["direction"])
    _check_consistent(chk, path, where)
    return chk


def _check_consistent(c: Check, path: Path | None, where: str) -> None:
    kind = c.kind
    bounds = c.min is not None or c.max is not None
    tol = c.expected is not None
    if kind in ("peak", "crossing"):
        if c.value.time is not None or c.value.mean_over is not None:
            raise _bad(path, f"{where}: a {kind} check reads every output time; leave out "
                       "time and mean_over")
        if kind == "peak" and c.peak not in ("max", "min"):
            raise _bad(path, f'{where}.peak: "{c.peak}" is not "max" or "min"')
        if kind == "crossing":
            if c.crossing_between is None:
                raise _bad(path, f"{where}: crosses needs crossing_between")
            if c.direction not in ("down", "up"):
                raise _bad(path, f'{where}.direction: "{c.direction}" is not "down" or "up"')
        return
    if c.value.time is None and c.value.mean_over is None:
        raise _bad(path, f"{where}.value.time (or mean_over) is missing")
    if c.crossing_between is not None:
        raise _bad(path, f"{where}: crossing_between needs crosses")
    if kind == "compare":
        if c.op not in ("<", ">"):
            raise _bad(path, f'{where}.op: {c.op!r} is not "<" or ">"')
        if c.compare_to is not None and c.compare_to.time is None \
                and c.compare_to.mean_over is None:
            raise _bad(path, f"{where}.compare_to.time is missing")
        if bounds or tol or c.relative_to is not None:
            raise _bad(path, f"{where}: compare_to takes op and factor, not bounds")
        return
    if c.op is not None:
        raise _bad(path, f"{where}: op needs compare_to")
    if kind == "ratio" and c.relative_to is not None and c.relative_to.time is None \
            and c.relative_to.mean_over is None:
        raise _bad(path, f"{where}.relative_to.time is missing")
    if tol:
        if (c.abs_tol is None) == (c.rel_tol is None):
            raise _bad(path, f"{where}: expected needs exactly one of abs_tol or rel_tol")
        if bounds:
            raise _bad(path, f"{where}: give either min/max or expected with a tolerance")
        return
    if not bounds:
        raise _bad(path, f"{where}: no criterion; give min/max, expected with a tolerance, "
                   "compare_to with op, peak_between or crosses")
    if c.min is not None and c.max is not None and c.min > c.max:
        raise _bad(path, f"{where}: min {c.min} is above max {c.max}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        parts = key.split(".")
        target = out
        for p in parts[:-1]:
            target = target[int(p)] if isinstance(target, list) else target.setdefault(p, {})
        last = parts[-1]
        if isinstance(target, list):
            target[int(last)] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(target.get(last), dict):
            target[last] = _deep_merge(target[last], value)
        else:
            target[last] = copy.deepcopy(value)
    return out


def _scenario_path(name: str, path: Path | None) -> Path:
    p = Path(name)
    if p.is_absolute():
        return p
    bases = ([path.parent] if path is not None else []) + _repo_roots()
    for base in bases:
        if (base / p).exists():
            return base / p
    raise _bad(path, f'scenario_file: "{name}" was not found (looked in '
               f"{', '.join(str(b) for b in bases)})")


def _read_case(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _bad(path, f"is not valid TOML: {str(exc).splitlines()[0]}") from None


def parse_case(raw: dict[str, Any], path: Path | None = None,
               others: dict[str, dict[str, Any]] | None = None) -> Case:
    """A Case from a parsed case table. ``others`` maps case ids to raw tables (for
    ``scenario_case``). The scenario is resolved but not validated here."""
    _closed(raw, CASE_KEYS, path, "case")
    for key in ("id", "claim", "source"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _bad(path, f"{key} is missing or empty")
    scenario = _resolve_scenario(raw, path, others or {}, seen=())
    checks = raw.get("checks")
    if not isinstance(checks, list) or not checks:
        raise _bad(path, "has no [[checks]]")
    return Case(raw["id"].strip(), " ".join(raw["claim"].split()),
                " ".join(raw["source"].split()), scenario,
                [_check(c, path, k) for k, c in enumerate(checks)],
                " ".join(str(raw.get("notes", "")).split()), path)


def _resolve_scenario(raw: dict[str, Any], path: Path | None,
                      others: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> dict[str, Any]:
    given = [k for k in ("scenario", "scenario_file", "scenario_case") if k in raw]
    if len(given) != 1:
        raise _bad(path, "give exactly one of [scenario], scenario_file or scenario_case")
    key = given[0]
    if key == "scenario":
        if not isinstance(raw["scenario"], dict):
            raise _bad(path, "scenario is not a table")
        base = raw["scenario"]
    elif key == "scenario_file":
        base = _read_case(_scenario_path(str(raw["scenario_file"]), path))
    else:
        ref = str(raw["scenario_case"])
        if ref not in others:
            raise _bad(path, f'scenario_case: "{ref}" is not a case id')
        if ref in seen:
            raise _bad(path, f'scenario_case: "{ref}" refers back to itself')
        base = _resolve_scenario(others[ref], path, others, (*seen, ref))
    over = raw.get("overrides", {})
    if not isinstance(over, dict):
        raise _bad(path, "overrides is not a table")
    try:
        return _deep_merge(base, over)
    except (IndexError, ValueError, TypeError, AttributeError):
        raise _bad(path, "overrides do not fit the scenario's structure") from None


def load_cases(names: Iterable[str] | str | None = None,
               folder: Path | None = None) -> list[Case]:
    """Every case in the cases folder (sorted by file name), or only those in ``names``."""
    folder = folder or cases_dir()
    files = sorted(folder.glob("*.toml"))
    raw = {p: _read_case(p) for p in files}
    by_id: dict[str, dict[str, Any]] = {}
    for p, r in raw.items():
        cid = r.get("id")
        if isinstance(cid, str):
            if cid in by_id:
                raise _bad(p, f'id "{cid}" is used by another case')
            by_id[cid] = r
    cases = [parse_case(r, p, by_id) for p, r in raw.items()]
    if names is None:
        return cases
    wanted = [names] if isinstance(names, str) else list(names)
    known = {c.id for c in cases}
    for n in wanted:
        if n not in known:
            raise CaseError(f'case: "{n}" is not a validation case; use one of: '
                            f"{', '.join(sorted(known))}")
    return [c for c in cases if c.id in wanted]


# ------------------------------------------------------------------------------ running


def scenario_key(scenario: Any) -> str:
    """A key that is equal for scenarios that validate to the same experiment."""
    data = scenario.as_dict() if hasattr(scenario, "as_dict") else scenario
    return json.dumps(data, sort_keys=True, default=str)


def case_problems(case: Case) -> list[str]:
    """What a case asks for that its scenario cannot give (without running it): unknown
    arms, readouts that are not read out, times that are not output times. Raises
    ScenarioError if the scenario does not validate."""
    import ketasim as ks
    from ketasim.experiments.endpoints import control_arm

    sc = ks.load_scenario(case.scenario)
    arms = [a.name for a in sc.arms]
    ctrl = control_arm(sc)
    arms += [f"{a} vs {ctrl}" for a in arms if ctrl is not None and a != ctrl]
    times = np.asarray(sc.output_times_h, dtype=float)
    n_periods = 2 if sc.design.type == "crossover" else 1
    problems = []
    for k, chk in enumerate(case.checks):
        specs = [("value", chk.value), ("compare_to", chk.compare_to),
                 ("relative_to", chk.relative_to)]
        for where, spec in specs:
            if spec is None:
                continue
            tag = f"checks[{k}].{where}"
            if spec.arm not in arms:
                problems.append(f'{tag}.arm: "{spec.arm}" is not one of {arms}')
            if spec.readout not in sc.outputs.readouts:
                problems.append(f'{tag}.readout: "{spec.readout}" is not in outputs.readouts')
            t = spec.time_h
            if t is not None and not np.any(np.abs(times - t) <= TIME_TOL_H * max(1.0, t)):
                problems.append(f'{tag}.time: "{spec.time}" is not in outputs.times')
            for end in spec.mean_over or ():
                e = units.hours(end)
                if not np.any(np.abs(times - e) <= TIME_TOL_H * max(1.0, e)):
                    problems.append(f'{tag}.mean_over: "{end}" is not in outputs.times')
            if spec.period > n_periods:
                problems.append(f"{tag}.period: {spec.period} but the design has {n_periods}")
    return problems


def _series(summary: pd.DataFrame, spec: ValueSpec) -> _Series:
    rows = summary[(summary["readout"] == spec.readout) & (summary["arm"] == spec.arm)
                   & (summary["period"] == spec.period) & (summary["statistic"] == spec.stat)]
    if rows.empty:
        arms = sorted(set(summary.loc[summary["readout"] == spec.readout, "arm"]))
        if not arms:
            raise KetasimError(f'readout "{spec.readout}" is not in the run\'s summary')
        raise KetasimError(f'no "{spec.stat}" of {spec.readout} for arm "{spec.arm}" '
                           f"period {spec.period}; arms: {', '.join(map(str, arms))}")
    rows = rows.sort_values("time_h")
    return _Series(rows["time_h"].to_numpy(float), rows["value"].to_numpy(float),
                   str(rows["unit"].iloc[0]), {"n": rows["n"].to_numpy()})


def _value(summary: pd.DataFrame, spec: ValueSpec) -> tuple[float, str]:
    s = _series(summary, spec)
    if spec.mean_over is not None:
        return _window_mean(s, spec), s.unit
    t = spec.time_h
    hit = np.flatnonzero(np.abs(s.times_h - t) <= TIME_TOL_H * max(1.0, abs(t or 0.0)))
    if hit.size == 0:
        shown = ", ".join(format_hours(x) for x in s.times_h)
        raise KetasimError(f"{spec.readout} has no output at {spec.time}; times: {shown}")
    return float(s.values[hit[0]]), s.unit


def _window_mean(s: _Series, spec: ValueSpec) -> float:
    """Time-weighted (trapezoid) mean of the series over ``spec.mean_over``, whose ends must
    be output times: an average over a measurement window, such as 13C label accumulating
    during an MRS acquisition."""
    assert spec.mean_over is not None
    a, b = (units.hours(x) for x in spec.mean_over)
    tol = TIME_TOL_H * max(1.0, abs(b))
    ends = [np.any(np.abs(s.times_h - x) <= tol) for x in (a, b)]
    inside = (s.times_h >= a - tol) & (s.times_h <= b + tol)
    if not all(ends) or inside.sum() < 2 or b <= a:
        shown = ", ".join(format_hours(x) for x in s.times_h)
        raise KetasimError(f"{spec.readout}: mean_over {spec.mean_over[0]}-{spec.mean_over[1]} "
                           f"needs output times at both ends; times: {shown}")
    t, v = s.times_h[inside], s.values[inside]
    return float(trapezoid(v, t) / (t[-1] - t[0]))


def _is_fraction(spec: ValueSpec, unit: str) -> bool:
    return unit == "fraction" and spec.stat not in ("cohens_d", "p_value")


def _fmt_num(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "nan" if x is None or np.isnan(x) else ("inf" if x > 0 else "-inf")
    ax = abs(x)
    if ax >= 1 and abs(x - round(x)) < 1e-9:
        return f"{x:.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 0.1 or ax == 0:
        return f"{x:.2f}"
    return f"{x:.3g}"


@dataclass(frozen=True)
class _Display:
    """How the numbers of one value are shown: scale, unit after them, name before them."""

    scale: float = 1.0
    unit: str = ""
    name: str = ""  # "d" (Cohen's d), "p" (p-value): shown as "d -0.5", "d <= -0.2"
    tol_unit: str = ""

    @classmethod
    def of(cls, spec: ValueSpec, unit: str) -> _Display:
        if spec.stat == "cohens_d":
            return cls(name="d")
        if spec.stat == "p_value":
            return cls(name="p")
        if _is_fraction(spec, unit):
            return cls(100.0, "%", tol_unit="pp")
        unit = "" if unit in ("1", "") else unit
        return cls(unit=unit, tol_unit=unit)

    def num(self, x: float | None) -> str:
        return _fmt_num(None if x is None else x * self.scale)

    def value(self, x: float) -> str:
        return " ".join(p for p in (self.name, self.num(x), self.unit) if p)

    def tolerance(self, e: float, tol: float, relative: float | None) -> str:
        tol_txt = f"{_fmt_num(100 * relative)} %" if relative is not None else \
            " ".join(p for p in (self.num(tol), self.tol_unit) if p)
        head = " ".join(p for p in (self.name, self.num(e)) if p)
        unit = f" {self.unit}" if self.unit and (relative is not None
                                                 or self.unit != self.tol_unit) else ""
        return f"{head}{unit} +- {tol_txt}"

    def bounds(self, lo: float | None, hi: float | None) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if lo is not None and hi is not None:
            if self.name:
                return f"{self.num(lo)} <= {self.name} <= {self.num(hi)}"
            sep = " to " if lo < 0 or hi < 0 else "-"
            return f"{self.num(lo)}{sep}{self.num(hi)}{unit}"
        name = f"{self.name} " if self.name else ""
        if lo is not None:
            return f"{name}>= {self.num(lo)}{unit}"
        return f"{name}<= {self.num(hi)}{unit}"


def _within(x: float, lo: float | None, hi: float | None) -> bool:
    if not np.isfinite(x):
        return False
    return (lo is None or x >= lo) and (hi is None or x <= hi)


def evaluate(check: Check, summary: pd.DataFrame) -> tuple[str, str, bool, float, str]:
    """(expected text, simulated text, passed, simulated number, unit) of one check."""
    kind = check.kind
    spec = check.value
    if kind == "peak":
        s = _series(summary, spec)
        vals = np.where(np.isfinite(s.values), s.values,
                        -np.inf if check.peak == "max" else np.inf)
        k = int(np.argmax(vals) if check.peak == "max" else np.argmin(vals))
        t = float(s.times_h[k])
        a, b = check.peak_between  # type: ignore[misc]
        lo, hi = units.hours(a), units.hours(b)
        word = "peak" if check.peak == "max" else "lowest point"
        shown = _Display.of(spec, s.unit).value(float(s.values[k]))
        sim = f"{word} at {format_hours(t)} ({shown})"
        return f"{word} at {a}-{b}", sim, lo - 1e-9 <= t <= hi + 1e-9, t, "h"
    if kind == "crossing":
        s = _series(summary, spec)
        thr = float(check.crosses)  # type: ignore[arg-type]
        t = _crossing(s.times_h, s.values, thr, check.direction)
        a, b = check.crossing_between  # type: ignore[misc]
        lo, hi = units.hours(a), units.hours(b)
        word = "falls to" if check.direction == "down" else "rises to"
        exp = f"{word} {_Display.of(spec, s.unit).value(thr)} at {a}-{b}"
        sim = f"at {format_hours(t)}" if np.isfinite(t) else \
            f"not by {format_hours(float(s.times_h[-1]))}"
        return exp, sim, bool(np.isfinite(t) and lo - 1e-9 <= t <= hi + 1e-9), t, "h"
    x, unit = _value(summary, spec)
    disp = _Display.of(spec, unit)
    if kind == "compare":
        ref = check.compare_to
        assert ref is not None
        y, ref_unit = _value(summary, ref)
        target = check.factor * y
        ok = bool(np.isfinite(x) and np.isfinite(y)
                  and (x < target if check.op == "<" else x > target))
        fac = "" if check.factor == 1 else f"{_fmt_num(check.factor)} x "
        exp = f"{check.op} {fac}{ref.describe()} ({_Display.of(ref, ref_unit).value(y)})"
        return exp, disp.value(x), ok, x, unit
    sim_disp = disp
    if kind == "ratio":
        ref = check.relative_to
        assert ref is not None
        y, _ = _value(summary, ref)
        x = x / y if y != 0 else math.nan
        unit = "x"
        disp = _Display(unit=f"x {ref.describe()}", tol_unit="")
        sim_disp = _Display(unit="x")
    if check.expected is not None:  # a tolerance, on the value or on the ratio
        e = float(check.expected)  # type: ignore[arg-type]
        rel = check.rel_tol
        tol = check.abs_tol if check.abs_tol is not None else abs(e) * float(rel)  # type: ignore[arg-type]
        exp = disp.tolerance(e, float(tol), rel if check.abs_tol is None else None)  # type: ignore[arg-type]
        if kind == "ratio" and check.abs_tol is not None:  # "1.13 +- 0.10 x <other>"
            exp = f"{_fmt_num(e)} +- {_fmt_num(float(tol))} {disp.unit}"
        return exp, sim_disp.value(x), _within(x, e - tol, e + tol), x, unit  # type: ignore[operator]
    exp = disp.bounds(check.min, check.max)
    return exp, sim_disp.value(x), _within(x, check.min, check.max), x, unit


def _crossing(t: np.ndarray, v: np.ndarray, thr: float, direction: str) -> float:
    """First time the series reaches ``thr`` (falling for "down", rising for "up")."""
    sign = 1.0 if direction == "down" else -1.0
    d = sign * (v - thr)  # <= 0 once reached
    prev_t, prev_d = None, None
    for ti, di in zip(t, d, strict=True):
        if not np.isfinite(di):
            continue
        if di <= 0:
            if prev_t is None or prev_d is None:
                return float(ti)
            return float(prev_t + (ti - prev_t) * prev_d / (prev_d - di))
        prev_t, prev_d = ti, di
    return math.inf


def _label(check: Check) -> str:
    if check.label:
        return check.label
    v = check.value
    if check.kind == "peak":
        return f"time of {'peak' if check.peak == 'max' else 'lowest'} {v.describe()}"
    if check.kind == "crossing":
        return f"time {v.describe()} reaches {_fmt_num(check.crosses or 0)}"
    if check.kind == "ratio" and check.relative_to is not None:
        return f"{v.describe()} / {check.relative_to.describe()}"
    return v.describe()


def run_case(case: Case, result: Any = None) -> list[CheckResult]:
    """Run a case's scenario (or use ``result``, a RunResult of it) and evaluate its checks.

    A scenario that does not validate or a check that names a missing value gives failed
    results that say why, never an exception.
    """
    import ketasim as ks

    def fail(check: Check, msg: str) -> CheckResult:
        return CheckResult(case.id, case.claim, case.source, _label(check),
                           _expected_only(check), f"error: {msg}", False, detail=msg)

    if result is None:
        try:
            result = ks.run(ks.load_scenario(case.scenario))
        except KetasimError as exc:
            return [fail(c, str(exc)) for c in case.checks]
    out = []
    for check in case.checks:
        try:
            exp, sim, ok, x, unit = evaluate(check, result.summary)
        except KetasimError as exc:
            out.append(fail(check, str(exc)))
            continue
        out.append(CheckResult(case.id, case.claim, case.source, _label(check), exp, sim,
                               bool(ok), x, unit))
    return out


def _expected_only(check: Check) -> str:
    """The expected text of a check that could not be evaluated."""
    if check.kind == "peak" and check.peak_between:
        return f"peak at {check.peak_between[0]}-{check.peak_between[1]}"
    if check.kind == "crossing" and check.crossing_between:
        return f"reaches {check.crosses} at {check.crossing_between[0]}-" \
               f"{check.crossing_between[1]}"
    if check.kind == "compare" and check.compare_to is not None:
        return f"{check.op} {_fmt_num(check.factor)} x {check.compare_to.describe()}"
    if check.expected is not None:
        tol = check.abs_tol if check.abs_tol is not None else check.rel_tol
        return f"{check.expected} +- {tol}"
    return f"{check.min} to {check.max}"


def run_validation(names: Iterable[str] | str | None = None, progress: Progress | None = None,
                   *, case: str | None = None, folder: Path | None = None,
                   jobs: int = 1) -> pd.DataFrame:
    """Run every case (or those named) and return the scorecard, one row per check.

    Columns: case, claim, source, check, expected, simulated, passed. Cases whose scenarios
    validate to the same experiment share one run. ``progress(advance, total=None)`` is
    called once per scenario run. ``case`` is an alias of ``names`` for one case;
    ``folder`` replaces the packaged cases folder. ``jobs`` > 1 runs that many scenarios at
    once in worker processes; each run is seeded by its scenario, so the table is the same
    as a serial one, row for row.
    """
    import ketasim as ks

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ArgumentError("jobs", f"{jobs!r} is not a whole number >= 1")
    if case is not None:
        names = [case]
    cases = load_cases(names, folder)
    groups: dict[str, list[Case]] = {}  # scenario key -> the cases it serves
    rows: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        try:
            sc = ks.load_scenario(c.scenario)
        except KetasimError as exc:
            rows[c.id] = _error_rows(c, exc)
            continue
        groups.setdefault(scenario_key(sc), []).append(c)
    if callable(progress):
        progress(0, total=len(groups))
    for group_rows in _run_groups(list(groups.values()), jobs, progress):
        rows.update(group_rows)
    return pd.DataFrame([r for c in cases for r in rows[c.id]], columns=COLUMNS)


def _run_group(group: list[Case]) -> dict[str, list[dict[str, Any]]]:
    """Run the scenario shared by ``group`` once and evaluate each case on it (rows by case
    id). A top-level function, so that worker processes can run it."""
    import ketasim as ks

    try:
        res = ks.run(ks.load_scenario(group[0].scenario))
    except KetasimError as exc:
        return {c.id: _error_rows(c, exc) for c in group}
    return {c.id: [r.row() for r in run_case(c, res)] for c in group}


def _error_rows(c: Case, exc: Exception) -> list[dict[str, Any]]:
    """Failed rows, one per check, when a case's scenario cannot be loaded or run."""
    return [CheckResult(c.id, c.claim, c.source, _label(ch), _expected_only(ch),
                        f"error: {exc}", False).row() for ch in c.checks]


def _cost(group: list[Case]) -> float:
    """Rough cost of a group's run (subjects per arm x arms), to start the largest first."""
    sc = group[0].scenario
    pop = sc.get("population", {}) if isinstance(sc, dict) else {}
    arms = sc.get("arms", []) if isinstance(sc, dict) else []
    size = pop.get("size", 1) if isinstance(pop, dict) else 1
    return float(size) * max(len(arms), 1)


def _run_groups(groups: list[list[Case]], jobs: int,
                progress: Progress | None) -> Iterable[dict[str, list[dict[str, Any]]]]:
    if jobs == 1 or len(groups) <= 1:
        for g in groups:
            yield _run_group(g)
            if callable(progress):
                progress(1)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    order = sorted(range(len(groups)), key=lambda i: -_cost(groups[i]))
    # spawn, not fork: the parent may hold threads (the progress bar's timer)
    with ProcessPoolExecutor(max_workers=min(jobs, len(groups)),
                             mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_group, groups[i]) for i in order]
        for fut in as_completed(futures):
            yield fut.result()
            if callable(progress):
                progress(1)


# ------------------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.pass { color: #17702b; font-weight: 600; }
td.fail { color: #b00020; font-weight: 600; }
tr.first td { border-top: 2px solid #999; }
.claim { color: #555; font-size: 0.9em; }
.note { color: #777; font-size: 0.8em; font-style: italic; max-width: 40em; }
"""


def render_html(df: pd.DataFrame, title: str = "ketasim validate: scorecard",
                notes: dict[str, str] | None = None) -> str:
    """A standalone HTML page of the scorecard (cases grouped, pass/fail coloured).

    ``notes`` (case id -> text: why the tolerance is what it is) default to the packaged
    cases' ``notes``."""
    if notes is None:
        try:
            notes = {c.id: c.notes for c in load_cases()}
        except KetasimError:
            notes = {}
    n = len(df)
    n_pass = int(df["passed"].astype(bool).sum()) if n else 0
    by_case = df.groupby("case", sort=False)["passed"].apply(lambda s: bool(s.all())) \
        if n else pd.Series(dtype=bool)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{n_pass} of {n} checks passed; {int(by_case.sum())} of {len(by_case)} cases "
        "passed.</p>",
        "<table><thead><tr><th>case</th><th>source</th><th>check</th><th>expected</th>"
        "<th>simulated</th><th>result</th></tr></thead><tbody>",
    ]
    last = None
    for row in df.to_dict(orient="records"):
        first = row["case"] != last
        last = row["case"]
        note = notes.get(str(row["case"]), "")
        note_div = f'<div class="note">{esc(note)}</div>' if note else ""
        case_cell = (f"<b>{esc(str(row['case']))}</b><div class=\"claim\">"
                     f"{esc(str(row['claim']))}</div>{note_div}") if first else ""
        src = esc(str(row["source"])) if first else ""
        ok = bool(row["passed"])
        parts.append(
            f'<tr class="{"first" if first else ""}"><td>{case_cell}</td><td>{src}</td>'
            f"<td>{esc(str(row['check']))}</td><td>{esc(str(row['expected']))}</td>"
            f"<td>{esc(str(row['simulated']))}</td>"
            f'<td class="{"pass" if ok else "fail"}">{"pass" if ok else "FAIL"}</td></tr>')
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(parts)
