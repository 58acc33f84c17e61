"""One million virtual patients of the default scenario, summaries only (not a test).

Runs ``ketasim.experiments.run.run`` on the default scenario (the seed crossover: TRD
patients, 0.5 mg/kg ketamine vs saline IV over 40 min, 7-day follow-up per period, each
subject first through the 150-day drug-free burn-in) with N subjects, the fast engine on
2 threads and streaming summaries (chunks of 10,000 subjects merged; no subjects.parquet).
Prints wall time, subjects per second, peak memory (``ru_maxrss``) and where the time went
(population drawing, integration, rating scales and summaries). The last line is

    1M subjects: X s, Y GB peak

when N is 1,000,000; for a smaller N it names N instead and adds the linear extrapolation
to 1M (marked as such).

    python benchmarks/bench_million.py                 # N = 1,000,000
    python benchmarks/bench_million.py --n 100000      # quicker
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from typing import Any

THREADS = 2


def scenario(n: int) -> Any:
    import ketasim

    d = ketasim.default_scenario().as_dict()
    d["population"]["size"] = int(n)
    d["population"]["confirm_large"] = True
    d["engine"]["method"] = "fast"
    return ketasim.load_scenario(d)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=None, help="subjects per chunk")
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))
    import numba

    numba.set_num_threads(THREADS)
    from ketasim.experiments import run as runner
    from ketasim.population import draw_subjects, parameter_matrix

    sc = scenario(args.n)
    print(f"default scenario, N = {args.n} subjects, fast engine on {THREADS} threads, "
          f"streamed summaries; {os.cpu_count()} CPUs visible")
    runner.run(scenario(2))  # compile or load the model outside the clock

    spent: dict[str, float] = {"population": 0.0, "integration": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t0
        return wrapper

    runner.draw_subjects = timed("population", draw_subjects)
    runner.parameter_matrix = timed("population", parameter_matrix)
    engine_sim: dict[str, Any] = {}
    from ketasim.engine import fast

    engine_sim["fast"] = fast.simulate
    fast.simulate = timed("integration", fast.simulate)
    t0 = time.perf_counter()
    res = runner.run(sc, chunk_size=args.chunk or runner.CHUNK_SUBJECTS)  # always streamed
    wall = time.perf_counter() - t0
    fast.simulate = engine_sim["fast"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    other = wall - spent["population"] - spent["integration"]
    print(f"status: {res.manifest['solver_status']}; summary rows: {len(res.summary)}; "
          f"subjects kept in memory: {res.manifest.get('subjects_in_data')}")
    print(f"  population drawing (draw_subjects + parameter_matrix): {spent['population']:8.1f} s")
    print(f"  integration (fast engine, burn-in + follow-up):        {spent['integration']:8.1f} s")
    print(f"  readouts, rating scales, summaries:                    {other:8.1f} s")
    print(f"  throughput: {args.n / wall:.0f} subjects/s")
    if args.n == 1_000_000:
        print(f"1M subjects: {wall:.1f} s, {peak:.2f} GB peak")
    else:
        print(f"N={args.n} subjects: {wall:.1f} s, {peak:.2f} GB peak "
              f"(1M not run; linear extrapolation {wall * 1e6 / args.n:.0f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
