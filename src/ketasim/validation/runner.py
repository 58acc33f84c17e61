"""Running validation cases: each case's scenario is run (cases that share a scenario share
one run, serially or in worker processes) and every check is evaluated on the run's
summary, giving one scorecard row per check (:data:`~ketasim.validation.schema.COLUMNS`).
Generic: no case is special-cased in code.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.integrate import trapezoid

from ketasim import units
from ketasim.errors import ArgumentError, KetasimError
from ketasim.experiments.endpoints import control_arm
from ketasim.experiments.run import run
from ketasim.scenario import load_scenario
from ketasim.units import format_hours
from ketasim.validation.schema import (
    COLUMNS,
    TIME_TOL_H,
    Case,
    Check,
    CheckResult,
    ValueSpec,
    load_cases,
)

Progress = Callable[..., Any]


@dataclass
class _Series:
    """Values of one (readout, arm, period, statistic) over the output times."""

    times_h: np.ndarray
    values: np.ndarray
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ running


def scenario_key(scenario: Any) -> str:
    """A key that is equal for scenarios that validate to the same experiment."""
    data = scenario.as_dict() if hasattr(scenario, "as_dict") else scenario
    return json.dumps(data, sort_keys=True, default=str)


def case_problems(case: Case) -> list[str]:
    """What a case asks for that its scenario cannot give (without running it): unknown
    arms, readouts that are not read out, times that are not output times. Raises
    ScenarioError if the scenario does not validate."""
    sc = load_scenario(case.scenario)
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


def check_label(check: Check) -> str:
    """The label of a check: its own, or one made from what it reads."""
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
    def fail(check: Check, msg: str) -> CheckResult:
        return CheckResult(case.id, case.claim, case.source, check_label(check),
                           _expected_only(check), f"error: {msg}", False, detail=msg)

    if result is None:
        try:
            result = run(load_scenario(case.scenario))
        except KetasimError as exc:
            return [fail(c, str(exc)) for c in case.checks]
    out = []
    for check in case.checks:
        try:
            exp, sim, ok, x, unit = evaluate(check, result.summary)
        except KetasimError as exc:
            out.append(fail(check, str(exc)))
            continue
        out.append(CheckResult(case.id, case.claim, case.source, check_label(check), exp, sim,
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
                   jobs: int = 1, executor: Executor | None = None) -> pd.DataFrame:
    """Run every case (or those named) and return the scorecard, one row per check.

    Columns: case, role ("validation" or "calibration"), claim, source, check, expected,
    simulated, passed. Cases whose scenarios
    validate to the same experiment share one run. ``progress(advance, total=None)`` is
    called once per scenario run. ``case`` is an alias of ``names`` for one case;
    ``folder`` replaces the packaged cases folder. ``jobs`` > 1 runs that many scenarios at
    once in worker processes, ``executor`` (a process pool, Dask's ``client.get_executor()``)
    in its workers; each run is seeded by its scenario, so the table is the same as a serial
    one, row for row.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ArgumentError("jobs", f"{jobs!r} is not a whole number >= 1")
    if case is not None:
        names = [case]
    cases = load_cases(names, folder)
    groups: dict[str, list[Case]] = {}  # scenario key -> the cases it serves
    rows: dict[str, list[dict[str, Any]]] = {}
    for c in cases:
        try:
            sc = load_scenario(c.scenario)
        except KetasimError as exc:
            rows[c.id] = _error_rows(c, exc)
            continue
        groups.setdefault(scenario_key(sc), []).append(c)
    if callable(progress):
        progress(0, total=len(groups))
    for group_rows in _run_groups(list(groups.values()), jobs, progress, executor):
        rows.update(group_rows)
    table = pd.DataFrame([r for c in cases for r in rows[c.id]], columns=COLUMNS)
    # calibration targets and independent checks are counted apart (Case.role)
    table.insert(1, "role", table["case"].map({c.id: c.role for c in cases}))
    return table


def _run_group(group: list[Case]) -> dict[str, list[dict[str, Any]]]:
    """Run the scenario shared by ``group`` once and evaluate each case on it (rows by case
    id). A top-level function, so that worker processes can run it."""
    try:
        res = run(load_scenario(group[0].scenario))
    except KetasimError as exc:
        return {c.id: _error_rows(c, exc) for c in group}
    return {c.id: [r.row() for r in run_case(c, res)] for c in group}


def _error_rows(c: Case, exc: Exception) -> list[dict[str, Any]]:
    """Failed rows, one per check, when a case's scenario cannot be loaded or run."""
    return [CheckResult(c.id, c.claim, c.source, check_label(ch), _expected_only(ch),
                        f"error: {exc}", False).row() for ch in c.checks]


def _cost(group: list[Case]) -> float:
    """Rough cost of a group's run (subjects per arm x arms), to start the largest first."""
    sc = group[0].scenario
    pop = sc.get("population", {}) if isinstance(sc, dict) else {}
    arms = sc.get("arms", []) if isinstance(sc, dict) else []
    size = pop.get("size", 1) if isinstance(pop, dict) else 1
    return float(size) * max(len(arms), 1)


def _run_groups(groups: list[list[Case]], jobs: int, progress: Progress | None,
                executor: Executor | None = None
                ) -> Iterable[dict[str, list[dict[str, Any]]]]:
    """Each group's rows, its scenario run in ``executor`` (or ``jobs`` spawned worker
    processes, or here), the costliest started first."""
    from ketasim.experiments.executor import executor_for, run_tasks

    order = sorted(range(len(groups)), key=lambda i: -_cost(groups[i]))

    def done(i: int, _: Any) -> None:
        if callable(progress):
            progress(1)

    with (contextlib.nullcontext(executor) if executor is not None
          else executor_for(jobs=min(jobs, len(groups)))) as ex:
        yield from run_tasks(_run_group, [(groups[i],) for i in order], ex, done=done)
