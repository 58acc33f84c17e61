"""Structure and disease state: spines, synaptic function and the chronic stress load.

``stress_load`` follows the exogenous ``stress`` input: it builds with tau_stress_on while
stress exceeds it and recovers slowly (tau_stress_off) after a schedule ends. It lowers
BDNF synthesis and speeds the loss of synaptic proteins and spines, so that after a
treatment the synapses are pulled back towards the disease state (fading and relapse).
Spines form in proportion to PSD95 (new spines over 12-24 h) and are eliminated with
turnover time tau_spine. Synaptic function combines spine density and synaptic GluA1.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "structure"


def add(m: ModelSpec) -> None:
    for k in ("tau_spine", "spine_n", "stress_spine", "tau_stress_on", "tau_stress_off"):
        mech(m, G, k)
    for k in ("w_spine", "w_glua1"):
        mech(m, "outcomes", k)
    m.input("stress", "1")
    m.state("stress_load", "1",
            "pos(stress - stress_load) / tau_stress_on"
            " - pos(stress_load - stress) / tau_stress_off",
            "stress", "chronic stress / depression load", G)
    m.state("spines", "1",
            "(psd95 ** spine_n - spines * (1 + stress_spine * stress_load)) / tau_spine", "1",
            "layer V mPFC spine density (healthy = 1)", G)
    m.assign("synaptic_function", "spines ** w_spine * glua1 ** w_glua1", "1",
             "synaptic function of layer V pyramidal neurons", G)
