"""Statistical power by simulation: replay a trial many times, count significant results.

``power(sc, sizes=[10, 20, 40, 80], replicates=200)`` estimates, for each trial size, the
probability that the primary endpoint is significant: by default the change in MADRS from
baseline at 24 h (``madrs.change`` at ``"1 d"``), each active arm against the control arm,
two-sided at alpha = 0.05, with the test the summary uses for the design
(:mod:`ketasim.experiments.endpoints`: period-adjusted crossover analysis, Welch t-test for
parallel groups, Fisher / McNemar for response and remission; a one-sample t-test of the
readout against 0 in a single-group design).

Trial size ``n`` means what ``population.size`` means: subjects per arm in a parallel
design, subjects per trial in a crossover or single-group design.

**Independent replicates from one pool.** Each replicate is a new trial with different
subjects. Simulating every replicate on its own would repeat the model set-up hundreds of
times, so replicates are simulated in batches: a batch is one run of the scenario with a
new seed (derived from the scenario seed and the batch number) and ``batch x n_max``
subjects (per arm, or per sequence pair in a crossover), which is then cut into ``batch``
disjoint trials of ``n_max`` subjects; a trial of size ``n < n_max`` takes the first ``n``
of its replicate's subjects (in a crossover, half from each randomised sequence). Virtual
subjects are independent draws, so disjoint subsets of one run are independent trials: the
replicates of one size are independent, while the trials of different sizes within one
replicate are nested (which makes the comparison between sizes less noisy, not biased).
Subjects whose integration failed drop out of their trial. The result depends on the
scenario seed, the sizes, the number of replicates and the batch size, and is identical
when all four are the same.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ketasim import units
from ketasim.errors import ArgumentError
from ketasim.experiments.endpoints import control_arm
from ketasim.experiments.executor import run_tasks
from ketasim.readouts import FIXED
from ketasim.stats import compare_crossover, compare_parallel, wilson

if TYPE_CHECKING:
    from ketasim.scenario import Scenario

COLUMNS = ["n", "comparison", "power", "ci_low", "ci_high", "significant", "replicates",
           "mean_difference", "mean_cohens_d"]
ENGINES = ("reference", "batched", "fast")  # "auto" would hide which engine counted
BATCH_SUBJECTS = 1000  # subjects per simulation batch (per arm in parallel designs)
_POWER_KEY = 0x504F5752  # "POWR": seeds of the batches


@dataclass(frozen=True)
class Endpoint:
    """The primary endpoint: a readout at one output time, tested at ``alpha``."""

    readout: str = "madrs.change"
    time: str = "1 d"
    alpha: float = 0.05

    @property
    def time_h(self) -> float:
        return units.hours(self.time)

    @property
    def fraction(self) -> bool:
        return self.readout in FIXED and FIXED[self.readout].kind == "fraction"

    def describe(self) -> str:
        return f"{self.readout} at {self.time}, two-sided alpha {self.alpha:g}"


def parse_sizes(sizes: str) -> list[int]:
    """``"10,20,40"`` -> [10, 20, 40]; ArgumentError (``sizes``, one line) unless each is
    an integer of at least 2."""
    parts = [p.strip() for p in str(sizes).split(",")]
    out: list[int] = []
    for p in parts:
        try:
            n = int(p)
        except ValueError:
            raise ArgumentError("sizes", f'"{p}" is not a whole number; give sizes like '
                                "10,20,40,80") from None
        if n < 2:
            raise ArgumentError("sizes", f"{n} is too small; a trial needs at least 2 "
                                "subjects (per arm in parallel designs)")
        if n in out:
            raise ArgumentError("sizes", f"{n} is listed twice")
        out.append(n)
    if not out:
        raise ArgumentError("sizes", "none given; e.g. 10,20,40,80")
    return sorted(out)


def check(sc: Scenario, sizes: Sequence[int], replicates: int, endpoint: Endpoint) -> None:
    """ArgumentError (one line, naming the argument) for arguments that cannot make a
    power analysis of ``sc``."""
    if isinstance(replicates, bool) or not isinstance(replicates, int) or replicates < 1:
        raise ArgumentError("replicates", f"{replicates} is not a whole number >= 1")
    if not 0 < endpoint.alpha < 1:
        raise ArgumentError("endpoint.alpha", f"{endpoint.alpha:g} is not in (0, 1)")
    if not sizes or min(sizes) < 2:
        raise ArgumentError("sizes", "every size must be at least 2")
    try:
        t = endpoint.time_h
    except ValueError:
        raise ArgumentError("endpoint.time", f'"{endpoint.time}" is not a time; write it with '
                            'units, e.g. "1 d" or "4 h"') from None
    if t < 0 or t > sc.follow_up_h + 1e-9:
        raise ArgumentError("endpoint.time", f'"{endpoint.time}" is outside the follow-up '
                            f"(0 to {sc.follow_up_h / 24:g} d)")
    if sc.design.type == "single_group":
        if endpoint.fraction:
            raise ArgumentError("endpoint.readout", f'"{endpoint.readout}" needs a control '
                                "arm; a single-group design can test a continuous readout "
                                "against 0")
    elif control_arm(sc) is None:
        raise ArgumentError("sc", "no control arm (vehicle or midazolam) to compare with")


def check_run_options(engine: str | None = None, batch: int | None = None) -> None:
    """ArgumentError for an ``engine`` or ``batch`` that :func:`power` cannot use."""
    if engine is not None and engine not in ENGINES:
        raise ArgumentError("engine", f'"{engine}" is not an engine; use one of: '
                            + ", ".join(ENGINES))
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or batch < 1):
        raise ArgumentError("batch", f"{batch} is not a whole number >= 1")


def _batch_seed(seed: int, batch: int) -> int:
    ss = np.random.SeedSequence([int(seed), _POWER_KEY, int(batch)])
    return int(ss.generate_state(1)[0]) & 0x7FFFFFFF


def _batch_scenario(sc: Scenario, n_pool: int, seed: int, endpoint: Endpoint,
                    engine: str | None) -> Scenario:
    from ketasim.scenario import load_scenario

    data = copy.deepcopy(sc.as_dict())
    data["seed"] = seed
    data["population"]["size"] = n_pool
    data["population"]["confirm_large"] = n_pool > 100_000
    # keep the scenario's output times: the measurement model reads the perceived drug
    # effect (CADSS, sedation) at them, so dropping times would change the scores
    times = list(data["outputs"]["times"])
    if all(abs(units.hours(t) - endpoint.time_h) > 1e-9 for t in times):
        times.append(endpoint.time)
    data["outputs"]["times"] = sorted(times, key=units.hours)
    data["outputs"]["readouts"] = [endpoint.readout]
    if engine is not None:
        data["engine"]["method"] = engine
    return load_scenario(data)


def default_engine(sc: Scenario) -> str:
    """``fast`` when numba is installed (power needs many subjects), else the scenario's."""
    import importlib.util

    return "fast" if importlib.util.find_spec("numba") is not None else str(sc.engine.method)


