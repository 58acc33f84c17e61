"""Cold and warm wall times of three everyday runs (not a test).

Each run is a fresh ``ketasim run`` process (``python -m ketasim.cli run ... --format
json``), timed from start to exit:

- ``default``: ``ketasim run`` with no file (the built-in study set: the seed's crossover
  and the six-infusion course);
- ``trial400``: the default scenario as a parallel two-arm trial with 200 patients per arm
  (400 patients), 14-day follow-up;
- ``rodent``: ``examples/li2011_cus.toml`` (8 CUS rats per arm, one 24 h time point).

*Cold* runs with an empty cache folder (``KETASIM_CACHE_DIR`` and ``NUMBA_CACHE_DIR`` set
to a new temporary folder: the fast engine's files and numba's machine code start from
nothing);
*warm* runs again on the same folder. Each run gets ``--timeout`` seconds; a run that
takes longer is reported as ``> timeout``. ``--engine`` overrides every scenario's
``[engine] method`` (default: the scenario's own, ``auto``). The machine is shared, so
compare numbers from one invocation (``--peer PATH`` runs the same cases on another
source tree, e.g. a checkout of main, in the same invocation); the CPU seconds (user +
system of the run's process tree) are printed beside each wall time because they depend
less on what else the machine runs. The last line is

    first use: default cold X s warm Y s; trial400 cold ... ; rodent cold ...

    python benchmarks/bench_first_use.py
    python benchmarks/bench_first_use.py --peer /path/to/main/src --cases default rodent
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def trial400(path: Path, per_arm: int = 200) -> Path:
    """Write the default scenario as a parallel two-arm trial of 2 x ``per_arm`` patients."""
    text = f"""name = "Two-arm parallel trial, ketamine 0.5 mg/kg IV vs saline"
species = "human"
seed = 2006

[population]
size = {per_arm}
condition = "trd"

[design]
type = "parallel"
follow_up = "14 d"

[[arms]]
name = "ketamine"
  [[arms.doses]]
  drug = "ketamine"
  amount = "0.5 mg/kg"
  route = "iv_infusion"
  duration = "40 min"
  at = ["0 h"]

[[arms]]
name = "saline"
  [[arms.doses]]
  drug = "saline"
  amount = "0 mg/kg"
  route = "iv_infusion"
  duration = "40 min"
  at = ["0 h"]

[outputs]
times = ["40 min", "4 h", "1 d", "3 d", "7 d", "14 d"]
readouts = ["plasma.ketamine", "madrs", "madrs.change", "response", "remission"]
"""
    path.write_text(text)
    return path


def cases(tmp: Path, per_arm: int = 200) -> dict[str, list[str]]:
    """name -> arguments of ``ketasim run``."""
    return {"default": [],
            "trial400": [str(trial400(tmp / "trial400.toml", per_arm))],
            "rodent": [str(ROOT / "examples" / "li2011_cus.toml")]}


def run_once(src: str, args: list[str], cache: Path, engine: str | None,
             timeout: float) -> float | None:
    """Wall seconds of one ``ketasim run`` process on source tree ``src`` (None: timeout)."""
    # both caches in the folder: the fast engine's and numba's (the kernel's machine code)
    env = {**os.environ, "PYTHONPATH": src, "KETASIM_CACHE_DIR": str(cache),
           "NUMBA_CACHE_DIR": str(cache / "numba")}
    cmd = [sys.executable, "-m", "ketasim.cli", "run", *args, "--format", "json"]
    if engine:
        cmd += ["--engine", engine]
    t0 = time.perf_counter()
    c0 = _child_cpu()
    try:
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    wall = time.perf_counter() - t0
    CPU[len(CPU)] = _child_cpu() - c0
    return wall


CPU: dict[int, float] = {}  # CPU seconds (user + system) of each run, in order


def _child_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(src: str, names: list[str], engine: str | None, timeout: float,
            per_arm: int = 200) -> dict[str, tuple[float | None, float | None]]:
    """name -> (cold s, warm s) on source tree ``src``; a fresh cache folder per case."""
    out: dict[str, tuple[float | None, float | None]] = {}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        all_cases = cases(tmp, per_arm)
        for name in names:
            cache = tmp / f"cache_{name}"
            cold = run_once(src, all_cases[name], cache, engine, timeout)
            cpu_cold = CPU.get(len(CPU) - 1, float("nan")) if cold is not None else None
            warm = run_once(src, all_cases[name], cache, engine, timeout)
            cpu_warm = CPU.get(len(CPU) - 1, float("nan")) if warm is not None else None
            out[name] = (cold, warm)
            print(f"  {name:9s} cold {fmt(cold, timeout):>9s} (cpu {fmt(cpu_cold, timeout)})  "
                  f"warm {fmt(warm, timeout):>9s} (cpu {fmt(cpu_warm, timeout)})", flush=True)
    return out


def fmt(v: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s" if v is None else f"{v:.1f} s"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["default", "trial400", "rodent"],
                    choices=["default", "trial400", "rodent"])
    ap.add_argument("--engine", default=None)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--per-arm", type=int, default=200, help="trial400: patients per arm")
    ap.add_argument("--peer", default=None, help="another source tree (its src/) to time too")
    a = ap.parse_args(argv)
    here = str(ROOT / "src")
    print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; this tree: {here}")
    res = {"this": measure(here, a.cases, a.engine, a.timeout, a.per_arm)}
    if a.peer:
        print(f"peer: {a.peer}")
        res["peer"] = measure(a.peer, a.cases, a.engine, a.timeout, a.per_arm)
    parts = [f"{k} cold {fmt(c, a.timeout)} warm {fmt(w, a.timeout)}"
             for k, (c, w) in res["this"].items()]
    print("first use: " + "; ".join(parts))
    return res


if __name__ == "__main__":
    main()
