"""``validation.html``: the scorecard of ``ketasim validate`` as one standalone page.

Formats what the validation runner computed (one row per check) and the cases' notes it is
given; it reads no case file itself.
"""

from __future__ import annotations

import html

import pandas as pd

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
td.pass { color: #17702b; font-weight: 600; }
td.fail { color: #b00020; font-weight: 600; }
tr.first td { border-top: 2px solid #999; }
.claim { color: #555; font-size: 0.9em; }
.note { color: #777; font-size: 0.8em; font-style: italic; max-width: 40em; }
"""


def render_html(df: pd.DataFrame, title: str = "ketasim validate: scorecard",
                notes: dict[str, str] | None = None) -> str:
    """A standalone HTML page of the scorecard ``df`` (the rows of
    :func:`ketasim.validation.run_validation`: cases grouped, pass/fail coloured).

    ``notes`` (case id -> text: why the tolerance is what it is) are shown under each
    case's claim; the caller reads them from the cases (``Case.notes``)."""
    notes = notes or {}
    n = len(df)
    n_pass = int(df["passed"].astype(bool).sum()) if n else 0
    by_case = df.groupby("case", sort=False)["passed"].apply(lambda s: bool(s.all())) \
        if n else pd.Series(dtype=bool)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{n_pass} of {n} checks passed; {int(by_case.sum())} of {len(by_case)} cases "
        "passed.</p>",
        "<table><thead><tr><th>case</th><th>source</th><th>check</th><th>expected</th>"
        "<th>simulated</th><th>result</th></tr></thead><tbody>",
    ]
    last = None
    for row in df.to_dict(orient="records"):
        first = row["case"] != last
        last = row["case"]
        note = notes.get(str(row["case"]), "")
        note_div = f'<div class="note">{esc(note)}</div>' if note else ""
        case_cell = (f"<b>{esc(str(row['case']))}</b><div class=\"claim\">"
                     f"{esc(str(row['claim']))}</div>{note_div}") if first else ""
        src = esc(str(row["source"])) if first else ""
        ok = bool(row["passed"])
        parts.append(
            f'<tr class="{"first" if first else ""}"><td>{case_cell}</td><td>{src}</td>'
            f"<td>{esc(str(row['check']))}</td><td>{esc(str(row['expected']))}</td>"
            f"<td>{esc(str(row['simulated']))}</td>"
            f'<td class="{"pass" if ok else "fail"}">{"pass" if ok else "FAIL"}</td></tr>')
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(parts)
