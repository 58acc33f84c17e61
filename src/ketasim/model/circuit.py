"""Circuit layer: interneurons, pyramidal disinhibition, glutamate, cycling and GABA pools.

Interneuron activity ``interneuron`` relaxes (tau_i) to a threshold-linear function of its
remaining NMDA drive; pyramidal activity ``pyramidal`` (tau_e) to a threshold-linear,
saturating function of its own NMDA drive minus interneuron inhibition (scaled up by GABA-A
potentiation). Moderate interneuron block therefore excites pyramidal neurons; heavy block
also removes their own NMDA drive and silences them (the inverted U). Extracellular
glutamate follows pyramidal activity; MRS pools (Glx, GABA) and the tissue ratios follow
transmitter cycling, terminal content and a slow homeostatic GAD induction.
All states are 1 in a healthy drug-free subject.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "circuit"


def add(m: ModelSpec) -> None:
    for k in ("theta_i", "w_inh", "theta_e", "w_e", "e_max", "tau_i", "tau_e", "tau_glu",
              "gabaa_gain", "tau_glx", "glx_gain", "gaba_supply_mpfc", "gaba_supply_hipp",
              "tau_gaba_hipp", "gaba_gain", "glu_terminal_gain", "tau_gad", "gad_gain"):
        mech(m, G, k)
    mech(m, "hypotheses", "disinhibition")
    m.assign("int_drive",
             "pos(1 - disinhibition * share_int * block_int - theta_i) / (1 - theta_i)", "1", "interneuron steady-state activity from its NMDA drive", G)
    m.state("interneuron", "1", "(int_drive - interneuron) / tau_i", "1",
            "GABAergic interneuron activity", G)
    m.assign("pyr_raw",
             "pos(1 - w_e * share_pyr * block_pyr"
             " - w_inh * interneuron * (1 + gabaa_gain * gabaa_pot) - theta_e)"
             " / (1 - w_inh - theta_e)", "1", "pyramidal drive before saturation", G)
    m.assign("pyr_drive", "pyr_raw * e_max / (e_max - 1 + pyr_raw)", "1",
             "saturating pyramidal steady-state activity", G)
    m.state("pyramidal", "1", "(pyr_drive - pyramidal) / tau_e", "1",
            "layer V pyramidal neuron activity", G)
    m.state("glu", "1", "(pyramidal - glu) / tau_glu", "1",
            "extracellular prefrontal glutamate", G)
    m.state("glx", "1", "(1 + glx_gain * (glu - 1) - glx) / tau_glx", "1",
            "MRS-visible mPFC Glx (cycling-driven pool)", G)
    m.state("gad", "1", "(1 + gad_gain * (pyramidal * synaptic_function - 1) - gad) / tau_gad",
            "1", "homeostatic GAD (GABA synthesis capacity) induction", G)
    for region, supply, tau in (("mpfc", "gaba_supply_mpfc", "tau_glx"),
                                ("hipp", "gaba_supply_hipp", "tau_gaba_hipp")):
        drive = (f"gad * (1 + gaba_gain * ({supply} * (glu - 1)"
                 f" + (1 - {supply}) * (interneuron - 1)))")
        m.state(f"gaba_{region}", "1", f"({drive} - gaba_{region}) / {tau}", "1",
                f"MRS GABA pool, {region}", G)
    m.assign("glu_tissue", "glx * (1 + glu_terminal_gain * (synapsin1 - 1))", "1",
             "tissue glutamate (cycling pool x terminal content)", G)
    m.assign("gln_tissue", "1 + 0 * glx", "1", "tissue glutamine (astrocytic pool)", G)
