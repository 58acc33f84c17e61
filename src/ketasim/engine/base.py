"""What every engine shares: the trajectories it returns, the per-subject status codes and
the interface :mod:`ketasim.engine` modules implement (``reference``, ``batched``,
``fast``). Imports nothing of ketasim but the compiled model and protocol types, so an
engine never needs another engine to say what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ketasim.model.compile import CompiledModel
    from ketasim.protocol import Protocol as DoseProtocol

OK, FAILED = "ok", "failed"  # a subject's status: integrated, or not (message says why)
DIVERGED = 1e12  # a state beyond this magnitude is a failed integration, not a result


@dataclass
class Trajectories:
    """States at the output times: ``t`` shape (n_times,) in hours, ``y`` shape
    (n_subjects, n_states, n_times); ``status`` (n_subjects,) :data:`OK` or :data:`FAILED`
    and ``message`` (n_subjects,) the solver's reason ('' when OK). A failed subject's
    ``y`` is NaN, and its status says so: never a silent NaN."""

    t: np.ndarray
    y: np.ndarray
    status: np.ndarray  # (n_subjects,) of str
    message: np.ndarray  # (n_subjects,) of str


class Engine(Protocol):
    """The interface of an engine module (``ketasim.engine.get(name)`` returns one)."""

    def simulate(self, model: CompiledModel, P: np.ndarray, y0: np.ndarray,
                 protocol: DoseProtocol, t_out: np.ndarray, t0: float, rtol: float = ...,
                 atol: float = ..., method: str = ...,
                 progress: object | None = ...) -> Trajectories:
        """Integrate every subject of a batch from ``t0``.

        ``P`` shape (n_params, n_subjects); ``y0`` shape (n_states, n_subjects); ``t_out``
        sorted output times (h); ``protocol`` the dose events and input signals (known
        discontinuities: the engine stops at each); ``progress`` an optional callable taking
        the number of subjects just finished."""
        ...
