"""Structure and disease state: spines, synaptic function and the chronic stress load.

``stress_load`` follows the exogenous ``stress`` input: it builds with tau_stress_on while
stress exceeds it and recovers slowly (tau_stress_off) after a schedule ends. It lowers
BDNF synthesis and speeds the loss of synaptic proteins and spines, so that after a
treatment the synapses are pulled back towards the disease state (fading and relapse).
Spine density is a set-point pool (formed in proportion to PSD95, turnover tau_spine) plus
the spines added by bursts of formation while PSD95 stands above its recent level: these
mature through three stages over tau_mature (the rise at 12-24 h) and then age through
three more before they are pruned (a gamma-distributed lifetime, mean tau_new). Synaptic
function combines spine density and synaptic GluA1.
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "structure"
AGES = (1, 2, 3)
MATURING = (("nascent", "new protrusions (filopodia), not counted in spine density"),
            ("thin", "thin new spines, not yet counted in spine density"),
            ("immature", "immature new spines, not yet stable or counted in spine density"))


def add(m: ModelSpec) -> None:
    for k in ("tau_spine", "spine_n", "stress_spine", "spine_gain", "spine_cap", "tau_mature",
              "tau_syn_ref", "tau_stress_on", "tau_stress_off", "tau_new", "k_stab", "tau_stable"):
        mech(m, G, k)
    for k in ("w_spine", "w_glua1"):
        mech(m, "outcomes", k)
    m.param("spine_stability", 1.0, "1",
            "between-subject factor on spine lifetime (how long new spines last)", "assumed",
            group="subject")
    m.derive("tau_spine_s", "tau_spine * spine_stability", "h", "this subject's spine lifetime",
             G)
    m.derive("tau_new_s", "tau_new * spine_stability", "h",
             "this subject's mean lifetime of burst-formed spines", G)
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
    young = " + ".join(f"new_{i}" for i in AGES)
    m.assign("spines", f"spines_set + stable + {young}", "1",
             "layer V mPFC spine density (healthy = 1): set-point pool + new and stabilised"
             " spines", G)
    # stress speeds the loss of every spine pool by the same factor
    m.assign("spine_loss", "1 + stress_spine * stress_load", "1",
             "relative spine elimination rate under the stress load", G)
    pending = " - ".join(n for n, _ in MATURING)
    m.assign("spine_burst",
             f"spine_gain * spos(psd95 - syn_ref) * pos(spine_cap - spines - {pending})"
             " / (spine_cap - 1) / tau_spine", "1/h",
             "burst formation of new (nascent) spines", G)
    # new protrusions mature in three stages (filopodium -> thin spine -> immature spine ->
    # stable spine), each taking tau_mature / 3 on average: the gamma-shaped delay keeps
    # spine density flat for the first hours and puts its rise at 12-24 h, not 3-6 h
    # (Moda-Sava 2019)
    mature = f"{len(MATURING)} / tau_mature"
    prev = "spine_burst"
    for name, doc in MATURING:
        m.state(name, "1", f"{prev} - {mature} * {name}", "0", doc, G)
        prev = f"{mature} * {name}"
    # the set-point pool: formation in proportion to PSD95, turnover tau_spine, faster
    # under stress; it sets the drug-free (healthy or stressed) density
    m.state("spines_set", "1", "(pos(psd95) ** spine_n - spines_set * spine_loss) / tau_spine_s",
            "1", "spines of the set-point pool", G)
    # spines added by a burst age through three stages before they are pruned, so their
    # lifetime is gamma-distributed around tau_new: they mostly last the first days and
    # are mostly gone within two weeks (new spines are transient: Holtmaat 2005)
    rate = f"{len(AGES)} * spine_loss / tau_new_s"
    # a later translation burst (the next infusion of a course) stabilises the young
    # spines it finds: re-potentiated new spines persist (Holtmaat 2005; Yang 2009). Only a
    # full burst does (Hill n = 4): the small mTORC1 elevation left a day after an infusion
    # must not stabilise that infusion's own spines
    m.assign("stabilising", "k_stab * hill(mtor_rise, burst_k, 4)", "1/h",
             "rate at which a translation burst stabilises existing new spines", G)
    prev = f"{mature} * {MATURING[-1][0]}"
    for i in AGES:
        m.state(f"new_{i}", "1", f"{prev} - ({rate} + stabilising) * new_{i}", "0",
                f"burst-formed spines, age stage {i} of {len(AGES)}", G)
        prev = f"{rate} * new_{i}"
    m.state("stable", "1", f"stabilising * ({young}) - stable * spine_loss / tau_stable",
            "0", "new spines stabilised by a later burst (long-lived)", G)
    m.assign("synaptic_function", "pos(spines) ** w_spine * pos(glua1) ** w_glua1", "1",
             "synaptic function of layer V pyramidal neurons", G)
