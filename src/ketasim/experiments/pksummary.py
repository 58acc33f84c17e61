"""PK summaries as readouts: ``<readout>.cmax``, ``.tmax`` and ``.auc``.

For a concentration readout ``R`` (``plasma.ketamine``, ``plasma_arterial.ketamine``,
``brain.hnk``) and each subject, period and output time ``t`` (on the period's clock):

- ``R.auc`` is the integral of ``R`` from the start of the period (its baseline time, just
  before its first dose or pretreatment) to ``t``; it is integrated with the trajectory as a
  model state (:func:`ketasim.model.system.auc_state`), so it is exact to the solver's
  tolerance (ng*h/mL or uM*h);
- ``R.cmax`` is the highest value of ``R`` from the start of the period to ``t``, and
  ``R.tmax`` the time it occurred (h on the period's clock: hours after the period's time
  0). Both are read from the trajectory on an internal grid that is finer than the output
  times: every minute for :data:`FINE_H` hours after each dose start and end, every
  :data:`COARSE_MIN` minutes up to :data:`COARSE_H` hours after them, and the output
  times; a maximum inside a smooth stretch is refined by the parabola through the grid
  point and its two neighbours (a maximum at a dose start or end, where the curve has a
  kink or a jump, is the grid value itself).

So "Cmax over 0-24 h" is ``R.cmax`` at the output time "24 h", and "AUC 0-inf" is ``R.auc``
at a late output time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ketasim.protocol import Protocol
from ketasim.readouts import pk_summary

FINE_H = 4.0  # hours after each dose start/end on the 1-min grid
COARSE_H = 24.0  # hours after each dose start/end on the coarse grid
COARSE_MIN = 10.0  # coarse grid step (min)


def requested(readouts: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The PK summaries among ``readouts``: name -> (concentration readout, statistic)."""
    out = {}
    for name in readouts:
        s = pk_summary(name)
        if s is not None:
            out[name] = s
    return out


def auc_readouts(readouts: Iterable[str]) -> tuple[str, ...]:
    """Concentration readouts whose AUC is asked for (sorted: a model cache key)."""
    return tuple(sorted({b for b, stat in requested(readouts).values() if stat == "auc"}))


def needs_fine_grid(readouts: Iterable[str]) -> bool:
    return any(stat != "auc" for _, stat in requested(readouts).values())


def fine_grid(protocol: Protocol, t_out: np.ndarray) -> np.ndarray:
    """Output times plus the internal grid after every dose start and end (h), within
    [min(t_out), max(t_out)]."""
    lo, hi = float(t_out.min()), float(t_out.max())
    marks = sorted({e.time for e in protocol.events} | {e.end for e in protocol.events})
    fine = np.arange(0.0, FINE_H * 60 + 0.5) / 60.0
    coarse = np.arange(FINE_H * 60, COARSE_H * 60 + 0.5, COARSE_MIN) / 60.0
    step = np.concatenate([fine, coarse])
    pts = [t_out] + [m + step for m in marks]
    grid = np.unique(np.concatenate(pts))
    return grid[(grid >= lo) & (grid <= hi)]


def running_max(t: np.ndarray, v: np.ndarray, start: float, t_eval: np.ndarray,
                kinks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Highest value of ``v`` (subject, time) on [start, t] and its time, for each ``t`` in
    ``t_eval``; shapes (subject, len(t_eval)). ``kinks`` are times where the curve is not
    smooth (no parabolic refinement there)."""
    n_sub = v.shape[0]
    cmax = np.full((n_sub, t_eval.size), np.nan)
    tmax = np.full((n_sub, t_eval.size), np.nan)
    for j, te in enumerate(t_eval):
        sel = np.nonzero((t >= start - 1e-9) & (t <= te + 1e-9))[0]
        if sel.size == 0:
            continue
        seg = v[:, sel]
        k = np.nanargmax(np.where(np.isnan(seg), -np.inf, seg), axis=1)
        for s in range(n_sub):
            cmax[s, j], tmax[s, j] = _refine(t[sel], seg[s], int(k[s]), kinks)
    return cmax, tmax


def _refine(t: np.ndarray, v: np.ndarray, k: int, kinks: np.ndarray) -> tuple[float, float]:
    """Grid maximum at index ``k`` refined by the parabola through its neighbours."""
    c, tk = float(v[k]), float(t[k])
    if not np.isfinite(c) or k == 0 or k == v.size - 1 or np.any(np.abs(kinks - tk) < 1e-9):
        return c, tk
    (t0, t1, t2), (v0, v1, v2) = t[k - 1:k + 2], v[k - 1:k + 2]
    d0, d1 = (v1 - v0) / (t1 - t0), (v2 - v1) / (t2 - t1)
    curv = (d1 - d0) / (t2 - t0)
    if not curv < 0:
        return c, tk
    # vertex of the parabola through the three points
    tv = 0.5 * (t0 + t1) - d0 / (2 * curv)
    tv = min(max(tv, t0), t2)
    a = v0 + d0 * (tv - t0) + curv * (tv - t0) * (tv - t1)
    return (float(a), float(tv)) if a >= c else (c, tk)
