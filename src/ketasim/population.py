"""Virtual subjects: covariates and between-subject variability.

Every subject has its own random streams, derived from the scenario seed and the subject's
global index (``SeedSequence(seed, spawn_key=(index, purpose))``), so a subset, a reordering
or a parallel run reproduces the same subjects. Distributions (sources in
catalog/population.toml): body weight normal, sex Bernoulli, CYP2B6 poor metaboliser
Bernoulli, BDNF Val66Met categorical, condition severity and plasticity log-normal, PK
clearances and volumes log-normal per compound family (enantiomers share one draw).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ketasim.catalog import catalog
from ketasim.model.compile import CompiledModel
from ketasim.model.params import mechanism_table

if TYPE_CHECKING:  # the scenario contract sits above the population layer
    from ketasim.scenario import Scenario

GENOTYPES = ("val_val", "val_met", "met_met")
KNOCKOUT_PARAMS = {
    "glun2b_interneuron": "ko_glun2b_interneuron",
    "glun2b_pyramidal": "ko_glun2b_pyramidal",
    "glun2d": "ko_glun2d",
    "glua2": "ko_glua2",
}
# purposes: fixed keys so adding a draw never shifts another
_DEMOGRAPHY, _GENETICS, _DISEASE, _PK, _RATING = 1, 2, 3, 4, 5


def _pv(section: str, name: str) -> float:
    return catalog().population[section][name].value


def rng_for(seed: int, index: int, purpose: int, extra: int = 0) -> np.random.Generator:
    """The random stream of subject ``index`` for one ``purpose``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, purpose, extra)))


def _lognormal(rng: np.random.Generator, cv: float) -> float:
    """Log-normal factor with median 1 and coefficient of variation ``cv``."""
    sigma = float(np.sqrt(np.log1p(cv**2)))
    return float(np.exp(sigma * rng.standard_normal()))


REF_BMI = 70.0 / 1.76 ** 2  # reference adult of the PK parameter sets: 70 kg, 176 cm, male


def _lean_fraction(bmi: float, female: float) -> float:
    """Fat-free mass / weight (Janmahasatian 2005, Clin Pharmacokinet 44:1051)."""
    return 9270.0 / ((8780.0 + 244.0 * bmi) if female else (6680.0 + 216.0 * bmi))


def draw_subjects(sc: Scenario, indices: np.ndarray) -> pd.DataFrame:
    """Covariates of the subjects of ``sc.population`` with global ``indices`` (one row
    each), drawn from the streams of seed ``sc.seed``."""
    rows = [_draw_one(sc, int(i)) for i in indices]
    return pd.DataFrame(rows, index=pd.Index(indices, name="subject"))


def _draw_one(sc: Scenario, i: int) -> dict[str, Any]:
    pop, species, seed = sc.population, sc.species, sc.seed
    cov = catalog().species[species].covariates
    w_mean = pop.weight_kg.mean if pop.weight_kg else cov.weight_mean.value
    w_sd = pop.weight_kg.sd if pop.weight_kg else cov.weight_sd.value
    fem = pop.female_fraction if pop.female_fraction is not None else cov.female_fraction.value
    age_m = pop.age.mean if pop.age else (cov.age_mean.value if cov.age_mean else 0.0)
    age_s = pop.age.sd if pop.age else (cov.age_sd.value if cov.age_sd else 0.0)
    pm = (pop.cyp2b6_poor_fraction if pop.cyp2b6_poor_fraction is not None
          else _pv("human", "cyp2b6_poor_fraction")) if species == "human" else 0.0
    mix = pop.genotype_mix or ((_pv("human", "val_val"), _pv("human", "val_met"),
                                _pv("human", "met_met")) if species == "human"
                               else (1.0, 0.0, 0.0))
    fh = (pop.family_history_aud_fraction if pop.family_history_aud_fraction is not None
          else _pv("human", "fh_aud_fraction")) if species == "human" else 0.0
    severity = mechanism_table()["conditions"][str(pop.condition)].value
    row: dict[str, Any] = {"weight": w_mean, "female": float(fem >= 0.5), "age": age_m,
                           "cyp2b6_pm": 0.0, "genotype": GENOTYPES[int(np.argmax(mix))],
                           "fh_aud": 0.0, "severity": severity, "plasticity": 1.0,
                           "spine_stability": 1.0}
    if pop.variability:
        d = rng_for(seed, i, _DEMOGRAPHY)
        row["weight"] = float(np.clip(d.normal(w_mean, w_sd), 0.4 * w_mean, 2.5 * w_mean))
        row["female"] = float(d.random() < fem)
        row["age"] = float(np.clip(d.normal(age_m, age_s), 18.0, 90.0)) if age_m else 0.0
        g = rng_for(seed, i, _GENETICS)
        row["cyp2b6_pm"] = float(g.random() < pm)
        row["genotype"] = GENOTYPES[int(g.choice(3, p=np.asarray(mix) / np.sum(mix)))]
        row["fh_aud"] = float(g.random() < fh)
        s = rng_for(seed, i, _DISEASE)
        row["severity"] = severity * _lognormal(s, _pv("variability", "severity_cv"))
        row["plasticity"] = _lognormal(s, _pv("variability", "plasticity_cv"))
        row["spine_stability"] = _lognormal(s, _pv("variability", "spine_stability_cv"))
    if species == "human":
        height = (_pv("human", "height_female") if row["female"] else _pv("human", "height_male"))
        if pop.variability:
            height += _pv("human", "height_sd") * rng_for(seed, i, _DEMOGRAPHY, 1).standard_normal()
        row["bmi"] = row["weight"] / (height / 100.0) ** 2
        row["lean_ratio"] = _lean_fraction(row["bmi"], row["female"]) / _lean_fraction(
            REF_BMI, 0.0)
    return row


