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
    for k in ("theta_i", "w_inh", "nmda_gate_k", "nmda_gate_n", "e_max", "tau_i", "tau_e",
              "tau_glu", "tau_mglu", "mglu_gain", "gabaa_gain", "tau_glx", "glx_gain",
              "gaba_supply_mpfc", "gaba_supply_hipp", "tau_gaba_hipp", "gaba_gain",
              "glu_terminal_gain", "glu_pool_ratio", "gln_draw", "tau_gad", "gad_gain"):
        mech(m, G, k)
    mech(m, "hypotheses", "disinhibition")
    m.assign("int_drive",
             "pos(1 - disinhibition * share_int * block_int - theta_i) / (1 - theta_i)", "1",
             "interneuron steady-state activity from its NMDA drive", G)
    m.state("interneuron", "1", "(int_drive - interneuron) / tau_i", "1",
            "GABAergic interneuron activity", G)
    # excitation left after interneuron inhibition (GABA-A potentiation deepens it) ...
    m.assign("disinhib",
             "pos(1 - w_inh * interneuron * (1 + gabaa_gain * gabaa_pot)) / (1 - w_inh)", "1",
             "pyramidal excitation after interneuron inhibition (1 at baseline)", G)
    # ... gated by the recurrent NMDA drive the network needs to sustain firing: near-full
    # block (anaesthetic doses) collapses it, which makes the dose response an inverted U
    m.derive("gate_norm", "1 + nmda_gate_k ** nmda_gate_n", "1", "gate at baseline = 1", G)
    m.assign("nmda_gate",
             "gate_norm * hill(pos(1 - share_pyr * block_pyr), nmda_gate_k, nmda_gate_n)", "1",
             "pyramidal firing permitted by its remaining NMDA drive", G)
    m.assign("pyr_raw", "disinhib * nmda_gate", "1", "pyramidal drive before saturation", G)
    m.assign("pyr_drive", "pyr_raw * e_max / (e_max - 1 + pyr_raw)", "1",
             "saturating pyramidal steady-state activity", G)
    m.state("pyramidal", "1", "(pyr_drive - pyramidal) / tau_e", "1",
            "layer V pyramidal neuron activity", G)
    # presynaptic mGlu2/3 autoreceptors sense glutamate with a delay and damp its release:
    # the surge is transient even while block persists (Milak 2016 peak before infusion end)
    m.state("mglu", "1", "(glu - mglu) / tau_mglu", "1",
            "presynaptic mGlu2/3 autoreceptor activation (tracks glutamate)", G)
    m.state("glu", "1", "(pyramidal / (1 + mglu_gain * spos(mglu - 1)) - glu) / tau_glu", "1",
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
    m.assign("glu_terminal", "glu_terminal_gain * (synapsin1 - 1)", "1",
             "relative tissue glutamate gained in (or lost from) glutamatergic terminals", G)
    m.assign("glu_tissue", "glx * (1 + glu_terminal)", "1",
             "tissue glutamate (cycling pool x terminal content)", G)
    # glutamate-glutamine cycle: extra glutamate stocked in new terminals is made from
    # glutamine (phosphate-activated glutaminase) faster than anaplerosis replaces it, so
    # the (smaller) glutamine pool falls by the glutamate gained x the Glu/Gln pool ratio
    m.assign("gln_tissue", "pos(1 - gln_draw * glu_pool_ratio * glu_terminal)", "1",
             "tissue glutamine (astrocytic pool, drawn on by terminal glutamate synthesis)", G)
