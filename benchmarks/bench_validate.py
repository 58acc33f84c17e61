"""``ketasim validate`` serial against worker processes (not a test).

Runs the packaged scorecard (or the cases named with ``--case``) twice in this process:
once serially and once with ``--jobs`` worker processes (spawned, largest scenario first),
checks that the two tables are identical row for row, and prints both wall times and
their ratio. The last line is

    ratio serial/jobs=J: X (identical tables: True)

    python benchmarks/bench_validate.py                  # the whole scorecard, jobs 2
    python benchmarks/bench_validate.py --jobs 4 --case li2010_time_course --case zanos2016_hnk
"""

from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from ketasim.validation import run_validation


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--case", action="append", default=None)
    a = ap.parse_args(argv)
    print(f"cpus: {os.cpu_count()}; cases: {', '.join(a.case) if a.case else 'all'}")
    t0 = time.perf_counter()
    serial = run_validation(a.case)
    t_serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    parallel = run_validation(a.case, jobs=a.jobs)
    t_jobs = time.perf_counter() - t0
    same = serial.equals(parallel)
    print(f"checks: {len(serial)}, passed {int(serial['passed'].sum())}")
    print(f"serial: {t_serial:.1f} s; jobs={a.jobs}: {t_jobs:.1f} s")
    if not same:
        diff = serial.compare(parallel)
        print(pd.DataFrame(diff).head(10).to_string())
    print(f"ratio serial/jobs={a.jobs}: {t_serial / t_jobs:.2f} (identical tables: {same})")


if __name__ == "__main__":
    main()
