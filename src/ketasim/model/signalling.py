"""Signalling layer in prefrontal pyramidal neurons (all states 1 when healthy, drug-free).

- AMPA throughput ``ampa`` follows glutamate x (1 - AMPA block) x (1 + HNK potentiation);
  L-type Ca2+ entry follows AMPA depolarisation. Synaptic GluA1 content acts on synaptic
  function (structure layer), not back on BDNF release: that loop (GluA1 -> AMPA -> BDNF
  -> TrkB -> mTORC1 -> GluA1) with the translation burst in it runs away.
- Resting NMDA block switches eEF2 kinase off: ``p_eef2`` falls, BDNF translation rises.
- BDNF: tissue pool ``bdnf`` (synthesis x translation x stress x SSRI adaptation; release
  constitutive + Ca2+-driven, scaled by Val66Met), extracellular ``bdnf_ex``, a plasma pool.
- TrkB activation with desensitisation -> ERK/Akt -> mTORC1, multiplied by Rheb: the
  NMDA -> nNOS -> GAPDH-SNO -> Siah1 -> Rheb degradation branch is spared by NMDA block,
  so Rheb rises and multiplies whatever ERK/Akt input there is. At anaesthetic doses the
  network falls silent (circuit layer), ERK/Akt input falls below baseline and the
  product stays low despite more Rheb (no activation at 80 mg/kg; Li 2010).
- mTORC1 -> p70S6K, and translation of PSD95, GluA1 and synapsin I (stress speeds loss).
"""

from __future__ import annotations

from ketasim.model.params import mech
from ketasim.model.spec import ModelSpec

G = "signalling"
SSRI_STAGES = 4


