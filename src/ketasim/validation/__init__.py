"""Validation against published results (``ketasim validate``): the scorecard of cases.

Each case is a small TOML data file in ``cases/`` (one claim of the seed or of the
reference data): an ``id``, the ``claim`` in one sentence, its ``source`` (citation and
evidence tag), a scenario, and ``[[checks]]`` on the simulated summary. The case format is
read by :mod:`ketasim.validation.schema`, the cases are run by
:mod:`ketasim.validation.runner` (generic: no case is special-cased in code), and
:mod:`ketasim.io.scorecard` draws the HTML scorecard.

Case file::

    id = "example_response_24h"
    claim = "One 0.5 mg/kg infusion gives a 24-h response rate of 25-85 %."
    source = "Seed 001 Table 1 [29]"
    notes = "why the tolerance is what it is"          # optional
    role = "calibration"  # optional: a model constant was fitted to this case (a
                          # calibration target); default "validation" (independent)
    # optional: the published finding checked, as a row of a published table
    published = { table = "seed Table 1", row = 4, parameter = "Response Rate", finding = "25%" }

    # the scenario: one of
    [scenario]                                          # an inline scenario table
    scenario_file = "../scenarios/seed_crossover.toml"  # a file, relative to the case file
    scenario_case = "other_case_id"                     # another case's scenario (run once)

    [overrides]                                         # optional, deep-merged into it
    population = { size = 120, variability = false }
    "outputs.times" = ["2 h", "1 d"]                    # dotted keys reach into tables

    [[checks]]
    label = "response at 24 h"                          # optional; made from value if absent
    value = { readout = "response", arm = "ketamine", period = 1, time = "1 d" }
    min = 0.25                                          # range (either bound may be left out)
    max = 0.85

A ``value`` names one row of ``RunResult.summary``: ``readout``, ``arm`` (or
``"<arm> vs <control>"``), ``period`` (default 1), ``time`` (a time string) and
``statistic`` (default ``fraction`` for response/remission/relapse_free, else ``mean``);
instead of ``time``, ``mean_over = ["0 min", "40 min"]`` takes the time-weighted mean over
the output times of that window (both ends must be output times).
Values are in the summary's units (fractions as 0-1, shown as %). Kinds of check:

- range: ``min`` and/or ``max``;
- tolerance: ``expected`` with ``abs_tol`` or ``rel_tol``;
- comparison: ``compare_to`` (another value), ``op`` ``"<"`` or ``">"``, optional
  ``factor`` (value op factor x other);
- ratio: ``relative_to`` (another value) with a range or tolerance on value / other;
- time of peak: ``peak_between = ["12 h", "36 h"]``, ``peak = "max"`` (default) or
  ``"min"``, over all output times of the value (``time`` left out);
- crossing time: ``crosses = 0.5`` with ``crossing_between = ["22 d", "36 d"]``: the
  first time (linear interpolation between output times) the value falls to the
  threshold (``direction = "up"``: rises to it).

Scenarios that resolve to the same validated scenario are run once.
"""

from ketasim.validation.runner import (
    case_problems,
    evaluate,
    run_case,
    run_validation,
    scenario_key,
)
from ketasim.validation.schema import (
    COLUMNS,
    Case,
    Check,
    CheckResult,
    Published,
    ValueSpec,
    cases_dir,
    load_cases,
    parse_case,
    published_table,
)

__all__ = ["COLUMNS", "Case", "Check", "CheckResult", "Published", "ValueSpec",
           "case_problems", "cases_dir", "evaluate", "load_cases", "parse_case",
           "published_table", "run_case", "run_validation", "scenario_key"]
