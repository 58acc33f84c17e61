"""Circuit layer, read through the firing-rate readouts: disinhibition and the inverted U.

Published directions: a subanaesthetic NMDA antagonist dose lowers prefrontal interneuron
firing and raises pyramidal firing (Homayoun & Moghaddam 2007: -40 to -60 % and +50-100 %);
an anaesthetic dose silences the cortex (Moghaddam 1997: glutamate falls at 200 mg/kg).
"""

from __future__ import annotations

import ketasim as ks


def _firing(amount: str) -> dict[str, float]:
    sc = ks.load_scenario({
        "name": "firing", "species": "rat", "seed": 1,
        "population": {"size": 2, "variability": False},
        "design": {"type": "single_group", "follow_up": "1 h"},
        "arms": [{"name": "ketamine", "doses": [{"drug": "ketamine", "amount": amount,
                                                  "route": "ip", "at": ["0 h"]}]}],
        "outputs": {"times": ["20 min"],
                    "readouts": ["firing.interneuron", "firing.pyramidal"]}})
    s = ks.run(sc).summary
    s = s[s.statistic == "mean"]
    return {str(r): float(v) for r, v in zip(s.readout, s.value, strict=True)}


def test_subanaesthetic_dose_disinhibits_pyramidal_neurons() -> None:
    f = _firing("10 mg/kg")
    assert f["firing.interneuron"] < 60.0   # at least -40 %
    assert f["firing.pyramidal"] > 150.0    # at least +50 %


def test_anaesthetic_dose_silences_pyramidal_neurons() -> None:
    # the falling limb of the inverted U: heavy block removes the pyramidal NMDA drive too
    low, high = _firing("10 mg/kg"), _firing("80 mg/kg")
    assert high["firing.pyramidal"] < 50.0 < low["firing.pyramidal"]
