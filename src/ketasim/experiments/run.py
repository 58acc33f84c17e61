"""Run a scenario: subjects -> cohorts -> model + protocol -> engine -> result.

A *cohort* is a group of subjects sharing one dose schedule: an arm of a parallel or
single-group design, or one sequence of a crossover (period 1 then, after the washout,
period 2, simulated as one continuous timeline so that carry-over is real). Each cohort is
integrated as a batch; readouts are taken at each period's output times and re-expressed
where the contract asks for "% of baseline" against the subject's own pre-dose value.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ketasim import units
from ketasim._version import __version__
from ketasim.catalog import catalog
from ketasim.engine import default_engine
from ketasim.engine import get as get_engine
from ketasim.engine.base import OK, Trajectories
from ketasim.errors import ArgumentError, ScenarioError, SimulationError
from ketasim.experiments import lab, measures
from ketasim.experiments.endpoints import summarise
from ketasim.model.compile import CompiledModel
from ketasim.model.params import mechanism_table
from ketasim.model.pk import dose_targets
from ketasim.model.system import MECHANISM_READOUTS, build_model
from ketasim.population import draw_subjects, parameter_matrix
from ketasim.protocol import DoseEvent, Protocol, Signal
from ketasim.readouts import FIXED
from ketasim.result import RunResult

if TYPE_CHECKING:
    from ketasim.scenario import Arm, Dose, Scenario

Progress = Callable[..., Any]
BURN_IN_H = 24.0 * 150  # drug-free run-in to the condition's steady state (>> slowest tau)
PRE = 1e-6  # baseline is read just before the first event of a period (h)
STREAM_ABOVE = 20_000  # human populations larger than this are simulated in chunks
CHUNK_SUBJECTS = 10_000  # subjects per chunk of a streamed run
SAMPLE_SUBJECTS = 200  # subjects per cohort kept in RunResult.data of a streamed run


@dataclass
class Cohort:
    """Subjects sharing one schedule: ``arms[k]`` is the arm given in period k+1, starting
    at ``offsets[k]`` hours on the cohort's timeline."""

    name: str
    subjects: np.ndarray  # global subject indices
    arms: list[Arm]
    offsets: list[float]


