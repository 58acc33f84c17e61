"""Global sensitivity analysis with SALib: which catalog values matter for a readout.

Methods: Morris elementary-effects screening (``mu*``, ``sigma``), Sobol first and total
order indices on Saltelli's sampling (``S1``, ``ST``) and eFAST (``S1``, ``ST``); every
index with SALib's bootstrap confidence interval. The inputs are catalog values by dotted
name (:mod:`ketasim.parameters`), each over its range from catalog/uncertainty.toml
(log-uniform ranges are sampled uniformly in log, and Morris steps are in that scale).

:func:`analyse` is the method: it samples, calls an *evaluator* ``f(X) -> Y`` (``X`` of
shape (rows, parameters) in catalog units, ``Y`` of shape (rows, outputs)) once for the
whole sample, and analyses ``Y``. :class:`ScenarioEvaluator` is the evaluator of a
scenario: every sample row is a subject column of one batched engine call per arm (in
chunks through any executor), read out at the requested times. A test plugs the
Ishigami function in as the evaluator, so the analytic indices check the same code.

Convergence: Sobol and Morris samples of 2N with a seed start with the sample of N with
that seed (Sobol' sequence prefix; trajectories drawn in order), so the analysis evaluates
2N, reports the indices at 2N and the change from N to 2N for every index. eFAST samples N
and 2N separately (3N evaluations).

Modes: ``typical`` (variability off: each row is the typical subject) or ``population``
(``subjects`` virtual subjects per row, the same subjects for every row, their mean).
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ketasim import parameters as kp
from ketasim.errors import ArgumentError, SimulationError
from ketasim.units import format_hours

__all__ = ["METHODS", "MODES", "Output", "ScenarioEvaluator", "SensitivityResult", "analyse",
           "default_outputs", "evaluate_part", "parse_output", "sensitivity"]

METHODS = ("morris", "sobol", "efast")
MODES = ("typical", "population")
ENDPOINT_READOUTS = ("madrs.change", "response", "hamd17.change", "fst.immobility",
                     "sucrose_preference", "nsf.latency")
INDEX_OF = {"morris": "mu_star", "sobol": "ST", "efast": "ST"}  # what ranks parameters
SUBJECTS_PER_TASK = 2000
RETRY_ENGINE = "batched"  # rows whose subjects fail on another engine are simulated again
# ... when there are at most this many in an arm: a stacked BDF batch of diverging subjects
# (ranges that reach an unstable model) takes minutes per subject, and does not rescue them
RETRY_MAX_ROWS = 32
Evaluator = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Output:
    """A readout of the scenario at ``time_h`` after the dose in arm ``arm`` (period 1),
    or its difference from arm ``versus``: the mean over a row's subjects."""

    readout: str
    time_h: float
    arm: str
    versus: str | None = None

    @property
    def label(self) -> str:
        where = self.arm if self.versus is None else f"{self.arm} vs {self.versus}"
        return f"{self.readout}@{format_hours(self.time_h)}:{where}"


def _hours(text: str, argument: str) -> float:
    from ketasim import units

    try:
        return float(units.hours(text.strip()))
    except Exception:
        raise ArgumentError(argument, f'"{text}" is not a time; use e.g. 24 h, 1 d, 90 min'
                            ) from None


def parse_output(text: str, sc: Any, argument: str = "outputs") -> Output:
    """``READOUT@TIME[:ARM[ vs OTHER]]`` (``madrs.change@1 d:ketamine vs saline``); the arm
    defaults to the scenario's first arm that gives a drug."""
    head, _, where = text.partition(":")
    readout, at, when = head.partition("@")
    readout = readout.strip()
    if not at or not readout:
        raise ArgumentError(argument, f'"{text}" is not READOUT@TIME[:ARM[ vs ARM]] (e.g. '
                            "madrs.change@24 h:ketamine vs saline)")
    allowed = set(sc.outputs.readouts) | set(ENDPOINT_READOUTS)
    if readout not in allowed:
        raise ArgumentError(argument, f'"{readout}" is not a readout of this scenario; allowed: '
                            f"{', '.join(sorted(allowed))}")
    t = _hours(when, argument)
    arm, _, versus = where.partition(" vs ")
    names = [a.name for a in sc.arms]
    arm = arm.strip() or _treated(sc)[0]
    for a in (arm, versus.strip()):
        if a and a not in names:
            raise ArgumentError(argument, f'arm "{a}" is not in the scenario; arms: '
                                f"{', '.join(names)}")
    return Output(readout, t, arm, versus.strip() or None)


