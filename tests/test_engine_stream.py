"""Streaming summaries: chunked merging against the unchunked summary."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import ketasim
from ketasim.experiments import run as runner
from ketasim.experiments import stream
from ketasim.experiments.endpoints import summarise

EXACT = ("mean", "sd", "fraction", "difference", "cohens_d", "p_value")
QUANTILES = ("median", "p05", "p95")


def ketasim_hours(t: str) -> float:
    from ketasim import units

    return float(units.hours(t))


def _scenario(n: int, method: str = "batched", parallel: bool = False) -> Any:
    d = ketasim.default_scenario().as_dict()
    d["population"]["size"] = n
    d["engine"]["method"] = method
    if parallel:  # two arms, Welch tests
        d["design"] = {"type": "parallel", "follow_up": "7 d"}
        d["outputs"]["times"] = [t for t in d["outputs"]["times"]
                                 if ketasim_hours(t) <= 7 * 24]  # the default rates to 14 d
    return ketasim.load_scenario(d)


@functools.cache
def _result(n: int, parallel: bool) -> Any:
    return runner.run(_scenario(n, parallel=parallel))


def _chunks(data: Any, sizes: list[int]) -> list[Any]:
    out, lo = [], 0
    n = data.sizes["subject"]
    while lo < n:
        for s in sizes:
            if lo >= n:
                break
            out.append(data.isel(subject=slice(lo, lo + s)))
            lo += s
    return out


STREAMED = {"mean", "sd", "median", "p05", "p95", "fraction", "difference", "cohens_d"}


def _ratio(x: float, y: float) -> float:
    """x / y, or 1 where y is 0 or missing (an exact zero is compared absolutely)."""
    return x / y if np.isfinite(y) and y > 0 else 1.0


def _condition(want: pd.DataFrame) -> np.ndarray:
    """Condition number of each summary value for a merge of float64 moments: |mean| / sd
    for an sd (the update loses that many digits on a near-constant cell), |mean| / |diff|
    for a difference, both for an effect size or test; 1 for means and fractions."""
    key = ["period", "readout", "time_h", "arm"]
    stat = want.set_index([*key, "statistic"])["value"]

    def get(k: tuple[Any, ...], name: str) -> float:
        return float(stat.get((*k, name), np.nan))

    out = np.ones(len(want))
    for i, r in enumerate(want.itertuples(index=False)):
        k = (r.period, r.readout, r.time_h)
        arms = str(r.arm).split(" vs ")
        mean = max(abs(get((*k, x), "mean")) for x in arms)
        sd = min(get((*k, x), "sd") for x in arms)
        diff = abs(get((*k, r.arm), "difference")) if len(arms) == 2 else np.nan
        by_sd, by_diff = _ratio(mean, sd), _ratio(mean, diff)
        kappa = {"sd": by_sd, "difference": by_diff, "cohens_d": by_sd + by_diff,
                 "p_value": by_sd + by_diff}
        c = kappa.get(r.statistic, 1.0)
        out[i] = c if np.isfinite(c) else 1.0
    return out


def _compare(got: pd.DataFrame, want: pd.DataFrame, quantiles_exact: bool = True) -> None:
    # a streamed summary has the contract's statistics; the extension rows of the
    # unchunked summary (CIs, NNT, adjusted tests, whole-period endpoints) need every
    # subject at once and are documented as absent from streamed runs
    assert set(got["statistic"]) <= STREAMED
    want = want[want["statistic"].isin(STREAMED)]
    want = want.reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    key = ["arm", "period", "readout", "time_h", "statistic"]
    pd.testing.assert_frame_equal(got[key].reset_index(drop=True),
                                  want[key].reset_index(drop=True))
    assert (got["n"].to_numpy() == want["n"].to_numpy()).all()
    assert (got["unit"].to_numpy() == want["unit"].to_numpy()).all()
    a, b = got["value"].to_numpy(float), want["value"].to_numpy(float)
    exact = want["statistic"].isin(EXACT).to_numpy()
    rtol = 1e-10 + 10 * np.finfo(float).eps * _condition(want)
    err = np.abs(a - b)
    ok = (err <= 1e-12 + rtol * np.abs(b)) | (np.isnan(a) & np.isnan(b))
    assert ok[exact].all(), want[exact & ~ok]
    if quantiles_exact:
        q = want["statistic"].isin(QUANTILES).to_numpy()
        np.testing.assert_array_equal(a[q], b[q])


@pytest.mark.parametrize("parallel", [False, True], ids=["crossover", "parallel"])
def test_merged_chunks_equal_the_unchunked_summary(parallel: bool) -> None:
    res = _result(12, parallel)
    data = res.data
    data["status"].values[3] = "failed"  # failed subjects are left out, as in summarise
    want = summarise(res.scenario, data)
    for sizes in ([1], [5, 2, 9], [100]):
        acc = stream.SummaryAccumulator(res.scenario)
        for part in _chunks(data, sizes):
            acc.add(part)
        _compare(acc.table(), want)
        assert acc.status == {"ok": data.sizes["subject"] - 1, "failed": 1}


def test_exact_sums_equal_the_rational_sums() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(4)
    x = np.r_[rng.normal(size=300) * 10.0 ** rng.integers(-300, 300, 300),
              5e-324, -5e-324, 1.7e308, -0.0]  # subnormals and the largest magnitudes
    s1, s2 = stream.exact_sums(x)
    unit = Fraction(2) ** stream.LOWEST_EXP
    assert Fraction(s1) * unit == sum(Fraction(v) for v in x)
    assert Fraction(s2) * unit * unit == sum(Fraction(v) ** 2 for v in x)


@pytest.mark.parametrize("parallel", [False, True], ids=["crossover", "parallel"])
def test_summary_is_the_same_bits_for_every_chunking(parallel: bool) -> None:
    """Item 10 of issue 14: the merged summary does not depend on the chunk sizes or the
    merge order (exact sums), not merely to rounding."""
    data = _result(12, parallel).data
    tables = []
    for sizes in ([1], [5, 2, 9], [3], [100]):
        parts = []
        for part in _chunks(data, sizes):
            acc = stream.SummaryAccumulator(_result(12, parallel).scenario)
            acc.add(part)
            parts.append(acc)
        total = parts[0]
        for other in reversed(parts[1:]):  # merged out of order: integers add exactly
            total.merge(other)
        tables.append(total.table())
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0], check_exact=True)


def test_quantile_sample_is_independent_of_chunking() -> None:
    res = _result(12, True)
    data = res.data
    tables = []
    for sizes in ([1], [7, 3], [100]):
        acc = stream.SummaryAccumulator(res.scenario, quantile_sample=5)
        for part in _chunks(data, sizes):
            acc.add(part)
        tables.append(acc.table())
        # the sample is the 5 subjects with the smallest keys
        cell = next(iter(acc.cells.values()))
        assert cell.values.size == 5
    for t in tables[1:]:
        pd.testing.assert_frame_equal(t, tables[0])
    _compare(tables[0], summarise(res.scenario, data), quantiles_exact=False)


def test_streamed_run_matches_unchunked(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from ketasim.errors import KetasimError
    from ketasim.io.results import write_results

    sc = _scenario(2, method="reference")  # one subject per sequence; per-subject engine
    whole = runner.run(sc)
    part = runner.run(sc, chunk_size=1, keep_subjects=True)
    _compare(part.summary, whole.summary)
    assert part.manifest["subjects"] == 2 and part.manifest["subjects_in_data"] == 2
    assert part.manifest["solver_status"] == whole.manifest["solver_status"]
    assert "streamed" in part.manifest["summary_method"]
    for r in whole.readouts:
        np.testing.assert_array_equal(part.data[r].values, whole.data[r].values)
    write_results(part, tmp_path / "all", subjects=True)
    assert (tmp_path / "all" / "subjects.parquet").exists()
    # a streamed run that kept only a sample never writes a partial subjects.parquet
    sample = dataclasses.replace(part, manifest={**part.manifest, "subjects_in_data": 1})
    write_results(sample, tmp_path / "out")
    assert not (tmp_path / "out" / "subjects.parquet").exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["subjects_parquet"].startswith("skipped: a streamed run")
    with pytest.raises(KetasimError, match=r"subjects: .*keep_subjects=True"):
        write_results(sample, tmp_path / "out2", subjects=True)
    assert not (tmp_path / "out2").exists()
    monkeypatch.setattr(runner, "SAMPLE_SUBJECTS", 0)  # memory: no subject kept at all
    bare = runner.run(sc, chunk_size=1)
    assert bare.manifest["subjects"] == 2 and bare.manifest["subjects_in_data"] == 0
    _compare(bare.summary, whole.summary)


def test_subject_keys_are_fixed_and_spread() -> None:
    k = stream.subject_keys(7, np.arange(10_000))
    assert k.dtype == np.uint64 and np.unique(k).size == k.size
    np.testing.assert_array_equal(k[5:9], stream.subject_keys(7, np.arange(5, 9)))
    assert not np.array_equal(k, stream.subject_keys(8, np.arange(10_000)))
    # bottom-k by key is a uniform sample: the chosen indices are spread over the range
    chosen = np.argsort(k)[:1000]
    assert 4000 < chosen.mean() < 6000


def test_auto_engine_depends_on_population_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from ketasim import engine

    assert engine.default_engine(10) == "batched"
    assert engine.default_engine(engine.AUTO_FAST_FROM) in ("fast", "batched")
    monkeypatch.setitem(__import__("sys").modules, "numba", None)  # numba not installed
    assert engine.default_engine(10**6) == "batched"
    assert engine.get("auto").__name__ == "ketasim.engine.batched"


def test_cli_engine_option_is_validated() -> None:
    from typer.testing import CliRunner

    from ketasim.cli import app

    res = CliRunner().invoke(app, ["run", "--engine", "euler"])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1 and "engine" in res.output
