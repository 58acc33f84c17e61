"""Calibrate model constants against measurement tables with pyPESTO, on ketasim itself.

Data are PEtab measurement tables (``observableId``, ``simulationConditionId``, ``time``,
``measurement``, ``noiseParameters``: the noise sd, normal noise). ``observableId`` is a
ketasim model readout written as in :func:`ketasim.io.petab.observable_id`
(``obs_plasma__ketamine``) or the readout's own name; ``time`` is the scenario's time (h
after the first dose); each ``simulationConditionId`` is mapped onto a scenario, whose
first cohort's subject 0 is simulated (set ``variability = false`` for the typical
subject).

The objective evaluates ketasim: every point asked for and its forward finite-difference
neighbours (one per fitted parameter, step :data:`FD_STEP` in log10 units) are subject
columns of **one** engine call per condition (the parameter matrix has a column per
point, as a population has a column per subject; the burn-in is recomputed for each
column). pyPESTO runs a multistart L-BFGS-B on log10 parameters and the profile
likelihood of every fitted parameter (``pypesto.profile``); the 95 % interval is where the
profile ratio stays above the chi-square(1) threshold, and a parameter is *identifiable*
when both ends of that interval lie inside its bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketasim.engine import get as get_engine
from ketasim.engine.base import OK
from ketasim.errors import ArgumentError
from ketasim.experiments.run import PreparedCohort, burn_in, cohorts, prepare_cohort
from ketasim.protocol import DoseEvent, Protocol, Signal

COLUMNS = ("observableId", "simulationConditionId", "time", "measurement", "noiseParameters")
FD_STEP = 1e-3  # forward-difference step of the gradient, log10 units
FAILED_NLLH = 1e12  # objective of a point whose integration failed


@dataclass(frozen=True)
class FitParameter:
    """A fitted base parameter with its bounds (natural units); fitted on log10 scale."""

    name: str
    lower: float
    upper: float

    def check(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)
                and 0 < self.lower < self.upper):
            raise ArgumentError("parameters", f"{self.name}: bounds [{self.lower!r}, "
                                f"{self.upper!r}] must be finite, > 0 and increasing")


def readout_name(observable: str) -> str:
    """``obs_plasma__ketamine`` -> ``plasma.ketamine`` (a plain readout name is kept)."""
    return observable[4:].replace("__", ".") if observable.startswith("obs_") else observable


def read_measurements(table: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A PEtab measurement table (DataFrame or TSV path), checked: the five columns, finite
    times and measurements, noise sd > 0."""
    df = table.copy() if isinstance(table, pd.DataFrame) else pd.read_csv(table, sep="\t")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ArgumentError("data", f"the table lacks the PEtab columns {missing}")
    for col in ("time", "measurement", "noiseParameters"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if not np.all(np.isfinite(vals)):
            raise ArgumentError("data", f"{col} must be finite numbers")
        df[col] = vals.astype(float)
    if (df["noiseParameters"] <= 0).any():
        raise ArgumentError("data", "noiseParameters (the noise sd) must be > 0")
    df["simulationConditionId"] = df["simulationConditionId"].astype(str)
    return df


def _widen(prot: Protocol, k: int) -> Protocol:
    """The one-subject protocol for ``k`` subject columns (the same doses in each)."""
    def wide(v: Any) -> np.ndarray:
        return np.repeat(np.atleast_1d(np.asarray(v, dtype=float))[:1], k)

    return Protocol(k, events=[DoseEvent(e.time, e.state, wide(e.amount), e.duration, e.label)
                               for e in prot.events],
                    signals=[Signal(s.name, s.start, s.end, wide(s.value))
                             for s in prot.signals],
                    baseline_inputs={n: wide(v) for n, v in prot.baseline_inputs.items()})


@dataclass
class _Condition:
    scenario: Any
    setup: PreparedCohort
    times: np.ndarray  # sorted unique data times (scenario h)
    rows: pd.DataFrame  # this condition's data
    t_index: np.ndarray  # data row -> index into times
    readouts: list[str] = field(default_factory=list)


class BatchedObjective:
    """Negative log-likelihood of the data for many parameter points in one engine call per
    condition. ``conditions`` maps each ``simulationConditionId`` to a scenario;
    ``parameters`` are the fitted ones."""

    def __init__(self, data: pd.DataFrame, conditions: Mapping[str, Any],
                 parameters: Sequence[FitParameter], engine: str = "batched",
                 rtol: float = 1e-8, atol: float = 1e-10) -> None:
        from ketasim.scenario import load_scenario

        if not parameters:
            raise ArgumentError("parameters", "name at least one parameter to fit")
        for p in parameters:
            p.check()
        self.data = read_measurements(data)
        self.parameters = list(parameters)
        self.engine, self.rtol, self.atol = engine, rtol, atol
        unmapped = sorted(set(self.data["simulationConditionId"]) - set(conditions))
        if unmapped:
            raise ArgumentError("conditions", f"no scenario for simulationConditionId "
                                f"{unmapped}")
        self.conditions: dict[str, _Condition] = {}
        for cid, rows in self.data.groupby("simulationConditionId", sort=True):
            sc = load_scenario(conditions[str(cid)])
            s = prepare_cohort(sc, _first_subject(sc))
            names = list(s.model.spec.parameters)
            bad = [p.name for p in self.parameters if p.name not in names]
            if bad:
                raise ArgumentError("parameters", f"{bad} are not base parameters of the "
                                    f"model of condition {cid!r}; see docs/model.md")
            wanted = [readout_name(o) for o in rows["observableId"]]
            unknown = sorted(set(wanted) - set(s.model.readout_names))
            if unknown:
                raise ArgumentError("data", f"observableId {unknown} of condition {cid!r} "
                                    "are not model readouts")
            times = np.unique(rows["time"].to_numpy(float))
            if times[0] <= s.t_start:
                raise ArgumentError("data", f"time {times[0]!r} h of condition {cid!r} is "
                                    f"before the simulation start {s.t_start!r} h")
            self.conditions[str(cid)] = _Condition(
                sc, s, times, rows.reset_index(drop=True),
                np.searchsorted(times, rows["time"].to_numpy(float)), wanted)
        self.evaluations = 0  # engine calls, for the report
        self.points = 0  # parameter points integrated

    def __deepcopy__(self, memo: dict[int, Any]) -> BatchedObjective:
        # pyPESTO deep-copies problems (profiles); the compiled model holds modules, and
        # the objective has no state a copy would need to keep apart
        return self

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def simulate(self, X: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Simulated data rows per condition for the points ``X`` (natural units, shape
        (K, n_fitted)): condition -> (values (K, n_rows), ok (K,))."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        k = X.shape[0]
        out = {}
        for cid, c in self.conditions.items():
            s = c.setup
            names = list(s.model.spec.parameters)
            base = np.repeat(s.P[: len(names), :1], k, axis=1)
            for j, p in enumerate(self.parameters):
                base[names.index(p.name)] = X[:, j]
            P = s.model.complete(base)
            prot = _widen(s.protocol, k)
            y0 = burn_in(c.scenario, s.model, P, prot, s.t_start)
            tr = get_engine(self.engine).simulate(s.model, P, y0, prot, c.times, s.t_start,
                                                  rtol=self.rtol, atol=self.atol)
            vals = np.full((k, len(c.rows)), np.nan)
            for i, t in enumerate(c.times):
                ro = s.model.readouts(t, tr.y[:, :, i].T, P, prot.inputs_at(
                    t, s.model.input_names))
                hit = c.t_index == i
                for r_i in np.where(hit)[0]:
                    vals[:, r_i] = np.asarray(ro[c.readouts[r_i]]).reshape(-1)
            ok = (tr.status == OK) & np.all(np.isfinite(vals), axis=1)
            out[cid] = (vals, ok)
        self.evaluations += 1
        self.points += k
        return out

    def nllh(self, X: np.ndarray) -> np.ndarray:
        """Negative log-likelihood (normal noise) of every point, shape (K,)."""
        total = np.zeros(np.atleast_2d(X).shape[0])
        for cid, (vals, ok) in self.simulate(X).items():
            rows = self.conditions[cid].rows
            m = rows["measurement"].to_numpy(float)
            sd = rows["noiseParameters"].to_numpy(float)
            r = (vals - m) / sd
            nll = 0.5 * np.sum(r**2 + np.log(2 * np.pi * sd**2), axis=1)
            total += np.where(ok, nll, FAILED_NLLH)
        return total

    def fun_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and forward-difference gradient in log10 parameters: the point and
        its neighbours in one batched evaluation."""
        theta = np.asarray(theta, dtype=float)
        pts = np.vstack([theta, theta + FD_STEP * np.eye(theta.size)])
        f = self.nllh(10.0 ** pts)
        return float(f[0]), (f[1:] - f[0]) / FD_STEP


def _first_subject(sc: Any) -> Any:
    from ketasim.experiments.run import Cohort

    g = cohorts(sc)[0]
    return Cohort(g.name, g.subjects[:1], g.arms, g.offsets)


@dataclass
class Calibration:
    """What :func:`calibrate` found: ``table`` (one row per fitted parameter: estimate,
    95 % profile interval, bounds, identifiable), the pyPESTO result (optimisation and
    profiles) and the objective (its engine-call counts)."""

    table: pd.DataFrame
    result: Any
    objective: BatchedObjective
    best_nllh: float


def calibrate(data: pd.DataFrame | str | Path, conditions: Mapping[str, Any],
              parameters: Sequence[FitParameter], *, n_starts: int = 4, seed: int = 0,
              engine: str = "batched", profiles: bool = True) -> Calibration:
    """Fit ``parameters`` to ``data`` (see the module docstring): pyPESTO multistart
    L-BFGS-B from ``n_starts`` points drawn uniformly in log10 bounds (``seed``), then the
    profile likelihood of every fitted parameter."""
    import pypesto
    import pypesto.optimize as optimize
    import pypesto.profile as profile

    if n_starts < 1:
        raise ArgumentError("n_starts", f"{n_starts} must be >= 1")
    obj = BatchedObjective(pd.DataFrame(read_measurements(data)), conditions, parameters,
                           engine)
    lb = np.log10([p.lower for p in parameters])
    ub = np.log10([p.upper for p in parameters])
    problem = pypesto.Problem(pypesto.Objective(fun=obj.fun_grad, grad=True), lb, ub,
                              x_names=obj.names, copy_objective=False)
    rng = np.random.default_rng(seed)
    starts = rng.uniform(lb, ub, size=(n_starts, len(parameters)))
    problem.set_x_guesses(starts)
    opt = optimize.ScipyOptimizer(method="L-BFGS-B", options={"maxiter": 200})
    result = optimize.minimize(problem, optimizer=opt, n_starts=n_starts,
                               progress_bar=False)
    best = result.optimize_result.list[0]
    rows = []
    ratio = profile.chi2_quantile_to_ratio(0.95)
    if profiles:
        result = profile.parameter_profile(
            problem, result, optimizer=opt, progress_bar=False,
            profile_options=profile.ProfileOptions(
                min_step_size_absolute=0.005, max_step_size_absolute=0.1,
                default_step_size_absolute=0.02, ratio_min=ratio * 0.9,
                step_size_precheck_mode="off"))
    for i, p in enumerate(parameters):
        est = 10.0 ** float(best.x[i])
        lo = hi = float("nan")
        ident = False
        if profiles:
            prof = result.profile_result.list[0][i]
            xs, ratios = np.asarray(prof.x_path[i]), np.asarray(prof.ratio_path)
            lo_s, hi_s = profile.calculate_approximate_ci(xs, ratios, ratio)
            lo, hi = 10.0 ** lo_s, 10.0 ** hi_s
            ident = bool(lo > p.lower * (1 + 1e-9) and hi < p.upper * (1 - 1e-9))
        rows.append({"parameter": p.name, "estimate": est, "ci95_low": lo, "ci95_high": hi,
                     "lower_bound": p.lower, "upper_bound": p.upper, "identifiable": ident})
    return Calibration(pd.DataFrame(rows), result, obj, float(best.fval))


def write_overrides(cal: Calibration, path: str | Path, data_name: str,
                    units: Mapping[str, str] | None = None) -> Path:
    """The fitted values as a TOML override file: ``[model.parameters]`` (the table a
    scenario's ``[model] parameters`` takes, name = value) and, per parameter,
    ``[calibration.NAME]`` with its interval, identifiability and the source (the data set
    and the calibration that produced it)."""
    from ketasim._version import __version__

    lines = [f"# written by ketasim {__version__} calibrate against {data_name}",
             "[model.parameters]"]
    lines += [f"{r.parameter} = {r.estimate!r}" for r in cal.table.itertuples()]
    for r in cal.table.itertuples():
        unit = (units or {}).get(str(r.parameter), "")
        lines += ["", f"[calibration.{r.parameter}]", f"value = {r.estimate!r}",
                  f'unit = "{unit}"',
                  f"ci95 = [{r.ci95_low!r}, {r.ci95_high!r}]".replace("nan", "nan"),
                  f"identifiable = {'true' if r.identifiable else 'false'}",
                  f'source = "calibrated: against {data_name} by ketasim calibrate '
                  f'(pyPESTO multistart L-BFGS-B, profile likelihood)"',
                  'tag = "calibrated"']
    out = Path(path)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def read_overrides(path: str | Path) -> dict[str, float]:
    """The ``[model.parameters]`` of an override file, for a scenario's ``[model]
    parameters``."""
    import tomllib

    raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    try:
        return {str(k): float(v) for k, v in raw["model"]["parameters"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise ArgumentError("path", f"{path} has no [model.parameters] table of numbers"
                            ) from exc


def plot_profiles(cal: Calibration, path: str | Path) -> Path:
    """One panel per fitted parameter: the profile likelihood ratio against the parameter,
    the 95 % threshold, the estimate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pypesto.profile as profile

    n = len(cal.table)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    ratio = profile.chi2_quantile_to_ratio(0.95)
    for i, r in enumerate(cal.table.itertuples()):
        ax = axes[0][i]
        prof = cal.result.profile_result.list[0][i]
        ax.plot(10.0 ** np.asarray(prof.x_path[i]), prof.ratio_path, "-o", ms=2)
        ax.axhline(ratio, ls="--", c="grey", lw=0.8)
        ax.axvline(r.estimate, c="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel(str(r.parameter))
        ax.set_ylabel("likelihood ratio" if i == 0 else "")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
