"""Reference engine: SciPy integration, one subject at a time, stopping at every dose time.

This is the accuracy oracle for faster engines. Each subject is integrated segment by
segment between the protocol's breakpoints (dose starts, infusion ends, signal changes);
boluses are applied as jumps at segment starts and infusions as constant inputs within a
segment. A subject whose integration fails gets status ``failed`` and NaN trajectories,
never silent NaNs: the status array travels with the result.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from scipy.integrate import solve_ivp

from ketasim.engine.base import DIVERGED, FAILED, OK, Trajectories
from ketasim.model.compile import CompiledModel
from ketasim.protocol import Protocol


def _diverged(t: float, y: np.ndarray, *args: object) -> float:
    return DIVERGED - float(np.max(np.abs(y)))


_diverged.terminal = True  # type: ignore[attr-defined]


def _segments(protocol: Protocol, t0: float, t1: float) -> list[tuple[float, float]]:
    pts = protocol.breakpoints(t0, t1)
    return [(a, b) for a, b in pairwise(pts) if b > a]


def simulate_subject(model: CompiledModel, P: np.ndarray, y0: np.ndarray,
                     protocol: Protocol, subject: int, t_out: np.ndarray, t0: float,
                     rtol: float = 1e-8, atol: float = 1e-10,
                     method: str = "LSODA") -> tuple[np.ndarray, str]:
    """Integrate one subject from ``t0``; return (states at t_out, error message or '').

    ``P`` shape (n_params,), ``y0`` shape (n_states,). Output times before ``t0`` are NaN.
    """
    index = {n: i for i, n in enumerate(model.state_names)}
    n = model.n_states
    t_end = float(max(t_out.max(), t0))
    out = np.full((n, t_out.size), np.nan)
    y = y0.astype(float).copy()
    atol_v = atol * np.maximum(1.0, np.abs(y0))
    for a, b in _segments(protocol, t0, t_end) or [(t0, t_end)]:
        y = y + protocol.boluses_at(a, index, n)[:, subject]
        inp = protocol.inputs_at(a, model.input_names)[:, subject]
        rate = protocol.infusion_at(a, index, n)[:, subject]
        last = b >= t_end
        mask = (t_out >= a) & ((t_out < b) | (last & (t_out <= b)))
        if a == b:
            continue
        t_eval = np.union1d(t_out[mask], [b])  # always end on b: the next segment's start
        sol = solve_ivp(model.rhs, (a, b), y, method=method, t_eval=t_eval,
                        args=(P, inp, rate), rtol=rtol, atol=atol_v, events=_diverged)
        if sol.status == 1:
            return out, f"t={sol.t_events[0][0]:.4g} h: a state diverged beyond {DIVERGED:g}"
        if not sol.success or not np.all(np.isfinite(sol.y)):
            return out, f"t={a:.4g}-{b:.4g} h: {sol.message}"
        keep = np.isin(sol.t, t_out[mask])
        out[:, mask] = sol.y[:, keep]
        y = sol.y[:, -1]
    return out, ""


def simulate(model: CompiledModel, P: np.ndarray, y0: np.ndarray, protocol: Protocol,
             t_out: np.ndarray, t0: float, rtol: float = 1e-8, atol: float = 1e-10,
             method: str = "LSODA", progress: object | None = None) -> Trajectories:
    """Integrate every subject of a batch.

    ``P`` shape (n_params, n_subjects); ``y0`` shape (n_states, n_subjects); ``t_out``
    output times (h), sorted. ``progress`` is an optional callable taking the number of
    subjects just finished.
    """
    n_sub = P.shape[1]
    y = np.full((n_sub, model.n_states, t_out.size), np.nan)
    status = np.full(n_sub, OK, dtype=object)
    message = np.full(n_sub, "", dtype=object)
    for i in range(n_sub):
        try:
            y[i], msg = simulate_subject(model, P[:, i], y0[:, i], protocol, i, t_out, t0,
                                         rtol, atol, method)
        except (ArithmeticError, ValueError, RuntimeError) as exc:  # the subject fails
            msg = f"{type(exc).__name__}: {exc}"
        if msg:
            status[i], message[i] = FAILED, msg
        if callable(progress):
            progress(1)
    return Trajectories(t_out, y, status, message)
