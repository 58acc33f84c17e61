"""Assemble the layers into one model with named states and readouts.

``build_model(species, compounds, routes)`` returns a compiled model containing the PK of
the dosed compounds and their metabolites, the receptor layer for every compound with a
target, and the full circuit -> signalling -> structure -> outcome cascade. Readouts in
the model are in % of a healthy drug-free subject; the run layer re-expresses readouts
whose contract unit is "% of baseline" relative to each subject's own pre-dose value.
"""

from __future__ import annotations

from functools import lru_cache

from ketasim.catalog import catalog
from ketasim.model import circuit, outcomes, pk, receptors, signalling, structure
from ketasim.model.compile import CompiledModel, compile_model
from ketasim.model.spec import ModelSpec

# contract readout -> expression in model symbols (unit: % of healthy unless stated)
MECHANISM_READOUTS: dict[str, tuple[str, str]] = {
    "ampa_activation": ("100 * ampa / ampa_cap", "%"),
    "glutamate.pfc": ("100 * glu", "%"),
    # the neuronal glutamate-glutamine cycle runs at the rate of glutamate release (every
    # released glutamate is taken up by astrocytes and returned as glutamine), which the
    # glu state follows; 13C MRS label turnover measures it (Abdallah 2018; Chowdhury 2017)
    "cycling.pfc": ("100 * glu", "%"),
    "firing.interneuron": ("100 * interneuron", "%"),
    "firing.pyramidal": ("100 * pyramidal", "%"),
    "glx.mpfc": ("100 * glx", "%"),
    "gaba.mpfc": ("100 * gaba_mpfc", "%"),
    "gaba.hippocampus": ("100 * gaba_hipp", "%"),
    "glu_gln_ratio": ("100 * glu_tissue / gln_tissue", "%"),
    "gaba_glu_ratio": ("100 * gaba_mpfc / glu_tissue", "%"),
    "bdnf.plasma": ("100 * bdnf_plasma", "%"),
    "bdnf.pfc": ("100 * bdnf", "%"),
    "bdnf.released": ("100 * bdnf_ex", "%"),
    "trkb.active": ("100 * trkb", "%"),
    "p_eef2": ("100 * p_eef2", "%"),
    "p_mtor": ("100 * mtor", "%"),
    "p_p70s6k": ("100 * s6k", "%"),
    "rheb": ("100 * rheb", "%"),
    "p_erk": ("100 * erk", "%"),
    "synaptic_proteins": ("100 * (psd95 + glua1 + synapsin1) / 3", "%"),
    "psd95": ("100 * psd95", "%"),
    "glua1": ("100 * glua1", "%"),
    "synapsin1": ("100 * synapsin1", "%"),
    "spine_density": ("100 * spines", "%"),
    "cadss": ("cadss_score", "points"),
    "sbp.change": ("sbp_rise", "mmHg"),
    "heart_rate.change": ("hr_per_mmhg * sbp_rise", "beats/min"),
    "mood": ("mood", "1"),
    "synaptic_function": ("synaptic_function", "1"),
    "stress_load": ("stress_load", "1"),
    "sedation": ("gabaa_pot", "1"),
    "perceived_effect": ("perceived", "1"),
}


def build_spec(species: str, compounds: tuple[str, ...],
               routes: tuple[tuple[str, str], ...] = (),
               track_elimination: bool = False, pk_only: bool = False,
               auc: tuple[str, ...] = ()) -> ModelSpec:
    """The model definition for ``species`` with ``compounds`` dosed by ``routes``.

    ``routes`` are (compound, route) pairs; ``pk_only`` builds only the PK layer (used by
    PK tests and non-compartmental checks). ``auc`` names PK readouts (``plasma.ketamine``)
    whose running integral is added as a state (:func:`auc_state`), so that AUCs are
    integrated with the trajectory (exact to the solver's tolerance).
    """
    cat = catalog()
    m = ModelSpec()
    by_cpd: dict[str, set[str]] = {}
    for c, r in routes:
        by_cpd.setdefault(c, set()).add(r)
    pk.add_subject_parameters(m, cat, species)
    pk.add_pk(m, cat, species, list(compounds), by_cpd, track_elimination)
    for name in auc:
        if name in m.readouts:
            ro = m.readouts[name]
            m.state(auc_state(name), f"{ro.unit}*h", ro.expr,
                    doc=f"running integral of {name} (for {name}.auc)", group="summaries")
    if pk_only:
        return m
    closure = cat.closure(list(compounds))
    receptors.add_nmda(m, cat, closure)
    receptors.add_targets(m, cat, closure)
    circuit.add(m)
    signalling.add(m)
    structure.add(m)
    outcomes.add(m)
    for name, (expr, unit) in MECHANISM_READOUTS.items():
        m.readout(name, expr, unit)
    return m


def auc_state(readout: str) -> str:
    """Name of the state integrating PK readout ``readout`` (``plasma.ketamine`` ->
    ``auc__plasma__ketamine``)."""
    return "auc__" + readout.replace(".", "__")


@lru_cache(maxsize=64)
def build_model(species: str, compounds: tuple[str, ...],
                routes: tuple[tuple[str, str], ...] = (), track_elimination: bool = False,
                pk_only: bool = False, auc: tuple[str, ...] = ()) -> CompiledModel:
    """Compiled model (cached by its arguments)."""
    return compile_model(build_spec(species, compounds, routes, track_elimination, pk_only,
                                    auc))
