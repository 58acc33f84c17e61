"""ketasim's fast engine against libRoadRunner on the exported SBML (not a test).

For N subjects of the default scenario with between-subject variability (its ketamine arm,
0.5 mg/kg IV over 40 min, 7-day follow-up; TRD patients, so each subject first runs the
150-day drug-free burn-in to its stressed steady state), both engines do the same work:
burn-in, dose, follow-up, states/readouts at the scenario's output times, at the
scenario's tolerances (rtol 1e-6, atol 1e-9).

- ketasim: ``ketasim.engine.fast`` (numba, Rosenbrock RODAS4 with a sparse analytic
  Jacobian), 2 threads (``numba.prange``);
- libRoadRunner: the model exported by ``ketasim.io.sbml`` (one subject's SBML; each
  subject's parameters, initial state and dose amounts set by index before its run),
  CVODE, one RoadRunner instance per process, 2 processes (multiprocessing, spawn).

Subjects and parameters are drawn once (ketasim's population code, 2 processes) and
shared; that time is reported separately. Prints subjects/s for each engine, the ratio,
peak memory (``resource.getrusage``; RoadRunner's worker processes counted as children),
the time to first result including compilation (a fresh process, warm numba cache, and
RoadRunner's load + LLVM compilation of the SBML), and the largest difference between the
two engines on the readouts. The last line is

    ratio ketasim/libroadrunner at N=100000: X

    python benchmarks/bench_engine.py --n 10000 100000
    python benchmarks/bench_engine.py --n 2000 --rr-subjects 500   # quicker
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

THREADS = 2
RTOL, ATOL = 1e-6, 1e-9


def bench_scenario(n: int, follow_up: str = "7 d") -> Any:
    """The default scenario reduced to its ketamine arm (parallel design) for n subjects."""
    import ketasim

    d = ketasim.default_scenario().as_dict()
    d["design"] = {"type": "parallel", "follow_up": follow_up}
    d["arms"] = [a for a in d["arms"] if a["name"] == "ketamine"]
    d["population"]["size"] = int(n)
    d["population"]["confirm_large"] = True
    d["engine"] = {"method": "fast", "rtol": RTOL, "atol": ATOL}
    return ketasim.load_scenario(d)


def _draw(args: tuple[Any, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Worker: parameters, weight and severity of the subjects with global ``indices``."""
    sc, indices = args
    from ketasim.experiments import run as runner
    from ketasim.population import draw_subjects, parameter_matrix

    cohort = runner.cohorts(sc)[0]
    model = runner.cohort_model(sc, cohort)
    subjects = draw_subjects(sc, indices)
    P = parameter_matrix(model, subjects, sc, runner.model_overrides(sc, model))
    return P, subjects["weight"].to_numpy(float), subjects["severity"].to_numpy(float)


@dataclass
class Cohort:
    """Everything both engines need for one batch of subjects."""

    sc: Any
    model: Any
    P: np.ndarray  # (n_params, n)
    protocol: Any
    t_out: np.ndarray
    t_start: float  # end of burn-in
    t_burn: float  # start of burn-in
    y_init: np.ndarray  # (n_states, n): state at t_burn
    rest: Any  # drug-free protocol of the burn-in


def make_cohort(sc: Any, indices: np.ndarray, pool: Any | None = None,
                chunk: int = 2000) -> Cohort:
    """Draw subjects ``indices`` of the scenario's first cohort (in parallel with ``pool``)."""
    from ketasim.experiments import run as runner
    from ketasim.protocol import Protocol

    cohort = runner.cohorts(sc)[0]
    model = runner.cohort_model(sc, cohort)
    parts = [(sc, indices[i:i + chunk]) for i in range(0, len(indices), chunk)]
    res = list(pool.map(_draw, parts)) if pool is not None else [_draw(p) for p in parts]
    P = np.concatenate([r[0] for r in res], axis=1)
    weight = np.concatenate([r[1] for r in res])
    severity = np.concatenate([r[2] for r in res])
    sub = runner.Cohort(cohort.name, indices, cohort.arms, cohort.offsets)
    prot = runner.build_protocol(sc, sub, weight, severity)
    t_out, baselines = runner.period_times(sc, sub)
    t_start = min(prot.first_time(), *baselines) - 1.0
    inp = prot.inputs_at(-np.inf, model.input_names)
    y_init = model.initial(P, inp)
    rest = Protocol(prot.n_subjects, baseline_inputs=dict(prot.baseline_inputs))
    return Cohort(sc, model, P, prot, t_out, t_start, t_start - runner.BURN_IN_H, y_init, rest)