def _treated(sc: Any) -> list[str]:
    """Arms that give a drug (not only the vehicle), else every arm."""
    from ketasim.catalog import catalog

    cat = catalog()
    out = [a.name for a in sc.arms if any(cat.drug(d.drug).role != "vehicle" for d in a.doses)]
    return out or [a.name for a in sc.arms]


def _vehicle(sc: Any) -> str | None:
    treated = set(_treated(sc))
    return next((a.name for a in sc.arms if a.name not in treated), None)


def default_outputs(sc: Any) -> list[Output]:
    """The scenario's endpoint readouts (rating change and response, or the behavioural
    tests it reads; else its first readout) 24 h after the dose (or at its last time) in
    its first drug arm, and changes also against its vehicle arm where it has one."""
    human = sc.species == "human"
    wanted = ["madrs.change", "response"] if human else [
        r for r in ENDPOINT_READOUTS[3:] if r in sc.outputs.readouts] or [sc.outputs.readouts[0]]
    times = sc.output_times_h
    t = 24.0 if sc.follow_up_h >= 24.0 else max(times)
    arm, vehicle = _treated(sc)[0], _vehicle(sc)
    out = [Output(r, t, arm) for r in wanted]
    if vehicle is not None:
        out += [Output(r, t, arm, vehicle) for r in wanted if r != "response"]
    return out


# -------------------------------------------------------------------------- evaluator


def _eval_scenario(sc: Any, outputs: Sequence[Output], mode: str, engine: str | None) -> Any:
    """The scenario as evaluated: only the output times and readouts asked for, the
    variability of ``mode``, the engine chosen."""
    from ketasim.scenario import load_scenario

    data = sc.as_dict()
    data["outputs"]["times"] = [f"{t!r} h" for t in sorted({o.time_h for o in outputs})]
    data["outputs"]["readouts"] = sorted({o.readout for o in outputs})
    data["population"]["variability"] = mode == "population"
    data.pop("sensitivity", None)
    if engine is not None:
        data["engine"]["method"] = engine
    elif data["engine"]["method"] == "auto":  # a sample is a large batch: fast if installed
        from ketasim.engine import default_engine

        data["engine"]["method"] = default_engine()
    return load_scenario(data)


def _factors(name: str, model: Any, params: list[str]) -> dict[str, float]:
    """Model-unit value per catalog-unit value of ``name`` for each model parameter."""
    s = kp.catalog_values()[name]
    out = {}
    for p in params:
        nominal = model.spec.parameters[p].value
        out[p] = nominal / s.value if s.value != 0 else s.model_copy(
            update={"value": 1.0}).to(model.spec.parameters[p].unit)
    return out


