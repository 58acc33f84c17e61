"""Report section for virtual trials: Kaplan-Meier curves, response/remission bars, Table 1."""

from __future__ import annotations

from ketasim.result import RunResult


def render(result: RunResult) -> str:
    """HTML for this section, or "" when the run has nothing for it."""
    return ""
