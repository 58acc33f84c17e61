"""Structure and disease state: spines, synaptic function and the chronic stress load.

``stress_load`` follows the exogenous ``stress`` input: it builds with tau_stress_on while
stress exceeds it and recovers slowly (tau_stress_off) after a schedule ends. It lowers
BDNF synthesis and speeds the loss of synaptic proteins and spines, so that after a
treatment the synapses are pulled back towards the disease state (fading and relapse).
Spines form in proportion to PSD95, plus a burst of formation while PSD95 stands above
its recent level (new spines over 12-24 h after a translation burst), and are eliminated
with turnover time tau_spine. Synaptic function combines spine density and synaptic GluA1.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "structure"


def add(m: ModelSpec) -> None:
    for k in ("tau_spine", "spine_n", "stress_spine", "spine_gain", "spine_cap", "tau_mature",
              "tau_syn_ref", "tau_stress_on", "tau_stress_off"):
        mech(m, G, k)
    for k in ("w_spine", "w_glua1"):
        mech(m, "outcomes", k)
    m.param("spine_stability", 1.0, "1",
            "between-subject factor on spine lifetime (how long new spines last)", "assumed",
            group="subject")
    m.derive("tau_spine_s", "tau_spine * spine_stability", "h", "this subject's spine lifetime",
             G)
    m.input("stress", "1")
    m.state("stress_load", "1",
            "pos(stress - stress_load) / tau_stress_on"
            " - pos(stress_load - stress) / tau_stress_off",
            "stress", "chronic stress / depression load", G)
    # new spines form when PSD95 rises above its recent level (a slow reference), so a
    # translation burst builds spines over the following 12-24 h, while the drug-free
    # (stressed or healthy) steady state is set by PSD95 level and elimination alone; new
    # spines form where sites are free (lost spines are restored first: Moda-Sava 2019)
    m.state("syn_ref", "1", "(psd95 - syn_ref) / tau_syn_ref", "1",
            "recent PSD95 level (slow reference for spine formation)", G)
    m.assign("spine_burst",
             "spine_gain * spos(psd95 - syn_ref) * pos(spine_cap - spines - nascent - immature)"
             " / (spine_cap - 1) / tau_spine", "1/h",
             "burst formation of new (nascent) spines", G)
    # new protrusions mature in two stages (filopodium -> thin spine -> stable spine), each
    # taking tau_mature / 2 on average: the gamma-shaped delay keeps spine density flat
    # for the first hours and puts its rise at 12-24 h, not 3-6 h (Moda-Sava 2019)
    m.state("nascent", "1", "spine_burst - 2 * nascent / tau_mature", "0",
            "new protrusions (filopodia), not counted in spine density", G)
    m.state("immature", "1", "2 * (nascent - immature) / tau_mature", "0",
            "immature (thin) new spines, not yet counted in spine density", G)
    m.state("spines", "1",
            "(pos(psd95) ** spine_n - spines * (1 + stress_spine * stress_load)) / tau_spine_s"
            " + 2 * immature / tau_mature", "1", "layer V mPFC spine density (healthy = 1)", G)
    m.assign("synaptic_function", "pos(spines) ** w_spine * pos(glua1) ** w_glua1", "1",
             "synaptic function of layer V pyramidal neurons", G)