def add(m: ModelSpec) -> None:
    for k in ("tau_ampa", "ca_ampa_n", "bdnf_release_basal", "k_bdnf_release", "tau_bdnf_pool",
              "tau_bdnf_ex", "tau_bdnf_plasma", "bdnf_translation_gain", "stress_bdnf",
              "eef2k_gain", "eef2k_s6k", "tau_peef2", "tau_trkb", "tau_trkb_desens", "trkb_desens",
              "tau_erk", "erk_k", "erk_n", "tau_sno", "sno_gain", "tau_rheb", "tau_mtor",
              "mtor_erk", "mtor_rheb", "tau_s6k", "tau_s6k_fb", "s6k_fb_gain", "tau_synprot",
              "synth_burst", "burst_k", "tau_mtor_ref", "tau_ref_down", "stress_synprot",
              "tau_ssri", "ssri_bdnf"):
        mech(m, G, k)
    mech(m, "hypotheses", "rest_block_eef2")
    mech(m, "hypotheses", "hnk_ampa")
    for k in ("glua2_current", "glua2_ca"):
        mech(m, "genetics", k)
    m.param("ko_glua2", 0.0, "1", "knockout switch (scenario population.knockouts)", "assumed",
            group="subject")
    m.param("bdnf_secretion", 1.0, "1", "activity-dependent BDNF secretion (Val66Met genotype)",
            "assumed", group="subject")
    m.param("plasticity", 1.0, "1", "between-subject variability of mTORC1-dependent synthesis",
            "assumed", group="subject")
    m.derive("ampa_cap", "1 + (glua2_current - 1) * ko_glua2", "1", "AMPA capacity", G)
    m.derive("ca_per_ampa", "1 + (glua2_ca - 1) * ko_glua2", "1", "Ca2+ per AMPA current", G)
    m.assign("glu_eff", "glu * (1 - ampa_block) * (1 + hnk_ampa * ampa_pot)", "1",
             "glutamate drive on AMPA receptors after antagonists and potentiators", G)
    m.state("ampa", "1", "(glu_eff * ampa_cap - ampa) / tau_ampa", "ampa_cap",
            "AMPA receptor throughput", G)
    m.assign("ca_l", "pos(ampa * ca_per_ampa / ampa_cap) ** ca_ampa_n * (1 - ltype_block)", "1",
             "L-type Ca2+ entry", G)
    # eEF2 kinase is switched off by resting NMDA block (Ca2+/calmodulin) and inhibited by
    # p70S6K (Ser366 phosphorylation: Wang 2001), so mTORC1 activation also frees translation
    m.state("p_eef2", "1",
            "(exp(-eef2k_gain * rest_block_eef2 * rest_loss) / (1 + eef2k_s6k * spos(s6k - 1))"
            " - p_eef2) / tau_peef2", "1",
            "phosphorylated eEF2 (eEF2 kinase activity)", G)
    m.assign("release", "bdnf * (bdnf_release_basal + (1 - bdnf_release_basal) * bdnf_secretion"
             " * ca_l)", "1", "BDNF secretion (relative)", G)
    m.derive("bdnf_synth0", "k_bdnf_release + 1 / tau_bdnf_pool", "1/h",
             "BDNF synthesis keeping the healthy pool at 1", G)
    m.state("bdnf", "1",
            "bdnf_synth0 * (1 + bdnf_translation_gain * (1 - p_eef2))"
            " * (1 - stress_bdnf * stress_load) * (1 + ssri_bdnf * ssri_adapt)"
            " - k_bdnf_release * release - bdnf / tau_bdnf_pool", "1",
            "prefrontal BDNF protein", G)
    m.state("bdnf_ex", "1", "(release - bdnf_ex) / tau_bdnf_ex", "1",
            "released extracellular BDNF", G)
    m.state("bdnf_plasma", "1", "(bdnf_ex - bdnf_plasma) / tau_bdnf_plasma", "1",
            "plasma BDNF", G)
    m.state("trkb_d", "1", "(trkb_desens * trkb - trkb_d) / tau_trkb_desens", "trkb_desens",
            "desensitised/internalised TrkB", G)
    m.state("trkb", "1",
            "(bdnf_ex * bdnf_free_frac * (1 - trkb_block) * (1 - trkb_d) / (1 - trkb_desens)"
            " - trkb) / tau_trkb", "1", "active TrkB", G)
    # normalised Hill (1 at baseline TrkB, never negative, saturating at 1 + erk_k^erk_n)
    m.derive("erk_norm", "1 + erk_k ** erk_n", "1", "ERK/Akt Hill normalisation", G)
    m.state("erk", "1", "(erk_norm * hill(pos(trkb), erk_k, erk_n) - erk) / tau_erk", "1",
            "ERK/Akt activity", G)
    m.state("sno", "1", "(exp(-sno_gain * rest_loss) - sno) / tau_sno", "1",
            "nNOS -> GAPDH S-nitrosylation (Siah1 complex)", G)
    m.state("rheb", "1", "(1 - sno * rheb) / tau_rheb", "1", "Rheb protein", G)
    # p70S6K feeds back negatively on the upstream input (S6K1 -> IRS-1/Rictor), with a
    # delay: a sustained rise of ERK/Akt input gives a transient p-mTOR response
    m.state("s6k_fb", "1", "(s6k - s6k_fb) / tau_s6k_fb", "1",
            "S6K1 negative feedback on mTORC1 input (delayed p70S6K)", G)
    m.state("mtor", "1",
            "(pos(1 + mtor_erk * (erk - 1)) * pos(rheb) ** mtor_rheb * (1 - mtor_block)"
            " / (1 + s6k_fb_gain * spos(s6k_fb - 1)) - mtor) / tau_mtor", "1",
            "mTORC1 activity (p-mTOR)", G)
    m.state("s6k", "1", "(mtor - s6k) / tau_s6k", "1", "p-p70S6K", G)
    # local translation bursts when mTORC1 rises above its recent level (a slow reference),
    # so a chronically stressed neuron responds to a rise as a healthy one does; the Hill
    # form (n = 2) has zero gain at the set point, so small fluctuations cannot trigger it
    # the reference rises slowly but falls fast, so that recovery from an inhibition
    # (NBQX, rapamycin wearing off) is not read as a rise and triggers no burst
    m.state("mtor_ref", "1",
            "spos(mtor - mtor_ref) / tau_mtor_ref - spos(mtor_ref - mtor) / tau_ref_down", "1",
            "recent mTORC1 activity (slow reference for the translation burst)", G)
    m.assign("mtor_rise", "pos(mtor / mtor_ref - 1)", "1", "mTORC1 rise above its reference", G)
    m.assign("synthesis",
             "mtor * (1 + plasticity * synth_burst * hill(mtor_rise, burst_k, 2))", "1",
             "mTORC1-dependent local translation of synaptic proteins", G)
    for prot in ("psd95", "glua1", "synapsin1"):
        m.state(prot, "1",
                f"(synthesis - {prot} * (1 + stress_synprot * stress_load)) / tau_synprot", "1",
                f"{prot} (synaptic protein)", G)
    # the monoaminergic adaptation is a cascade (5-HT1A autoreceptor desensitisation, then
    # CREB-driven BDNF transcription), so its onset is sigmoid, not exponential
    delay_chain(m, "ssri_adapt", "sert_occ", "tau_ssri", SSRI_STAGES,
                "slow monoaminergic adaptation to SERT blockade")


def delay_chain(m: ModelSpec, name: str, source: str, tau: str, stages: int, doc: str) -> None:
    """``name`` follows ``source`` through ``stages`` first-order steps of ``tau / stages``.

    The response to a step of ``source`` is the gamma (Erlang) CDF with shape ``stages`` and
    mean ``tau``: a sigmoid onset. Intermediate states are ``{name}_1 .. {name}_{stages-1}``.
    """
    prev = source
    for i in range(1, stages + 1):
        state = name if i == stages else f"{name}_{i}"
        m.state(state, "1", f"({prev} - {state}) * {stages} / {tau}", "0",
                f"{doc}, stage {i} of {stages}", G)
        prev = state
