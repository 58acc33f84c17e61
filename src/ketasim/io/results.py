"""Write a :class:`~ketasim.result.RunResult` to disk: the contract's result files.

``write_results(result, out)`` writes, into the directory ``out``:

- ``summary.csv``: one row per (arm, period, readout, time, statistic), contract columns
  ``arm, period, readout, time_h, statistic, value, unit, n`` in that order;
- ``subjects.parquet``: every subject's trajectory (``RunResult.tidy()``), unless the table
  would have more than :data:`SUBJECTS_ROW_LIMIT` rows or the run was streamed without
  keeping its subjects (the manifest then says it was skipped);
- ``manifest.json``: ``RunResult.manifest`` plus the list of files written;
- ``report.html``: figures and tables for a person (:func:`ketasim.io.report.render_report`);
- ``<name>.csv`` for every table in ``RunResult.extra_tables``.

Writing is atomic: everything goes into a temporary sibling directory that is renamed into
place at the end, so a failure leaves ``out`` as it was.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ketasim.errors import ArgumentError
from ketasim.result import SUMMARY_COLUMNS, RunResult

__all__ = ["SUBJECTS_ROW_LIMIT", "check_out_dir", "json_ready", "summary_records",
           "write_atomically", "write_results"]

SUBJECTS_ROW_LIMIT = 5_000_000
_RESERVED = {"summary", "subjects", "manifest", "report"}


def check_out_dir(out: Path | str, overwrite: bool = False) -> Path:
    """``out`` as a Path if results may be written there; ArgumentError (one line) if not.

    A directory that does not exist or is empty is fine; a non-empty one only with
    ``overwrite``; a file never.
    """
    out = Path(out)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise ArgumentError("out", f"{out} exists and is not a directory")
        if not overwrite and any(out.iterdir()):
            raise ArgumentError("out", f"{out} exists; use overwrite=True")
    return out


def summary_table(result: RunResult) -> pd.DataFrame:
    """The summary with exactly the contract columns, in order (missing ones empty)."""
    df = result.summary.copy()
    for col in SUMMARY_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    return df[SUMMARY_COLUMNS].reset_index(drop=True)


def summary_records(result: RunResult) -> list[dict[str, Any]]:
    """The summary as JSON-ready records (NaN -> None, numpy scalars -> Python)."""
    df = summary_table(result)
    return [{str(k): _plain(v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


def subjects_rows(result: RunResult) -> int:
    """Number of rows ``RunResult.tidy()`` would have, without building it."""
    return int(sum(result.data[r].size for r in result.readouts))


def write_results(result: RunResult, out: Path | str, overwrite: bool = False,
                  subjects: bool | None = None) -> list[Path]:
    """Write the result files into ``out`` (see the module docstring); return their paths.

    ``subjects``: True always writes ``subjects.parquet``, False never, None (default) when
    it has at most :data:`SUBJECTS_ROW_LIMIT` rows. Raises ArgumentError if ``out`` exists and
    is not empty and ``overwrite`` is false; nothing is written then.
    """
    return _write_atomically(out, overwrite, lambda tmp: _write_all(result, tmp, subjects))


def _write_atomically(out: Path | str, overwrite: bool,
                      fill: Callable[[Path], list[str]]) -> list[Path]:
    """``fill`` writes files into a temporary sibling of ``out`` (returning their names),
    which is then renamed into place: a failure leaves nothing half-written."""
    out = check_out_dir(out, overwrite)
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{out.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()  # mode from the umask, unlike mkdtemp's 0700: it becomes ``out``
    try:
        names = fill(tmp)
        _swap(tmp, out.absolute(), overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / n for n in names]


def _write_all(result: RunResult, tmp: Path, subjects: bool | None) -> list[str]:
    names: list[str] = []
    summary_table(result).to_csv(tmp / "summary.csv", index=False)
    names.append("summary.csv")

    rows = subjects_rows(result)
    total, kept = result.manifest.get("subjects"), result.manifest.get("subjects_in_data")
    partial = total is not None and kept is not None and kept < total
    write_subjects = rows <= SUBJECTS_ROW_LIMIT if subjects is None else subjects
    if partial and subjects:
        raise ArgumentError("subjects", f"this run kept {kept} of {total} subjects in memory "
                            "(streamed summaries); run it with keep_subjects=True to write "
                            "subjects.parquet")
    if partial:
        subjects_note = (f"skipped: a streamed run of {total} subjects keeps {kept} in memory; "
                         "use --subjects to keep and write them all")
    elif write_subjects:
        tidy = result.tidy()
        for col in ("arm", "readout"):
            if col in tidy.columns:
                tidy[col] = tidy[col].astype(str)
        tidy.to_parquet(tmp / "subjects.parquet", engine="pyarrow", index=False)
        names.append("subjects.parquet")
        subjects_note = f"written ({rows} rows)"
    elif subjects is None:
        subjects_note = (f"skipped: {rows} rows is more than {SUBJECTS_ROW_LIMIT}; "
                         "use --subjects to write it anyway")
    else:
        subjects_note = "skipped (--no-subjects)"

    for name, table in result.extra_tables.items():
        fname = f"{_safe_name(name)}.csv"
        pd.DataFrame(table).to_csv(tmp / fname, index=False)
        names.append(fname)

    from ketasim.io.report import render_report

    (tmp / "report.html").write_text(render_report(result), encoding="utf-8")
    names.append("report.html")

    names.append("manifest.json")
    manifest = dict(result.manifest)
    manifest["subjects_parquet"] = subjects_note
    manifest["files"] = sorted(names)
    text = json.dumps(_plain(manifest), indent=2, allow_nan=False)
    (tmp / "manifest.json").write_text(text + "\n", encoding="utf-8")
    return names


def _swap(tmp: Path, out: Path, overwrite: bool) -> None:
    """Move ``tmp`` to ``out``; an existing ``out`` is moved aside first, removed last."""
    old: Path | None = None
    if out.exists():
        if any(out.iterdir()) and not overwrite:  # appeared while we were writing
            raise ArgumentError("out", f"{out} exists; use overwrite=True")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old / out.name)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            (old / out.name).rename(out)
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("._") or "table"
    return f"extra_{safe}" if safe.lower() in _RESERVED else safe


def _plain(v: Any) -> Any:
    """JSON-able Python value: NaN/inf -> None, numpy -> Python, containers recursively."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_plain(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, bool | int | str):
        return v
    if v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, datetime | date | pd.Timestamp):
        return v.isoformat()
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "model_dump"):
        return _plain(v.model_dump(mode="json"))
    return str(v)


def write_atomically(out: Path | str, overwrite: bool,
                     fill: Callable[[Path], list[str]]) -> list[Path]:
    """``fill(tmp)`` writes files into a temporary folder (returning their names) that then
    replaces ``out`` at once; ArgumentError if ``out`` is not empty and ``overwrite`` is
    false. A failure leaves ``out`` as it was."""
    return _write_atomically(out, overwrite, fill)


def json_ready(v: Any) -> Any:
    """``v`` as JSON-able Python data (NaN and inf as None, numpy as Python)."""
    return _plain(v)


def write_files(out: Path | str, files: dict[str, str], overwrite: bool = False) -> list[Path]:
    """Write text ``files`` (name -> content) into ``out`` all at once, as
    :func:`write_results` does. ArgumentError if ``out`` is not empty and ``overwrite`` is
    false."""
    def fill(tmp: Path) -> list[str]:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        return list(files)

    return _write_atomically(out, overwrite, fill)
