"""Target-controlled infusion: a target plasma concentration turned into infusion rates.

A dose with ``target = "150 ng/mL"`` and ``duration`` becomes, for each subject, a
sequence of zero-order infusions of :data:`STEP_H` hours each (a pump updating its rate
every minute). The rate of step k is the one that brings the subject's arterial plasma
concentration of the drug's readout family (``plasma_arterial.ketamine`` for racemic
ketamine or esketamine: the central compartment, which model-driven pumps control) to the
target at the end of the step, computed from the subject's own linear PK (its parameters,
covariates and variability, and the drug already in its body from the arm's earlier
doses): with x' = A x + b u (u the infusion rate, b the dose routing of
:func:`ketasim.model.pk.dose_targets`) and the arterial readout c'x,

    u_k = max(0, (target - c' x_free(t_k + h)) / (c' G_h b)),   G_h = int_0^h e^{A s} ds,

evaluated exactly with the matrix exponential (the augmented-matrix form, no inversion).
The venous sample (``plasma.ketamine``) follows the arterial one through the arm's transit
and reaches the target within minutes, from below; controlling the venous sample itself
one step ahead would load the arterial pool so hard that the lagging venous sample
overshoots by half, because a rate cannot be negative.
This is the step-wise form of the model-based algorithms of Jacobs 1990 (IEEE Trans
Biomed Eng 37:107) and Schüttler's ketamine TCI (Schüttler 1987, J Pharmacokinet
Biopharm 15:241). A rate is never negative: after a lowered target the pump stops until
the concentration has fallen to it. Dosing stays outside the equations: the result is a
list of :class:`~ketasim.protocol.DoseEvent`.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.linalg import expm

from ketasim.catalog import catalog
from ketasim.model.compile import CompiledModel
from ketasim.model.pk import dose_targets
from ketasim.model.system import build_model
from ketasim.protocol import DoseEvent

STEP_H = 1.0 / 60.0  # pump update interval (h)


def pk_model(species: str, compounds: tuple[str, ...], routes: tuple[tuple[str, str], ...],
             model: CompiledModel, P: np.ndarray) -> tuple[CompiledModel, np.ndarray]:
    """The PK-only model of the cohort's ``compounds`` and ``routes``, with each subject's
    parameters taken by name from ``model``'s ``P`` (overrides and variability carry
    over)."""
    pk = build_model(species, compounds, routes, pk_only=True)
    base = np.array([P[model.param_index(n)] for n in pk.spec.parameters])
    return pk, pk.complete(base)


def linear_system(pk: CompiledModel, P: np.ndarray, readout: str
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A (n_sub, n, n) and c (n_sub, n) of the linear PK x' = A x, readout c'x, per subject
    (columns from unit states: exact for the linear PK layer)."""
    n, n_sub = pk.n_states, P.shape[1]
    inp = np.zeros((len(pk.input_names), n_sub))
    zero = np.zeros((n, n_sub))
    f0 = pk.rhs(0.0, zero, P, inp)
    r0 = pk.readouts(0.0, zero, P, inp)[readout]
    A = np.zeros((n_sub, n, n))
    c = np.zeros((n_sub, n))
    for j in range(n):
        e = zero.copy()
        e[j] = 1.0
        A[:, :, j] = (pk.rhs(0.0, e, P, inp) - f0).T
        c[:, j] = pk.readouts(0.0, e, P, inp)[readout] - r0
    return A, c


def _step(A: np.ndarray, u: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """e^{A h} and G_h u (G_h = int_0^h e^{As} ds) by the augmented matrix exponential."""
    n = A.shape[0]
    M = np.zeros((n + 1, n + 1))
    M[:n, :n], M[:n, n] = A, u
    E = expm(M * h)
    return E[:n, :n], E[:n, n]


def _propagate(A: np.ndarray, x: np.ndarray, t0: float, t1: float,
               events: list[DoseEvent], index: dict[str, int], s: int) -> np.ndarray:
    """State of subject ``s`` at ``t1`` from ``x`` at ``t0`` under ``events``."""
    pts = sorted({t0, t1, *(e.time for e in events), *(e.end for e in events)})
    pts = [p for p in pts if t0 <= p <= t1]
    for a, b in itertools.pairwise(pts):
        for e in events:
            if e.duration == 0 and e.time == a and e.state in index:
                x = x.copy()
                x[index[e.state]] += e.amount[s]
        rate = np.zeros_like(x)
        for e in events:
            if e.duration > 0 and e.time <= a < e.end and e.state in index:
                rate[index[e.state]] += e.amount[s] / e.duration
        Phi, g = _step(A, rate, b - a)
        x = Phi @ x + g
    return x


def target_events(species: str, cohort_pk: tuple[tuple[str, ...], tuple[tuple[str, str], ...]],
                  model: CompiledModel, P: np.ndarray, drug: str, target_ngml: float,
                  start: float, duration: float, prior: list[DoseEvent],
                  label: str = "") -> list[DoseEvent]:
    """Infusion steps (one event per step and compound, per-subject amounts in nmol) that
    hold the arterial plasma concentration of ``drug``'s readout family at ``target_ngml``
    from ``start`` for ``duration`` hours; ``prior`` are the cohort's earlier events and
    ``cohort_pk`` its (compounds, routes)."""
    cat = catalog()
    fam = cat.drugs[drug].readout or drug
    pk, Ppk = pk_model(species, *cohort_pk, model, P)
    A, c = linear_system(pk, Ppk, f"plasma_arterial.{fam}")
    index = {n: i for i, n in enumerate(pk.state_names)}
    n_sub = P.shape[1]
    # b: state rates (nmol/h) per ug/h of drug, by composition and dose routing
    b = np.zeros(pk.n_states)
    for cid, frac in cat.composition(drug).items():
        mw = cat.drugs[cid].molecular_weight
        assert mw is not None
        for tg in dose_targets(cat, species, cid, "iv_infusion"):
            b[index[tg.state]] += frac * tg.fraction * 1000.0 / mw.to("g/mol")
    n_steps = max(1, round(duration / STEP_H))
    h = duration / n_steps
    # step k runs [edges[k], edges[k+1]): each step ends exactly where the next begins
    # (start + (b - a) == b in floating point), so no sliver segments reach the engines
    edges = [start + duration * k / n_steps for k in range(n_steps)] + [start + duration]
    rates = np.zeros((n_steps, n_sub))  # ug/h
    t_first = min([e.time for e in prior] + [start])
    for s in range(n_sub):
        x = _propagate(A[s], np.zeros(pk.n_states), t_first, start, prior, index, s)
        gb = _step(A[s], b, h)[1]
        gain = float(c[s] @ gb)
        for k in range(n_steps):
            t = edges[k]
            free = _propagate(A[s], x, t, t + h, prior, index, s)  # earlier doses go on
            u = max(0.0, (target_ngml - float(c[s] @ free)) / gain)
            rates[k, s] = u
            x = free + gb * u
    out = []
    for cid, frac in cat.composition(drug).items():
        mw = cat.drugs[cid].molecular_weight
        assert mw is not None
        for tg in dose_targets(cat, species, cid, "iv_infusion"):
            per_ug = frac * tg.fraction * 1000.0 / mw.to("g/mol")
            for k in range(n_steps):
                d = edges[k + 1] - edges[k]
                out.append(DoseEvent(edges[k], tg.state, rates[k] * h * per_ug, d, label))
    return out
