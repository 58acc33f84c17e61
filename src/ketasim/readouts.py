"""The readouts a scenario can ask for: names and units from the public contract.

``plasma.<drug>`` (venous), ``plasma_arterial.<drug>`` and ``brain.<drug>`` exist for every
catalog compound family (``plasma.ketamine`` sums esketamine and arketamine); each has the
PK summaries ``<readout>.cmax``, ``.tmax`` and ``.auc`` (per subject and period, from the
period's start to each output time); the rest are fixed names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Readout:
    name: str
    unit: str
    meaning: str
    kind: str = "continuous"  # continuous | fraction (per-group proportion) | event


_FIXED: tuple[Readout, ...] = (
    Readout("nmda_block.interneuron", "fraction", "NMDA receptor block on GABAergic interneurons"),
    Readout("nmda_block.pyramidal", "fraction", "NMDA receptor block on pyramidal neurons"),
    Readout("ampa_activation", "% of baseline", "AMPA receptor throughput, PFC pyramidal neurons"),
    Readout("glutamate.pfc", "% of baseline", "extracellular prefrontal glutamate (microdialysis)"),
    Readout("cycling.pfc", "% of baseline",
            "prefrontal glutamate-glutamine cycling rate (13C MRS label turnover)"),
    Readout("glx.mpfc", "% of baseline", "MRS medial prefrontal Glx"),
    Readout("gaba.mpfc", "% of baseline", "MRS medial prefrontal GABA"),
    Readout("gaba.hippocampus", "% of baseline", "MRS hippocampal GABA"),
    Readout("glu_gln_ratio", "% of baseline", "tissue glutamate/glutamine ratio"),
    Readout("gaba_glu_ratio", "% of baseline", "tissue GABA/glutamate ratio"),
    Readout("bdnf.plasma", "% of baseline", "plasma BDNF protein"),
    Readout("bdnf.pfc", "% of baseline", "prefrontal BDNF protein"),
    Readout("bdnf.released", "% of baseline",
            "released (extracellular) prefrontal BDNF, as measured in medium or dialysate"),
    Readout("trkb.active", "% of baseline", "active (phosphorylated) TrkB"),
    Readout("p_eef2", "% of baseline", "phosphorylated eEF2"),
    Readout("p_mtor", "% of baseline", "phosphorylated mTOR (mTORC1 activity)"),
    Readout("p_p70s6k", "% of baseline", "phosphorylated p70S6K"),
    Readout("rheb", "% of baseline", "Rheb protein"),
    Readout("p_erk", "% of baseline", "phosphorylated ERK/Akt"),
    Readout("synaptic_proteins", "% of healthy control", "synaptoneurosome synaptic proteins"),
    Readout("psd95", "% of healthy control", "PSD95"),
    Readout("glua1", "% of healthy control", "GluA1"),
    Readout("synapsin1", "% of healthy control", "synapsin I"),
    Readout("spine_density", "% of healthy control", "layer V mPFC spine density"),
    Readout("madrs", "points", "MADRS total (0-60)"),
    Readout("hamd17", "points", "HAM-D17 total (0-52)"),
    Readout("madrs.change", "points", "MADRS change from the period's baseline"),
    Readout("hamd17.change", "points", "HAM-D17 change from the period's baseline"),
    Readout("response", "fraction", ">= 50 % reduction from baseline", "fraction"),
    Readout("remission", "fraction", "MADRS <= 10 (HAM-D17 <= 7)", "fraction"),
    Readout("relapse_free", "fraction", "responders not yet relapsed", "fraction"),
    Readout("cadss", "points", "Clinician-Administered Dissociative States Scale"),
    Readout("sbp.change", "mmHg", "systolic blood pressure change"),
    Readout("heart_rate.change", "beats/min", "heart rate change"),
    Readout("fst.immobility", "s", "forced swim immobility, last 4 min of 6"),
    Readout("sucrose_preference", "%", "sucrose preference"),
    Readout("nsf.latency", "s", "novelty-suppressed feeding latency"),
    # extensions: model states behind the measurement models
    Readout("mood", "1", "mood drive: synaptic function plus acute AMPA component (healthy 1)"),
    Readout("synaptic_function", "1", "spine density and GluA1 combined (healthy 1)"),
    Readout("firing.interneuron", "% of baseline",
            "firing rate of prefrontal fast-spiking (GABA) interneurons (unit recording)"),
    Readout("firing.pyramidal", "% of baseline",
            "firing rate of prefrontal pyramidal neurons (unit recording)"),
    Readout("stress_load", "1", "chronic stress / depression load"),
    Readout("sedation", "1", "fractional GABA-A potentiation (perceived sedation)"),
    Readout("perceived_effect", "1", "perceived drug effect so far (sedation + dissociation)"),
)

FIXED: dict[str, Readout] = {r.name: r for r in _FIXED}
PK_PREFIXES = {"plasma": "ng/mL", "plasma_arterial": "ng/mL", "brain": "uM"}
PK_SUMMARIES = ("cmax", "tmax", "auc")
_WHERE = {"plasma": "total venous plasma", "plasma_arterial": "total arterial plasma",
          "brain": "unbound brain"}
_SUMMARY_MEANING = {
    "cmax": "highest {base} since the period began",
    "tmax": "time of the highest {base} since the period began (h on the period's clock)",
    "auc": "area under {base} from the period's start",
}


def pk_summary(name: str) -> tuple[str, str] | None:
    """(concentration readout, statistic) of a PK summary name such as
    ``plasma.ketamine.cmax``; None for any other name."""
    base, _, stat = name.rpartition(".")
    if stat in PK_SUMMARIES and base.partition(".")[0] in PK_PREFIXES and base.count(".") == 1:
        return base, stat
    return None


def summary_unit(base_unit: str, stat: str) -> str:
    """Unit of a PK summary of a readout in ``base_unit``."""
    if stat == "tmax":
        return "h"
    if stat == "auc":
        return {"ng/mL": "ng*h/mL", "uM": "uM*h"}[base_unit]
    return base_unit


def lookup(name: str, compound_families: set[str]) -> Readout | None:
    """The readout called ``name``, or None if it is not one.

    ``compound_families`` are the names that may follow ``plasma.`` / ``brain.``.
    """
    if name in FIXED:
        return FIXED[name]
    summary = pk_summary(name)
    if summary is not None:
        base = lookup(summary[0], compound_families)
        if base is None:
            return None
        return Readout(name, summary_unit(base.unit, summary[1]),
                       _SUMMARY_MEANING[summary[1]].format(base=base.meaning))
    prefix, _, fam = name.partition(".")
    if prefix in PK_PREFIXES and fam in compound_families:
        return Readout(name, PK_PREFIXES[prefix], f"{_WHERE[prefix]} concentration of {fam}")
    return None
