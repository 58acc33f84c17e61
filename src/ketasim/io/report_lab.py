"""Report section for virtual animal experiments: group bars with SEM and significance marks."""

from __future__ import annotations

from ketasim.result import RunResult


def render(result: RunResult) -> str:
    """HTML for this section, or "" when the run has nothing for it."""
    return ""
