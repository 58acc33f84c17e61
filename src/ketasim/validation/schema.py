"""The validation case format: reading, checking and resolving case files.

A case file (``cases/*.toml``, shipped with the package) is data: a claim, its source, a
scenario and ``[[checks]]`` on the simulated summary (see :mod:`ketasim.validation` for the
format). This module turns case files into :class:`Case` objects, rejecting anything that
does not follow the format with a :class:`~ketasim.errors.CaseError` (one line naming the
file and the key); it runs nothing.
"""

from __future__ import annotations

import copy
import itertools
import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketasim import units
from ketasim.errors import ArgumentError, CaseError
from ketasim.readouts import FIXED

COLUMNS = ["case", "claim", "source", "check", "expected", "simulated", "passed"]
CASE_KEYS = {"id", "claim", "source", "notes", "published", "role", "scenario",
             "scenario_file", "scenario_case",
             "overrides", "checks"}
VALUE_KEYS = {"readout", "arm", "period", "time", "statistic", "mean_over"}
CHECK_KEYS = {"label", "value", "min", "max", "expected", "abs_tol", "rel_tol", "compare_to",
              "op", "factor", "relative_to", "peak_between", "peak", "crosses",
              "crossing_between", "direction"}
STATISTICS = ("mean", "sd", "median", "p05", "p95", "fraction", "difference", "cohens_d",
              "p_value")
TIME_TOL_H = 1e-6
# a case is a calibration target (a model constant was fitted to it) or an independent
# validation (nothing was fitted to it); the scorecard reports the two apart
ROLES = ("validation", "calibration")


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


@dataclass(frozen=True)
class Published:
    """The published finding a case checks, as a row of a published table (the seed's
    Table 1 is read from these: its values live once, in the cases)."""

    table: str  # e.g. "seed Table 1"
    row: int  # position in that table, from 1
    parameter: str  # the row's label
    finding: str  # the published value, as printed


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
    published: Published | None = None
    role: str = "validation"  # or "calibration": a constant was fitted to this case


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


# ------------------------------------------------------------------------------ loading


def cases_dir() -> Path:
    """The folder holding the case files (shipped as package data)."""
    return Path(__file__).resolve().parent / "cases"


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


def parse_check(raw: Any, path: Path | None, k: int) -> Check:
    """One ``[[checks]]`` table (the ``k``-th of its case) as a Check; CaseError if bad."""
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


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in; dotted keys (``"outputs.times"``) reach into tables
    and lists (by index)."""
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
            target[last] = deep_merge(target[last], value)
        else:
            target[last] = copy.deepcopy(value)
    return out


def _scenario_path(name: str, path: Path | None) -> Path:
    """``scenario_file`` relative to the case file's folder (the working directory for a
    case without a file): the packaged cases use ``../scenarios/``, shipped with them, so
    an installed ``ketasim validate`` needs nothing outside the package."""
    p = Path(name)
    base = path.parent if path is not None else Path.cwd()
    full = p if p.is_absolute() else base / p
    if not full.exists():
        raise _bad(path, f'scenario_file: "{name}" was not found (looked in {base})')
    return full


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
    role = raw.get("role", "validation")
    if role not in ROLES:
        raise _bad(path, f"role: {role!r} is not one of {', '.join(ROLES)}")
    return Case(raw["id"].strip(), " ".join(raw["claim"].split()),
                " ".join(raw["source"].split()), scenario,
                [parse_check(c, path, k) for k, c in enumerate(checks)],
                " ".join(str(raw.get("notes", "")).split()), path,
                _published(raw["published"], path) if "published" in raw else None, role)


def _published(raw: Any, path: Path | None) -> Published:
    keys = {"table", "row", "parameter", "finding"}
    if not isinstance(raw, dict):
        raise _bad(path, "published is not a table { table, row, parameter, finding }")
    _closed(raw, keys, path, "published")
    for key in ("table", "parameter", "finding"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise _bad(path, f"published.{key} is missing or empty")
    row = raw.get("row")
    if isinstance(row, bool) or not isinstance(row, int) or row < 1:
        raise _bad(path, f"published.row: {row!r} is not a row number (1, 2, ...)")
    return Published(raw["table"], row, raw["parameter"], raw["finding"])


def published_table(table: str, cases: Iterable[Case] | None = None) -> list[Published]:
    """The rows of a published ``table`` held by the cases (the packaged ones by default),
    in row order; CaseError if two cases claim the same row."""
    rows = sorted((c.published for c in (load_cases() if cases is None else cases)
                   if c.published is not None and c.published.table == table),
                  key=lambda p: p.row)
    for a, b in itertools.pairwise(rows):
        if a.row == b.row:
            raise CaseError(f"{table}: two cases give row {a.row}")
    return rows


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
        return deep_merge(base, over)
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
            raise ArgumentError("names", f'"{n}" is not a validation case; use one of: '
                                f"{', '.join(sorted(known))}")
    return [c for c in cases if c.id in wanted]
