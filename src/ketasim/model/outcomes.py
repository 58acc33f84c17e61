"""Outcome layer inside the equations: mood drive, dissociation and vital signs.

``mood`` relaxes (tau_mood) towards synaptic function plus an acute component driven by
excess AMPA drive (the rapid phase before new synapses exist). Rating scales, placebo and
rodent behaviour are measurement models on ``mood`` applied by the experiment layer
(``ketasim.experiments.measures``). CADSS follows cortical NMDA block (Hill), so a drug
without NMDA block causes no dissociation; blood pressure follows plasma drug.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "outcomes"


def add(m: ModelSpec) -> None:
    for k in ("tau_mood", "acute_gain", "cadss_max", "cadss_b50", "cadss_n", "hr_per_mmhg"):
        mech(m, G, k)
    m.state("mood", "1", "(synaptic_function + acute_gain * pos(glu_eff - 1) - mood) / tau_mood",
            "1", "mood drive (synaptic function + acute AMPA component)", G)
    m.assign("block_cortex", "(block_int + block_pyr) / 2", "1", "mean cortical NMDA block", G)
    m.assign("cadss_score", "cadss_max * hill(block_cortex, cadss_b50, cadss_n)", "points",
             "dissociation (CADSS)", G)