def evaluate_part(sc: Any, arm: str, X: np.ndarray, names: list[str], per_row: int,
                  wanted: list[tuple[str, float]]) -> tuple[np.ndarray, np.ndarray, str]:
    """One task (a top-level function, for worker processes): rows ``X`` (rows, names) as
    ``per_row`` subjects each in arm ``arm``; the mean of every (readout, time) in
    ``wanted`` per row, shape (rows, len(wanted)); failed rows are NaN. Returns the values,
    the number of failed subjects per row and the first failure's message."""
    from ketasim.engine.base import OK
    from ketasim.experiments.run import Cohort, cohort_model, simulate_columns
    from ketasim.population import draw_subjects

    rows = X.shape[0]
    base = np.arange(per_row)
    cohort = Cohort(arm, np.tile(base, rows), [sc.arm(arm)], [0.0])
    subjects = draw_subjects(sc, base).iloc[np.tile(base, rows)]
    model = cohort_model(sc, cohort)
    where = kp.targets(model, sc.species)
    columns: dict[str, np.ndarray] = {}
    constants: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        values = np.repeat(np.asarray(X[:, j], float), per_row)
        if name not in where:
            continue  # e.g. a drug's value in the vehicle arm
        if not where[name]:
            constants[name] = values
        for p, f in _factors(name, model, where[name]).items():
            columns[p] = values * f
    ds = simulate_columns(sc, cohort, subjects, columns, constants)
    ok = np.asarray(ds["status"].values) == OK
    times = ds["time"].values
    out = np.empty((rows, len(wanted)))
    for k, (readout, t) in enumerate(wanted):
        i = int(np.argmin(np.abs(times - t)))
        v = np.asarray(ds[readout].isel(period=0, time=i).values, float)
        v = np.where(ok, v, np.nan)
        out[:, k] = v.reshape(rows, per_row).mean(axis=1)
    failed = (~ok).reshape(rows, per_row).sum(axis=1)
    msgs = [str(m) for m, good in zip(ds["message"].values, ok, strict=True) if not good and m]
    return out, failed, msgs[0] if msgs else ""


