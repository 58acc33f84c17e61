"""Dose events and exogenous signals: what happens to subjects, kept out of the equations.

A :class:`Protocol` is a list of dose events (bolus into a state, or a zero-order infusion
into a state over a duration) and piecewise-constant signals (e.g. a stress schedule), all
with per-subject magnitudes. Their start and end times are the known discontinuities at
which every engine stops and restarts integration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class DoseEvent:
    """``amount`` (nmol, shape (n_subjects,)) into ``state`` at ``time`` (h); infusions
    spread it evenly over ``duration`` (h), boluses have duration 0."""

    time: float
    state: str
    amount: np.ndarray
    duration: float = 0.0
    label: str = ""

    @property
    def end(self) -> float:
        return self.time + self.duration


@dataclass(frozen=True)
class Signal:
    """Exogenous input ``name`` set to ``value`` (shape (n_subjects,)) on [start, end)."""

    name: str
    start: float
    end: float
    value: np.ndarray


@dataclass
class Protocol:
    """Everything done to a cohort of subjects sharing one schedule."""

    n_subjects: int
    events: list[DoseEvent] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    baseline_inputs: dict[str, np.ndarray] = field(default_factory=dict)

    def breakpoints(self, t0: float, t1: float) -> list[float]:
        """Sorted times in [t0, t1] where the right-hand side changes discontinuously."""
        pts = {t0, t1}
        for e in self.events:
            pts.update((e.time, e.end))
        for s in self.signals:
            pts.update((s.start, s.end))
        return sorted(p for p in pts if t0 <= p <= t1)

    def inputs_at(self, t: float, names: list[str]) -> np.ndarray:
        """Input values on the segment starting at ``t``: shape (n_inputs, n_subjects)."""
        out = np.zeros((len(names), self.n_subjects))
        for i, n in enumerate(names):
            if n in self.baseline_inputs:
                out[i] = self.baseline_inputs[n]
        for s in self.signals:
            if s.start <= t < s.end and s.name in names:
                out[names.index(s.name)] = s.value
        return out

    def infusion_at(self, t: float, index: dict[str, int], n_states: int) -> np.ndarray:
        """Zero-order input rates (nmol/h) on the segment starting at ``t``."""
        rate = np.zeros((n_states, self.n_subjects))
        for e in self.events:
            if e.duration > 0 and e.time <= t < e.end:
                rate[index[e.state]] += e.amount / e.duration
        return rate

    def boluses_at(self, t: float, index: dict[str, int], n_states: int) -> np.ndarray:
        jump = np.zeros((n_states, self.n_subjects))
        for e in self.events:
            if e.duration == 0 and e.time == t:
                jump[index[e.state]] += e.amount
        return jump

    def first_time(self) -> float:
        times = [e.time for e in self.events] + [s.start for s in self.signals]
        return min(times) if times else 0.0
