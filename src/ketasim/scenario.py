"""Scenario files: the public contract (docs/scenario-format.md) as frozen pydantic models.

A scenario is data: a TOML file or a dict with the same structure. :func:`load_scenario`
validates it and returns a :class:`Scenario`; anything wrong becomes ONE
:class:`~ketasim.errors.ScenarioError` line naming the field path (``arms[0].doses[0].amount``),
the value and what is allowed. No pydantic or pint traceback escapes.

Times are kept as the strings the user wrote (``"40 min"``, ``"-30 min"``, ``"7 d"``) and read
in hours by the helpers (``Dose.times_h()``, ``Scenario.follow_up_h``). Dose amounts are kept
as strings too; ``Dose.basis`` / ``Dose.magnitude`` give the canonical form (ug, ug/kg, nmol,
nmol/kg).

Extensions beyond the contract (documented in docs/scenario-format.md, "Extensions"):

- ``[model]``: ``hypotheses`` (weights in [0, 1] of the named mechanisms ``disinhibition``
  (default 1.0), ``rest_block_eef2`` (0.5) and ``hnk_ampa`` (1.0)) and ``parameters``
  (overrides of mechanism parameters by name; finite numbers, checked by the model).
- ``[population]``: ``confirm_large`` (needed above 100000 subjects), ``age``,
  ``family_history_aud_fraction``, ``inclusion = { madrs_min }`` (human only) and a rodent
  stress schedule ``stress = { start, end }``.
- ``[design]``: ``follow_up`` for parallel and single-group designs (default: the last output
  time). In a crossover each subject gets both arms in random order; each period is
  followed for ``period_length``, then ``washout`` passes before period 2's time zero
  (period 2 starts ``period_length + washout`` after period 1).
- ``[outputs]``: ``response_threshold`` (percent), ``remission_madrs``, ``remission_hamd17``,
  ``primary_scale``.
- ``[engine]``: ``method`` (auto | reference | batched | fast), ``rtol``, ``atol``.
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from ketasim import units
from ketasim.catalog import ROUTES, SPECIES, catalog
from ketasim.errors import ArgumentError, CatalogError, ScenarioError
from ketasim.readouts import FIXED, lookup
from ketasim.units import format_hours

__all__ = [
    "Arm",
    "Design",
    "Dose",
    "EngineOptions",
    "Hypotheses",
    "ModelOptions",
    "Outputs",
    "Population",
    "Scenario",
    "default_scenario",
    "load_scenario",
]

HUMAN_CONDITIONS = ("trd", "mdd", "bipolar", "healthy")
RODENT_CONDITIONS = ("naive", "cus", "social_defeat", "chronic_cort")
STRESSED = ("cus", "social_defeat", "chronic_cort")
KNOCKOUTS = ("glun2b_interneuron", "glun2b_pyramidal", "glua2", "glun2d")
DESIGNS = ("parallel", "crossover", "single_group")
BLINDING = ("double_blind", "open_label")
ENGINES = ("auto", "reference", "batched", "fast")
SCALES = ("madrs", "hamd17")
LOCAL_ROUTES = ("icv", "intracortical")
SEED_TIMES = ("40 min", "80 min", "110 min", "230 min", "1 d", "2 d", "3 d", "7 d")
HUMAN_READOUTS = ("plasma.ketamine", "madrs", "response", "remission")
RODENT_READOUTS = ("plasma.ketamine", "fst.immobility")
HUMAN_ONLY = frozenset(
    {"madrs", "hamd17", "madrs.change", "hamd17.change", "response", "remission",
     "relapse_free", "cadss"}
)
RODENT_ONLY = frozenset({"fst.immobility", "sucrose_preference", "nsf.latency"})
LARGE = 100_000
SEED_MAX = 2**63 - 1  # TOML's largest integer; the subject keys hash the seed as uint64
NOT_A_DOSE = "is not a dose; use mg/kg, mg, ug/kg or nmol"
NOT_A_TIME = 'is not a time; write it with units, e.g. "40 min", "2 h" or "7 d"'
_MASS_UNITS = frozenset({"nanogram", "microgram", "milligram", "gram"})
_MOLE_UNITS = frozenset({"picomole", "nanomole", "micromole", "millimole"})


# ----------------------------------------------------------------------------- errors


class _Sentinel:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


MISSING = _Sentinel("nothing")  # shown as "<field>: nothing given; it is required"
_UNSET = _Sentinel("<unset>")


class _Bad(ValueError):
    """A validation failure: ``allowed`` says what is allowed; ``path`` is relative to the
    object being validated, ``value`` the offending value (default: the validator's input)."""

    def __init__(self, allowed: str, value: Any = _UNSET, path: tuple[str | int, ...] = ()):
        super().__init__(allowed)
        self.allowed = allowed
        self.value = value
        self.path = tuple(path)


_MISSING_HINTS = {
    "amount": ' (with units, e.g. "0.5 mg/kg")',
    "drug": " (a catalog drug, see `ketasim drugs`)",
    "route": f" ({', '.join(ROUTES)})",
    "species": f" ({', '.join(SPECIES)})",
    "arms": " (at least one [[arms]] table)",
    "doses": " (at least one [[arms.doses]] table)",
}


def _path(loc: list[str | int]) -> str:
    """``['arms', 0, 'doses', 1, 'at']`` -> ``arms[0].doses[1].at``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "scenario"


def _shown(value: Any) -> Any:
    """The value as it fits on one line (long or multi-line values are shortened)."""
    text = value if isinstance(value, str) else repr(value)
    if "\n" not in text and "\r" not in text and len(text) <= 120:
        return value
    flat = text.replace("\r", "\\r").replace("\n", "\\n")
    flat = flat[:117] + "..." if len(flat) > 120 else flat
    return flat if isinstance(value, str) else _Sentinel(flat)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _translate(exc: ValidationError) -> ScenarioError:
    """The first pydantic error as one ScenarioError line."""
    err = exc.errors(include_url=False)[0]
    loc = list(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, _Bad):
        value = err.get("input") if cause.value is _UNSET else cause.value
        return ScenarioError(_path(loc + list(cause.path)), _shown(value), cause.allowed)
    if err["type"] == "missing":
        hint = _MISSING_HINTS.get(str(loc[-1]), "") if loc else ""
        return ScenarioError(_path(loc), MISSING, f"given; it is required{hint}")
    msg = str(err["msg"])
    for prefix, repl in (("Input should be", "should be"), ("Value error, ", "")):
        if msg.startswith(prefix):
            msg = repl + msg[len(prefix):]
    return ScenarioError(_path(loc), _shown(err.get("input")), _one_line(msg))


# ------------------------------------------------------------------------ value types


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Bad("is not a number")
    if not math.isfinite(v):
        raise _Bad("is not a finite number")
    return v


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad("is not a whole number")
    return v


def _time(v: Any) -> str:
    if not isinstance(v, str):
        raise _Bad(NOT_A_TIME)
    try:
        h = units.hours(v)
    except ValueError:
        raise _Bad(NOT_A_TIME) from None
    if not math.isfinite(h):  # "1e308 d" is finite in days, not in hours
        raise _Bad("is too long; a time must be finite in hours")
    return v.strip()


def _one_of(noun: str, options: tuple[str, ...]) -> BeforeValidator:
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in options:
            raise _Bad(f"is not {noun}; use one of: {', '.join(options)}")
        return v

    return BeforeValidator(check)


def _percent(v: Any) -> float:
    """``50``, ``"50 %"``, ``"50%"`` or ``"50 percent"`` -> 50.0 (percent)."""
    if isinstance(v, str):
        text = v.strip().removesuffix("%").removesuffix("percent").strip()
        try:
            v = float(text)
        except ValueError:
            raise _Bad('is not a percentage; write e.g. 50 or "50 %"') from None
    value = _number(v)
    if not 0 < value <= 100:
        raise _Bad("is not a percentage in (0, 100]")
    return value


Num = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_integer)]
Fraction = Annotated[float, BeforeValidator(_number), Field(ge=0, le=1)]
Time = Annotated[str, BeforeValidator(_time)]
SpeciesName = Annotated[str, _one_of("a species", SPECIES)]
Condition = Annotated[str, _one_of("a condition", HUMAN_CONDITIONS + RODENT_CONDITIONS)]
Knockout = Annotated[str, _one_of("a knockout", KNOCKOUTS)]
DesignType = Annotated[str, _one_of("a design", DESIGNS)]
Blinding = Annotated[str, _one_of("a blinding", BLINDING)]
EngineName = Annotated[str, _one_of("an engine", ENGINES)]
ScaleName = Annotated[str, _one_of("a rating scale", SCALES)]
RouteName = Annotated[str, _one_of("a route", ROUTES)]
Percent = Annotated[float, BeforeValidator(_percent)]


def _h(text: str) -> float:
    """Hours of an already validated time string."""
    return units.hours(text)


# ------------------------------------------------------------------------------ models


class _Model(BaseModel):
    """Frozen, closed tables: unknown keys are rejected with the list of allowed ones."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    noun: ClassVar[str] = "key"

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        allowed = ", ".join(cls.model_fields)
        if not isinstance(data, dict):
            raise _Bad(f"is not a table; expected a table with keys: {allowed}")
        for key in data:
            if key not in cls.model_fields:
                raise _Bad(f"is not a known {cls.noun}; allowed: {allowed}", value=key)
        return cls._fill(dict(data))

    @classmethod
    def _fill(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults that depend on other keys (hook; returns the data)."""
        return data


class MeanSd(_Model):
    """A normal covariate distribution, ``mean`` (> 0) and ``sd`` (>= 0), in the covariate's
    unit (weight in kg, age in years)."""

    mean: Num = Field(gt=0)
    sd: Num = Field(ge=0)


class BdnfGenotypes(_Model):
    """BDNF Val66Met genotype fractions; they sum to 1."""

    val_val: Fraction
    val_met: Fraction
    met_met: Fraction

    @model_validator(mode="after")
    def _sums_to_one(self) -> BdnfGenotypes:
        total = self.val_val + self.val_met + self.met_met
        if abs(total - 1.0) > 1e-6:
            raise _Bad(f"fractions sum to {total:g}; val_val + val_met + met_met must be 1",
                       value=self.model_dump())
        return self


class Inclusion(_Model):
    """Clinical inclusion criteria (human only): minimum baseline MADRS (points, 0-60)."""

    madrs_min: Num = Field(default=22.0, ge=0, le=60)


class Stress(_Model):
    """A rodent chronic stress schedule, times relative to time zero (e.g. -21 d to 0 d)."""

    start: Time = "-21 d"
    end: Time = "0 d"

    @property
    def start_h(self) -> float:
        """Start of the stress (h, relative to time zero)."""
        return _h(self.start)

    @property
    def end_h(self) -> float:
        """End of the stress (h, relative to time zero)."""
        return _h(self.end)

    @model_validator(mode="after")
    def _ordered(self) -> Stress:
        if _h(self.end) <= _h(self.start):
            raise _Bad(f'is not after the start ("{self.start}"): the stress ends before it '
                       "starts", value=self.end, path=("end",))
        return self


class Population(_Model):
    """Who is dosed. ``size`` is per arm (parallel) or per study (crossover, single group).

    Covariate overrides left out (None) take the species defaults from the catalog and the
    model (weight in kg, age in years, fractions in [0, 1]).
    """

    size: Int = Field(default=100, ge=1)
    confirm_large: StrictBool = False
    condition: Condition | None = None
    weight_kg: MeanSd | None = None
    age: MeanSd | None = None
    female_fraction: Fraction | None = None
    bdnf_val66met: BdnfGenotypes | None = None
    cyp2b6_poor_fraction: Fraction | None = None
    family_history_aud_fraction: Fraction | None = None
    knockouts: list[Knockout] = Field(default_factory=list)
    variability: StrictBool = True
    inclusion: Inclusion | None = None
    stress: Stress | None = None

    @model_validator(mode="after")
    def _checks(self) -> Population:
        if self.size > LARGE and not self.confirm_large:
            raise _Bad(f"subjects is more than {LARGE}; add confirm_large = true to "
                       "[population] to run it", value=self.size, path=("size",))
        for i, ko in enumerate(self.knockouts):
            if ko in self.knockouts[:i]:
                raise _Bad("is listed twice", value=ko, path=("knockouts", i))
        return self

    @property
    def genotype_mix(self) -> tuple[float, float, float] | None:
        """BDNF (val_val, val_met, met_met) fractions; None: the species default."""
        g = self.bdnf_val66met
        return (g.val_val, g.val_met, g.met_met) if g is not None else None

    @property
    def madrs_min(self) -> float | None:
        """Minimum baseline MADRS of the inclusion criteria; None: no criterion."""
        return self.inclusion.madrs_min if self.inclusion is not None else None


class Design(_Model):
    """Trial design. Crossover: ``period_length`` (follow-up per period, default 7 d) and
    ``washout`` (from the end of period 1's follow-up to period 2's time zero, default
    14 d). Parallel and single group: ``follow_up`` (default: the last output time).
    ``blinding``: ``double_blind`` (default) or ``open_label`` (patients know they receive
    the active drug, which raises expectancy)."""

    type: DesignType = "parallel"
    blinding: Blinding = "double_blind"
    washout: Time | None = None
    period_length: Time | None = None
    follow_up: Time | None = None

    @classmethod
    def _fill(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("type") == "crossover":
            data.setdefault("washout", "14 d")
            data.setdefault("period_length", "7 d")
        return data

    @model_validator(mode="after")
    def _checks(self) -> Design:
        crossover = self.type == "crossover"
        for key in ("washout", "period_length", "follow_up"):
            value = getattr(self, key)
            if value is None:
                continue
            if (key == "follow_up") == crossover:
                where = "parallel and single_group" if crossover else "crossover"
                raise _Bad(f"is only for {where} designs; this design is {self.type}",
                           value=value, path=(key,))
            if _h(value) <= 0:
                raise _Bad("must be longer than 0", value=value, path=(key,))
        return self

    @property
    def washout_h(self) -> float:
        """Washout in hours (0 unless a crossover)."""
        return _h(self.washout) if self.washout is not None else 0.0

    @property
    def period_length_h(self) -> float:
        """Follow-up per crossover period in hours (0 unless a crossover)."""
        return _h(self.period_length) if self.period_length is not None else 0.0


class Dose(_Model):
    """One dosing regimen of one drug in an arm.

    ``amount`` is per administration, with units (mg/kg, mg, ug/kg, nmol, ...); infusions
    deliver it evenly over ``duration``. Start times are ``at`` (a list; negative =
    pretreatment) or ``every`` + ``count`` from ``start`` (default "0 h").
    """

    drug: str
    amount: str
    route: RouteName
    duration: Time | None = None
    at: list[Time] | None = None
    every: Time | None = None
    count: Int | None = Field(default=None, ge=1, le=1000)
    start: Time | None = None

    @classmethod
    def _fill(cls, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("every") is not None:
            data.setdefault("start", "0 h")
        if isinstance(data.get("at"), str):
            data["at"] = [data["at"]]
        return data

    @field_validator("drug", mode="before")
    @classmethod
    def _resolve(cls, v: Any) -> str:
        cat = catalog()
        ids = ", ".join(sorted(cat.dosable()))
        if not isinstance(v, str):
            raise _Bad(f"is not a drug name; use one of: {ids}")
        try:
            drug_id = cat.resolve(v)
        except CatalogError:
            raise _Bad(f"is not a drug in the catalog; use one of: {ids}") from None
        if not cat.drugs[drug_id].dosable:
            raise _Bad(f"({drug_id}) cannot be dosed as such; use one of: {ids}")
        return drug_id

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> str:
        if isinstance(v, str) and not units.starts_with_number(v):
            raise _Bad('does not start with a finite number; write the amount as a number '
                       'with units, e.g. "0.5 mg/kg"')
        if not isinstance(v, str) or not _dose_units(v):
            raise _Bad(NOT_A_DOSE)
        if units.dose_basis(v)[1] < 0:
            raise _Bad("is negative; a dose is 0 or more")
        if not math.isfinite(units.dose_basis(v)[1]):  # "1e308 g" overflows in ug
            raise _Bad("is too large; a dose must be finite in ug or nmol (per kg)")
        return v.strip()

    @field_validator("at")
    @classmethod
    def _some_times(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:
            raise _Bad('has no times; give at least one, e.g. at = ["0 h"]')
        return v

    @model_validator(mode="after")
    def _checks(self) -> Dose:
        self._check_schedule()
        self._check_duration()
        if self.route in LOCAL_ROUTES and self.basis.endswith("_per_kg"):
            raise _Bad(f"is per body weight; {self.route} doses must be absolute "
                       "(mg, ug or nmol)", value=self.amount, path=("amount",))
        return self

    def _check_schedule(self) -> None:
        if self.at is not None and self.every is not None:
            raise _Bad("is given together with at; use either at = [...] or every + count",
                       value=self.every, path=("every",))
        if self.at is None and self.every is None:
            raise _Bad('given; give start times at = ["0 h"], or every + count',
                       value=MISSING, path=("at",))
        if self.every is not None and self.count is None:
            raise _Bad("given; every needs a count", value=MISSING, path=("count",))
        if self.every is None and self.count is not None:
            raise _Bad("given; count needs every", value=MISSING, path=("every",))
        if self.every is None and self.start is not None:
            raise _Bad("is only for every + count; with at, list the times",
                       value=self.start, path=("start",))
        if self.every is not None and _h(self.every) <= 0:
            raise _Bad("must be longer than 0", value=self.every, path=("every",))

    def _check_duration(self) -> None:
        if self.route == "iv_infusion" and self.duration is None:
            raise _Bad('given; an iv_infusion needs a duration such as "40 min"',
                       value=MISSING, path=("duration",))
        if self.route != "iv_infusion" and self.duration is not None:
            raise _Bad(f"is only for iv_infusion doses, not for {self.route}",
                       value=self.duration, path=("duration",))
        if self.duration is not None and _h(self.duration) <= 0:
            raise _Bad("must be longer than 0", value=self.duration, path=("duration",))

    @property
    def basis(self) -> units.DoseBasis:
        """``mass``, ``mass_per_kg``, ``moles`` or ``moles_per_kg``."""
        return units.dose_basis(self.amount)[0]

    @property
    def magnitude(self) -> float:
        """Amount per administration in canonical units: ug, ug/kg, nmol or nmol/kg."""
        return units.dose_basis(self.amount)[1]

    @property
    def duration_h(self) -> float:
        """Infusion duration in hours; 0 for every other route."""
        return _h(self.duration) if self.duration is not None else 0.0

    def times_h(self) -> list[float]:
        """All start times of this regimen in hours, sorted."""
        if self.at is not None:
            return sorted(_h(t) for t in self.at)
        first, step = _h(self.start or "0 h"), _h(self.every or "0 h")
        return [first + i * step for i in range(self.count or 0)]

    def where(self, hours: float, prefix: tuple[str | int, ...] = ()) -> dict[str, Any]:
        """Value and path for a message about the start at ``hours``: ``at[k]`` and the
        string written there, or ``every`` and the time in hours."""
        for k, text in enumerate(self.at or []):
            if _h(text) == hours:
                return {"value": text, "path": (*prefix, "at", k)}
        return {"value": format_hours(hours), "path": (*prefix, "every")}


def _dose_units(text: str) -> bool:
    """True for ng/ug/mg/g or pmol/nmol/umol/mmol, optionally per kg."""
    try:
        q = units.parse(text)
        units.dose_basis(text)
    except ValueError:
        return False
    items = {str(k): v for k, v in q.unit_items()}
    num = [k for k, p in items.items() if p == 1]
    den = [k for k, p in items.items() if p == -1]
    return (
        len(num) == 1 and len(num) + len(den) == len(items)
        and num[0] in _MASS_UNITS | _MOLE_UNITS and den in ([], ["kilogram"])
    )


class Arm(_Model):
    """A treatment arm: a unique name and a non-empty list of doses."""

    name: str
    doses: list[Dose]

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise _Bad("is not a name; an arm needs a non-empty name")
        return v.strip()

    @model_validator(mode="after")
    def _checks(self) -> Arm:
        if not self.doses:
            raise _Bad("has no doses; an arm needs at least one [[arms.doses]] table",
                       value=[], path=("doses",))
        self._no_overlapping_infusions()
        return self

    def _no_overlapping_infusions(self) -> None:
        runs = sorted(
            (t, t + d.duration_h, j)
            for j, d in enumerate(self.doses) if d.route == "iv_infusion"
            for t in d.times_h()
        )
        running: dict[str, tuple[float, float, int]] = {}  # drug -> latest (start, end, j)
        for start, end, j in runs:
            drug = self.doses[j].drug
            if drug in running and start < running[drug][1]:
                s0, e0, j0 = running[drug]
                raise _Bad(f"starts during the {drug} infusion of doses[{j0}] "
                           f"({format_hours(s0)} to {format_hours(e0)}); one infusion of a "
                           "drug at a time",
                           **self.doses[j].where(start, ("doses", j)))
            if drug not in running or end > running[drug][1]:
                running[drug] = (start, end, j)

    def first_h(self) -> float:
        """Earliest dose start (h); negative with a pretreatment."""
        return min(min(d.times_h()) for d in self.doses)

    def last_end_h(self) -> float:
        """Latest end of any dose (h): start plus infusion duration."""
        return max(max(d.times_h()) + d.duration_h for d in self.doses)


class Outputs(_Model):
    """What is read out when: ``times`` (>= 0, within follow-up) and ``readouts``."""

    times: list[Time] = Field(default_factory=lambda: list(SEED_TIMES))
    readouts: list[str] = Field(default_factory=lambda: list(HUMAN_READOUTS))
    response_threshold: Percent = 50.0
    remission_madrs: Num = Field(default=10.0, ge=0, le=60)
    remission_hamd17: Num = Field(default=7.0, ge=0, le=52)
    primary_scale: ScaleName = "madrs"

    @field_validator("times")
    @classmethod
    def _times(cls, v: list[str]) -> list[str]:
        if not v:
            raise _Bad("has no times; give at least one output time")
        for i, t in enumerate(v):
            if _h(t) < 0:
                raise _Bad("is before time zero; output times must be >= 0", value=t, path=(i,))
            if _h(t) in [_h(s) for s in v[:i]]:
                raise _Bad("is listed twice", value=t, path=(i,))
        return v

    @field_validator("readouts", mode="before")
    @classmethod
    def _readouts(cls, v: Any) -> list[str]:
        if not isinstance(v, list) or not v:
            raise _Bad("is not a list of readouts; give at least one, e.g. [\"madrs\"]")
        families = catalog().families()
        for i, name in enumerate(v):
            if not isinstance(name, str) or lookup(name, families) is None:
                raise _Bad(f"is not a readout; use one of: {_readout_names(families)}",
                           value=name, path=(i,))
            if name in v[:i]:
                raise _Bad("is listed twice", value=name, path=(i,))
        return v


def _readout_names(families: set[str]) -> str:
    fams = "|".join(sorted(families)) or "none yet"
    return ", ".join(FIXED) + f", plasma.<x> or brain.<x> for x in {fams}"


class Hypotheses(_Model):
    """Weights (0-1) of the competing mechanisms of the first event (see docs/model.md)."""

    noun: ClassVar[str] = "hypothesis"
    disinhibition: Fraction = 1.0
    rest_block_eef2: Fraction = 0.5
    hnk_ampa: Fraction = 1.0


class ModelOptions(_Model):
    """``hypotheses`` weights and ``parameters`` overrides (name -> value in the parameter's
    catalog unit; names are checked by the model, not here)."""

    hypotheses: Hypotheses = Field(default_factory=Hypotheses)
    parameters: dict[str, float] = Field(default_factory=dict)

    @field_validator("parameters", mode="before")
    @classmethod
    def _shape(cls, v: Any) -> dict[str, float]:
        if not isinstance(v, dict):
            raise _Bad("is not a table of parameter = number")
        out: dict[str, float] = {}
        for key, value in v.items():
            if not isinstance(key, str) or not key.strip():
                raise _Bad("is not a parameter name", value=key)
            try:
                out[key] = _number(value)
            except _Bad as bad:
                raise _Bad(bad.allowed, value=value, path=(key,)) from None
        return out


class SensitivityOptions(_Model):
    """``[sensitivity]``: what ``ketasim sensitivity`` varies and reads out by default.
    ``parameters``: dotted catalog names or globs (``mechanism.*``, ``ratings.*``,
    ``drugs.ketamine.pd.*``); ``outputs``: ``READOUT@TIME[:ARM[ vs ARM]]``; names are
    checked against the model when the analysis runs (docs/sensitivity.md)."""

    parameters: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    method: Literal["morris", "sobol", "efast"] | None = None
    n: Int | None = Field(default=None, ge=2)
    mode: Literal["typical", "population"] | None = None
    subjects: Int | None = Field(default=None, ge=2)


class EngineOptions(_Model):
    """Solver choice and tolerances (relative, absolute in each state's unit)."""

    method: EngineName = "auto"
    rtol: Num = Field(default=1e-6, gt=0, lt=1)
    atol: Num = Field(default=1e-9, gt=0)


class Scenario(_Model):
    """One in silico experiment (see the module docstring and docs/scenario-format.md)."""

    name: str
    species: SpeciesName
    seed: Int = Field(default=0, ge=0, le=SEED_MAX)
    population: Population = Field(default_factory=Population)
    design: Design = Field(default_factory=Design)
    arms: list[Arm]
    outputs: Outputs = Field(default_factory=Outputs)
    model: ModelOptions = Field(default_factory=ModelOptions)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    sensitivity: SensitivityOptions = Field(default_factory=SensitivityOptions)

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, v: Any) -> str:
        if not isinstance(v, str) or not v.strip():
            raise _Bad("is not a name; give the scenario a non-empty name")
        return v.strip()

    @classmethod
    def _fill(cls, data: dict[str, Any]) -> dict[str, Any]:
        for key in ("population", "design", "outputs", "model", "engine", "sensitivity"):
            value = data.get(key, {})
            if isinstance(value, BaseModel):
                value = value.model_dump()
            data[key] = dict(value) if isinstance(value, dict) else value
        species = data.get("species")
        pop, design, out = data["population"], data["design"], data["outputs"]
        if isinstance(pop, dict) and species in SPECIES:
            _fill_population(pop, species)
        if isinstance(out, dict) and species in SPECIES and species != "human":
            out.setdefault("readouts", list(RODENT_READOUTS))
        if isinstance(design, dict) and isinstance(out, dict):
            _fill_follow_up(design, out)
        return data

    @model_validator(mode="after")
    def _checks(self) -> Scenario:
        _check_species(self)
        _check_population(self)
        _check_arms(self)
        _check_routes(self)
        _check_timing(self)
        _check_readouts(self)
        return self

    # ------------------------------------------------------------------ helpers (hours)

    @property
    def follow_up_h(self) -> float:
        """Follow-up per period in hours (crossover: ``period_length``)."""
        d = self.design
        text = d.period_length if d.type == "crossover" else d.follow_up
        return _h(text) if text is not None else max(self.output_times_h)

    @property
    def output_times_h(self) -> list[float]:
        """Output times in hours, sorted."""
        return sorted(_h(t) for t in self.outputs.times)

    @property
    def period_starts_h(self) -> list[float]:
        """Time zero of each period on one clock (h): [0], or in a crossover
        [0, period_length + washout]."""
        d = self.design
        if d.type == "crossover":
            return [0.0, d.period_length_h + d.washout_h]
        return [0.0]

    def arm(self, name: str) -> Arm:
        """The arm called ``name``; KeyError if there is none."""
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The scenario with every default filled in, as plain JSON-able data; None means
        "the species default" for covariate overrides. ``load_scenario`` of it is equal."""
        return self.model_dump(mode="json")


def _fill_population(pop: dict[str, Any], species: str) -> None:
    pop.setdefault("condition", "trd" if species == "human" else "naive")
    if species != "human" and pop.get("condition") in STRESSED and "stress" not in pop:
        pop["stress"] = {"start": "-21 d", "end": "0 d"}


def _fill_follow_up(design: dict[str, Any], out: dict[str, Any]) -> None:
    if design.get("type", "parallel") == "crossover" or design.get("follow_up") is not None:
        return
    times = out.get("times", SEED_TIMES)
    try:
        design["follow_up"] = max(times, key=units.hours)
    except (TypeError, ValueError):
        return  # the outputs validator reports the bad time


# ------------------------------------------------------------------ cross-table checks


def _check_species(s: Scenario) -> None:
    known = catalog().species
    if s.species not in known:
        raise _Bad(f"is not in the catalog yet; use one of: {', '.join(sorted(known))}",
                   value=s.species, path=("species",))


def _check_population(s: Scenario) -> None:
    p, human = s.population, s.species == "human"
    allowed = HUMAN_CONDITIONS if human else RODENT_CONDITIONS
    if p.condition not in allowed:
        raise _Bad(f"is not a {s.species} condition; use one of: {', '.join(allowed)}",
                   value=p.condition, path=("population", "condition"))
    if p.inclusion is not None and not human:
        raise _Bad("is for human trials only", value=p.inclusion.model_dump(),
                   path=("population", "inclusion"))
    if p.stress is not None and human:
        raise _Bad("is for rodents only; use condition to describe patients",
                   value=p.stress.model_dump(), path=("population", "stress"))
    if p.stress is not None and p.condition not in STRESSED:
        raise _Bad(f"is given but the condition is {p.condition}; use one of "
                   f"{', '.join(STRESSED)}, or drop the stress schedule",
                   value=p.stress.model_dump(), path=("population", "stress"))
    if not human and p.size < 2:  # lab statistics (SEM, tests) need two animals a group
        raise _Bad("is too few animals per group for the laboratory statistics (SEM, t-test, "
                   "ANOVA); use 2 or more", value=p.size, path=("population", "size"))


def _check_arms(s: Scenario) -> None:
    if not s.arms:
        raise _Bad("has no arms; a scenario needs at least one [[arms]] table",
                   value=[], path=("arms",))
    for i, a in enumerate(s.arms):
        if a.name in [b.name for b in s.arms[:i]]:
            raise _Bad("is used by two arms; arm names must be unique",
                       value=a.name, path=("arms", i, "name"))
    need = {"crossover": 2, "single_group": 1}.get(s.design.type)
    if need is not None and len(s.arms) != need:
        raise _Bad(f"needs exactly {need} arm{'s' if need > 1 else ''}; the scenario has "
                   f"{len(s.arms)}", value=s.design.type, path=("design", "type"))


def _check_routes(s: Scenario) -> None:
    cat = catalog()
    for i, a in enumerate(s.arms):
        for j, d in enumerate(a.doses):
            routes = cat.routes(d.drug, s.species)
            if d.route not in routes:
                ok = ", ".join(routes) if routes else "none in the catalog"
                raise _Bad(f"is not a route for {d.drug} in {s.species}; allowed: {ok}",
                           value=d.route, path=("arms", i, "doses", j, "route"))


def _check_timing(s: Scenario) -> None:
    end = s.follow_up_h
    source = "design.period_length" if s.design.type == "crossover" else "design.follow_up"
    for k, t in enumerate(s.outputs.times):
        if _h(t) > end + 1e-9:
            raise _Bad(f"is after the end of follow-up ({format_hours(end)}, {source})",
                       value=t, path=("outputs", "times", k))
    for i, a in enumerate(s.arms):
        for j, d in enumerate(a.doses):
            late = [t for t in d.times_h() if t > end + 1e-9]
            if late:
                raise _Bad(f"starts after the end of follow-up ({format_hours(end)}, "
                           f"{source})",
                           **d.where(late[0], ("arms", i, "doses", j)))
    if s.design.type == "crossover":
        _check_washout(s)


def _check_washout(s: Scenario) -> None:
    """The washout outlasts each arm's dosing (infusions, pretreatments), so that no dose of
    period 2 falls inside period 1's follow-up."""
    d = s.design
    for a in s.arms:
        span = a.last_end_h() - a.first_h()
        if d.washout_h <= span:
            raise _Bad(f'is not longer than the dosing of arm "{a.name}" ({format_hours(span)}); '
                       "the washout must outlast every infusion", value=d.washout,
                       path=("design", "washout"))


def _check_readouts(s: Scenario) -> None:
    wrong = RODENT_ONLY if s.species == "human" else HUMAN_ONLY
    kind = "rodent" if s.species == "human" else "human"
    for i, name in enumerate(s.outputs.readouts):
        if name in wrong:
            raise _Bad(f"is a {kind} readout; it cannot be read out in a {s.species}",
                       value=name, path=("outputs", "readouts", i))


# ------------------------------------------------------------------------------ loading


def _validate(data: Any) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc) from None


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML table in ``path``; ScenarioError naming the file if it cannot be had."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError("file", str(path), "does not exist") from None
    except IsADirectoryError:
        raise ScenarioError("file", str(path), "is a directory, not a scenario file") from None
    except UnicodeDecodeError:
        raise ScenarioError("file", str(path), "is not a text (TOML) file") from None
    except OSError as exc:
        raise ScenarioError("file", str(path), f"cannot be read ({exc.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("file", str(path), f"is not valid TOML: {_one_line(str(exc))}") \
            from None
    except RecursionError:  # tomllib reads nested arrays and tables recursively
        raise ScenarioError("file", str(path), "nests arrays or tables too deeply to read; "
                            "a scenario needs a few levels") from None


def load_scenario(source: str | Path | dict[str, Any] | Scenario) -> Scenario:
    """Validate a scenario from a TOML file path or a dict; ScenarioError (one line) if bad."""
    if isinstance(source, Scenario):
        return source
    if isinstance(source, dict):
        return _validate(source)
    if isinstance(source, str | Path):
        return _validate(_read_toml(Path(source)))
    raise ArgumentError("source", f"a {type(source).__name__} is not a TOML file path or a "
                        "dict")


@lru_cache(maxsize=1)
def _default_text() -> str:
    return resources.files("ketasim.scenarios").joinpath("default.toml").read_text("utf-8")


def default_scenario() -> Scenario:
    """The seed's randomized saline-controlled crossover (src/ketasim/scenarios/default.toml)."""
    return _validate(tomllib.loads(_default_text()))