def parameter_matrix(model: CompiledModel, subjects: pd.DataFrame, sc: Scenario,
                     overrides: dict[str, float] | None = None,
                     columns: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Base+derived parameters for every subject: shape (n_params, n_subjects).

    Subject covariates map onto named model parameters; PK variability draws one
    log-normal factor per compound family; ``overrides`` replace typical values by name;
    ``columns`` (name -> one value per subject) set a base parameter subject by subject,
    last (a parameter sample as a batch: each sample row is a subject column).
    """
    base = model.base_parameters()
    names = list(model.spec.parameters)
    for k, v in (overrides or {}).items():
        base[names.index(k)] = v
    n = len(subjects)
    B = np.repeat(base[:, None], n, axis=1)

    def put(name: str, values: np.ndarray) -> None:
        if name in names:
            B[names.index(name)] = values

    put("weight", subjects["weight"].to_numpy(float))
    put("female", subjects["female"].to_numpy(float))
    put("cyp2b6_pm", subjects["cyp2b6_pm"].to_numpy(float))
    gen = mechanism_table()["genetics"]
    # family history of alcohol use disorder acts on mTORC1-dependent synthesis (plasticity)
    fh = subjects["fh_aud"].to_numpy(float) if "fh_aud" in subjects else np.zeros(n)
    put("plasticity", subjects["plasticity"].to_numpy(float)
        * (1 + gen["fh_aud_plasticity"].value * fh))
    put("spine_stability", subjects["spine_stability"].to_numpy(float))
    if "lean_ratio" in subjects:
        put("lean_ratio", subjects["lean_ratio"].to_numpy(float))
    secretion = {"val_val": 1.0, "val_met": gen["bdnf_secretion_val_met"].value,
                 "met_met": gen["bdnf_secretion_met_met"].value}
    put("bdnf_secretion", subjects["genotype"].map(secretion).to_numpy(float))
    for ko in sc.population.knockouts:
        put(KNOCKOUT_PARAMS[ko], np.ones(n))
    if sc.population.variability:
        _pk_variability(B, names, subjects, sc.seed)
    for name, column in (columns or {}).items():
        B[names.index(name)] = np.broadcast_to(np.asarray(column, float), (n,))
    return model.complete(B)


def _pk_variability(B: np.ndarray, names: list[str], subjects: pd.DataFrame,
                    seed: int) -> None:
    cat = catalog()
    cv_cl, cv_v = _pv("variability", "pk_cl_cv"), _pv("variability", "pk_v_cv")
    for name in names:
        if not name.startswith(("eta_cl_", "eta_v_")):
            continue
        cid = name.split("_", 2)[2]
        family = cat.drugs[cid].readout or cid
        key = zlib.crc32(f"{family}:{name[:6]}".encode())
        cv = cv_cl if name.startswith("eta_cl_") else cv_v
        B[names.index(name)] = [_lognormal(rng_for(seed, int(i), _PK, key), cv)
                                for i in subjects.index]
