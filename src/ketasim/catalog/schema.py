"""Schema of the catalog data files (drugs/*.toml, species/*.toml, mechanism.toml,
population.toml, assays.toml).

Every number in the catalog is a :class:`Sourced` value: magnitude, unit, source and tag.
Tags follow ../shared/reference: ``P`` read in the primary source, ``S`` secondary source,
``U`` recalled/unverified, ``calibrated`` (the note says against what), ``assumed`` (the
note says why), ``derived`` (the note says from what).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ketasim import units

Tag = Literal["P", "S", "U", "calibrated", "assumed", "derived"]
SpeciesName = Literal["human", "rat", "mouse"]
Route = Literal[
    "iv_infusion", "iv_bolus", "im", "sc", "ip", "oral", "intranasal", "icv", "intracortical"
]
ROUTES: tuple[str, ...] = Route.__args__  # type: ignore[attr-defined]
SPECIES: tuple[str, ...] = SpeciesName.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(_Strict):
    """A number with its unit and where it comes from."""

    value: float
    unit: str
    source: str = Field(min_length=1)
    tag: Tag
    note: str = ""

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, u: str) -> str:
        if u in ("1", "fraction", "ratio"):
            return u
        try:
            units.Q_(1.0, u)
        except Exception as exc:
            raise ValueError(f"unknown unit {u!r}") from exc
        return u

    def to(self, unit: str) -> float:
        """Magnitude in ``unit`` (dimensionless units: '1', 'fraction' and 'ratio')."""
        if self.unit in ("1", "fraction", "ratio"):
            if unit not in ("1", "fraction", "ratio"):
                raise ValueError(f"{self.unit} is dimensionless, cannot give {unit}")
            return self.value
        return units.convert(self.value, self.unit, unit)


class RouteAbsorption(_Strict):
    """Absorption for one extravascular route: first-order from a depot into plasma.

    ``f`` is the fraction of the dose reaching the systemic circulation (unitless), ``ka``
    the first-order absorption rate (1/h). ``f_direct_brain`` (intranasal / local routes) is
    a fraction delivered to the brain compartment instead. Intravascular routes need no entry.
    """

    f: Sourced
    ka: Sourced | None = None
    lag: Sourced | None = None


class Disposition(_Strict):
    """Linear mammillary disposition for one species, at ``ref_weight``.

    Central volume ``v1`` and clearance ``cl``; optional peripheral compartments (q2, v2)
    and (q3, v3). ``fu`` is the unbound fraction in plasma, ``kp_uu`` the unbound
    brain-to-unbound-plasma ratio at equilibrium, ``t_half_brain`` the half-time of
    blood-brain equilibration.
    """

    ref_weight: Sourced
    cl: Sourced
    v1: Sourced
    q2: Sourced | None = None
    v2: Sourced | None = None
    q3: Sourced | None = None
    v3: Sourced | None = None
    fu: Sourced
    kp_uu: Sourced
    t_half_brain: Sourced
    routes: dict[Route, RouteAbsorption] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _pairs(self) -> Disposition:
        for q, v in (("q2", "v2"), ("q3", "v3")):
            if (getattr(self, q) is None) != (getattr(self, v) is None):
                raise ValueError(f"{q} and {v} must be given together")
        if self.q3 is not None and self.q2 is None:
            raise ValueError("q3/v3 given without q2/v2")
        return self


class Metabolite(_Strict):
    """Formation of a metabolite: ``fraction`` of this compound's clearance becomes ``to``.

    ``transit`` is a mean transit time (h) through one intermediate compartment (hepatic
    formation and release); zero means direct formation into the metabolite's central
    compartment. ``species_fraction`` overrides the fraction per species.
    """

    to: str
    fraction: Sourced
    transit: Sourced | None = None
    species_fraction: dict[SpeciesName, Sourced] = Field(default_factory=dict)


class NmdaPharmacology(_Strict):
    """NMDA receptor antagonism; differences between drugs live only in these numbers.

    IC50s are at physiological (1 mM) Mg2+, in uM of unbound drug, per receptor class:
    GluN2A, GluN2B, and GluN2C/2D (one class). ``use_dependence`` is 1 for open-channel
    blockers (they bind only open channels) and 0 for allosteric antagonists. ``trapping``
    is the fraction of blocked channels that keep the blocker when they close.
    ``rest_block`` is the relative ability to block receptors at rest (miniature,
    spontaneous activation) in physiological Mg2+ (1: as at active synapses; memantine
    about 0: Gideons 2014). ``koff`` is the unblocking rate of an open channel (1/h).
    ``native_potency`` (optional) replaces the mechanism-wide recombinant-to-native IC50
    factor for a compound whose block has been measured in native neurons.
    """

    ic50_glun2a: Sourced
    ic50_glun2b: Sourced
    ic50_glun2d: Sourced
    use_dependence: Sourced
    trapping: Sourced
    rest_block: Sourced
    koff: Sourced
    native_potency: Sourced | None = None


class Potency(_Strict):
    """A concentration-effect pair: unbound brain potency (uM) and maximal effect (0-1)."""

    ic50: Sourced
    emax: Sourced | None = None
    hill: Sourced | None = None


class Pharmacodynamics(_Strict):
    """Target actions of a compound; absent entries mean no action at that target."""

    nmda: NmdaPharmacology | None = None
    ampa_antagonism: Potency | None = None  # NBQX
    ampa_potentiation: Potency | None = None  # (2R,6R)-HNK; ic50 read as EC50
    trkb_antagonism: Potency | None = None  # ANA-12
    mtorc1_inhibition: Potency | None = None  # rapamycin
    gabaa_potentiation: Potency | None = None  # midazolam; EC50, emax = max fold potentiation
    ltype_block: Potency | None = None  # nifedipine
    bdnf_neutralisation: Potency | None = None  # antibody: Kd
    sert_inhibition: Potency | None = None  # escitalopram; on plasma-unbound scale too
    sympathomimetic: Potency | None = None  # ketamine: plasma ng/mL EC50, emax in mmHg


class Drug(_Strict):
    """One catalog entry: a dosable drug, a metabolite, a mixture, or the vehicle.

    ``role``:
    - ``compound``: a molecular entity with its own PK (``pk``) and actions (``pd``);
    - ``mixture``: a dose is split by mass over ``components`` (racemic ketamine);
    - ``vehicle``: no active ingredient (saline).
    ``dosable`` is false for metabolites that are not sold or given as such.
    ``readout`` names the plasma/brain readout family the compound adds to
    (``plasma.ketamine`` sums esketamine and arketamine).
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    aliases: list[str] = Field(default_factory=list)
    role: Literal["compound", "mixture", "vehicle"]
    dosable: bool = True
    readout: str | None = None
    description: str = ""
    molecular_weight: Sourced | None = None
    components: dict[str, float] = Field(default_factory=dict)
    pk: dict[SpeciesName, Disposition] = Field(default_factory=dict)
    metabolites: list[Metabolite] = Field(default_factory=list)
    pd: Pharmacodynamics = Field(default_factory=Pharmacodynamics)
    # routes the drug can be given by; absorption parameters come from pk.<species>.routes,
    # else from the first species with data, else from the species' default_absorption
    routes: list[Route] = Field(default_factory=list)
    covariates: dict[str, Sourced] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _role_fields(self) -> Drug:
        if self.role == "compound":
            if not self.pk:
                raise ValueError("a compound needs pk for at least one species")
            if self.molecular_weight is None:
                raise ValueError("a compound needs molecular_weight")
        if self.role == "mixture":
            if not self.components:
                raise ValueError("a mixture needs components")
            total = sum(self.components.values())
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"mixture components sum to {total}, not 1")
        return self