def run_ketasim(c: Cohort, method: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """Burn-in then the dosing period, as experiments.run does; returns (y, status)."""
    from ketasim.engine import get

    engine = get(method)
    tr = engine.simulate(c.model, c.P, c.y_init, c.rest, np.array([c.t_start]), c.t_burn,
                         rtol=RTOL, atol=ATOL)
    y0 = tr.y[:, :, -1].T.copy()
    bad = tr.status != "ok"
    y0[:, bad] = c.y_init[:, bad]
    tr2 = engine.simulate(c.model, c.P, y0, c.protocol, c.t_out, c.t_start, rtol=RTOL,
                          atol=ATOL)
    status = np.where(bad, "failed", tr2.status)
    return tr2.y, status


def readouts(c: Cohort, y: np.ndarray) -> dict[str, np.ndarray]:
    """Model readouts (subject, time) from states y (subject, state, time)."""
    out: dict[str, list[np.ndarray]] = {}
    for k, t in enumerate(c.t_out):
        ro = c.model.readouts(t, y[:, :, k].T, c.P, c.protocol.inputs_at(t, c.model.input_names))
        for r, v in ro.items():
            out.setdefault(r, []).append(np.broadcast_to(v, (y.shape[0],)))
    return {r: np.stack(v, axis=1) for r, v in out.items()}


# ------------------------------------------------------------------------ libRoadRunner


def export_for_roadrunner(c: Cohort, path: Path) -> dict[str, Any]:
    """SBML of subject 0 starting at the burn-in; the index map to set other subjects."""
    from ketasim.io.sbml import export_sbml

    names = list(c.model.spec.parameters)
    info = export_sbml(c.model.spec, c.protocol, path, subject=0,
                       parameters={k: float(c.P[i, 0]) for i, k in enumerate(names)},
                       initial_state=c.y_init[:, 0], start_time=c.t_burn,
                       model_id="ketasim_bench", description="bench_engine")
    return {"path": str(path), "param_ids": list(c.model.param_names),
            "state_ids": info.state_ids, "dose_ids": info.dose_parameters,
            "input_ids": list(c.model.input_names),
            "readout_ids": list(info.readout_ids.values()),
            "times": np.concatenate([[0.0], c.t_out - c.t_burn])}


def rr_values(c: Cohort, lo: int, hi: int) -> np.ndarray:
    """Per-subject values to set in RoadRunner: params, states, dose amounts, inputs."""
    amounts = np.array([np.broadcast_to(e.amount, (c.P.shape[1],))[lo:hi]
                        for e in c.protocol.events]).reshape(-1, hi - lo)
    inputs = c.protocol.inputs_at(-np.inf, c.model.input_names)[:, lo:hi]
    return np.ascontiguousarray(np.concatenate([c.P[:, lo:hi], c.y_init[:, lo:hi], amounts,
                                                inputs]).T)


_RR: dict[str, Any] = {}


def _rr_init(meta: dict[str, Any]) -> None:
    import roadrunner

    roadrunner.Logger.setLevel(roadrunner.Logger.LOG_FATAL)  # failures are counted below
    t0 = time.perf_counter()
    rr = roadrunner.RoadRunner(meta["path"])
    rr.integrator.relative_tolerance = RTOL
    rr.integrator.absolute_tolerance = ATOL
    rr.integrator.max_steps = 200_000
    rr.timeCourseSelections = ["time", *meta["readout_ids"]]
    ids = list(rr.model.getGlobalParameterIds())
    order = meta["param_ids"] + meta["state_ids"] + meta["dose_ids"] + meta["input_ids"]
    _RR.update(rr=rr, index=np.array([ids.index(k) for k in order], dtype=np.int32),
               times=np.asarray(meta["times"], dtype=float), load=time.perf_counter() - t0)


def _rr_run(values: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Worker: simulate each row of ``values``; readouts (n, n_out, n_readouts)."""
    rr, index, times = _RR["rr"], _RR["index"], _RR["times"]
    out = np.full((values.shape[0], times.size - 1, len(rr.timeCourseSelections) - 1), np.nan)
    failed = 0
    t0 = time.process_time()
    for i in range(values.shape[0]):
        rr.reset()
        rr.model.setGlobalParameterValues(index, values[i])
        try:
            res = np.asarray(rr.simulate(times=times))
            out[i] = res[1:, 1:]
        except RuntimeError:
            failed += 1
    return out, failed, time.process_time() - t0


def _rr_first(meta: dict[str, Any], values: np.ndarray) -> float:
    """Worker: load + compile the SBML and simulate one subject; seconds."""
    t0 = time.perf_counter()
    _rr_init(meta)
    _rr_run(values[:1])
    return time.perf_counter() - t0


def run_roadrunner(c: Cohort, meta: dict[str, Any], lo: int, hi: int,
                   chunk: int = 250) -> tuple[np.ndarray, int, float]:
    """Subjects lo..hi on THREADS processes; (readouts, failures, wall seconds)."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(THREADS, initializer=_rr_init, initargs=(meta,)) as pool:
        pool.map(_rr_run, [rr_values(c, lo, lo + 1)] * THREADS)  # load before the clock
        t0 = time.perf_counter()
        parts = pool.map(_rr_run, [rr_values(c, i, min(hi, i + chunk))
                                   for i in range(lo, hi, chunk)])
        wall = time.perf_counter() - t0
    return (np.concatenate([p[0] for p in parts]), sum(p[1] for p in parts), wall)


# ------------------------------------------------------------------------------- timing


def first_result_ketasim() -> float:
    """Seconds for a fresh process to import ketasim and return one subject (warm cache)."""
    here = str(Path(__file__).resolve().parent)
    code = (
        "import time; t0 = time.perf_counter()\n"
        f"import sys; sys.path.insert(0, {here!r})\n"
        "from bench_engine import bench_scenario, make_cohort, run_ketasim\n"
        "import numpy as np\n"
        "c = make_cohort(bench_scenario(1), np.arange(1))\n"
        "y, s = run_ketasim(c)\n"
        "print(time.perf_counter() - t0)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "NUMBA_NUM_THREADS": str(THREADS)})
    return float(res.stdout.strip().splitlines()[-1])


def peak_gb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def compare(c: Cohort, ks: dict[str, np.ndarray], rr: np.ndarray, ids: list[str],
            names: list[str]) -> tuple[float, str]:
    """Largest relative difference (1e-9 absolute floor) over readouts, subjects, times."""
    worst, where = 0.0, ""
    for j, name in enumerate(names):
        a, b = rr[:, :, j], ks[name][: rr.shape[0]]
        err = np.abs(a - b) / np.maximum(np.abs(b), 1e-9 / 1e-4)
        m = float(np.nanmax(err)) if np.isfinite(err).any() else np.nan
        if m > worst:
            worst, where = m, name
    return worst, where


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rr-subjects", type=int, default=None,
                    help="simulate only this many subjects with RoadRunner (its throughput "
                         "is measured on them); default: all N")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))
    import numba

    numba.set_num_threads(THREADS)
    cpu = os.cpu_count()
    print(f"machine: {cpu} CPUs visible, {THREADS} threads/processes per engine; "
          f"python {sys.version.split()[0]}, numba {numba.__version__}")
    import roadrunner

    print(f"libroadrunner {roadrunner.__version__} (CVODE), rtol {RTOL:g}, atol {ATOL:g}")
    t_first = first_result_ketasim()
    print(f"time to first result, ketasim (fresh process, warm cache): {t_first:.2f} s")
    ratios: dict[int, float] = {}
    ctx = mp.get_context("spawn")
    with ctx.Pool(THREADS) as pool:
        for n in args.n:
            sc = bench_scenario(n)
            t0 = time.perf_counter()
            c = make_cohort(sc, np.arange(n), pool)
            t_pop = time.perf_counter() - t0
            print(f"\nN = {n}: population drawn in {t_pop:.1f} s ({THREADS} processes; "
                  "not counted below)")
            run_ketasim(make_cohort(sc, np.arange(2)))  # compile/load outside the clock
            t0 = time.perf_counter()
            y, status = run_ketasim(c)
            t_ks = time.perf_counter() - t0
            ks_ro = readouts(c, y)
            n_rr = min(n, args.rr_subjects or n)
            with tempfile.TemporaryDirectory() as tmp:
                meta = export_for_roadrunner(c, Path(tmp) / "bench.xml")
                with ctx.Pool(1) as one:
                    t_rr_first = one.apply(_rr_first, (meta, rr_values(c, 0, 1)))
                rr_out, rr_failed, t_rr = run_roadrunner(c, meta, 0, n_rr)
            ks_rate, rr_rate = n / t_ks, n_rr / t_rr
            ratios[n] = ks_rate / rr_rate
            worst, where = compare(c, ks_ro, rr_out, meta["readout_ids"],
                                   list(c.model.readout_names))
            print(f"  ketasim fast    : {t_ks:8.2f} s  {ks_rate:10.1f} subjects/s  "
                  f"failed {int(np.sum(status != 'ok'))}")
            print(f"  libroadrunner   : {t_rr:8.2f} s  {rr_rate:10.1f} subjects/s  "
                  f"failed {rr_failed}  ({n_rr} subjects)")
            print(f"  ratio ketasim/libroadrunner: {ratios[n]:.1f}")
            print(f"  time to first result, libroadrunner (load + compile SBML + 1 subject): "
                  f"{t_rr_first:.2f} s")
            print(f"  largest readout difference between the engines: {worst:.2e} relative "
                  f"({where}; 1e-9 absolute floor)")
            print(f"  peak memory: this process {peak_gb(resource.RUSAGE_SELF):.2f} GB, "
                  f"largest child {peak_gb(resource.RUSAGE_CHILDREN):.2f} GB")
            del c, y, ks_ro, rr_out
    last = max(ratios)
    print(f"ratio ketasim/libroadrunner at N={last}: {ratios[last]:.1f}")


if __name__ == "__main__":
    main()
