"""Outcome layer inside the equations: mood drive, dissociation and vital signs.

``mood`` is a slow component relaxing (tau_mood) towards synaptic function plus a fast
component (tau_acute) driven by excess AMPA drive (the rapid phase before new synapses
exist). Rating scales, placebo and
rodent behaviour are measurement models on ``mood`` applied by the experiment layer
(``ketasim.experiments.measures``). CADSS follows cortical NMDA block (Hill), less a
tolerance that builds with exposure, so a drug without NMDA block causes no dissociation;
blood pressure follows plasma drug.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "outcomes"


def add(m: ModelSpec) -> None:
    for k in ("tau_mood", "acute_gain", "tau_acute", "cadss_max", "cadss_b50", "cadss_n",
              "k_cadss_tol", "tau_cadss_tol", "cadss_perceived", "tau_perceived",
              "hr_per_mmhg"):
        mech(m, G, k)
    # two components with their own time scales: a slow one that follows synaptic function
    # (spines, GluA1) and a fast one that follows excess AMPA drive (the rapid phase before
    # new synapses exist; forced swim at 30 min, ratings at 40 min)
    m.state("mood_syn", "1", "(synaptic_function - mood_syn) / tau_mood", "1",
            "synaptic component of the mood drive", G)
    m.state("mood_acute", "1", "(acute_gain * pos(glu_eff - 1) - mood_acute) / tau_acute", "0",
            "acute AMPA component of the mood drive", G)
    m.assign("mood", "mood_syn + mood_acute", "1",
             "mood drive (synaptic function + acute AMPA component)", G)
    m.assign("block_cortex", "(block_int + block_pyr) / 2", "1", "mean cortical NMDA block", G)
    # tolerance builds with cortical NMDA block exposure and wears off over days, so that
    # dissociation attenuates across repeated infusions (Singh 2016)
    m.state("cadss_tol", "1", "k_cadss_tol * block_cortex - cadss_tol / tau_cadss_tol", "0",
            "tolerance to dissociation (block exposure, decaying)", G)
    m.assign("cadss_score",
             "cadss_max * hill(pos(block_cortex) / (1 + cadss_tol), cadss_b50, cadss_n)", "points",
             "dissociation (CADSS)", G)
    # what a patient feels of the drug (sedation, dissociation): remembered as its peak so
    # far, fading over days; it feeds expectancy (active placebo) in the rating model
    m.assign("perceived_now", "gabaa_pot + cadss_score / cadss_perceived", "1",
             "perceived drug effect now", G)
    m.state("perceived", "1",
            "spos(perceived_now - perceived) / 0.1 - perceived / tau_perceived", "0",
            "perceived drug effect: running peak, fading", G)