def power(sc: Scenario, sizes: Sequence[int], replicates: int, endpoint: Endpoint | None = None,
          engine: str | None = None, batch: int | None = None,
          progress: Callable[..., Any] | None = None,
          simulate: Callable[..., Any] | None = None,
          executor: Executor | None = None) -> pd.DataFrame:
    """The power table (columns :data:`COLUMNS`, one row per size and comparison).

    ``batch``: replicates per simulation (default: about :data:`BATCH_SUBJECTS` subjects
    per run); ``engine`` overrides the scenario's; ``progress(advance, total=None)`` is
    told about replicates; ``simulate`` replaces ``ketasim.run``. ``executor`` (a process
    pool, Dask's ``client.get_executor()``) runs the batches in its workers (``simulate``
    must then be picklable); each batch has its own seed, so the table is the same.
    """
    endpoint = endpoint or Endpoint()
    sizes = sorted(int(n) for n in sizes)
    check(sc, sizes, replicates, endpoint)
    check_run_options(engine, batch)
    if simulate is None:
        from ketasim.experiments.run import run

        simulate = run
    crossover = sc.design.type == "crossover"
    n_max = max(sizes)
    unit = 2 * math.ceil(n_max / 2) if crossover else n_max  # per replicate in the pool
    per_batch = batch if batch is not None else max(1, BATCH_SUBJECTS // unit)
    per_batch = max(1, min(int(per_batch), replicates))
    ctrl = control_arm(sc)
    actives = [a.name for a in sc.arms if a.name != ctrl] if ctrl else [sc.arms[0].name]
    counts = [min(per_batch, replicates - lo) for lo in range(0, replicates, per_batch)]
    tasks = [(Batch(sc, k, unit, b, endpoint, engine, tuple(sizes), tuple(actives), ctrl),
              simulate) for b, k in enumerate(counts)]
    if callable(progress):
        progress(0, total=replicates)

    def done(i: int, _: Any) -> None:
        if callable(progress):
            progress(counts[i])

    outcomes: dict[tuple[int, str], list[tuple[bool, float, float]]] = {}
    for got in run_tasks(power_batch, tasks, executor, done=done):  # in batch order
        for key, comps in got.items():
            outcomes.setdefault(key, []).extend(comps)
    rows = []
    for n in sizes:
        for arm in actives:
            got = outcomes[(n, arm)]
            sig = int(sum(s for s, _, _ in got))
            lo, hi = wilson(sig, len(got))
            label = f"{arm} vs {ctrl}" if ctrl else f"{arm} vs 0"
            rows.append((n, label, sig / len(got), lo, hi, sig, len(got),
                         _mean([d for _, d, _ in got]), _mean([e for _, _, e in got])))
    return pd.DataFrame(rows, columns=COLUMNS)


@dataclass(frozen=True)
class Batch:
    """One simulation of ``k`` replicate trials of ``unit`` subjects (per arm), seeded by
    its index ``b``: a task that any executor can run."""

    sc: Scenario
    k: int
    unit: int
    b: int
    endpoint: Endpoint
    engine: str | None
    sizes: tuple[int, ...]
    actives: tuple[str, ...]
    ctrl: str | None


def power_batch(batch: Batch, simulate: Callable[..., Any]
                ) -> dict[tuple[int, str], list[tuple[bool, float, float]]]:
    """(significant, difference, Cohen's d) of every replicate of a batch, by (size, arm)."""
    sc, ep = batch.sc, batch.endpoint
    bsc = _batch_scenario(sc, batch.k * batch.unit, _batch_seed(sc.seed, batch.b), ep,
                          batch.engine)
    result = simulate(bsc)
    crossover = sc.design.type == "crossover"
    out: dict[tuple[int, str], list[tuple[bool, float, float]]] = {}
    for rep in _split(bsc, result.data, batch.k, batch.unit, ep, batch.ctrl):
        for n in batch.sizes:
            for arm in batch.actives:
                out.setdefault((n, arm), []).append(
                    _test(rep, n, arm, batch.ctrl, crossover, ep))
    return out


def _mean(x: list[float]) -> float:
    a = np.asarray(x, float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else np.nan


def _split(sc: Scenario, data: Any, k: int, unit: int, endpoint: Endpoint,
           ctrl: str | None) -> list[dict[str, Any]]:
    """Cut one batch run into ``k`` disjoint replicates of ``unit`` subjects (per arm)."""
    ok = data["status"].values == "ok"
    at = int(np.argmin(np.abs(np.asarray(data["time"].values, float) - endpoint.time_h)))
    v = np.asarray(data[endpoint.readout].values[:, :, at], float)  # (subject, period)
    arm_of = data["arm"].values
    reps: list[dict[str, Any]] = []
    if sc.design.type == "crossover":
        first = arm_of[:, 0]
        a, c = sc.arms[0].name, sc.arms[1].name
        half = unit // 2
        seq_a = np.flatnonzero(first == a)
        seq_c = np.flatnonzero(first == c)
        for j in range(k):
            reps.append({"seq1": seq_a[j * half:(j + 1) * half],
                         "seq2": seq_c[j * half:(j + 1) * half],
                         "v": v, "arm_of": arm_of, "ok": ok})
        return reps
    for j in range(k):
        groups = {}
        for arm in dict.fromkeys(arm_of[:, 0]):
            idx = np.flatnonzero(arm_of[:, 0] == arm)
            groups[str(arm)] = idx[j * unit:(j + 1) * unit]
        reps.append({"groups": groups, "v": v, "arm_of": arm_of, "ok": ok})
    return reps


def _test(rep: dict[str, Any], n: int, arm: str, ctrl: str | None, crossover: bool,
          endpoint: Endpoint) -> tuple[bool, float, float]:
    """(significant, difference, Cohen's d) of one trial of size ``n``."""
    from scipy import stats

    v, arm_of, ok = rep["v"], rep["arm_of"], rep["ok"]
    if crossover:
        assert ctrl is not None
        idx = np.concatenate([rep["seq1"][: math.ceil(n / 2)], rep["seq2"][: n // 2]])
        idx = idx[ok[idx]]
        on_a, on_c = arm_of[idx] == arm, arm_of[idx] == ctrl  # one period each
        ya, yc = v[idx][on_a], v[idx][on_c]
        comp = compare_crossover(ya, yc, arm_of[idx, 0] == arm, endpoint.fraction)
    elif ctrl is None:  # single group: the readout against 0
        idx = rep["groups"][arm][:n]
        x = v[idx[ok[idx]], 0]
        x = x[np.isfinite(x)]
        if x.size < 2 or np.std(x) == 0:
            return False, float(np.mean(x)) if x.size else np.nan, np.nan
        p = float(stats.ttest_1samp(x, 0.0).pvalue)
        return p < endpoint.alpha, float(x.mean()), float(x.mean() / x.std(ddof=1))
    else:
        ia, ic = rep["groups"][arm][:n], rep["groups"][ctrl][:n]
        comp = compare_parallel(v[ia[ok[ia]], 0], v[ic[ok[ic]], 0], endpoint.fraction)
    p = comp.p_value
    return bool(np.isfinite(p) and p < endpoint.alpha), comp.difference, comp.cohens_d
