"""The one hour formatter every table, caption and message uses (units.format_hours)."""

from __future__ import annotations

import math

import pytest

from ketasim.units import format_hours


@pytest.mark.parametrize(("hours", "text"), [
    (40 / 60, "40 min"), (230 / 60, "230 min"), (-0.5, "-30 min"), (0.25, "15 min"),
    (0, "0 h"), (1, "1 h"), (2, "2 h"), (6, "6 h"), (4.5, "4.5 h"), (36, "36 h"),
    (60, "60 h"), (24, "1 d"), (-24, "-1 d"), (168, "7 d"), (100, "4.167 d"),
    (655.2, "27.3 d"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"),
])
def test_format_hours(hours: float, text: str) -> None:
    assert format_hours(hours) == text
