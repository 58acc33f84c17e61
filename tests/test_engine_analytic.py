"""The reference engine against closed-form pharmacokinetics (1e-6 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from ketasim.engine.reference import simulate
from ketasim.model.compile import compile_model
from ketasim.model.spec import ModelSpec
from ketasim.protocol import DoseEvent, Protocol

RTOL = 1e-6


def one_compartment() -> ModelSpec:
    m = ModelSpec()
    m.param("CL", 10.0, "L/h", "test")
    m.param("V", 50.0, "L", "test")
    m.derive("k", "CL / V", "1/h")
    m.state("a", "nmol", "- k * a")
    m.readout("conc", "a / V", "nM")
    return m


def two_compartment() -> ModelSpec:
    m = ModelSpec()
    for name, val in (("CL", 12.0), ("V1", 20.0), ("Q", 30.0), ("V2", 80.0)):
        m.param(name, val, "L or L/h", "test")
    m.state("a1", "nmol", "- CL / V1 * a1 - Q * (a1 / V1 - a2 / V2)")
    m.state("a2", "nmol", "Q * (a1 / V1 - a2 / V2)")
    m.readout("conc", "a1 / V1", "nM")
    return m


def _run(spec: ModelSpec, events: list[DoseEvent], t: np.ndarray, n: int = 3) -> np.ndarray:
    cm = compile_model(spec)
    P = cm.complete(np.repeat(cm.base_parameters()[:, None], n, axis=1))
    tr = simulate(cm, P, cm.initial(P), Protocol(n, events=events), t, 0.0, rtol=1e-10,
                  atol=1e-12)
    assert (tr.status == "ok").all()
    return tr.y


def test_one_compartment_bolus() -> None:
    t = np.array([0.0, 0.25, 1.0, 3.0, 8.0, 24.0])
    doses = np.array([100.0, 250.0, 1000.0])
    y = _run(one_compartment(), [DoseEvent(0.0, "a", doses)], t)
    expected = doses[:, None] * np.exp(-0.2 * t)[None, :]
    np.testing.assert_allclose(y[:, 0, :], expected, rtol=RTOL)


def test_one_compartment_infusion_and_repeat() -> None:
    t = np.array([0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 12.5, 20.0])
    k, R, T = 0.2, 50.0, 2.0
    ev = [DoseEvent(0.0, "a", np.full(3, R * T), T), DoseEvent(10.0, "a", np.full(3, R * T), T)]
    y = _run(one_compartment(), ev, t)

    def single(tt: np.ndarray) -> np.ndarray:
        during = R / k * (1 - np.exp(-k * np.clip(tt, 0, T)))
        after = R / k * (1 - np.exp(-k * T)) * np.exp(-k * np.clip(tt - T, 0, None))
        return np.where(tt < 0, 0.0, np.where(tt <= T, during, after))

    expected = single(t) + single(t - 10.0)
    np.testing.assert_allclose(y[0, 0, :], expected, rtol=RTOL)


def test_two_compartment_bolus() -> None:
    CL, V1, Q, V2, D = 12.0, 20.0, 30.0, 80.0, 500.0
    k10, k12, k21 = CL / V1, Q / V1, Q / V2
    s, p = k10 + k12 + k21, k10 * k21
    alpha, beta = (s + np.sqrt(s * s - 4 * p)) / 2, (s - np.sqrt(s * s - 4 * p)) / 2
    A = D / V1 * (alpha - k21) / (alpha - beta)
    B = D / V1 * (k21 - beta) / (alpha - beta)
    t = np.array([0.1, 0.5, 1.0, 2.0, 6.0, 12.0, 48.0])
    y = _run(two_compartment(), [DoseEvent(0.0, "a1", np.full(3, D))], t)
    expected = A * np.exp(-alpha * t) + B * np.exp(-beta * t)
    np.testing.assert_allclose(y[0, 0, :] / V1, expected, rtol=RTOL)


def test_failed_subject_is_flagged_not_silent() -> None:
    m = ModelSpec()
    m.param("k", 1.0, "1/h", "test")
    m.state("a", "1", "k * a ** 3")  # blows up in finite time for a > 0
    cm = compile_model(m)
    P = cm.complete(np.ones((1, 2)))
    y0 = np.array([[0.0, 1.0]])
    tr = simulate(cm, P, y0, Protocol(2), np.array([0.0, 1.0, 5.0]), 0.0)
    assert list(tr.status) == ["ok", "failed"]
    assert tr.message[1]
    assert np.all(np.isfinite(tr.y[0]))


@pytest.mark.parametrize("bad", ["foo(a)", "a +", "import os", "b * 2"])
def test_model_language_rejects_bad_expressions(bad: str) -> None:
    m = ModelSpec()
    m.state("a", "1", bad)
    with pytest.raises(ValueError):
        compile_model(m)