def cohorts(sc: Scenario) -> list[Cohort]:
    """Split the population into cohorts according to the design."""
    n = sc.population.size
    kind = sc.design.type
    if kind == "crossover":
        a, b = sc.arms
        shift = sc.period_starts_h[1]  # period_length + washout
        rng = np.random.default_rng(np.random.SeedSequence(sc.seed, spawn_key=(0,)))
        order = rng.permutation(n)
        first, second = np.sort(order[: (n + 1) // 2]), np.sort(order[(n + 1) // 2:])
        return [Cohort(f"{a.name}-{b.name}", first, [a, b], [0.0, shift]),
                Cohort(f"{b.name}-{a.name}", second, [b, a], [0.0, shift])]
    return [Cohort(arm.name, np.arange(k * n, (k + 1) * n), [arm], [0.0])
            for k, arm in enumerate(sc.arms)]


def cohort_model(sc: Scenario, cohort: Cohort) -> CompiledModel:
    """The compiled model for a cohort: the scenario's species with every compound (and
    metabolite) its arms give, by the routes they use."""
    cat = catalog()
    comps: list[str] = []
    routes: set[tuple[str, str]] = set()
    for arm in cohort.arms:
        for d in arm.doses:
            for c in cat.composition(d.drug):
                if c not in comps:
                    comps.append(c)
                routes.add((c, d.route))
    return build_model(sc.species, tuple(comps), tuple(sorted(routes)))


def model_overrides(sc: Scenario, model: CompiledModel) -> dict[str, Any]:
    """The scenario's ``[model] parameters`` and hypotheses, as parameter overrides; a
    parameter name the model does not have is a ScenarioError (one line, exit 2)."""
    overrides = dict(getattr(sc.model, "parameters", {}) or {})
    for name in overrides:
        if name not in model.spec.parameters:
            raise ScenarioError(f"model.parameters.{name}", name,
                                "is not a parameter of this model; see docs/model.md")
    overrides.update(dict(getattr(sc.model, "hypotheses", {}) or {}))
    return overrides


def _amount_nmol(dose: Dose, cid: str, frac: float, weight: np.ndarray) -> np.ndarray:
    """Dose of compound ``cid`` in nmol per subject from a dose's basis and magnitude."""
    mw = catalog().drugs[cid].molecular_weight
    assert mw is not None
    per_ug = 1000.0 / mw.to("g/mol")
    basis, mag = dose.basis, dose.magnitude
    if basis == "mass":
        return np.full(weight.shape, mag * frac * per_ug)
    if basis == "mass_per_kg":
        return mag * weight * frac * per_ug
    if basis == "moles":
        return np.full(weight.shape, mag * frac)
    return mag * weight * frac  # moles_per_kg


def build_protocol(sc: Scenario, cohort: Cohort, weight: np.ndarray,
                   stress: np.ndarray) -> Protocol:
    """Dose events for every period of a cohort, plus the stress input."""
    cat = catalog()
    prot = Protocol(len(weight), baseline_inputs={"stress": stress})
    for arm, offset in zip(cohort.arms, cohort.offsets, strict=True):
        for d in arm.doses:
            for cid, frac in cat.composition(d.drug).items():
                amount = _amount_nmol(d, cid, frac, weight)
                for tgt in dose_targets(cat, sc.species, cid, d.route):
                    for t in d.times_h():
                        prot.events.append(DoseEvent(offset + t, tgt.state, amount * tgt.fraction,
                                                     d.duration_h or 0.0, f"{arm.name}:{d.drug}"))
    sched = getattr(sc.population, "stress", None)
    if sched is not None:  # rodent stress schedule: an input signal, load 0 before it
        prot.baseline_inputs["stress"] = np.zeros_like(stress)
        prot.signals.append(Signal("stress", units.hours(sched.start), units.hours(sched.end),
                                  stress))
    return prot


def period_times(sc: Scenario, cohort: Cohort) -> tuple[np.ndarray, list[float]]:
    """All output times on the cohort timeline, and each period's baseline time."""
    outs, baselines = [], []
    for arm, offset in zip(cohort.arms, cohort.offsets, strict=True):
        first = min(min(d.times_h()) for d in arm.doses)
        base = offset + min(first, 0.0) - PRE
        baselines.append(base)
        outs.append([base, *(offset + np.asarray(sc.output_times_h))])
    return np.unique(np.concatenate(outs)), baselines


@dataclass
class PreparedCohort:
    """Everything an engine needs to integrate one cohort, as :func:`run` builds it."""

    cohort: Cohort
    model: CompiledModel
    P: np.ndarray  # (n_params, n_subjects): base + derived parameters
    protocol: Protocol  # dose events and input signals on the cohort timeline
    t_out: np.ndarray  # output times on the cohort timeline (h), baselines included
    baselines: list[float]  # each period's baseline time (h)
    t_start: float  # end of the drug-free burn-in: where the integration starts (h)
    y0: np.ndarray  # (n_states, n_subjects): state at t_start


def prepare_cohort(sc: Scenario, cohort: Cohort, subjects: pd.DataFrame | None = None,
                   columns: dict[str, np.ndarray] | None = None) -> PreparedCohort:
    """Model, parameters (with the scenario's overrides, checked by name), protocol, output
    times and burn-in state of a cohort; ``subjects`` (drawn when None) are its covariates,
    ``columns`` per-subject values of model parameters (by name; see
    :func:`ketasim.population.parameter_matrix`). The one preparation used by :func:`run`,
    the sensitivity analysis and the SBML exporter."""
    model = cohort_model(sc, cohort)
    if subjects is None:
        subjects = draw_subjects(sc, cohort.subjects)
    P = parameter_matrix(model, subjects, sc, model_overrides(sc, model), columns)
    weight = subjects["weight"].to_numpy(float)
    stress = subjects["severity"].to_numpy(float)
    prot = build_protocol(sc, cohort, weight, stress)
    t_out, baselines = period_times(sc, cohort)
    t_start = min(prot.first_time(), *baselines) - 1.0
    y0 = burn_in(sc, model, P, prot, t_start)
    return PreparedCohort(cohort, model, P, prot, t_out, baselines, t_start, y0)


def simulate_cohort(sc: Scenario, cohort: Cohort, subjects: pd.DataFrame,
                    progress: Progress | None = None,
                    columns: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Integrate one cohort; return readout arrays (subject, period, time) and statuses."""
    c = prepare_cohort(sc, cohort, subjects, columns)
    engine = get_engine(engine_name(sc))
    traj = engine.simulate(c.model, c.P, c.y0, c.protocol, c.t_out, c.t_start,
                           rtol=sc.engine.rtol, atol=sc.engine.atol, progress=progress)
    return _readouts(sc, c.model, c.P, c.protocol, traj, c.t_out, cohort, c.baselines)


def engine_name(sc: Scenario) -> str:
    """The engine a scenario runs on: its ``[engine] method``, where ``auto`` is
    :func:`ketasim.engine.default_engine` of the population size (``fast`` from 1,000
    subjects where numba is installed, else ``batched``)."""
    method = str(sc.engine.method)
    return default_engine(int(sc.population.size)) if method == "auto" else method


def burn_in(sc: Scenario, model: CompiledModel, P: np.ndarray, prot: Protocol,
            t_start: float) -> np.ndarray:
    """State at ``t_start`` after :data:`BURN_IN_H` drug-free hours in the scenario's
    condition (stress input), shape (n_states, n_subjects)."""
    inp = prot.inputs_at(-np.inf, model.input_names)
    y0 = model.initial(P, inp)
    if not np.any(inp):  # healthy drug-free steady state is exact by construction
        return y0
    rest = Protocol(prot.n_subjects, baseline_inputs=dict(prot.baseline_inputs))
    engine = get_engine(engine_name(sc))
    tr = engine.simulate(model, P, y0, rest, np.array([t_start]), t_start - BURN_IN_H,
                         rtol=sc.engine.rtol, atol=sc.engine.atol)
    out = tr.y[:, :, -1].T.copy()
    failed = tr.status != OK
    out[:, failed] = y0[:, failed]  # the main run will fail and flag these subjects
    return out


def _readouts(sc: Scenario, model: CompiledModel, P: np.ndarray, prot: Protocol,
              traj: Trajectories, t_out: np.ndarray, cohort: Cohort,
              baselines: list[float]) -> dict[str, Any]:
    n_sub = P.shape[1]
    names = [r for r in model.readout_names]
    vals = {r: np.full((n_sub, t_out.size), np.nan) for r in names}
    for k, t in enumerate(t_out):
        inp = prot.inputs_at(t, model.input_names)
        ro = model.readouts(t, traj.y[:, :, k].T, P, inp)
        for r in names:
            vals[r][:, k] = ro[r]
    times = np.asarray(sc.output_times_h)
    out: dict[str, np.ndarray] = {}
    for r in names:
        per = []
        for offset, base in zip(cohort.offsets, baselines, strict=True):
            idx = np.searchsorted(t_out, offset + times)
            b = vals[r][:, [np.searchsorted(t_out, base)]]
            v = vals[r][:, idx]
            unit = FIXED[r].unit if r in FIXED else ""
            if unit == "% of baseline":
                with np.errstate(divide="ignore", invalid="ignore"):
                    v = 100.0 * v / np.where(b == 0, np.nan, b) * 1.0
            per.append(np.concatenate([b, v], axis=1))
        out[r] = np.stack(per, axis=1)  # (subject, period, 1 + n_times); [..., 0] = baseline
    return {"values": out, "status": traj.status, "message": traj.message}


def run(sc: Scenario, progress: Progress | None = None, keep_subjects: bool | None = None,
        chunk_size: int | None = None, executor: Executor | None = None,
        checkpoint: Path | str | None = None) -> RunResult:
    """Simulate every subject of scenario ``sc``; return trajectories, summary, manifest.

    Human populations of more than :data:`STREAM_ABOVE` subjects (or any population when
    ``chunk_size`` is given) are simulated in chunks of ``chunk_size`` (default
    :data:`CHUNK_SUBJECTS`) subjects whose summary statistics are merged
    (:mod:`ketasim.experiments.stream`), so memory does not grow with the population.
    ``RunResult.data`` then holds every subject only with ``keep_subjects=True``; otherwise
    the first :data:`SAMPLE_SUBJECTS` subjects of each cohort (for the report), and the
    manifest says so (``subjects_in_data``). Smaller runs simulate each cohort whole. The
    merged summary is the same bits for any chunk size on the engines that integrate each
    subject alone (fast, reference); the batched engine shares one step size within a
    chunk, so other chunks move its numbers within the solver tolerance.

    ``executor`` (any :class:`concurrent.futures.Executor`: a process pool, Dask's
    ``client.get_executor()``) runs the chunks (or cohorts) in its workers; the results are
    merged in chunk order, so the numbers are the same as a serial run's, to the bit.
    ``checkpoint``: a folder where every finished chunk is saved as it arrives; a later run
    of the same scenario with the same folder loads them instead of simulating them again
    (:mod:`ketasim.experiments.executor`).
    """
    from ketasim.experiments.executor import Checkpoint, run_tasks

    t0 = _time.perf_counter()
    groups = cohorts(sc)
    total = sum(len(c.subjects) for c in groups)
    if callable(progress):
        progress(0, total=total)
    streamed = chunk_size is not None or (sc.species == "human" and total > STREAM_ABOVE)
    chunk = int(chunk_size or CHUNK_SUBJECTS) if streamed else None
    if chunk is not None and chunk < 1:
        raise ArgumentError("chunk_size", f"{chunk} is not a whole number >= 1")
    keep = bool(keep_subjects) or sc.species != "human"  # lab statistics need every animal
    tasks = _tasks(sc, groups, chunk, keep)
    ckpt = None
    if checkpoint is not None:
        work = {"ketasim": __version__, "engine": engine_name(sc), "chunk": chunk,
                "keep": keep, "scenario": sc.as_dict()}
        ckpt = Checkpoint(Path(checkpoint) / Checkpoint.key(work), work)
    resumed = ckpt.done() if ckpt is not None else set()
    if executor is not None and engine_name(sc) == "fast":
        _warm_fast(sc, groups)
    here = progress if executor is None else None  # the engine's own steps, in-process

    def done(i: int, _: Any) -> None:
        if callable(progress) and (here is None or i in resumed):
            progress(len(tasks[i][1].subjects))

    worker = summarise_part if streamed else simulate_part
    outs = run_tasks(worker, [(*t, here) for t in tasks], executor, ckpt, done)
    if streamed:
        result = _streamed_result(sc, groups, outs, total, keep, int(chunk or 0))
    else:
        frames = list(outs)
        for cohort, ds in zip(groups, frames, strict=True):
            _check_not_all_failed(cohort, [(ds["status"].values, ds["message"].values)])
        data = _measured(sc, xr.concat(frames, dim="subject"))
        extra = lab.group_statistics(sc, data) if sc.species != "human" else {}
        result = RunResult(sc, data, summarise(sc, data), _manifest(sc, data, 0.0),
                           extra_tables=dict(extra))
    result.manifest["wall_time_s"] = round(_time.perf_counter() - t0, 3)
    result.manifest["executor"] = type(executor).__name__ if executor else "in-process"
    result.manifest["tasks"] = {"total": len(tasks), "resumed": len(resumed)}
    return result


def _tasks(sc: Scenario, groups: list[Cohort], chunk: int | None, keep: bool
           ) -> list[tuple[Any, Cohort, int | None]]:
    """(scenario, part, subjects of the part to keep in data) per task: each cohort whole,
    or its chunks of ``chunk`` subjects in order (the first :data:`SAMPLE_SUBJECTS` of a
    cohort kept unless ``keep``: None keeps all)."""
    if chunk is None:
        return [(sc, c, None) for c in groups]
    out: list[tuple[Any, Cohort, int | None]] = []
    for c in groups:
        for lo in range(0, len(c.subjects), chunk):
            part = Cohort(c.name, c.subjects[lo:lo + chunk], c.arms, c.offsets)
            out.append((sc, part, None if keep else max(0, SAMPLE_SUBJECTS - lo)))
    return out


def _warm_fast(sc: Scenario, groups: list[Cohort]) -> None:
    """Compile (or load) the fast engine's models here, once, before workers start: they
    then load the cached machine code instead of each compiling it."""
    for c in groups:
        simulate_part(sc, Cohort(c.name, c.subjects[:1], c.arms, c.offsets), None)


def simulate_part(sc: Scenario, part: Cohort, keep: int | None = None,
                  progress: Progress | None = None) -> xr.Dataset:
    """One task of :func:`run` (a top-level function, for worker processes): a cohort or a
    chunk of one, simulated; its dataset before the measurement model (``keep`` unused)."""
    subjects = draw_subjects(sc, part.subjects)
    res = simulate_cohort(sc, part, subjects, progress)
    return _cohort_dataset(sc, part, subjects, res)


def simulate_columns(sc: Scenario, part: Cohort, subjects: pd.DataFrame,
                     columns: dict[str, np.ndarray], constants: dict[str, np.ndarray],
                     progress: Progress | None = None) -> xr.Dataset:
    """A cohort whose subjects each carry their own parameter values, simulated and
    measured: a parameter sample as one batch (each row a subject column).

    ``columns``: model parameter name -> one value per subject; ``constants``: dotted
    measurement constant (``population.ratings.relief_max``) -> one value per subject,
    read by :mod:`ketasim.experiments.measures` instead of the catalog value. ``subjects``
    may repeat global indices (the same virtual subject under several parameter rows)."""
    res = simulate_cohort(sc, part, subjects, progress, columns)
    ds = _cohort_dataset(sc, part, subjects, res)
    for name, values in constants.items():
        ds[measures.CONSTANT_PREFIX + name] = ("subject", np.asarray(values, float))
    return _measured(sc, ds)


@dataclass
class PartSummary:
    """What a worker returns for a chunk of a streamed run: its summary accumulator and the
    subjects of it kept in ``RunResult.data``."""

    cohort: str
    accumulator: Any  # stream.SummaryAccumulator
    kept: xr.Dataset
    status: np.ndarray  # every subject's solver status and message
    message: np.ndarray


def summarise_part(sc: Scenario, part: Cohort, keep: int | None,
                   progress: Progress | None = None) -> PartSummary:
    """One task of a streamed :func:`run`: a chunk simulated, measured and accumulated."""
    from ketasim.experiments.stream import SummaryAccumulator

    ds = _measured(sc, simulate_part(sc, part, keep, progress))
    acc = SummaryAccumulator(sc)
    acc.add(ds)
    return PartSummary(part.name, acc, ds if keep is None else ds.isel(subject=slice(0, keep)),
                       ds["status"].values, ds["message"].values)


def _check_not_all_failed(cohort: Cohort, outcomes: list[tuple[np.ndarray, np.ndarray]]
                          ) -> None:
    """SimulationError when every subject of ``cohort`` failed to integrate: its arm would
    have no result at all, so the run is not a result (one failing subject is a status)."""
    status = np.concatenate([np.asarray(st) for st, _ in outcomes])
    if status.size and not np.any(status == OK):
        first = next((str(m) for _, msg in outcomes for m in msg if m), "no message")
        raise SimulationError(f'cohort "{cohort.name}": all {status.size} subjects failed to '
                              f"integrate (first: {first})")


def _measured(sc: Scenario, data: xr.Dataset) -> xr.Dataset:
    """Rating scales or behaviour, laboratory assays; only the requested readouts kept."""
    data = measures.apply(sc, data)
    if sc.species != "human":  # what the laboratory measures (assay error, lab units)
        data = lab.apply_assays(sc, data)
    return data.drop_vars([v for v in list(data.data_vars) if v not in _wanted(sc)
                           and data[v].dims[-1:] == ("time",)])


def _streamed_result(sc: Scenario, groups: list[Cohort], outs: Iterable[PartSummary], total: int,
                     keep: bool, chunk: int) -> RunResult:
    """Merge the chunks' accumulators in chunk order; data: the subjects they kept."""
    from ketasim.experiments.stream import QUANTILE_SAMPLE, SummaryAccumulator

    acc = SummaryAccumulator(sc)
    frames: list[xr.Dataset] = []
    last: xr.Dataset | None = None
    outcomes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c.name: [] for c in groups}
    for out in outs:
        acc.merge(out.accumulator)
        outcomes[out.cohort].append((out.status, out.message))
        last = out.kept
        if keep or out.kept.sizes["subject"]:
            frames.append(out.kept)
    for cohort in groups:
        _check_not_all_failed(cohort, outcomes[cohort.name])
    if not frames and last is not None:  # SAMPLE_SUBJECTS = 0: the structure, no subjects
        frames.append(last)
    data = xr.concat(frames, dim="subject")
    data.attrs["subjects_total"] = total
    extra: dict[str, pd.DataFrame] = {}
    if sc.species != "human":
        extra.update(lab.group_statistics(sc, data))  # on the subjects kept in data
    manifest = _manifest(sc, data, 0.0)
    manifest["subjects"] = total
    manifest["solver_status"] = dict(acc.status)
    manifest["subjects_in_data"] = int(data.sizes["subject"])
    manifest["summary_method"] = (
        f"streamed in chunks of {chunk} subjects; mean, sd, fraction and tests merged exactly; "
        f"median/p05/p95 exact up to {QUANTILE_SAMPLE} subjects per cell, beyond that from a "
        f"uniform subsample of {QUANTILE_SAMPLE} (bottom-k by a fixed subject key)")
    return RunResult(sc, data, acc.table(), manifest, extra_tables=extra)


def _wanted(sc: Scenario) -> set[str]:
    return set(sc.outputs.readouts)


def _cohort_dataset(sc: Scenario, cohort: Cohort, subjects: pd.DataFrame,
                    res: dict[str, Any]) -> xr.Dataset:
    times = np.asarray(sc.output_times_h)
    coords: dict[str, Any] = {
        "subject": cohort.subjects, "period": np.arange(1, len(cohort.arms) + 1),
        "time": times,
        "arm": (("subject", "period"),
                np.array([[a.name for a in cohort.arms]] * len(cohort.subjects), dtype=object)),
        "sequence": ("subject", np.array([cohort.name] * len(cohort.subjects), dtype=object)),
    }
    for col in subjects.columns:
        coords[col] = ("subject", subjects[col].to_numpy())
    data_vars: dict[str, Any] = {
        "status": ("subject", np.asarray(res["status"], dtype=object)),
        "message": ("subject", np.asarray(res["message"], dtype=object)),
    }
    n_t = len(times) + 1
    for r in sc.outputs.readouts:  # a drug never given to this cohort has concentration 0
        if r.startswith(("plasma.", "brain.")) and r not in res["values"]:
            res["values"][r] = np.zeros((len(cohort.subjects), len(cohort.arms), n_t))
    for r, v in res["values"].items():
        unit = MECHANISM_READOUTS.get(r, ("", ""))[1]
        unit = FIXED[r].unit if r in FIXED else ("ng/mL" if r.startswith("plasma.") else
                                                 "uM" if r.startswith("brain.") else unit)
        data_vars[r] = (("subject", "period", "time"), v[:, :, 1:], {"unit": unit})
        data_vars[f"{r}@baseline"] = (("subject", "period"), v[:, :, 0], {"unit": unit})
    return xr.Dataset(data_vars, coords=coords)


def _manifest(sc: Scenario, data: xr.Dataset, wall: float) -> dict[str, Any]:
    status = pd.Series(data["status"].values).value_counts().to_dict()
    return {
        "scenario": sc.as_dict() if hasattr(sc, "as_dict") else str(sc),
        "ketasim_version": __version__,
        "seed": sc.seed,
        "engine": engine_name(sc),
        "wall_time_s": round(wall, 3),
        "subjects": int(data.sizes["subject"]),
        "solver_status": {str(k): int(v) for k, v in status.items()},
        "mechanism_hypotheses": {k: v.value for k, v in mechanism_table()["hypotheses"].items()},
    }
