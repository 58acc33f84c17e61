"""What ``[engine] rtol`` costs in accuracy and buys in speed (not a test).

For a few subjects of the default scenario's ketamine arm (parallel, 7-day follow-up,
TRD: burn-in included) every readout at every output time of the fast engine at each
``--rtol`` (``atol`` = rtol / 1000, the scenario default's ratio) is compared with the
reference engine (SciPy LSODA at rtol 1e-10, atol 1e-12). Prints, per rtol, the largest
relative difference over readouts, subjects and times (absolute floor 1e-9 relative to
a readout's scale, as in tests/test_engine_fast.py) and which readout it is on, the
largest difference on the rating scale (MADRS points), and the fast engine's CPU time
per subject. The last line is

    tolerance: rtol A -> max rel error X; rtol B -> ...

    python benchmarks/bench_tolerance.py --n 3 --rtol 1e-4 1e-5 1e-6 1e-8
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def scenario(n: int, method: str, rtol: float, atol: float) -> Any:
    import ketasim
    from ketasim.units import hours

    d = ketasim.default_scenario().as_dict()
    d["design"] = {"type": "parallel", "follow_up": "7 d"}
    d["arms"] = [a for a in d["arms"] if a["name"] == "ketamine"]
    d["outputs"]["times"] = [t for t in d["outputs"]["times"] if hours(t) <= hours("7 d")]
    d["population"]["size"] = int(n)
    d["engine"] = {"method": method, "rtol": rtol, "atol": atol}
    return ketasim.load_scenario(d)


def readouts(n: int, method: str, rtol: float, atol: float) -> tuple[dict[str, Any], float]:
    """Readout arrays of the cohort as experiments.run computes them; CPU seconds."""
    from ketasim.experiments import run as runner
    from ketasim.population import draw_subjects

    sc = scenario(n, method, rtol, atol)
    group = runner.cohorts(sc)[0]
    subjects = draw_subjects(sc, group.subjects)
    c0 = time.process_time()
    res = runner.simulate_cohort(sc, group, subjects)
    return res, time.process_time() - c0


def errors(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, float]:
    """Readout -> largest relative difference (1e-5 floor on the reference's magnitude)."""
    out = {}
    for r, w in want.items():
        g, w = np.asarray(got[r], float), np.asarray(w, float)
        err = np.abs(g - w) / np.maximum(np.abs(w), 1e-9 / 1e-4)
        out[r] = float(np.nanmax(err)) if np.isfinite(err).any() else 0.0
    return out


def main(argv: list[str] | None = None) -> dict[float, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--rtol", type=float, nargs="+", default=[1e-4, 1e-5, 1e-6, 1e-8])
    a = ap.parse_args(argv)
    ref, t_ref = readouts(a.n, "reference", 1e-10, 1e-12)
    print(f"reference (LSODA rtol 1e-10): {t_ref:.1f} s CPU for {a.n} subjects")
    readouts(1, "fast", 1e-6, 1e-9)  # compile or load the kernel outside the clock
    errs: dict[float, float] = {}
    for rtol in a.rtol:
        got, cpu = readouts(a.n, "fast", rtol, rtol * 1e-3)
        e = errors(got["values"], ref["values"])
        top = sorted(e, key=e.__getitem__, reverse=True)[:3]
        errs[rtol] = e[top[0]]
        print(f"rtol {rtol:g} atol {rtol * 1e-3:g}: {1000 * cpu / a.n:.1f} ms CPU per subject; "
              "largest relative errors: " + ", ".join(f"{r} {e[r]:.1e}" for r in top),
              flush=True)
    print("tolerance: " + "; ".join(f"rtol {r:g} -> max rel error {e:.1e}"
                                    for r, e in errs.items()))
    return errs


if __name__ == "__main__":
    main()
