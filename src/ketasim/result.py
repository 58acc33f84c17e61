"""The result of running a scenario: trajectories, the summary table and the manifest.

``RunResult.data`` is an ``xarray.Dataset`` with dimensions ``subject``, ``period`` and
``time``:

- one data variable per readout (contract names, e.g. ``plasma.ketamine``, ``madrs``),
  dims ``(subject, period, time)``, ``attrs["unit"]`` the contract unit;
- coordinate ``time`` in hours from the start of the period (its first active dose);
- coordinate ``arm`` (dims ``(subject, period)``): the arm a subject was in during a
  period (crossovers change arm between periods); ``sequence`` (dims ``subject``);
- ``status`` (dims ``subject``): ``ok`` or ``failed``; ``message`` the solver's reason;
- subject covariates as coordinates on ``subject`` (``weight``, ``female``, ...).

``RunResult.summary`` is a pandas DataFrame with the contract columns
``arm, period, readout, time_h, statistic, value, unit, n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import xarray as xr

SUMMARY_COLUMNS = ["arm", "period", "readout", "time_h", "statistic", "value", "unit", "n"]


@dataclass
class RunResult:
    """Everything a run produced; written to disk by ``ketasim.io.write_results``."""

    scenario: Any  # ketasim.scenario.Scenario (kept loose to avoid an import cycle)
    data: xr.Dataset
    summary: pd.DataFrame
    manifest: dict[str, Any] = field(default_factory=dict)
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # text that goes with an extra table of the same name (how its values are read off),
    # written by the analysis that made the table; the report shows it beside the table
    notes: dict[str, str] = field(default_factory=dict)

    def tidy(self) -> pd.DataFrame:
        """Every subject's trajectory, long format: subject, arm, period, readout, time_h,
        value (the contract's subjects.parquet)."""
        frames = []
        arm = self.data["arm"]
        for name in self.readouts:
            da = self.data[name]
            df = da.to_dataframe(name="value").reset_index()
            df = df.merge(arm.to_dataframe(name="arm_").reset_index(),
                          on=["subject", "period"])
            df["readout"] = name
            frames.append(df[["subject", "arm_", "period", "readout", "time", "value"]])
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        return out.rename(columns={"arm_": "arm", "time": "time_h"})

    @property
    def readouts(self) -> list[str]:
        return [str(v) for v in self.data.data_vars if self.data[v].dims[-1:] == ("time",)]
