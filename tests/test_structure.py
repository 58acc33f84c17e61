"""Spine stabilisation: a later translation burst makes existing young spines persist.

One infusion's new spines form 12-24 h after its burst, when only the burst's tail is
left, so switching stabilisation off (k_stab = 0) changes a single infusion's spines at
day 7 by less than 2.5 points of healthy density. In a course, each infusion finds the
previous one's spines; switching it off shortens what is left two weeks after the last
infusion.
"""

from __future__ import annotations

import pytest

import ketasim as ks


def _spines(doses: dict[str, object], time: str, k_stab: float | None) -> float:
    sc: dict[str, object] = {
        "name": "stabilisation", "species": "human", "seed": 1,
        "population": {"size": 1, "condition": "trd", "variability": False},
        "design": {"type": "single_group", "follow_up": time},
        "arms": [{"name": "ketamine", "doses": [{"drug": "ketamine", "amount": "0.5 mg/kg",
                                                  "route": "iv_infusion",
                                                  "duration": "40 min", **doses}]}],
        "outputs": {"times": [time], "readouts": ["spine_density"]}}
    if k_stab is not None:
        sc["model"] = {"parameters": {"k_stab": k_stab}}
    s = ks.run(ks.load_scenario(sc)).summary
    return float(s[(s.statistic == "mean") & (s.readout == "spine_density")].value.iloc[0])


def test_a_single_infusion_stabilises_almost_nothing() -> None:
    one = {"at": ["0 h"]}
    assert _spines(one, "7 d", None) - _spines(one, "7 d", 0.0) == pytest.approx(0.0, abs=2.5)


def test_a_course_keeps_spines_longer_than_without_stabilisation() -> None:
    course = {"every": "56 h", "count": 6}  # six infusions over about 12 days
    with_stab, without = _spines(course, "25 d", None), _spines(course, "25 d", 0.0)
    assert with_stab > without + 10.0  # percentage points of healthy density
