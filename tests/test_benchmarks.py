"""Every script in benchmarks/ runs end to end on a tiny problem (smoke tests, no timing).

A model or scenario change that breaks a benchmark (as the 7-day follow-up of
bench_engine's scenario once did against the default's 14-day output times) fails here,
not months later in someone's benchmark run. The numbers they print are not checked: a
benchmark measures speed, and speed is never asserted in a test.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench(name: str) -> Any:
    # stays on the path: benchmarks' worker processes (spawned) unpickle their functions
    # by module name and inherit this process's sys.path
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def test_bench_engine_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numba")
    pytest.importorskip("roadrunner")
    _bench("bench_engine").main(["--n", "3", "--rr-subjects", "2"])
    out = capsys.readouterr().out
    assert "ratio ketasim/libroadrunner at N=3:" in out


def test_bench_million_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numba")
    _bench("bench_million").main(["--n", "4", "--chunk", "2"])
    assert "N=4 subjects:" in capsys.readouterr().out


def test_bench_executor_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numba")
    pytest.importorskip("distributed")
    _bench("bench_executor").main(["--n", "4", "--workers", "1", "--chunk", "2"])
    assert "summaries identical: True" in capsys.readouterr().out


def test_bench_validate_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    _bench("bench_validate").main(["--jobs", "1", "--case", "li2011_cus_reversal"])
    assert "identical tables: True" in capsys.readouterr().out


def test_bench_tolerance_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numba")
    errs = _bench("bench_tolerance").main(["--n", "1", "--rtol", "1e-5"])
    assert set(errs) == {1e-5}
    assert "tolerance: rtol 1e-05" in capsys.readouterr().out


def test_pk_table(capsys: pytest.CaptureFixture[str]) -> None:
    _bench("pk_table").main()
    assert "ketamine" in capsys.readouterr().out


def test_bench_first_use_tiny(capsys: pytest.CaptureFixture[str]) -> None:
    res = _bench("bench_first_use").main(["--cases", "rodent", "--timeout", "600"])
    cold, warm = res["this"]["rodent"]
    assert cold is not None and warm is not None
    assert "first use: rodent cold" in capsys.readouterr().out