class ScenarioEvaluator:
    """``f(X) -> Y`` for a scenario: rows of catalog values ``names`` (catalog units) to the
    ``outputs`` (one column each), through the engine in batches.

    ``mode`` typical | population (``subjects`` per row); ``engine`` overrides the
    scenario's; ``executor`` runs the chunks (about :data:`SUBJECTS_PER_TASK` subjects
    each, per arm); ``progress(advance, total=None)`` counts simulated subjects. Rows with
    a subject the engine could not integrate are simulated again on :data:`RETRY_ENGINE`
    when there are at most :data:`RETRY_MAX_ROWS` in an arm (counted in ``failures`` and
    ``retried``); a row that fails again, or is not retried, is NaN.
    """

    def __init__(self, sc: Any, names: Sequence[str], outputs: Sequence[Output],
                 mode: str = "typical", subjects: int = 20, engine: str | None = None,
                 executor: Executor | None = None,
                 progress: Callable[..., Any] | None = None) -> None:
        if mode not in MODES:
            raise ArgumentError("mode", f'"{mode}" is not allowed; use {" or ".join(MODES)}')
        if mode == "population" and subjects < 2:
            raise ArgumentError("subjects", f"{subjects} is too few; use at least 2 subjects "
                                "per row in population mode")
        self.sc = _eval_scenario(sc, outputs, mode, engine)
        self.names = list(names)
        self.outputs = list(outputs)
        self.per_row = 1 if mode == "typical" else int(subjects)
        self.executor = executor
        self.progress = progress
        self.failures: dict[str, Any] = {"subjects": 0, "rows": 0, "first": ""}
        self.retried: dict[str, Any] = {"engine": RETRY_ENGINE, "rows": 0, "failed_again": 0,
                                        "first": ""}
        self.evaluations = 0

    def arms(self) -> list[str]:
        return list(dict.fromkeys(a for o in self.outputs for a in (o.arm, o.versus) if a))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        from ketasim.experiments.executor import run_tasks

        X = np.asarray(X, float)
        rows = X.shape[0]
        wanted = sorted({(o.readout, o.time_h) for o in self.outputs})
        chunk = max(1, SUBJECTS_PER_TASK // self.per_row)
        tasks = [(self.sc, arm, X[lo:lo + chunk], self.names, self.per_row, wanted)
                 for arm in self.arms() for lo in range(0, rows, chunk)]
        if callable(self.progress):
            self.progress(0, total=rows * self.per_row * len(self.arms()))
        if self.executor is not None:  # compile (or load) the models here, once
            for arm in self.arms():
                evaluate_part(self.sc, arm, X[:1], self.names, 1, wanted)

        def done(i: int, _: Any) -> None:
            if callable(self.progress):
                self.progress(len(tasks[i][2]) * self.per_row)

        parts = list(run_tasks(evaluate_part, tasks, self.executor, None, done))
        per_arm: dict[str, list[Any]] = {}
        for task, part in zip(tasks, parts, strict=True):
            per_arm.setdefault(task[1], []).append(part)
        values = {a: np.concatenate([p[0] for p in ps]) for a, ps in per_arm.items()}
        for arm, ps in per_arm.items():
            failed = np.concatenate([p[1] for p in ps])
            self.failures["subjects"] += int(failed.sum())
            self.failures["rows"] += int((failed > 0).sum())
            self.failures["first"] = self.failures["first"] or next(
                (p[2] for p in ps if p[2]), "")
            if (0 < int((failed > 0).sum()) <= RETRY_MAX_ROWS
                    and str(self.sc.engine.method) != RETRY_ENGINE):
                self._retry(arm, X, failed > 0, values[arm], wanted)
        self.evaluations += rows * self.per_row * len(self.arms())
        Y = np.empty((rows, len(self.outputs)))
        for k, o in enumerate(self.outputs):
            j = wanted.index((o.readout, o.time_h))
            Y[:, k] = values[o.arm][:, j]
            if o.versus is not None:
                Y[:, k] -= values[o.versus][:, j]
        return Y


    def _retry(self, arm: str, X: np.ndarray, rows: np.ndarray, values: np.ndarray,
               wanted: list[tuple[str, float]]) -> None:
        """Simulate the rows whose subjects failed once more on :data:`RETRY_ENGINE` (SciPy
        BDF), in place; rows that fail again stay NaN (the analysis then stops)."""
        sc = self.sc.model_copy(update={"engine": self.sc.engine.model_copy(
            update={"method": RETRY_ENGINE})})
        again, failed, msg = evaluate_part(sc, arm, X[rows], self.names, self.per_row, wanted)
        values[rows] = again
        self.retried["rows"] += int(rows.sum())
        self.retried["failed_again"] += int((failed > 0).sum())
        self.retried["first"] = self.retried["first"] or msg


# ---------------------------------------------------------------------------- analysis


@dataclass
class SensitivityResult:
    """Indices (tidy: output, parameter, index, value, conf, rank), the convergence check
    (output, parameter, index, at_n, at_2n, change) and what was run."""

    method: str
    n: int
    seed: int
    parameters: list[kp.Uncertain]
    outputs: list[str]
    indices: pd.DataFrame
    convergence: pd.DataFrame
    X: np.ndarray
    Y: np.ndarray
    manifest: dict[str, Any] = field(default_factory=dict)

    def ranking(self, output: str | None = None) -> pd.DataFrame:
        """Parameters by the method's main index (mu* or ST), largest first."""
        key = INDEX_OF[self.method]
        df = self.indices[self.indices["index"] == key]
        if output is not None:
            df = df[df["output"] == output]
        return df.sort_values(["output", "value"], ascending=[True, False]).reset_index(
            drop=True)


def check_options(method: str, n: int, resamples: int = 200, conf_level: float = 0.95) -> None:
    """ArgumentError naming the option for a method, sample size or bootstrap setting the
    analysis cannot use."""
    if method not in METHODS:
        raise ArgumentError("method", f'"{method}" is not allowed; use one of '
                            f"{', '.join(METHODS)}")
    if method == "sobol" and (n < 2 or n & (n - 1)):
        raise ArgumentError("n", f"{n} is not allowed for Sobol: use a power of 2 (64, 128, "
                            "256, ...), the size of a balanced Sobol' sequence")
    if method == "morris" and n < 2:
        raise ArgumentError("n", f"{n} is too few Morris trajectories; use at least 2 "
                            "(10-20 is usual)")
    if method == "efast" and n <= 64:
        raise ArgumentError("n", f"{n} is too few for eFAST; use more than 64 (4 M^2 with "
                            "M = 4)")
    if resamples < 10:
        raise ArgumentError("resamples", f"{resamples} is too few bootstrap resamples; use "
                            "at least 10")
    if not 0.5 <= conf_level < 1:
        raise ArgumentError("conf_level", f"{conf_level} is not allowed; use 0.5 <= level < 1")


def _problem(params: Sequence[kp.Uncertain]) -> dict[str, Any]:
    return {"num_vars": len(params), "names": [u.name for u in params],
            "bounds": [list(kp.log_bounds(u)) for u in params]}


def _values(params: Sequence[kp.Uncertain], Z: np.ndarray) -> np.ndarray:
    """Sampling-scale rows ``Z`` as catalog values (exp of the log-uniform columns)."""
    X = np.array(Z, float)
    for j, u in enumerate(params):
        if u.dist == "loguniform":
            X[:, j] = np.exp(X[:, j])
    return X


def _sample(method: str, problem: dict[str, Any], n: int, seed: int) -> np.ndarray:
    if method == "sobol":
        from SALib.sample import sobol

        return np.asarray(sobol.sample(problem, n, calc_second_order=False, seed=seed))
    if method == "morris":
        from SALib.sample import morris

        return np.asarray(morris.sample(problem, n, num_levels=4, seed=seed))
    from SALib.sample import fast_sampler

    return np.asarray(fast_sampler.sample(problem, n, M=4, seed=seed))


def _rows(method: str, n: int, d: int) -> int:
    return {"sobol": n * (d + 2), "morris": n * (d + 1), "efast": n * d}[method]


def _indices(method: str, problem: dict[str, Any], Z: np.ndarray, y: np.ndarray,
             resamples: int, conf_level: float, seed: int) -> dict[str, tuple[Any, Any]]:
    """index name -> (values, confidence half-widths) per parameter (SALib)."""
    if method == "sobol":
        from SALib.analyze import sobol

        r = sobol.analyze(problem, y, calc_second_order=False, num_resamples=resamples,
                          conf_level=conf_level, seed=seed)
        return {"S1": (r["S1"], r["S1_conf"]), "ST": (r["ST"], r["ST_conf"])}
    if method == "morris":
        from SALib.analyze import morris

        r = morris.analyze(problem, Z, y, num_resamples=resamples, conf_level=conf_level,
                           num_levels=4, seed=seed)
        nan = np.full(len(problem["names"]), np.nan)
        return {"mu_star": (r["mu_star"], r["mu_star_conf"]), "mu": (r["mu"], nan),
                "sigma": (r["sigma"], nan)}
    from SALib.analyze import fast

    r = fast.analyze(problem, y, M=4, num_resamples=resamples, conf_level=conf_level,
                     seed=seed)
    return {"S1": (r["S1"], r["S1_conf"]), "ST": (r["ST"], r["ST_conf"])}


def _table(method: str, problem: dict[str, Any], Z: np.ndarray, Y: np.ndarray,
           outputs: Sequence[str], resamples: int, conf_level: float, seed: int
           ) -> pd.DataFrame:
    rows = []
    for k, out in enumerate(outputs):
        y = Y[:, k]
        for index, (vals, conf) in _indices(method, problem, Z, y, resamples, conf_level,
                                            seed).items():
            for name, v, c in zip(problem["names"], vals, conf, strict=True):
                rows.append({"output": out, "parameter": name, "index": index,
                             "value": float(v), "conf": float(c)})
    df = pd.DataFrame(rows, columns=["output", "parameter", "index", "value", "conf"])
    df["rank"] = df.groupby(["output", "index"])["value"].rank(ascending=False,
                                                              method="min").astype(int)
    return df


def _convergence(small: pd.DataFrame, large: pd.DataFrame, n: int) -> pd.DataFrame:
    key = ["output", "parameter", "index"]
    m = small[[*key, "value"]].merge(large[[*key, "value", "conf"]], on=key,
                                     suffixes=("_n", "_2n"))
    m = m.rename(columns={"value_n": "at_n", "value_2n": "at_2n", "conf": "conf_2n"})
    m["change"] = m["at_2n"] - m["at_n"]
    m["within_ci"] = m["change"].abs() <= m["conf_2n"].fillna(np.inf)
    m.insert(3, "n", n)
    return m[[*key, "n", "at_n", "at_2n", "change", "conf_2n", "within_ci"]]


def analyse(params: Sequence[kp.Uncertain], evaluate: Evaluator, outputs: Sequence[str],
            method: str = "sobol", n: int = 256, seed: int = 0, resamples: int = 200,
            conf_level: float = 0.95, convergence: bool = True) -> SensitivityResult:
    """Sensitivity indices of ``outputs`` (the columns ``evaluate`` returns) to ``params``.

    ``evaluate(X)`` gets every row at once (shape (rows, len(params)), catalog units) and
    returns shape (rows, len(outputs)). ``n``: Sobol base sample (a power of 2), Morris
    trajectories or eFAST samples per parameter. With ``convergence`` the indices are those
    at 2 ``n`` and the table :attr:`SensitivityResult.convergence` compares them with
    ``n`` (same seed). Bootstrap: ``resamples`` at ``conf_level``. A row without a value
    (a failed subject) stops Sobol and eFAST; Morris leaves out the trajectories with one
    and counts them (``manifest["dropped_trajectories"]``).
    """
    check_options(method, n, resamples, conf_level)
    if len(params) < 2:
        raise ArgumentError("parameters", f"{len(params)} parameter selected; a sensitivity "
                            "analysis needs at least 2")
    problem = _problem(params)
    d = len(params)
    t0 = _time.perf_counter()
    big = 2 * n if convergence else n
    Z = _sample(method, problem, big, seed)
    if convergence and method == "efast":
        Z_small = _sample(method, problem, n, seed)
        Z_all = np.vstack([Z_small, Z])
    else:
        Z_small = Z[:_rows(method, n, d)]
        Z_all = Z
    X_all = _values(params, Z_all)
    Y_all = np.asarray(evaluate(X_all), float)
    if Y_all.shape != (len(Z_all), len(outputs)):
        raise ArgumentError("evaluate", f"returned shape {Y_all.shape}, expected "
                            f"{(len(Z_all), len(outputs))}")
    bad = ~np.isfinite(Y_all).all(axis=1)
    dropped = 0
    if bad.any() and method == "morris":
        # a Morris trajectory is a unit of its own: leave out those with a failed row
        traj = np.arange(len(Z_all)) // (d + 1)
        gone = np.isin(traj, np.unique(traj[bad]))
        dropped = int(np.unique(traj[bad]).size)
        if (~gone & (traj < n)).sum() < 2 * (d + 1) or (~gone).sum() < 2 * (d + 1):
            raise SimulationError(f"{dropped} of {big} Morris trajectories have a sample row "
                                  "that gave no value (failed subjects); fewer than 2 are left")
        Z_small = Z_all[~gone & (traj < n)]
        Y_small = Y_all[~gone & (traj < n)]
        Z, Y_all, Z_all = Z_all[~gone], Y_all[~gone], Z_all[~gone]
    elif bad.any():
        raise SimulationError(f"{int(bad.sum())} of {len(Y_all)} sample rows gave no value "
                              f"(failed subjects); {method} needs every row")
    t_eval = _time.perf_counter() - t0
    if method == "efast" and convergence:
        Y_small, Y = Y_all[:len(Z_small)], Y_all[len(Z_small):]
    elif method == "morris" and dropped:
        Y = Y_all
    else:
        Y, Y_small = Y_all, Y_all[:len(Z_small)]
    table = _table(method, problem, Z, Y, outputs, resamples, conf_level, seed)
    conv = pd.DataFrame()
    if convergence:
        small = _table(method, problem, Z_small, Y_small, outputs, resamples, conf_level, seed)
        conv = _convergence(small, table, n)
    manifest = {"method": method, "n": n, "n_reported": big, "seed": seed,
                "rows_evaluated": int(bad.size), "resamples": resamples,
                "failed_rows": int(bad.sum()), "dropped_trajectories": dropped,
                "conf_level": conf_level, "evaluate_s": round(t_eval, 3),
                "wall_time_s": round(_time.perf_counter() - t0, 3),
                "parameters": [vars(u) for u in params], "outputs": list(outputs)}
    return SensitivityResult(method, big, seed, list(params), list(outputs), table, conv,
                             _values(params, Z), Y, manifest)


# ------------------------------------------------------------------------ the scenario


def sensitivity(sc: Any, parameters: Sequence[str] | str | None = None,
                outputs: Sequence[str] | None = None, method: str | None = None,
                n: int | None = None, mode: str | None = None, subjects: int | None = None,
                seed: int | None = None, engine: str | None = None,
                executor: Executor | None = None, progress: Callable[..., Any] | None = None,
                resamples: int = 200, conf_level: float = 0.95,
                convergence: bool = True) -> SensitivityResult:
    """:func:`analyse` of scenario ``sc`` through the engine.

    Unset arguments come from the scenario's ``[sensitivity]`` table, else: parameters
    ``mechanism.*``, outputs :func:`default_outputs`, method morris, n 10 (Morris) / 256
    (Sobol) / 512 (eFAST), mode typical, 20 subjects a row (population), the scenario's
    seed. ``parameters``: dotted names or globs (:func:`ketasim.parameters.select`);
    ``outputs``: ``READOUT@TIME[:ARM[ vs ARM]]`` (:func:`parse_output`).
    """
    from ketasim.experiments.run import Cohort, cohort_model

    opts = getattr(sc, "sensitivity", None)
    method = method or (opts.method if opts else None) or "morris"
    if method not in METHODS:
        check_options(method, 2)
    default_n = {"morris": 10, "sobol": 256, "efast": 512}[method]
    n = int(n if n is not None else (opts.n if opts and opts.n else default_n))
    mode = mode or (opts.mode if opts else None) or "typical"
    subjects = int(subjects or (opts.subjects if opts else None) or 20)
    check_options(method, n, resamples, conf_level)
    patterns = parameters or (opts.parameters if opts and opts.parameters else ["mechanism.*"])
    texts = outputs or (opts.outputs if opts and opts.outputs else None)
    outs = ([parse_output(t, sc) for t in texts] if texts else default_outputs(sc))
    times = set(sc.output_times_h) | {o.time_h for o in outs}
    if max(times) > sc.follow_up_h + 1e-9:
        raise ArgumentError("outputs", f"a time after the follow-up "
                            f"({format_hours(sc.follow_up_h)}) cannot be read")
    evaluator = ScenarioEvaluator(sc, [], outs, mode, subjects, engine, executor, progress)
    available: set[str] = set()
    for arm in evaluator.arms():
        model = cohort_model(evaluator.sc, Cohort(arm, np.arange(1), [sc.arm(arm)], [0.0]))
        available |= set(kp.targets(model, sc.species))
    names = kp.select(patterns, available)
    evaluator.names = names
    params = [u for u in (kp.uncertainty(nm) for nm in names) if u is not None]
    try:
        res = analyse(params, evaluator, [o.label for o in outs], method, n,
                      int(seed if seed is not None else sc.seed), resamples, conf_level,
                      convergence)
    except SimulationError as exc:
        first = evaluator.retried["first"] or evaluator.failures["first"]
        raise SimulationError(f"{exc}: {evaluator.failures['rows']} subject rows failed "
                              f"(first: {first}), {evaluator.retried['rows']} retried on "
                              f"{RETRY_ENGINE}; narrow the ranges in catalog/uncertainty.toml "
                              "or the parameters") from None
    res.manifest.update({
        "scenario": sc.name, "mode": mode, "subjects_per_row": evaluator.per_row,
        "engine": str(evaluator.sc.engine.method), "subjects_simulated": evaluator.evaluations,
        "failed_subjects": evaluator.failures["subjects"], "patterns": list(patterns)
        if not isinstance(patterns, str) else [patterns]})
    if evaluator.failures["subjects"]:
        res.manifest["first_failure"] = evaluator.failures["first"]
        res.manifest["retried"] = dict(evaluator.retried)
    return res


def top(result: SensitivityResult, k: int = 10) -> pd.DataFrame:
    """The ``k`` highest-ranked parameters per output (main index with its interval)."""
    df = result.ranking()
    return df.groupby("output", sort=False).head(k).reset_index(drop=True)

