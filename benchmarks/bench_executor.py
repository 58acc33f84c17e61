"""Serial against 2 workers on the default scenario (not a test).

Runs the default scenario (the seed crossover; every subject through the 150-day burn-in,
two 14-day periods) with N subjects on the fast engine, streamed in chunks of 10,000:

1. serial: in this process, numba on ``--workers`` threads;
2. ``--cluster local:W``: a Dask LocalCluster on 127.0.0.1, W one-thread workers,

and prints each wall time, their ratio and whether the summaries are identical (they must
be, to the bit). The compiled model is loaded (or compiled) once before the clock starts.

    python benchmarks/bench_executor.py --n 100000
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any


def scenario(n: int) -> Any:
    import ketasim

    d = ketasim.default_scenario().as_dict()
    d["population"]["size"] = int(n)
    d["population"]["confirm_large"] = n > 100_000
    d["engine"]["method"] = "fast"
    return ketasim.load_scenario(d)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=10_000)
    args = ap.parse_args(argv)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.workers))
    import pandas as pd

    import ketasim as ks
    from ketasim.experiments.executor import executor_for

    sc = scenario(args.n)
    print(f"default scenario, N = {args.n}, fast engine, chunks of {args.chunk}; "
          f"{os.cpu_count()} CPUs visible; load average {os.getloadavg()[0]:.1f} at start")
    ks.run(scenario(2), chunk_size=2)  # compile or load the model outside the clock

    t0 = time.perf_counter()
    serial = ks.run(sc, chunk_size=args.chunk)
    t_serial = time.perf_counter() - t0
    print(f"serial ({args.workers} numba threads): {t_serial:.1f} s", flush=True)

    with executor_for(cluster=f"local:{args.workers}", say=print) as pool:
        t0 = time.perf_counter()
        spread = ks.run(sc, chunk_size=args.chunk, executor=pool)
        t_dask = time.perf_counter() - t0
    print(f"Dask local:{args.workers} (1 thread each): {t_dask:.1f} s "
          "(cluster start not counted)")
    same = serial.summary.equals(spread.summary)
    pd.testing.assert_frame_equal(serial.summary, spread.summary, check_exact=True)
    print(f"{args.n} subjects: serial {t_serial:.0f} s, {args.workers} workers {t_dask:.0f} s "
          f"(x{t_serial / t_dask:.2f}); summaries identical: {same}; load average "
          f"{os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