class Allometry(_Strict):
    cl_exponent: Sourced
    v_exponent: Sourced


class CovariateDistribution(_Strict):
    weight_mean: Sourced
    weight_sd: Sourced
    female_fraction: Sourced
    age_mean: Sourced | None = None
    age_sd: Sourced | None = None


class Species(_Strict):
    """Physiology of one species used by the PK and mechanism layers."""

    id: SpeciesName
    name: str
    body_weight: Sourced
    brain_water_volume: Sourced  # unbound brain water volume reached by systemic drug
    mpfc_volume: Sourced  # local distribution volume of an intracortical injection
    csf_volume: Sourced  # ICV injection space
    allometry: Allometry
    covariates: CovariateDistribution
    routes: list[Route]
    # species-level default absorption when a drug gives none for a route
    default_absorption: dict[Route, RouteAbsorption] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class Technique(_Strict):
    """One assay technique of assays.toml: its measurement error ``cv`` (fraction),
    ``reference`` (``vehicle``: terminal tissue assay; ``baseline``: in vivo, repeated),
    ``plot`` and the contract ``readouts`` it measures; ``bin`` is a collection interval."""

    id: str
    name: str
    cv: Sourced
    reference: Literal["vehicle", "baseline"]
    plot: Literal["bars", "time_course"]
    readouts: tuple[str, ...]
    bin: Sourced | None = None
